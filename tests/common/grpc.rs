//! OTLP/gRPC from tests: a current-thread runtime and a channel to the test server.

use super::TestEnv;
use std::time::Duration;

/// Runs `f` to completion on a runtime of its own.
pub fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

/// A channel to the server's OTLP/gRPC receiver (5 s to connect, 30 s per call).
pub async fn channel(env: &TestEnv) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(env.grpc_url())
        .expect("endpoint")
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .connect()
        .await
        .expect("connect to the OTLP/gRPC receiver")
}
