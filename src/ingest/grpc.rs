//! OTLP/gRPC `TraceService/Export`: decodes (tonic, gzip accepted) and maps errors only.

use super::{Ingest, IngestError};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

pub struct GrpcTraces {
    ingest: Ingest,
}

pub fn service(ingest: Ingest) -> TraceServiceServer<GrpcTraces> {
    let limit = ingest.config.max_body_bytes;
    TraceServiceServer::new(GrpcTraces { ingest })
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(limit)
}

fn to_status(err: IngestError) -> Status {
    let mut status = Status::new(err.code().grpc_code(), err.to_string());
    if err.code().retryable() {
        if let Ok(v) = crate::error::RETRY_AFTER_SECS.to_string().parse() {
            status.metadata_mut().insert("retry-after", v);
        }
    }
    status
}

#[tonic::async_trait]
impl TraceService for GrpcTraces {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let _permit = self.ingest.admit().map_err(to_status)?;
        let request = request.into_inner();
        let batch = tokio::task::spawn_blocking(move || super::prepare(request))
            .await
            .map_err(|e| Status::internal(format!("conversion task failed: {e}")))?;
        let accepted = self.ingest.accept(batch).await.map_err(to_status)?;
        let partial_success = (accepted.rejected_spans > 0).then_some(ExportTracePartialSuccess {
            rejected_spans: accepted.rejected_spans,
            error_message: accepted.error_message,
        });
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success,
        }))
    }
}
