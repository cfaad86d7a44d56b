//! The mapping over answers recorded from a real nats-server (fixtures/nats/, see
//! fixtures/README.md): the same scenario the live test builds.

use super::api::{ConsumerPage, StreamPage};
use super::monitor::{self, Connz, Jsz};
use super::{jetstream, names, Assembly};
use crate::model::broker::{BrokerFlow, BrokerSnapshot, Entity, Figures, FlowKind, NamedBy};

fn fixture<T: serde::de::DeserializeOwned>(name: &str) -> T {
    let path = format!("{}/fixtures/nats/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("fixture");
    serde_json::from_str(&text).expect("fixture parses")
}

fn jetstream_snapshot(revealed: &names::Revealed) -> BrokerSnapshot {
    let streams: StreamPage = fixture("stream_list.json");
    let consumers: ConsumerPage = fixture("consumer_list_ORDERS.json");
    assert!(streams.error.is_none() && consumers.error.is_none());
    assert_eq!((streams.total, consumers.total), (1, 2));
    let streams = streams.streams.unwrap_or_default();
    let consumers = consumers.consumers.unwrap_or_default();
    jetstream::snapshot("nats h:4222", 7, &streams, &consumers, revealed)
}

fn monitor_snapshot() -> (BrokerSnapshot, names::Revealed) {
    let connz: Connz = fixture("connz.json");
    let jsz: Jsz = fixture("jsz.json");
    monitor::snapshot("nats-monitor h:8222", 7, &connz, &jsz)
}

fn flow_to<'a>(s: &'a BrokerSnapshot, to: &str) -> &'a BrokerFlow {
    s.flows.iter().find(|f| f.to == to).expect("flow")
}

#[test]
fn streams_and_consumers_map_to_destinations_and_consume_flows() {
    let s = jetstream_snapshot(&names::Revealed::new());
    assert_eq!(
        (s.broker.as_str(), s.system.as_str()),
        ("nats h:4222", "nats")
    );
    assert_eq!(s.destinations.len(), 1);
    let orders = &s.destinations[0];
    assert_eq!(
        (orders.name.as_str(), orders.entity),
        ("ORDERS", Entity::Stream)
    );
    assert_eq!(
        orders.detail.as_deref(),
        Some("subjects: orders.>; storage: file")
    );
    // What traced subjects are resolved against (topology::subjects).
    assert_eq!(orders.subjects, ["orders.>"]);
    assert_eq!(
        (orders.figures.messages, orders.figures.consumers),
        (Some(7), Some(2))
    );
    let invoicer = flow_to(&s, "invoicer");
    assert_eq!(
        (invoicer.kind, invoicer.from.as_str()),
        (FlowKind::Consume, "ORDERS")
    );
    assert_eq!(invoicer.key.as_deref(), Some("orders.created"));
    let f = &invoicer.figures;
    assert_eq!(
        (f.pending, f.ack_pending, f.redelivered),
        (Some(2), Some(3), Some(0))
    );
    // The ephemeral consumer, nobody having revealed its connection: its own name.
    let ephemeral = s
        .flows
        .iter()
        .find(|f| f.to != "invoicer")
        .expect("ephemeral");
    let f = &ephemeral.figures;
    assert_eq!(
        (f.pending, f.ack_pending, f.redelivered),
        (Some(0), Some(7), Some(1))
    );
    assert!(s.services.iter().all(|x| x.named_by == NamedBy::Durable));
}

#[test]
fn subscriptions_map_to_subjects_read_by_named_or_described_connections() {
    let (s, revealed) = monitor_snapshot();
    let mut subjects: Vec<_> = s
        .destinations
        .iter()
        .map(|d| (d.name.as_str(), d.entity))
        .collect();
    subjects.sort();
    assert_eq!(
        subjects,
        [
            ("metrics.cpu", Entity::Subject),
            ("payments.*", Entity::Subject)
        ]
    );
    let billing = flow_to(&s, "billing");
    assert_eq!(
        (billing.from.as_str(), billing.figures.consumers),
        ("payments.*", Some(1))
    );
    let by = |name: &str| {
        s.services
            .iter()
            .find(|x| x.name == name)
            .map(|x| x.named_by)
    };
    assert_eq!(by("billing"), Some(NamedBy::ConnectionName));
    assert_eq!(by("anonymous (rust 0.51.0)"), Some(NamedBy::UserAndProduct));
    assert_eq!(flow_to(&s, "anonymous (rust 0.51.0)").from, "metrics.cpu");
    // Inboxes and the deliver subject of the push consumer are not subjects of their own.
    assert!(s
        .destinations
        .iter()
        .all(|d| !d.name.starts_with("_INBOX") && d.name != "deliver.audit"));
    assert_eq!(revealed.len(), 1);
    let (key, service) = revealed.iter().next().expect("revealed");
    assert_eq!(
        (key.0.as_str(), service.name.as_str()),
        ("ORDERS", "auditor")
    );
}

#[test]
fn the_monitor_names_the_push_consumers_service() {
    let (_, revealed) = monitor_snapshot();
    let s = jetstream_snapshot(&revealed);
    let auditor = flow_to(&s, "auditor");
    assert_eq!(
        (auditor.from.as_str(), auditor.figures.ack_pending),
        ("ORDERS", Some(7))
    );
    let named = s
        .services
        .iter()
        .find(|x| x.name == "auditor")
        .expect("auditor");
    assert_eq!(named.named_by, NamedBy::ConnectionName);
    assert_eq!(s.services.len(), 2);
    // A pull consumer's requests tie it to no connection the monitor lists: even with the
    // monitor, its durable names its service.
    let invoicer = s
        .services
        .iter()
        .find(|x| x.name == "invoicer")
        .expect("the pull consumer's service");
    assert_eq!(invoicer.named_by, NamedBy::Durable);
    assert_eq!(flow_to(&s, "invoicer").from, "ORDERS");
}

#[test]
fn two_consumers_one_service_add_up() {
    let mut a = Assembly::default();
    let flow = |pending| BrokerFlow {
        kind: FlowKind::Consume,
        from: "S".into(),
        to: "svc".into(),
        key: None,
        inferred: false,
        figures: Figures {
            pending: Some(pending),
            ..Figures::default()
        },
    };
    a.flow(flow(2));
    a.flow(flow(3));
    let s = a.finish("nats h:1", 0);
    assert_eq!(s.flows.len(), 1);
    assert_eq!(s.flows[0].figures.pending, Some(5));
}
