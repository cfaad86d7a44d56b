//! `serve --demo` against the real binary: the shop runs over the embedded broker, and its
//! topology (from the broker's own spans) shows the expected services, destinations, edges and
//! findings within a bounded time.

mod common;

use common::TestEnv;
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

const SERVICES: &[&str] = &[
    "cart",
    "catalog",
    "checkout",
    "fulfilment",
    "identity",
    "payments",
    "reporting",
    "shipping",
    "wallet",
];

const EDGES: &[(&str, &str, &str)] = &[
    (
        "service:identity",
        "publish",
        "destination:switchyard:user.events",
    ),
    (
        "destination:switchyard:user.events",
        "route",
        "destination:switchyard:shipping.user-events",
    ),
    (
        "destination:switchyard:user.events",
        "route",
        "destination:switchyard:reporting.user-events",
    ),
    (
        "destination:switchyard:shipping.user-events",
        "consume",
        "service:shipping",
    ),
    (
        "destination:switchyard:reporting.user-events",
        "consume",
        "service:reporting",
    ),
    (
        "service:payments",
        "publish",
        "destination:switchyard:payment.processed",
    ),
    (
        "destination:switchyard:wallet.payment-processed",
        "consume",
        "service:wallet",
    ),
    (
        "destination:switchyard:reporting.payment-processed",
        "consume",
        "service:reporting",
    ),
    (
        "service:payments",
        "publish",
        "destination:switchyard:audit.legacy",
    ),
    (
        "service:wallet",
        "publish",
        "destination:switchyard:identity.2fa",
    ),
    (
        "destination:switchyard:identity.2fa-requests",
        "consume",
        "service:identity",
    ),
    (
        "service:identity",
        "publish",
        "destination:switchyard:identity.2fa.reply",
    ),
    (
        "destination:switchyard:identity.2fa.reply",
        "consume",
        "service:wallet",
    ),
    (
        "service:cart",
        "publish",
        "destination:switchyard:catalog.prices",
    ),
    (
        "destination:switchyard:catalog.price-requests",
        "consume",
        "service:catalog",
    ),
    (
        "service:catalog",
        "publish",
        "destination:switchyard:catalog.prices.reply",
    ),
    (
        "destination:switchyard:catalog.prices.reply",
        "consume",
        "service:cart",
    ),
    (
        "service:checkout",
        "publish",
        "destination:switchyard:fulfilment.tasks",
    ),
    (
        "destination:switchyard:fulfilment.workers",
        "consume",
        "service:fulfilment",
    ),
    (
        "service:checkout",
        "publish",
        "destination:switchyard:order.history",
    ),
    (
        "destination:switchyard:order.history",
        "consume",
        "service:reporting",
    ),
];

const FINDINGS: &[(&str, &str)] = &[
    ("broadcast", "destination:switchyard:user.events"),
    ("broadcast", "destination:switchyard:payment.processed"),
    ("work_queue", "destination:switchyard:fulfilment.workers"),
    ("action_response", "service:cart"),
    ("action_response", "service:wallet"),
    ("dead_end", "destination:switchyard:audit.legacy"),
];

fn edges(t: &Value) -> BTreeSet<(String, String, String)> {
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    t["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| (s(&e["from"]), s(&e["kind"]), s(&e["to"])))
        .collect()
}

fn findings(t: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for f in t["findings"].as_array().into_iter().flatten() {
        for n in f["nodes"].as_array().into_iter().flatten() {
            let p = f["pattern"].as_str().unwrap_or("").to_string();
            out.insert((p, n.as_str().unwrap_or("").to_string()));
        }
    }
    out
}

/// What is still missing from the topology, or None when everything expected is there.
fn missing(t: &Value) -> Option<Vec<String>> {
    let nodes: BTreeSet<String> = t["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["id"].as_str().map(str::to_string))
        .collect();
    let (edges, findings) = (edges(t), findings(t));
    let mut out: Vec<String> = SERVICES
        .iter()
        .map(|s| format!("service:{s}"))
        .filter(|s| !nodes.contains(s))
        .collect();
    for (from, kind, to) in EDGES {
        if !edges.contains(&(from.to_string(), kind.to_string(), to.to_string())) {
            out.push(format!("edge {from} {kind} {to}"));
        }
    }
    for (pattern, node) in FINDINGS {
        if !findings.contains(&(pattern.to_string(), node.to_string())) {
            out.push(format!("finding {pattern} on {node}"));
        }
    }
    (!out.is_empty()).then_some(out)
}

#[test]
fn demo_shop_runs_over_the_broker_and_shows_its_topology() {
    let env = TestEnv::with_args(&["--demo"]);
    common::wait_until(
        "the whole demo topology",
        Duration::from_secs(60),
        || match missing(&env.get_json("/api/topology?window=5m")) {
            Some(still) => Err(still),
            None => Ok(()),
        },
    );
    // Every broker span is the demo's own: no hand-built OTLP.
    let t = env.get_json("/api/topology?window=5m");
    for n in t["nodes"].as_array().unwrap() {
        let id = n["id"].as_str().unwrap();
        assert!(
            !id.starts_with("destination:") || id.starts_with("destination:switchyard:"),
            "{id}"
        );
    }
    // The idle subscriber is the broker's (an empty pull leaves no span), and poisoned tasks
    // reach the work queue's dead-letter queue after their retries.
    common::wait_for("a dead letter", Duration::from_secs(60), || {
        let subs = env.get_json("/broker/subscriptions");
        let subs = subs["subscriptions"].as_array()?.clone();
        assert!(subs.iter().any(|s| s["name"] == "marketing.promotions"));
        subs.iter()
            .find(|s| s["name"] == "fulfilment.workers")
            .filter(|s| s["dead"].as_u64().unwrap_or(0) > 0)
            .map(|_| ())
    });
}
