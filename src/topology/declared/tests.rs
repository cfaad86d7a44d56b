use super::*;
use crate::model::EdgeKind::*;
use crate::topology::detect::testing::topo;

fn declared(docs: &[&str]) -> Declared {
    Declared {
        documents: docs
            .iter()
            .enumerate()
            .map(|(i, d)| parse::parse(&format!("doc{i}.yaml"), d).unwrap())
            .collect(),
    }
}

fn findings(t: &Topology, pattern: &str) -> Vec<Vec<String>> {
    t.findings
        .iter()
        .filter(|f| f.pattern == pattern)
        .map(|f| f.nodes.clone())
        .collect()
}

const SHOP: &str = r##"
asyncapi: 3.0.0
info: {title: checkout, version: 1.0.0}
channels:
  orders: {address: orders}
  payments: {address: payments}
  refunds: {address: "refunds.{region}"}
operations:
  placeOrder: {action: send, channel: {$ref: "#/channels/orders"}}
  askRefund: {action: send, channel: {$ref: "#/channels/refunds"}}
  payments: {action: receive, channel: {$ref: "#/channels/payments"}}
"##;

#[test]
fn addresses_match_with_parameters() {
    assert!(address_matches("orders", "orders"));
    assert!(!address_matches("orders", "orders2"));
    assert!(address_matches("refunds.{region}", "refunds.eu"));
    assert!(!address_matches("refunds.{region}", "refunds."));
    assert!(address_matches("a.{x}.b.{y}", "a.1.b.2"));
    assert!(!address_matches("a.{x}.b.{y}", "a.1.c.2"));
    assert!(address_matches("{tenant}/orders", "acme/orders"));
    assert!(!address_matches("{tenant}/orders", "/orders"));
    assert!(address_matches("x.{é}", "x.é"));
}

#[test]
fn drift_findings_and_declared_only_edges() {
    let mut t = topo(&[
        ("s:checkout", "destination:test:orders", Publish, 4),
        ("s:checkout", "destination:test:audit", Publish, 2),
        ("destination:test:refunds.eu", "s:checkout", Consume, 1),
        ("s:billing", "destination:test:invoices", Publish, 3),
    ]);
    declared(&[SHOP]).apply(&mut t);
    // audit: checkout publishes there, undeclared; the consume of refunds.eu is a receive,
    // which checkout declares only as a send.
    let undeclared = findings(&t, "undeclared_flow");
    assert!(undeclared.contains(&vec![
        "s:checkout".to_string(),
        "destination:test:audit".to_string()
    ]));
    assert!(undeclared.contains(&vec![
        "s:checkout".to_string(),
        "destination:test:refunds.eu".to_string()
    ]));
    // billing has no declaration: its flows are not judged.
    assert!(
        !undeclared.iter().any(|n| n[0] == "s:billing"),
        "{undeclared:?}"
    );
    // payments: declared, never used; the address is the test system's (the only one seen).
    assert_eq!(
        findings(&t, "declared_unused"),
        vec![vec!["destination:test:payments".to_string()]]
    );
    // refunds.{region}: declared send, no publish there.
    assert_eq!(
        findings(&t, "declared_silent_publisher"),
        vec![vec![
            "s:checkout".to_string(),
            "destination:test:refunds.eu".to_string()
        ]]
    );
    let edge = |from: &str, to: &str| {
        t.edges
            .iter()
            .find(|e| e.from == from && e.to == to)
            .unwrap_or_else(|| panic!("{from} -> {to}"))
    };
    assert_eq!(
        edge("s:checkout", "destination:test:orders").seen_in,
        vec![SeenIn::Traces, SeenIn::Declared]
    );
    assert_eq!(
        edge("s:checkout", "destination:test:audit").seen_in,
        vec![SeenIn::Traces]
    );
    let silent = edge("s:checkout", "destination:test:refunds.eu");
    assert!(declared_only(&silent.seen_in) && silent.count == 0);
    let payments = edge("destination:test:payments", "s:checkout");
    assert_eq!(payments.kind, Consume);
    assert!(declared_only(&payments.seen_in));
    let node = t
        .nodes
        .iter()
        .find(|n| n.id == "destination:test:payments")
        .unwrap();
    assert!(declared_only(&node.seen_in));
    // The graph covers the added nodes and edges, the edges stay sorted.
    assert_eq!(t.graph.node_count(), t.nodes.len());
    assert_eq!(t.graph.edge_count(), t.edges.len());
    let keys: Vec<_> = t
        .edges
        .iter()
        .map(crate::topology::brokers::edge_key)
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
}

#[test]
fn a_receive_is_met_through_routes_and_2x_reads_inverted() {
    let mut t = topo(&[
        ("s:orders", "destination:rabbitmq:orders", Publish, 4),
        (
            "destination:rabbitmq:orders",
            "destination:rabbitmq:billing.q",
            Route,
            4,
        ),
        ("destination:rabbitmq:billing.q", "s:billing", Consume, 4),
    ]);
    let billing = r#"
asyncapi: 2.6.0
info: {title: billing, version: 1.0.0}
servers: {rabbit: {url: "amqp://localhost", protocol: amqp}}
channels:
  orders:
    publish: {message: {payload: {type: object}}}
"#;
    let orders = r#"
asyncapi: 2.6.0
info: {title: orders, version: 1.0.0}
servers: {rabbit: {url: "amqp://localhost", protocol: amqp}}
channels:
  orders:
    subscribe: {message: {payload: {type: object}}}
"#;
    declared(&[billing, orders]).apply(&mut t);
    assert!(
        t.findings
            .iter()
            .all(|f| !f.pattern.starts_with("declared") && f.pattern != "undeclared_flow"),
        "{:?}",
        t.findings
    );
    assert!(t.edges.iter().all(|e| e.seen_in.contains(&SeenIn::Traces)));
    // The same documents with billing's receive on the wrong system: drift.
    let mut t2 = topo(&[("destination:kafka:orders", "s:billing", Consume, 4)]);
    declared(&[billing]).apply(&mut t2);
    assert_eq!(findings(&t2, "undeclared_flow").len(), 1);
    assert_eq!(
        findings(&t2, "declared_unused"),
        vec![vec!["destination:rabbitmq:orders".to_string()]]
    );
}

#[test]
fn nothing_declared_changes_nothing() {
    let mut t = topo(&[("s:a", "d:x", Publish, 2)]);
    let before = (t.nodes.clone(), t.edges.clone(), t.findings.clone());
    Declared::default().apply(&mut t);
    assert_eq!(
        (t.nodes.clone(), t.edges.clone(), t.findings.clone()),
        before
    );
}
