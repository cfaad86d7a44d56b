//! OTLP/HTTP: `POST /v1/traces`, `/v1/metrics`, `/v1/logs`. Decodes and maps errors only.

use super::decode::{inflate, media_type, Encoding};
use super::status::RpcStatus;
use super::{json, shape, Accepted, Ingest, IngestError, Reserved};
use crate::error::RETRY_AFTER_SECS;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/traces", web::post().to(traces))
        .route("/v1/metrics", web::post().to(other_signal))
        .route("/v1/logs", web::post().to(other_signal));
}

async fn traces(req: HttpRequest, body: web::Payload, ingest: web::Data<Ingest>) -> HttpResponse {
    let started = std::time::Instant::now();
    let answer = traces_answer(req, body, ingest).await;
    crate::telemetry::METRICS
        .otlp_http
        .duration
        .observe(started.elapsed());
    answer
}

async fn traces_answer(
    req: HttpRequest,
    body: web::Payload,
    ingest: web::Data<Ingest>,
) -> HttpResponse {
    let encoding = match media_type(header_str(&req, header::CONTENT_TYPE)) {
        Ok(e) => e,
        Err(e) => return error_response(Encoding::Json, &e),
    };
    let result = async {
        let mut held = None;
        let raw = receive(&req, body, &ingest, &mut held).await?;
        // The body has arrived: only now does the request take an in-flight slot, so slow or
        // stalled uploads cannot hold them.
        let _permit = ingest.admit()?;
        let limit = ingest.config.max_body_bytes;
        let content_encoding = header_str(&req, header::CONTENT_ENCODING).map(str::to_string);
        let decoder = ingest.clone();
        let (batch, _held) = web::block(move || {
            let body = inflate(&raw, content_encoding.as_deref(), limit)?;
            if content_encoding.is_some() {
                decoder.reserve(&mut held, body.len())?;
            }
            decoder
                .decode(&body, encoding, &mut held)
                .map(|b| (b, held))
        })
        .await
        .map_err(|e| IngestError::Malformed(format!("decode task failed: {e}")))??;
        ingest.accept(batch).await
    }
    .await;
    match result {
        Ok(accepted) => success(encoding, accepted),
        Err(e) => refuse(&req, encoding, &e),
    }
}

/// Metrics and logs are accepted (validated, not stored) so SDKs exporting every signal do
/// not log errors.
async fn other_signal(
    req: HttpRequest,
    body: web::Payload,
    ingest: web::Data<Ingest>,
) -> HttpResponse {
    let encoding = match media_type(header_str(&req, header::CONTENT_TYPE)) {
        Ok(e) => e,
        Err(e) => return error_response(Encoding::Json, &e),
    };
    let metrics = req.path().ends_with("metrics");
    let result = async {
        let mut held = None;
        let raw = receive(&req, body, &ingest, &mut held).await?;
        let _permit = ingest.admit()?;
        let limit = ingest.config.max_body_bytes;
        let max_decoded = ingest.config.limits.max_decoded_bytes;
        let content_encoding = header_str(&req, header::CONTENT_ENCODING).map(str::to_string);
        web::block(move || {
            check_other_signal(
                &raw,
                content_encoding.as_deref(),
                encoding,
                metrics,
                (limit, max_decoded),
            )
        })
        .await
        .map_err(|e| IngestError::Malformed(format!("decode task failed: {e}")))?
    }
    .await;
    match result {
        Ok(()) => match encoding {
            Encoding::Json => HttpResponse::Ok()
                .content_type("application/json")
                .body("{}"),
            Encoding::Protobuf => HttpResponse::Ok()
                .content_type("application/x-protobuf")
                .body(Vec::new()),
        },
        Err(e) => refuse(&req, encoding, &e),
    }
}

/// Validates a metrics or logs body (not stored yet): protobuf by its wire format (nothing
/// decoded), JSON by parsing it once its estimated size is within `--max-decoded`.
fn check_other_signal(
    raw: &[u8],
    content_encoding: Option<&str>,
    encoding: Encoding,
    metrics: bool,
    (limit, max_decoded): (usize, u64),
) -> Result<(), IngestError> {
    let body = inflate(raw, content_encoding, limit)?;
    match encoding {
        Encoding::Json => {
            let shape = shape::json_traces(&body)?;
            if shape.decoded_bytes > max_decoded {
                return Err(IngestError::TooBig(format!(
                    "about {} bytes decoded, more than --max-decoded {max_decoded}",
                    shape.decoded_bytes
                )));
            }
            json::check_object(&body).map_err(IngestError::Malformed)
        }
        Encoding::Protobuf if metrics => Ok(shape::protobuf_wire(&body)?),
        Encoding::Protobuf => Ok(shape::protobuf_wire(&body)?),
    }
}

/// An error answer; a body that stopped coming also has its connection hung up, since the
/// server would otherwise wait to drain the rest of it.
fn refuse(req: &HttpRequest, encoding: Encoding, err: &IngestError) -> HttpResponse {
    if matches!(err, IngestError::BodyTimeout) {
        hang_up(req);
    }
    error_response(encoding, err)
}

/// The socket of an HTTP connection, remembered (`on_connect`) for [`hang_up`].
#[derive(Clone, Copy, Debug)]
pub struct SocketFd(#[cfg(target_os = "linux")] std::os::fd::RawFd);

/// Remembers each connection's socket in its extensions (`HttpServer::on_connect`).
pub fn remember_socket(conn: &dyn std::any::Any, ext: &mut actix_web::dev::Extensions) {
    #[cfg(target_os = "linux")]
    if let Some(stream) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
        use std::os::fd::AsRawFd;
        ext.insert(SocketFd(stream.as_raw_fd()));
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (conn, ext);
}

/// Shuts the read half of the request's connection: the server sees the end of the stream
/// instead of draining a body that does not come, and closes the connection.
fn hang_up(req: &HttpRequest) {
    #[cfg(target_os = "linux")]
    if let Some(SocketFd(fd)) = req.conn_data::<SocketFd>().copied() {
        // SAFETY: `fd` is the socket of the connection this request is being handled on, open
        // for as long as the request is; shutdown(2) closes nothing and frees nothing.
        unsafe {
            libc::shutdown(fd, libc::SHUT_RD);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = req;
}

fn header_str(req: &HttpRequest, name: header::HeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Reads the body counted as an upload (`--max-uploads`), apart from the in-flight slots.
async fn receive(
    req: &HttpRequest,
    body: web::Payload,
    ingest: &Ingest,
    held: &mut Reserved,
) -> Result<Vec<u8>, IngestError> {
    let _receiving = ingest.receiving()?;
    read_body(req, body, ingest, held).await
}

/// Reads the body (chunked or not), refusing early past the limit, reserving its size in the
/// in-flight memory budget, and refusing with 408 a body slower than the minimum rate after
/// the grace (`--body-timeout`, `--body-min-rate`).
async fn read_body(
    req: &HttpRequest,
    mut body: web::Payload,
    ingest: &Ingest,
    held: &mut Reserved,
) -> Result<Vec<u8>, IngestError> {
    let limit = ingest.config.max_body_bytes;
    let declared = header_str(req, header::CONTENT_LENGTH).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(IngestError::TooLarge { limit });
    }
    let started = tokio::time::Instant::now();
    let mut out = Vec::with_capacity(declared.unwrap_or(64 * 1024).min(limit));
    loop {
        let deadline = started + ingest.config.limits.body_deadline(out.len());
        let next = tokio::time::timeout_at(deadline, body.next())
            .await
            .map_err(|_| IngestError::BodyTimeout)?;
        let Some(chunk) = next else { break };
        let chunk =
            chunk.map_err(|e| IngestError::Malformed(format!("could not read the body: {e}")))?;
        if out.len() + chunk.len() > limit {
            return Err(IngestError::TooLarge { limit });
        }
        ingest.reserve(held, chunk.len())?;
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

fn success(encoding: Encoding, accepted: Accepted) -> HttpResponse {
    let partial = (accepted.rejected_spans > 0).then(|| ExportTracePartialSuccess {
        rejected_spans: accepted.rejected_spans,
        error_message: accepted.error_message.clone(),
    });
    match encoding {
        Encoding::Protobuf => HttpResponse::Ok()
            .content_type("application/x-protobuf")
            .body(
                ExportTraceServiceResponse {
                    partial_success: partial,
                }
                .encode_to_vec(),
            ),
        Encoding::Json => {
            let body = match partial {
                Some(p) => {
                    serde_json::json!({"partialSuccess": {"rejectedSpans": p.rejected_spans.to_string(), "errorMessage": p.error_message}})
                }
                None => serde_json::json!({}),
            };
            HttpResponse::Ok()
                .content_type("application/json")
                .body(body.to_string())
        }
    }
}

/// An error as OTLP/HTTP wants it: a `google.rpc.Status` in the request's encoding, with
/// `Retry-After` on 429 and 503.
pub fn error_response(encoding: Encoding, err: &IngestError) -> HttpResponse {
    let code = err.code();
    crate::telemetry::METRICS
        .otlp_http
        .refused(code.http_status());
    let status = actix_web::http::StatusCode::from_u16(code.http_status())
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    let mut builder = HttpResponse::build(status);
    if code == crate::error::ErrorCode::RequestTimeout {
        // The rest of a body that came too slowly is not waited for.
        builder.force_close();
    }
    if code.retryable() {
        builder.insert_header((header::RETRY_AFTER, RETRY_AFTER_SECS.to_string()));
    }
    if code.http_status() >= 500 {
        if let Some(suppressed) = crate::lograte::ERRORS.allow("ingest.otlp_http") {
            tracing::warn!(error = %err, suppressed, "otlp request failed");
        }
    }
    let message = err.to_string();
    match encoding {
        Encoding::Protobuf => builder.content_type("application/x-protobuf").body(
            RpcStatus {
                code: code.grpc_code() as i32,
                message,
                details: Vec::new(),
            }
            .encode_to_vec(),
        ),
        Encoding::Json => builder.content_type("application/json").body(
            serde_json::json!({"code": code.grpc_code() as i32, "message": message}).to_string(),
        ),
    }
}
