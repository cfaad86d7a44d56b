//! `serve --demo` against the real binary: the shop runs over the embedded broker, and its
//! topology (from the broker's own spans) shows the expected services, destinations, edges and
//! findings within a bounded time.

mod common;

use common::ui::{self, Page};
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

/// The consume edge of the demo's work queue, once it exists.
fn work_queue(t: &Value) -> Option<Value> {
    t["edges"]
        .as_array()?
        .iter()
        .find(|e| {
            e["from"] == "destination:switchyard:fulfilment.workers"
                && e["to"] == "service:fulfilment"
                && e["kind"] == "consume"
        })
        .cloned()
}

/// What the README says of the demo holds: poisoned tasks are failures (on the consume edge,
/// on the destination, in the traces found by "errors only"), the subscription's own page shows
/// that subscription, and the subscriber waiting on a topic nobody publishes to is a finding,
/// from the broker's own state.
#[test]
fn demo_failures_subscriptions_and_idle_subscriber_are_visible() {
    let env = TestEnv::with_args(&["--demo", "--discover-interval", "1s"]);
    let failing = |e: &Value, reason: &str| e["failures"][reason].as_i64().unwrap_or(0) > 0;
    // A poisoned task is nacked, redelivered, and dead-lettered after its third attempt.
    let edge = common::wait_for(
        "nacks, redeliveries and dead letters on the work queue",
        Duration::from_secs(90),
        || {
            let e = work_queue(&env.get_json("/api/topology?window=5m"))?;
            ["nack", "redelivered", "dead_letter"]
                .iter()
                .all(|r| failing(&e, r))
                .then_some(e)
        },
    );
    let (count, errors) = (
        edge["count"].as_i64().unwrap(),
        edge["errors"].as_i64().unwrap(),
    );
    let nacks = edge["failures"]["nack"].as_i64().unwrap();
    let dead = edge["failures"]["dead_letter"].as_i64().unwrap();
    assert!(errors >= nacks + dead && errors > 0, "{edge}");
    assert!(count > 0, "{edge}");
    assert!(
        edge["active_rate_per_sec"].as_f64().unwrap() > 0.0,
        "{edge}"
    );
    let t = env.get_json("/api/topology?window=5m");
    let node = t["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == "destination:switchyard:fulfilment.workers")
        .unwrap()
        .clone();
    assert!(node["errors"].as_i64().unwrap_or(0) > 0, "{node}");
    assert!(
        node["failures"]["dead_letter"].as_i64().unwrap_or(0) > 0,
        "{node}"
    );
    // Found by "errors only": a failed delivery's trace, with the reason on its span.
    let found = env.get_json("/api/traces?status=error&destination=fulfilment.workers&window=5m");
    let traces = found["traces"].as_array().unwrap();
    assert!(!traces.is_empty(), "{found}");
    let id = traces[0]["trace_id"].as_str().unwrap();
    let spans = env.trace_spans(id);
    let reasons: Vec<&str> = spans
        .iter()
        .filter_map(|s| s["attributes"]["error.type"].as_str())
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| ["nack", "lease_expired", "dead_letter"].contains(r)),
        "{reasons:?}"
    );
    // The idle subscriber, from the embedded broker's state.
    common::wait_for(
        "the idle subscriber finding",
        Duration::from_secs(30),
        || {
            let t = env.get_json("/api/topology?window=5m");
            findings(&t)
                .contains(&(
                    "idle_subscriber".to_string(),
                    "destination:switchyard:marketing.promotions".to_string(),
                ))
                .then_some(())
        },
    );
    let t = env.get_json("/api/topology?window=5m");
    assert!(findings(&t).contains(&(
        "idle_subscriber".to_string(),
        "service:marketing".to_string()
    )));
    // The subscription's own page: its depth, in flight, dead letters and consumers.
    let page = common::wait_for(
        "the work queue's page with its consumers",
        Duration::from_secs(30),
        || {
            let page = Page::ok(
                &env,
                "/destinations/destination:switchyard:fulfilment.workers?window=5m",
            );
            (page.all("#broker-consumers .consumer").len() == 2).then_some(page)
        },
    );
    assert!(page.all("#broker-undeclared").is_empty());
    let consumers = page.texts("#broker-consumers .consumer");
    assert_eq!(
        consumers,
        ["fulfilment@fulfilment-1", "fulfilment@fulfilment-2"]
    );
    let dead: u64 = ui::text(&page.one("#broker-subscription .dead"))
        .parse()
        .unwrap();
    assert!(dead > 0);
    for css in [".ready", ".leased"] {
        let n = ui::text(&page.one(&format!("#broker-subscription {css}")));
        assert!(n.parse::<u64>().is_ok(), "{css}: {n}");
    }
    assert_eq!(ui::text(&page.one("#broker-topic")), "fulfilment.tasks");
    assert_eq!(ui::text(&page.one("#entity")), "queue");
    // Its incoming messages are those routed into it, not 0 published.
    let sparks = page.texts(".spark");
    assert!(
        sparks
            .iter()
            .any(|s| s.starts_with("Messages in")
                && !s.contains("Messages in (published or routed) 0")),
        "{sparks:?}"
    );
    // The consume row on its page names the other end's kind and the failures by reason.
    let row = page
        .all(".edges .edge-row")
        .into_iter()
        .find(|r| ui::text(r).starts_with("fulfilment service consume"))
        .unwrap();
    let text = ui::text(&row);
    assert!(text.contains("nack"), "{text}");
}
