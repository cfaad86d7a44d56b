//! `switchyard bench metrics`: the `/metrics` scrape and the Jaeger API against
//! `/api/topology` on the same data, in the same run. It first sends `--edges` producer ->
//! consumer pairs, each between two services of its own through a destination of its own (one
//! Tempo service-graph edge each, and a publish, a consume and a dependency edge on the map),
//! and waits until a scrape shows them all.

use super::ingest::healthz_baseline;
use super::percentile;
use super::query::time;
use clap::Args;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, ResourceSpans, ScopeSpans, Span};
use prost::Message;
use std::time::{Duration, Instant};

#[derive(Debug, Args)]
pub struct MetricsBench {
    /// API base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub api: String,
    /// OTLP/HTTP base URL.
    #[arg(long, default_value = "http://127.0.0.1:4318")]
    pub otlp: String,
    /// Producer -> consumer service pairs to send first (0: use what the server holds).
    #[arg(long, default_value_t = 1_000)]
    pub edges: usize,
    /// Requests per endpoint.
    #[arg(long, default_value_t = 300)]
    pub requests: usize,
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn service(name: String, span: Span) -> ResourceSpans {
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![kv("service.name", &name)],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans: vec![span],
            ..Default::default()
        }],
        schema_url: String::new(),
    }
}

/// Pair `i`: `bench-p{i}` publishes to `bench-q{i}`, `bench-c{i}` consumes it (a child span).
fn pairs(from: usize, to: usize, now: u64, run: u64) -> ExportTraceServiceRequest {
    let mut resource_spans = Vec::new();
    for i in from..to {
        let trace = [run.to_be_bytes(), (i as u64 + 1).to_be_bytes()].concat();
        let (p, c) = (
            (2 * i as u64 + 1).to_be_bytes(),
            (2 * i as u64 + 2).to_be_bytes(),
        );
        let dest = format!("bench-q{i}");
        let span = |id: &[u8], parent: &[u8], kind: SpanKind, op: &str, start: u64| Span {
            trace_id: trace.clone(),
            span_id: id.to_vec(),
            parent_span_id: parent.to_vec(),
            name: format!("{dest} {op}"),
            kind: kind as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: start + 300_000,
            attributes: vec![
                kv("messaging.system", "rabbitmq"),
                kv("messaging.destination.name", &dest),
                kv("messaging.operation.type", op),
            ],
            ..Default::default()
        };
        resource_spans.push(service(
            format!("bench-p{i}"),
            span(&p, &[], SpanKind::Producer, "send", now),
        ));
        resource_spans.push(service(
            format!("bench-c{i}"),
            span(&c, &p, SpanKind::Consumer, "process", now + 2_000_000),
        ));
    }
    ExportTraceServiceRequest { resource_spans }
}

/// Lines of the request counter in a scrape: one per client/server pair.
fn pair_lines(agent: &ureq::Agent, api: &str) -> usize {
    agent
        .get(&format!("{api}/metrics"))
        .call()
        .ok()
        .and_then(|r| r.into_string().ok())
        .map(|t| {
            t.lines()
                .filter(|l| l.starts_with("traces_service_graph_request_total{"))
                .count()
        })
        .unwrap_or(0)
}

fn send(agent: &ureq::Agent, a: &MetricsBench) -> anyhow::Result<()> {
    let now = crate::model::window::now_unix_nanos();
    let before = pair_lines(agent, &a.api);
    for chunk in (0..a.edges).step_by(250) {
        let body = pairs(chunk, (chunk + 250).min(a.edges), now, now).encode_to_vec();
        agent
            .post(&format!("{}/v1/traces", a.otlp))
            .set("Content-Type", "application/x-protobuf")
            .send_bytes(&body)?;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    // Pairs are counted as their consumers commit: wait until the scrape shows them.
    while pair_lines(agent, &a.api) < before + a.edges {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the pairs sent did not show in /metrics within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

pub fn run(a: MetricsBench) -> anyhow::Result<()> {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build();
    if a.edges > 0 {
        send(&agent, &a)?;
    }
    let baseline = healthz_baseline(&agent, &a.api);
    let scrape = agent
        .get(&format!("{}/metrics", a.api))
        .call()?
        .into_string()?;
    println!(
        "metrics: {} client/server pairs, {} bytes per scrape, {} requests per endpoint; baseline /healthz p50 {} us",
        scrape.lines().filter(|l| l.starts_with("traces_service_graph_request_total{")).count(),
        scrape.len(),
        a.requests,
        baseline
    );
    let topology = time(&agent, &format!("{}/api/topology", a.api), a.requests);
    let report = |name: &str, s: &[u64]| {
        println!(
            "  {name:<36} p50 {:>6} us  p99 {:>6} us  (p99 {:.2}x /api/topology's, {:.1}x /healthz's p50)",
            percentile(s, 0.5),
            percentile(s, 0.99),
            percentile(s, 0.99) as f64 / percentile(&topology, 0.99).max(1) as f64,
            percentile(s, 0.99) as f64 / baseline.max(1) as f64,
        );
    };
    report("GET /api/topology (1 h, baseline)", &topology);
    report(
        "GET /metrics",
        &time(&agent, &format!("{}/metrics", a.api), a.requests),
    );
    report(
        "GET /jaeger/api/services",
        &time(
            &agent,
            &format!("{}/jaeger/api/services", a.api),
            a.requests,
        ),
    );
    report(
        "GET /jaeger/api/dependencies",
        &time(
            &agent,
            &format!("{}/jaeger/api/dependencies", a.api),
            a.requests,
        ),
    );
    report(
        "GET /jaeger/api/traces?service=bench-c0",
        &time(
            &agent,
            &format!("{}/jaeger/api/traces?service=bench-c0&limit=20", a.api),
            a.requests,
        ),
    );
    Ok(())
}
