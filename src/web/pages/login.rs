//! `GET /login`, `POST /login`, `POST /logout`: the page that asks a browser for the
//! `--auth-token` once and keeps, instead of it, a session cookie (HttpOnly, SameSite=Strict;
//! see `guard::token`). Without a token configured, both send the browser to the map.

use crate::guard::Guard;
use crate::web::render::{render, PageError};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use askama::Template;

/// Longest `next` path kept; a longer one goes back to the map.
const MAX_NEXT: usize = 2048;

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    /// Where to go after the login: a path of this server.
    pub next: String,
    pub failed: bool,
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
    page_with(StatusCode::OK, next, false).await
}

pub async fn login(
    form: web::Form<LoginForm>,
    guard: web::Data<Guard>,
) -> Result<HttpResponse, PageError> {
    let next = local_path(form.next.as_deref());
    if !guard.requires_token() {
        return Ok(see_other(&next));
    }
    match guard.login(&form.token) {
        Some(cookie) => {
            let mut resp = see_other(&next);
            if let Ok(v) = header::HeaderValue::from_str(&cookie) {
                resp.headers_mut().insert(header::SET_COOKIE, v);
            }
            Ok(resp)
        }
        None => page_with(StatusCode::UNAUTHORIZED, next, true).await,
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
    failed: bool,
) -> Result<HttpResponse, PageError> {
    let mut resp = render(LoginPage { next, failed }).await?;
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
