//! `GET /metrics`: the collector's own health and the edge series in the Prometheus text
//! format (names and semantics in README, "Prometheus metrics"). Counters are read from
//! atomics and the graph's copy; the store is asked for its span count, queue and size, the
//! broker for its subscriptions' depths; the text is written on a blocking thread.

use super::exposition::{Text, CONTENT_TYPE};
use crate::broker::SubscriptionInfo;
use crate::discover::Status;
use crate::ingest::IngestCounters;
use crate::telemetry::graph::{DestinationSnapshot, GraphSnapshot, PairSeriesSnapshot};
use crate::telemetry::{Receiver, METRICS};
use crate::web::error::ApiError;
use crate::web::state::AppState;
use actix_web::{web, HttpResponse};
use std::sync::atomic::Ordering;

/// What the store says of itself at the scrape.
struct StoreNow {
    spans: u64,
    queue: Option<usize>,
    bytes: Option<u64>,
}

pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let store = state
        .store
        .blocking(|s| {
            Ok(StoreNow {
                spans: s.span_count()?,
                queue: s.queue_len(),
                bytes: s.size_bytes(),
            })
        })
        .await?;
    // A draining or busy broker leaves its depths out rather than failing the scrape.
    let subscriptions = state.broker.subscriptions().await.unwrap_or_default();
    let discovery = state.discovery.statuses();
    let counters = state.counters.clone();
    let body = web::block(move || {
        let graph = METRICS.graph.snapshot();
        let mut t = Text::with_capacity(4096 + graph.pairs.len() * 4096);
        health(&mut t, &counters, &store);
        topology(&mut t);
        broker(&mut t, &subscriptions, &discovery);
        edges(&mut t, &graph);
        t.into_string()
    })
    .await
    .map_err(|e| ApiError::Internal(format!("rendering metrics failed: {e}")))?;
    Ok(HttpResponse::Ok().content_type(CONTENT_TYPE).body(body))
}

/// How `/api/topology` answers were made ([`super::answers::Counts`]).
fn topology(t: &mut Text) {
    let c = &super::answers::COUNTS;
    let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let answers = "switchyard_topology_answers_total";
    t.family(answers, "counter", "/api/topology answers by how they were made: answer (the same window's answer kept), template (a template of the window's minutes built before the request, by a request or ahead), waited (a build under way when the request came), built (built for the request).");
    for (from, v) in [
        ("answer", &c.kept_answer),
        ("template", &c.kept_template),
        ("waited", &c.waited),
        ("built", &c.built),
    ] {
        t.sample(answers, &[("from", from)], n(v));
    }
    t.single(
        "switchyard_topology_built_ahead_total",
        "counter",
        "/api/topology templates built ahead of requests (after a commit or at a minute's turn) for the windows asked in the last two minutes.",
        n(&c.built_ahead),
    );
}

fn health(t: &mut Text, c: &IngestCounters, store: &StoreNow) {
    let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    t.single("switchyard_ingest_requests_total", "counter", "OTLP export requests accepted (decoded and handed to the store), broker span batches included.", n(&c.requests));
    t.single(
        "switchyard_ingest_spans_received_total",
        "counter",
        "Spans in accepted requests: stored, duplicate or refused.",
        n(&c.spans_received),
    );
    t.single(
        "switchyard_ingest_spans_stored_total",
        "counter",
        "Spans stored (committed).",
        n(&c.spans_stored),
    );
    t.single(
        "switchyard_ingest_spans_duplicate_total",
        "counter",
        "Spans received again and not stored twice.",
        n(&c.spans_duplicate),
    );
    let (rejected, expired) = (n(&c.spans_rejected), n(&c.spans_expired));
    t.family("switchyard_ingest_spans_refused_total", "counter", "Spans refused in accepted requests (partial_success), by reason: invalid (bad ids, no service) or outside_retention (started before --retention).");
    t.sample(
        "switchyard_ingest_spans_refused_total",
        &[("reason", "invalid")],
        rejected.saturating_sub(expired),
    );
    t.sample(
        "switchyard_ingest_spans_refused_total",
        &[("reason", "outside_retention")],
        expired,
    );
    t.family(
        "switchyard_ingest_truncated_total",
        "counter",
        "Span names and attribute values cut to their length limits.",
    );
    t.sample(
        "switchyard_ingest_truncated_total",
        &[("what", "name")],
        n(&c.names_truncated),
    );
    t.sample(
        "switchyard_ingest_truncated_total",
        &[("what", "value")],
        n(&c.values_truncated),
    );
    t.family("switchyard_ingest_requests_refused_total", "counter", "OTLP requests refused, by receiver and HTTP status (gRPC codes mapped to the status they stand for).");
    for r in Receiver::ALL {
        for (code, count) in METRICS.receiver(r).refusals() {
            t.sample(
                "switchyard_ingest_requests_refused_total",
                &[("receiver", r.as_str()), ("code", &code.to_string())],
                count,
            );
        }
    }
    t.family(
        "switchyard_ingest_request_duration_seconds",
        "histogram",
        "OTLP trace export requests from arrival to answer, by receiver.",
    );
    for r in Receiver::ALL {
        t.histogram(
            "switchyard_ingest_request_duration_seconds",
            &[("receiver", r.as_str())],
            &METRICS.receiver(r).duration.snapshot(),
        );
    }
    if let Some(q) = store.queue {
        t.single(
            "switchyard_store_queue_depth",
            "gauge",
            "Writes waiting in the store writer's queue (--queue-depth at most).",
            q,
        );
    }
    if let Some(b) = store.bytes {
        t.single(
            "switchyard_store_size_bytes",
            "gauge",
            "Bytes of the store on disk: the SQLite file and its WAL, or the ClickHouse database's active parts.",
            b,
        );
    }
    t.single(
        "switchyard_store_spans",
        "gauge",
        "Spans in the store now (after retention).",
        store.spans,
    );
    let s = &METRICS.store;
    t.family("switchyard_store_retention_deleted_blocks_total", "counter", "Span blocks (ClickHouse: days) deleted by retention, by reason: age (--retention) or size (--retention-size).");
    t.sample(
        "switchyard_store_retention_deleted_blocks_total",
        &[("reason", "age")],
        n(&s.retention_deleted_by_age),
    );
    t.sample(
        "switchyard_store_retention_deleted_blocks_total",
        &[("reason", "size")],
        n(&s.retention_deleted_by_size),
    );
}

fn broker(t: &mut Text, subs: &[SubscriptionInfo], discovery: &[Status]) {
    let b = &METRICS.broker;
    let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    for (name, help, v) in [
        (
            "switchyard_broker_published_messages_total",
            "Messages the embedded broker accepted (published or appended).",
            &b.published,
        ),
        (
            "switchyard_broker_delivered_messages_total",
            "Deliveries of the embedded broker (a redelivery counts again).",
            &b.delivered,
        ),
        (
            "switchyard_broker_acked_messages_total",
            "Deliveries acknowledged.",
            &b.acked,
        ),
        (
            "switchyard_broker_nacked_messages_total",
            "Deliveries refused (nack).",
            &b.nacked,
        ),
        (
            "switchyard_broker_expired_leases_total",
            "Leases that ran out before an ack or nack.",
            &b.expired,
        ),
        (
            "switchyard_broker_dead_lettered_messages_total",
            "Messages moved to a subscription's dead letters.",
            &b.dead_lettered,
        ),
    ] {
        t.single(name, "counter", help, n(v));
    }
    t.family(
        "switchyard_broker_subscription_messages",
        "gauge",
        "Messages of each embedded-broker subscription now, by state: ready, leased or dead.",
    );
    for s in subs {
        let labels = |state| {
            [
                ("subscription", s.spec.name.as_str()),
                ("topic", s.spec.topic.as_str()),
                ("state", state),
            ]
        };
        t.sample(
            "switchyard_broker_subscription_messages",
            &labels("ready"),
            s.ready,
        );
        t.sample(
            "switchyard_broker_subscription_messages",
            &labels("leased"),
            s.leased,
        );
        t.sample(
            "switchyard_broker_subscription_messages",
            &labels("dead"),
            s.dead,
        );
    }
    t.family(
        "switchyard_discovery_polls_total",
        "counter",
        "Polls of each --discover broker.",
    );
    for s in discovery {
        t.sample(
            "switchyard_discovery_polls_total",
            &[("broker", s.broker.as_str())],
            s.polls,
        );
    }
    t.family(
        "switchyard_discovery_poll_errors_total",
        "counter",
        "Failed polls of each --discover broker.",
    );
    for s in discovery {
        t.sample(
            "switchyard_discovery_poll_errors_total",
            &[("broker", s.broker.as_str())],
            s.errors,
        );
    }
}

/// Tempo's service-graph series (same names, labels and buckets; the optional
/// `_messaging_system_seconds` histogram, off by default in Tempo, is left out: the delay is
/// per destination), then Switchyard's own per destination, then the cap on label sets. Each
/// series' labels are escaped once for all its lines.
fn edges(t: &mut Text, g: &GraphSnapshot) {
    let pairs: Vec<(String, &PairSeriesSnapshot)> = g
        .pairs
        .iter()
        .map(|(p, v)| {
            let mut l = vec![("client", p.client.as_str()), ("server", p.server.as_str())];
            if p.messaging {
                l.push(("connection_type", "messaging_system"));
            }
            (Text::body(&l), v)
        })
        .collect();
    t.family("traces_service_graph_request_total", "counter", "Requests between two services: a CLIENT span and the SERVER span of another service under it, or a message from its producer to a consumer (connection_type=\"messaging_system\").");
    for (body, v) in &pairs {
        t.line("traces_service_graph_request_total", body, v.total);
    }
    t.family(
        "traces_service_graph_request_failed_total",
        "counter",
        "Those requests with either span in error.",
    );
    for (body, v) in &pairs {
        t.line("traces_service_graph_request_failed_total", body, v.failed);
    }
    t.family(
        "traces_service_graph_request_server_seconds",
        "histogram",
        "Duration of the server (or consumer) span.",
    );
    for (body, v) in &pairs {
        t.histogram_lines(
            "traces_service_graph_request_server_seconds",
            body,
            &v.server_seconds,
        );
    }
    t.family(
        "traces_service_graph_request_client_seconds",
        "histogram",
        "Duration of the client (or producer) span.",
    );
    for (body, v) in &pairs {
        t.histogram_lines(
            "traces_service_graph_request_client_seconds",
            body,
            &v.client_seconds,
        );
    }
    let destinations: Vec<(String, &DestinationSnapshot)> = g
        .destinations
        .iter()
        .map(|(k, v)| {
            let l = [
                ("system", k.system.as_str()),
                ("destination", k.destination.as_str()),
            ];
            (Text::body(&l), v)
        })
        .collect();
    t.family(
        "switchyard_destination_published_messages_total",
        "counter",
        "Messages published to each destination (from producer spans).",
    );
    for (body, v) in &destinations {
        t.line(
            "switchyard_destination_published_messages_total",
            body,
            v.published,
        );
    }
    t.family("switchyard_destination_consumed_messages_total", "counter", "Messages consumed from each destination (from consumer spans; a batch counts its messages).");
    for (body, v) in &destinations {
        t.line(
            "switchyard_destination_consumed_messages_total",
            body,
            v.consumed,
        );
    }
    t.family(
        "switchyard_destination_delivery_delay_seconds",
        "histogram",
        "Publish-to-consume delay of the messages consumed from each destination.",
    );
    for (body, v) in &destinations {
        t.histogram_lines(
            "switchyard_destination_delivery_delay_seconds",
            body,
            &v.delay_seconds,
        );
    }
    t.family(
        "switchyard_destination_depth_messages",
        "gauge",
        "Messages ready in each destination, as its broker (--discover) reported at the last poll.",
    );
    for b in g.brokers.iter().filter(|b| !b.lag) {
        t.sample(
            "switchyard_destination_depth_messages",
            &[
                ("broker", b.broker.as_str()),
                ("system", b.system.as_str()),
                ("destination", b.destination.as_str()),
            ],
            b.value,
        );
    }
    t.family("switchyard_destination_consumer_lag_messages", "gauge", "Messages not yet delivered to each consumer (JetStream's pending), as its broker reported at the last poll.");
    for b in g.brokers.iter().filter(|b| b.lag) {
        t.sample(
            "switchyard_destination_consumer_lag_messages",
            &[
                ("broker", b.broker.as_str()),
                ("system", b.system.as_str()),
                ("destination", b.destination.as_str()),
                ("consumer", b.consumer.as_str()),
            ],
            b.value,
        );
    }
    t.single(
        "switchyard_metrics_series",
        "gauge",
        "Label sets of the edge, destination and broker series now.",
        g.series,
    );
    t.single(
        "switchyard_metrics_max_series",
        "gauge",
        "The cap on those label sets (--metrics-max-series).",
        g.max_series,
    );
    t.single(
        "switchyard_metrics_series_dropped_total",
        "counter",
        "New label sets not added because the cap was reached (their samples are not shown).",
        g.dropped,
    );
}
