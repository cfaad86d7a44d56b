//! OTLP/HTTP: `POST /v1/traces`, `/v1/metrics`, `/v1/logs`. Decodes and maps errors only.

use super::decode::{inflate, media_type, Encoding};
use super::status::RpcStatus;
use super::{json, Accepted, Ingest, IngestError};
use crate::error::RETRY_AFTER_SECS;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/traces", web::post().to(traces))
        .route("/v1/metrics", web::post().to(other_signal))
        .route("/v1/logs", web::post().to(other_signal));
}

async fn traces(req: HttpRequest, body: web::Payload, ingest: web::Data<Ingest>) -> HttpResponse {
    let encoding = match media_type(header_str(&req, header::CONTENT_TYPE)) {
        Ok(e) => e,
        Err(e) => return error_response(Encoding::Json, &e),
    };
    let result = async {
        let _permit = ingest.admit()?;
        let mut held = None;
        let raw = read_body(&req, body, &ingest, &mut held).await?;
        let limit = ingest.config.max_body_bytes;
        let content_encoding = header_str(&req, header::CONTENT_ENCODING).map(str::to_string);
        let budget = ingest.clone();
        let batch = web::block(move || {
            let body = inflate(&raw, content_encoding.as_deref(), limit)?;
            // The inflated copy, and roughly as much again for the decoded request.
            if content_encoding.is_some() || encoding == Encoding::Json {
                budget.reserve(&mut held, body.len().saturating_mul(2))?;
            }
            decode_traces(&body, encoding)
                .map(super::prepare)
                .map(|b| (b, held))
        })
        .await
        .map_err(|e| IngestError::Malformed(format!("decode task failed: {e}")))??;
        let (batch, _held) = batch;
        ingest.accept(batch).await
    }
    .await;
    match result {
        Ok(accepted) => success(encoding, accepted),
        Err(e) => error_response(encoding, &e),
    }
}

fn decode_traces(
    body: &[u8],
    encoding: Encoding,
) -> Result<ExportTraceServiceRequest, IngestError> {
    match encoding {
        Encoding::Protobuf => ExportTraceServiceRequest::decode(body)
            .map_err(|e| IngestError::Malformed(format!("invalid protobuf: {e}"))),
        Encoding::Json => json::decode_traces(body).map_err(IngestError::Malformed),
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
        let _permit = ingest.admit()?;
        let mut held = None;
        let raw = read_body(&req, body, &ingest, &mut held).await?;
        let limit = ingest.config.max_body_bytes;
        let content_encoding = header_str(&req, header::CONTENT_ENCODING).map(str::to_string);
        web::block(move || {
            check_other_signal(&raw, content_encoding.as_deref(), encoding, metrics, limit)
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
        Err(e) => error_response(encoding, &e),
    }
}

/// Validates a metrics or logs body (decoded, then dropped: not stored yet).
fn check_other_signal(
    raw: &[u8],
    content_encoding: Option<&str>,
    encoding: Encoding,
    metrics: bool,
    limit: usize,
) -> Result<(), IngestError> {
    let body = inflate(raw, content_encoding, limit)?;
    let invalid = |e: prost::DecodeError| IngestError::Malformed(format!("invalid protobuf: {e}"));
    match (encoding, metrics) {
        (Encoding::Json, _) => json::check_object(&body).map_err(IngestError::Malformed),
        (Encoding::Protobuf, true) => ExportMetricsServiceRequest::decode(&body[..])
            .map(|_| ())
            .map_err(invalid),
        (Encoding::Protobuf, false) => ExportLogsServiceRequest::decode(&body[..])
            .map(|_| ())
            .map_err(invalid),
    }
}

fn header_str(req: &HttpRequest, name: header::HeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Reads the body (chunked or not), refusing early past the limit, and reserving its size in
/// the in-flight memory budget.
async fn read_body(
    req: &HttpRequest,
    mut body: web::Payload,
    ingest: &Ingest,
    held: &mut Option<tokio::sync::OwnedSemaphorePermit>,
) -> Result<Vec<u8>, IngestError> {
    let limit = ingest.config.max_body_bytes;
    let declared = header_str(req, header::CONTENT_LENGTH).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(IngestError::TooLarge { limit });
    }
    let mut out = Vec::with_capacity(declared.unwrap_or(64 * 1024).min(limit));
    while let Some(chunk) = body.next().await {
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
    let status = actix_web::http::StatusCode::from_u16(code.http_status())
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    let mut builder = HttpResponse::build(status);
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
            }
            .encode_to_vec(),
        ),
        Encoding::Json => builder.content_type("application/json").body(
            serde_json::json!({"code": code.grpc_code() as i32, "message": message}).to_string(),
        ),
    }
}
