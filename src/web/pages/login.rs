//! `GET /login`, `POST /login`, `POST /logout`: the page that asks a browser for the
//! `--auth-token` once and keeps, instead of it, a session cookie (HttpOnly, SameSite=Strict;
//! see `guard::token`). Without a token configured, both send the browser to the map.

use crate::guard::{Guard, Refusal};
use crate::web::render::{render, PageError};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

/// Longest `next` path kept; a longer one goes back to the map.
const MAX_NEXT: usize = 2048;

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    /// Where to go after the login: a path of this server.
    pub next: String,
    /// Why the last attempt failed (empty: none failed).
    pub error: String,
}

#[derive(serde::Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

#[derive(serde::Deserialize)]
pub struct LoginForm {
    token: String,
    next: Option<String>,
}

pub async fn page(
    q: web::Query<NextQuery>,
    guard: web::Data<Guard>,
) -> Result<HttpResponse, PageError> {
    if !guard.requires_token() {
        return Ok(see_other("/"));
    }
    let next = local_path(q.next.as_deref());
    page_with(StatusCode::OK, next, String::new()).await
}

pub async fn login(
    req: HttpRequest,
    form: web::Form<LoginForm>,
    guard: web::Data<Guard>,
) -> Result<HttpResponse, PageError> {
    let next = local_path(form.next.as_deref());
    if !guard.requires_token() {
        return Ok(see_other(&next));
    }
    let client = req.peer_addr().map(|a| a.ip());
    match guard.login(&form.token, client) {
        Ok(cookie) => {
            let mut resp = see_other(&next);
            if let Ok(v) = header::HeaderValue::from_str(&cookie) {
                resp.headers_mut().insert(header::SET_COOKIE, v);
            }
            Ok(resp)
        }
        Err(Refusal::TooManyAttempts(secs)) => {
            let why = format!("Too many wrong tokens: try again in {secs} seconds.");
            let mut resp = page_with(StatusCode::TOO_MANY_REQUESTS, next, why).await?;
            if let Ok(v) = header::HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            Ok(resp)
        }
        Err(_) => {
            let why = "That is not the token.".to_string();
            page_with(StatusCode::UNAUTHORIZED, next, why).await
        }
    }
}

pub async fn logout(guard: web::Data<Guard>) -> HttpResponse {
    let mut resp = see_other("/login");
    if let Ok(v) = header::HeaderValue::from_str(&guard.logout_cookie()) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

async fn page_with(
    status: StatusCode,
    next: String,
    error: String,
) -> Result<HttpResponse, PageError> {
    let mut resp = render(LoginPage { next, error }).await?;
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    Ok(resp)
}

fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// `next` when it is a path of this server (`/...`, not `//host` or `/\host`, visible ASCII,
/// not the login itself), else `/`: the login never sends a browser elsewhere.
fn local_path(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.starts_with("/\\")
                && !n.starts_with("/login")
                && !n.starts_with("/logout")
                && n.len() <= MAX_NEXT
                && n.bytes().all(|b| (0x21..=0x7e).contains(&b)) =>
        {
            n.to_string()
        }
        _ => "/".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_server() {
        assert_eq!(local_path(Some("/traces?q=a%20b")), "/traces?q=a%20b");
        for away in [
            "https://evil.example/",
            "//evil.example",
            "/\\evil.example",
            "evil",
            "/a b",
            "/login?next=/",
            "",
        ] {
            assert_eq!(local_path(Some(away)), "/", "{away}");
        }
        assert_eq!(local_path(None), "/");
    }
}
