//! The guard on the OTLP/gRPC receiver: a tonic interceptor that asks for the token in the
//! `authorization` metadata (`Bearer <token>`), before the message is decoded. gRPC is not
//! checked for `Host` or cross-site requests: a browser cannot speak it (HTTP/2 with
//! trailers, no CORS-free form), so no web page can reach it.

use super::{Guard, Refusal};
use tonic::{Request, Status};

/// Interceptor for `InterceptedService::new(service, guard.grpc_interceptor())`.
#[derive(Clone)]
pub struct Interceptor {
    guard: Guard,
}

impl Guard {
    pub fn grpc_interceptor(&self) -> Interceptor {
        Interceptor {
            guard: self.clone(),
        }
    }
}

impl tonic::service::Interceptor for Interceptor {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(verifier) = &self.guard.shared.verifier else {
            return Ok(request);
        };
        let presented = request
            .metadata()
            .get("authorization")
            .map(|v| v.as_bytes());
        let client = request.remote_addr().map(|a| a.ip());
        match self.guard.bearer(verifier, presented, client) {
            Ok(()) => Ok(request),
            Err(refusal @ Refusal::TooManyAttempts(secs)) => {
                // Retried by exporters after the delay, as for an overloaded server.
                let mut status = Status::unavailable(refusal.message());
                if let Ok(v) = secs.to_string().parse() {
                    status.metadata_mut().insert("retry-after", v);
                }
                Err(status)
            }
            Err(refusal) => Err(Status::unauthenticated(refusal.message())),
        }
    }
}
