//! OTLP/gRPC `TraceService/Export`: receives the message as bytes (tonic, gzip accepted), then
//! the one decoding path ([`Ingest::decode`]: shape, limits, prost) and maps errors only.
//!
//! The service is written out rather than generated so that the message reaches us undecoded
//! (the generated one decodes it before any limit runs) and so that status codes follow the
//! OTLP specification: an undecodable message is INVALID_ARGUMENT, an oversized one
//! RESOURCE_EXHAUSTED without RetryInfo (not retried), an overloaded server UNAVAILABLE with
//! RetryInfo (retried after the delay it gives).

use super::decode::Encoding;
use super::status::{RetryInfo, RpcStatus};
use super::{Ingest, IngestError};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::bytes::{Buf, Bytes};
use prost::Message;
use std::convert::Infallible;
use std::task::{Context, Poll};
use tonic::codec::{
    Codec, CompressionEncoding, DecodeBuf, Decoder, EnabledCompressionEncodings, EncodeBuf, Encoder,
};
use tonic::codegen::{http, BoxFuture, Service, StdError};
use tonic::{Code, Request, Response, Status};

/// The gRPC path of `Export`.
const EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// The trace service, as tonic's router takes it.
#[derive(Clone)]
pub struct TraceServer {
    ingest: Ingest,
}

pub fn service(ingest: Ingest) -> TraceServer {
    TraceServer { ingest }
}

impl tonic::server::NamedService for TraceServer {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

impl<B> Service<http::Request<B>> for TraceServer
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != EXPORT {
            return Box::pin(async { Ok(Status::unimplemented("").into_http()) });
        }
        let ingest = self.ingest.clone();
        Box::pin(async move {
            let limit = ingest.config.max_body_bytes;
            let mut gzip = EnabledCompressionEncodings::default();
            gzip.enable(CompressionEncoding::Gzip);
            let mut grpc = tonic::server::Grpc::new(BytesCodec)
                .apply_compression_config(gzip, gzip)
                .apply_max_message_size_config(Some(limit), None);
            Ok(oversized_is_resource_exhausted(
                grpc.unary(Export(ingest), req).await,
            ))
        })
    }
}

/// tonic refuses a message longer than the limit with OUT_OF_RANGE, which OTLP exporters
/// retry: it becomes RESOURCE_EXHAUSTED (no RetryInfo: not retried), as for a body that
/// inflates or decodes past the limits.
fn oversized_is_resource_exhausted(
    mut response: http::Response<tonic::body::Body>,
) -> http::Response<tonic::body::Body> {
    let headers = response.headers_mut();
    let out_of_range = (Code::OutOfRange as i32).to_string();
    if headers
        .get(Status::GRPC_STATUS)
        .is_some_and(|v| v.as_bytes() == out_of_range.as_bytes())
    {
        headers.insert(
            Status::GRPC_STATUS,
            http::HeaderValue::from(Code::ResourceExhausted as i32),
        );
    }
    response
}

struct Export(Ingest);

impl tonic::server::UnaryService<Bytes> for Export {
    type Response = ExportTraceServiceResponse;
    type Future = BoxFuture<Response<ExportTraceServiceResponse>, Status>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let ingest = self.0.clone();
        Box::pin(async move {
            let started = std::time::Instant::now();
            let answer = export(ingest, request.into_inner()).await;
            crate::telemetry::METRICS
                .otlp_grpc
                .duration
                .observe(started.elapsed());
            answer
        })
    }
}

async fn export(
    ingest: Ingest,
    body: Bytes,
) -> Result<Response<ExportTraceServiceResponse>, Status> {
    let mut held = None;
    ingest.reserve(&mut held, body.len()).map_err(to_status)?;
    // The message has arrived whole: only now does the request take an in-flight slot.
    let _permit = ingest.admit().map_err(to_status)?;
    let decoder = ingest.clone();
    let (batch, _held) = tokio::task::spawn_blocking(move || {
        decoder
            .decode(&body, Encoding::Protobuf, &mut held)
            .map(|b| (b, held))
    })
    .await
    .map_err(|e| Status::internal(format!("decode task failed: {e}")))?
    .map_err(to_status)?;
    let accepted = ingest.accept(batch).await.map_err(to_status)?;
    let partial_success = (accepted.rejected_spans > 0).then_some(ExportTracePartialSuccess {
        rejected_spans: accepted.rejected_spans,
        error_message: accepted.error_message,
    });
    Ok(Response::new(ExportTraceServiceResponse {
        partial_success,
    }))
}

/// An error as OTLP/gRPC wants it; a retryable one carries `google.rpc.RetryInfo` (and a
/// `retry-after` header for plain gRPC clients).
pub fn to_status(err: IngestError) -> Status {
    let code = err.code();
    crate::telemetry::METRICS
        .otlp_grpc
        .refused(code.http_status());
    let message = err.to_string();
    if !code.retryable() {
        return Status::new(code.grpc_code(), message);
    }
    let delay = crate::error::RETRY_AFTER_SECS;
    let details = RpcStatus {
        code: code.grpc_code() as i32,
        message: message.clone(),
        details: vec![RetryInfo::after_secs(delay).to_any()],
    };
    let mut status = Status::with_details(
        code.grpc_code(),
        message,
        Bytes::from(details.encode_to_vec()),
    );
    if let Ok(v) = delay.to_string().parse() {
        status.metadata_mut().insert("retry-after", v);
    }
    status
}

/// Passes the message through as bytes; encodes the answer with prost.
#[derive(Clone, Copy, Default)]
struct BytesCodec;

impl Codec for BytesCodec {
    type Encode = ExportTraceServiceResponse;
    type Decode = Bytes;
    type Encoder = BytesCodec;
    type Decoder = BytesCodec;

    fn encoder(&mut self) -> Self::Encoder {
        BytesCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        BytesCodec
    }
}

impl Encoder for BytesCodec {
    type Item = ExportTraceServiceResponse;
    type Error = Status;

    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("encoding the answer: {e}")))
    }
}

impl Decoder for BytesCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        let n = src.remaining();
        Ok(Some(src.copy_to_bytes(n)))
    }
}
