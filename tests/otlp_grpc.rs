//! OTLP/gRPC receiver (`TraceService/Export`, gzip): the same topology as over HTTP, and
//! invalid spans reported in `partial_success`.

mod common;

use common::builder::{self, SpanB};
use common::fixtures::{self, Window};
use common::{expected, topo, TestEnv};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tonic::codec::CompressionEncoding;

/// Sends each request over one gzip-compressed gRPC channel; every call must succeed.
fn export_all(
    env: &TestEnv,
    requests: Vec<ExportTraceServiceRequest>,
) -> Vec<ExportTraceServiceResponse> {
    common::grpc::block_on(async move {
        let channel = common::grpc::channel(env).await;
        let mut client = TraceServiceClient::new(channel)
            .send_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Gzip);
        let mut out = Vec::new();
        for request in requests {
            let response = client.export(request).await.expect("Export succeeds");
            out.push(response.into_inner());
        }
        out
    })
}

fn same_topology_as_http(set: &str, want: expected::Expected) {
    let files = fixtures::load(set);
    let window = Window::of_sets(&[set]);
    let over_http = TestEnv::start();
    over_http.post_fixtures(&files);
    let over_grpc = TestEnv::start();
    let responses = export_all(&over_grpc, files.iter().map(|f| f.request()).collect());
    for r in &responses {
        assert!(
            r.partial_success
                .as_ref()
                .is_none_or(|p| p.rejected_spans == 0),
            "{r:?}"
        );
    }
    let http_topology = over_http.topology(&window);
    let grpc_topology = over_grpc.topology(&window);
    want.assert_topology(&grpc_topology);
    topo::assert_same_topology(&http_topology, &grpc_topology, "HTTP vs gRPC");
    assert_eq!(over_http.spans_in_store(), over_grpc.spans_in_store());
}

#[test]
fn python_pika_over_grpc_gives_the_same_topology_as_over_http() {
    same_topology_as_http(fixtures::PYTHON_PIKA, expected::python_pika(""));
}

#[test]
fn python_pika_gzip_over_grpc_gives_the_same_topology_as_over_http() {
    same_topology_as_http(fixtures::PYTHON_PIKA_GZIP, expected::python_pika_gzip());
}

#[test]
fn invalid_spans_are_reported_in_partial_success() {
    let env = TestEnv::start();
    let (valid, invalid) = builder::mixed_validity();
    let all: Vec<&SpanB> = valid.iter().chain(&invalid).collect();
    let responses = export_all(&env, vec![builder::request(&all)]);
    let partial = responses[0]
        .partial_success
        .clone()
        .expect("partial_success");
    assert_eq!(partial.rejected_spans, 5, "{partial:?}");
    assert!(!partial.error_message.is_empty(), "{partial:?}");
    for s in &valid {
        assert_eq!(
            env.trace_spans(&s.trace_hex()).len(),
            1,
            "{}",
            s.trace_hex()
        );
    }
    assert_eq!(env.spans_in_store(), 2);
}

#[test]
fn a_span_sent_twice_over_grpc_is_stored_once() {
    let env = TestEnv::start();
    let files = fixtures::load(fixtures::PYTHON_PIKA_GZIP);
    let requests: Vec<_> = files.iter().map(|f| f.request()).collect();
    export_all(&env, requests.clone());
    let window = Window::of_sets(&[fixtures::PYTHON_PIKA_GZIP]);
    let once = env.topology(&window);
    export_all(&env, requests);
    assert_eq!(env.spans_in_store(), 15);
    topo::assert_same_topology(&once, &env.topology(&window), "after exporting twice");
}
