//! The guard as actix middleware: [`check`] wraps a whole `App` (`.wrap(from_fn(check))`)
//! and reads the [`Guard`] from its app data. Refusals carry the JSON error body of the API
//! (`{"error", "message"}`), never any data; a 401 says `WWW-Authenticate: Bearer`, and on the
//! `--http` listener a browser's GET for a page is sent to `/login?next=<path>` instead.

use super::{Guard, Parts, Refusal};
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};

/// The middleware function; a listener without a `Guard` in its app data refuses everything.
pub async fn check(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let verdict = match req.app_data::<web::Data<Guard>>() {
        Some(guard) => guard
            .check(&parts(&req))
            .map_err(|r| (r, guard.login_page())),
        None => Err((Refusal::Unauthorized, false)),
    };
    match verdict {
        Ok(()) => next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body),
        Err((refusal, login_page)) => {
            tracing::debug!(
                status = refusal.http_status(),
                method = %req.method(),
                path = %req.path(),
                "request refused"
            );
            let response = refuse(&req, refusal, login_page);
            Ok(req.into_response(response).map_into_right_body())
        }
    }
}

fn parts(req: &ServiceRequest) -> Parts<'_> {
    let headers = req.headers();
    let one = |name: header::HeaderName| headers.get(name).map(HeaderValue::as_bytes);
    Parts {
        method: req.method().as_str(),
        path: req.path(),
        host: one(header::HOST),
        origin: one(header::ORIGIN),
        sec_fetch_site: headers.get("sec-fetch-site").map(HeaderValue::as_bytes),
        authorization: one(header::AUTHORIZATION),
        cookies: headers
            .get_all(header::COOKIE)
            .map(HeaderValue::as_bytes)
            .collect(),
        bound: req.app_config().local_addr().ip(),
        client: req.peer_addr().map(|a| a.ip()),
    }
}

fn refuse(req: &ServiceRequest, refusal: Refusal, login_page: bool) -> HttpResponse {
    if refusal == Refusal::Unauthorized && login_page && wants_page(req) {
        let next = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let location = format!("/login?next={}", crate::percent::encode(next));
        return HttpResponse::SeeOther()
            .insert_header((header::LOCATION, location))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish();
    }
    let status = StatusCode::from_u16(refusal.http_status()).unwrap_or(StatusCode::FORBIDDEN);
    let mut builder = HttpResponse::build(status);
    if refusal == Refusal::Unauthorized {
        builder.insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"switchyard\""));
    }
    if let Refusal::TooManyAttempts(secs) = refusal {
        builder.insert_header((header::RETRY_AFTER, secs.to_string()));
    }
    builder
        .insert_header((header::CACHE_CONTROL, "no-store"))
        // The body, if any, is left unread: the connection cannot carry another request.
        .force_close()
        .json(serde_json::json!({"error": refusal.as_str(), "message": refusal.message()}))
}

/// A browser asking for a page: a GET or HEAD whose `Accept` names HTML.
fn wants_page(req: &ServiceRequest) -> bool {
    matches!(req.method().as_str(), "GET" | "HEAD") && accepts_html(req.headers())
}

fn accepts_html(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/html"))
}
