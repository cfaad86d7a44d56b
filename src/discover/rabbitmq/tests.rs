//! The mapping over answers recorded from a real RabbitMQ (fixtures/rabbitmq/: the scenario of
//! tests/discover_rabbitmq.rs under the prefix `fixture`, before and after its publisher sent
//! five messages).

use super::api::Answers;
use super::infer::Publishers;
use super::map::snapshot;
use crate::model::broker::{BrokerFlow, Entity, FlowKind, NamedBy};

fn answers(poll: &str) -> Answers {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/rabbitmq")
        .join(poll);
    let read = |name: &str| {
        let text = std::fs::read_to_string(dir.join(format!("{name}.json"))).unwrap();
        text
    };
    Answers {
        exchanges: serde_json::from_str(&read("exchanges")).unwrap(),
        queues: serde_json::from_str(&read("queues")).unwrap(),
        bindings: serde_json::from_str(&read("bindings")).unwrap(),
        consumers: serde_json::from_str(&read("consumers")).unwrap(),
        connections: serde_json::from_str(&read("connections")).unwrap(),
        channels: serde_json::from_str(&read("channels")).unwrap(),
    }
}

fn flow<'a>(flows: &'a [BrokerFlow], kind: FlowKind, from: &str, to: &str) -> &'a BrokerFlow {
    flows
        .iter()
        .find(|f| f.kind == kind && f.from == from && f.to == to)
        .unwrap_or_else(|| panic!("no {kind:?} {from} -> {to} in {flows:#?}"))
}

#[test]
fn a_recorded_poll_maps_to_destinations_services_and_flows() {
    let s = snapshot(
        "rabbitmq h:15672",
        1,
        &answers("poll2"),
        &mut Publishers::default(),
    );
    assert_eq!(
        (s.broker.as_str(), s.system.as_str()),
        ("rabbitmq h:15672", "rabbitmq")
    );
    let dest = |name: &str| {
        s.destinations
            .iter()
            .find(|d| d.name == name)
            .unwrap_or_else(|| panic!("no destination {name}"))
    };
    assert_eq!(dest("fixture.orders").entity, Entity::Exchange);
    assert_eq!(dest("fixture.orders").detail.as_deref(), Some("topic"));
    assert_eq!(dest("fixture.orders").namespace.as_deref(), Some("/"));
    let billing = dest("fixture.billing");
    assert_eq!(billing.entity, Entity::Queue);
    assert_eq!(
        billing.detail.as_deref(),
        Some(r#"classic {"x-dead-letter-exchange":"fixture.dlx"}"#)
    );
    assert_eq!(
        (
            billing.figures.depth,
            billing.figures.unacked,
            billing.figures.consumers
        ),
        (Some(0), Some(5), Some(1))
    );
    assert!(billing.figures.deliver_rate.is_some());
    // Nothing was redelivered yet, and its dead-letter exchange's queue holds nothing.
    assert_eq!(
        (billing.figures.redelivered, billing.figures.dead_letters),
        (Some(0), Some(0))
    );
    assert_eq!(dest("fixture.dead").figures.dead_letters, None);
    // Built-in exchanges nothing uses stay out.
    assert!(s.destinations.iter().all(|d| d.name != "amq.topic"));

    let f = &s.flows;
    assert_eq!(
        flow(f, FlowKind::Route, "fixture.orders", "fixture.billing")
            .key
            .as_deref(),
        Some("order.*")
    );
    flow(f, FlowKind::Route, "fixture.orders", "fixture.audit");
    flow(f, FlowKind::Route, "fixture.audit", "fixture.audit-log");
    flow(f, FlowKind::DeadLetter, "fixture.billing", "fixture.dlx");
    // From the policy `fixture-dlx`.
    flow(f, FlowKind::DeadLetter, "fixture.audit-log", "fixture.dlx");
    assert!(
        f.iter()
            .all(|x| !x.from.is_empty() || x.kind != FlowKind::Route),
        "no implicit bindings"
    );
    let consume = flow(
        f,
        FlowKind::Consume,
        "fixture.billing",
        "fixture-billing-worker",
    );
    assert_eq!(consume.figures.consumers, Some(1));
    flow(f, FlowKind::Consume, "fixture.audit-log", "guest (lapin)");

    let named: Vec<(&str, NamedBy)> = s
        .services
        .iter()
        .map(|x| (x.name.as_str(), x.named_by))
        .collect();
    assert!(
        named.contains(&("fixture-billing-worker", NamedBy::ConnectionName)),
        "{named:?}"
    );
    assert!(
        named.contains(&("fixture-shop", NamedBy::ConnectionName)),
        "{named:?}"
    );
    assert!(
        named.contains(&("guest (lapin)", NamedBy::UserAndProduct)),
        "{named:?}"
    );
    assert!(
        s.services.iter().all(|x| !x.name.contains("127.0.0.1")),
        "no service by address"
    );
}

#[test]
fn publishers_are_inferred_across_polls_at_basic_rates() {
    let mut publishers = Publishers::default();
    let first = snapshot("b", 1, &answers("poll1"), &mut publishers);
    assert!(
        first.flows.iter().all(|f| f.kind != FlowKind::Publish),
        "nothing to compare yet"
    );
    let second = snapshot("b", 2, &answers("poll2"), &mut publishers);
    let publishes: Vec<&BrokerFlow> = second
        .flows
        .iter()
        .filter(|f| f.kind == FlowKind::Publish)
        .collect();
    assert_eq!(publishes.len(), 1, "{publishes:#?}");
    assert_eq!(
        (publishes[0].from.as_str(), publishes[0].to.as_str()),
        ("fixture-shop", "fixture.orders")
    );
    assert!(publishes[0].inferred);
    // Kept while the service stays connected.
    let third = snapshot("b", 3, &answers("poll2"), &mut publishers);
    assert!(third
        .flows
        .iter()
        .any(|f| f.kind == FlowKind::Publish && f.inferred));
    let mut gone = answers("poll2");
    gone.connections
        .retain(|c| c.user_provided_name.as_deref() != Some("fixture-shop"));
    let fourth = snapshot("b", 4, &gone, &mut publishers);
    assert!(fourth.flows.iter().all(|f| f.kind != FlowKind::Publish));
}

#[test]
fn answers_of_another_shape_are_errors_and_missing_fields_defaults() {
    assert!(serde_json::from_str::<Vec<super::api::Queue>>(r#"{"error":"x"}"#).is_err());
    let q: Vec<super::api::Queue> = serde_json::from_str(r#"[{"name":"q"}]"#).unwrap();
    assert_eq!((q[0].name.as_str(), q[0].messages_ready), ("q", None));
}

#[test]
fn a_queue_holds_as_dead_letters_what_its_dead_letter_exchange_routes_to_queues() {
    let mut a = answers("poll2");
    for q in &mut a.queues {
        if q.name == "fixture.dead" {
            (q.messages_ready, q.messages_unacknowledged) = (Some(2), Some(1));
        }
    }
    let s = snapshot("rabbitmq h:15672", 1, &a, &mut Publishers::default());
    let held = |name: &str| {
        s.destinations
            .iter()
            .find(|d| d.name == name)
            .and_then(|d| d.figures.dead_letters)
    };
    // Both dead-letter to fixture.dlx (one by argument, one by policy), bound to fixture.dead.
    assert_eq!(held("fixture.billing"), Some(3));
    assert_eq!(held("fixture.audit-log"), Some(3));
    assert_eq!(held("fixture.orders"), None, "an exchange");
}

/// The answers recorded with fixtures/otlp/python-pika-deadletter (tools/record/record.sh, its
/// own virtual host, while poster and reconciler were still connected): the queue's
/// dead-letter exchange is a dead-letter flow routed to `ledger.dead`, each consumer is named
/// by its connection, and the queue's redelivery counter holds poster's one redelivery.
#[test]
fn the_recorded_dead_letter_scenario_maps_to_its_flows_and_consumers() {
    let s = snapshot(
        "rabbitmq h:15672",
        1,
        &answers("deadletter"),
        &mut Publishers::default(),
    );
    flow(
        &s.flows,
        FlowKind::DeadLetter,
        "ledger.entries",
        "ledger.dlx",
    );
    flow(&s.flows, FlowKind::Route, "ledger.dlx", "ledger.dead");
    flow(&s.flows, FlowKind::Consume, "ledger.entries", "poster");
    flow(&s.flows, FlowKind::Consume, "ledger.dead", "reconciler");
    let entries = s
        .destinations
        .iter()
        .find(|d| d.name == "ledger.entries")
        .expect("the queue");
    assert_eq!(entries.namespace.as_deref(), Some("switchyard-deadletter"));
    assert_eq!(entries.figures.redelivered, Some(1));
    // Reconciler read both dead letters: none is held.
    assert_eq!(entries.figures.dead_letters, Some(0));
}
