//! Dead letters and redeliveries on a recorded real-SDK fixture (fixtures/otlp/
//! python-pika-deadletter: pika 1.3.2 with opentelemetry-instrumentation-pika 0.66b1 on
//! RabbitMQ 3.10.8). The recorded virtual host (fixtures/rabbitmq/deadletter: queue
//! `ledger.entries` with dead-letter exchange `ledger.dlx`, bound to `ledger.dead`) is declared
//! again in a virtual host of the test's own on the machine's RabbitMQ, which discovery polls;
//! two messages are dead-lettered there by the broker itself. The recorded spans (re-timed to
//! now, every id and attribute as recorded) arrive consumers first, the publish last: the
//! arrival order in which a redelivery used to go unmarked.
//!
//! Checked through the API and in headless Chromium at 1024x700: the consume edge and the
//! queue carry their failures with the reasons (`redelivered` from the traces, `dead_letter`
//! from the broker), "errors only" finds the redelivered and the dead-lettered traces, their
//! trace views mark the failed rows with the reason, the map draws the dead-letter flow, and
//! the blast radius of the consumer is the queue that piles up.

mod common;

use common::browser::Browser;
use common::fixtures::{self, SpanInfo};
use common::{builder, topo, TestEnv};
use prost::Message;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

const SET: &str = "python-pika-deadletter";
const BROKER_DEADLINE: Duration = Duration::from_secs(90);

/// A virtual host of the test's own; deleted on drop, with everything in it.
struct Vhost(String);

impl Drop for Vhost {
    fn drop(&mut self) {
        let path = switchyard::percent::encode(&self.0);
        let _ = common::rabbit_management("DELETE", &format!("vhosts/{path}"), None);
    }
}

fn recorded_broker(file: &str) -> Vec<Value> {
    let path = fixtures::root().join("rabbitmq/deadletter").join(file);
    let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice::<Vec<Value>>(&text).expect("a recorded management answer")
}

/// Declares the recorded exchanges, queues and bindings (not the built-in ones) in `vhost`.
fn declare_recorded(vhost: &str) {
    let v = switchyard::percent::encode(vhost);
    let name = |x: &Value| x["name"].as_str().unwrap_or_default().to_string();
    let enc = |s: &str| switchyard::percent::encode(s);
    for x in recorded_broker("exchanges.json") {
        let n = name(&x);
        if n.is_empty() || n.starts_with("amq.") {
            continue;
        }
        let body = json!({"type": x["type"], "durable": x["durable"], "auto_delete": x["auto_delete"],
            "arguments": x["arguments"]});
        common::rabbit_management("PUT", &format!("exchanges/{v}/{}", enc(&n)), Some(body))
            .expect("declare an exchange");
    }
    for q in recorded_broker("queues.json") {
        let body = json!({"durable": q["durable"], "auto_delete": q["auto_delete"],
            "arguments": q["arguments"]});
        common::rabbit_management("PUT", &format!("queues/{v}/{}", enc(&name(&q))), Some(body))
            .expect("declare a queue");
    }
    for b in recorded_broker("bindings.json") {
        let source = b["source"].as_str().unwrap_or_default();
        if source.is_empty() {
            continue;
        }
        let dest = b["destination"].as_str().unwrap_or_default();
        let body = json!({"routing_key": b["routing_key"], "arguments": b["arguments"]});
        common::rabbit_management(
            "POST",
            &format!("bindings/{v}/e/{}/q/{}", enc(source), enc(dest)),
            Some(body),
        )
        .expect("bind a queue");
    }
}

/// The broker dead-letters `n` messages of `ledger.entries` itself: each published and then
/// rejected without requeue (as poster did in the recording).
fn dead_letter_on_the_broker(vhost: &str, n: usize) {
    let v = switchyard::percent::encode(vhost);
    for i in 0..n {
        common::rabbit_management(
            "POST",
            &format!("exchanges/{v}/amq.default/publish"),
            Some(json!({"properties": {}, "routing_key": "ledger.entries",
                "payload": format!("entry {i}"), "payload_encoding": "string"})),
        )
        .expect("publish");
    }
    common::rabbit_management(
        "POST",
        &format!("queues/{v}/ledger.entries/get"),
        Some(json!({"count": n, "ackmode": "reject_requeue_false", "encoding": "auto"})),
    )
    .expect("reject without requeue");
}

/// The recorded requests, each span moved by one offset so that the last ends now (ids,
/// names, attributes and the time between spans as recorded), consumers' requests first.
fn retimed_requests_consumers_first() -> Vec<Vec<u8>> {
    let files = fixtures::load(SET);
    let last_end = files
        .iter()
        .flat_map(|f| &f.spans)
        .map(|s| s.end_unix_nanos)
        .max()
        .expect("spans");
    let offset = builder::now_unix_nanos().saturating_sub(last_end + 1_000_000_000);
    let mut requests: Vec<(bool, Vec<u8>)> = files
        .iter()
        .map(|f| {
            let mut req = f.request();
            for rs in &mut req.resource_spans {
                for ss in &mut rs.scope_spans {
                    for s in &mut ss.spans {
                        s.start_time_unix_nano += offset;
                        s.end_time_unix_nano += offset;
                        for e in &mut s.events {
                            e.time_unix_nano += offset;
                        }
                    }
                }
            }
            (!f.only_consumers(), req.encode_to_vec())
        })
        .collect();
    requests.sort_by_key(|r| r.0);
    requests.into_iter().map(|r| r.1).collect()
}

/// A server discovering the recorded virtual host (declared again), after the broker
/// dead-lettered two messages, with the recorded spans stored consumers first.
struct Recorded {
    env: TestEnv,
    _vhost: Vhost,
    spans: Vec<SpanInfo>,
}

impl Recorded {
    fn start() -> Recorded {
        let vhost = Vhost(format!(
            "sy-deadletter-{}-{}",
            std::process::id(),
            builder::now_unix_nanos() % 1_000_000_000
        ));
        common::rabbit_management(
            "PUT",
            &format!("vhosts/{}", switchyard::percent::encode(&vhost.0)),
            Some(json!({})),
        )
        .unwrap_or_else(|e| panic!("the management API (tools/rabbitmq/management.sh): {e}"));
        declare_recorded(&vhost.0);
        let env = common::with_flags(&common::discover_flags(&format!(
            "rabbitmq=http://guest:guest@127.0.0.1:15672/{}",
            switchyard::percent::encode(&vhost.0)
        )));
        let entries = topo::rabbit("ledger.entries");
        let dlx = topo::rabbit("ledger.dlx");
        // Discovery has the dead-letter exchange before a span arrives, and a poll of the
        // queues' figures to count the dead letters from: the newest poll of each minute is
        // kept, so the broker dead-letters in a later minute than that poll's.
        common::wait_for("the dead-letter flow", BROKER_DEADLINE, || {
            let t = env.get_json("/api/topology?window=1h");
            t["edges"]
                .as_array()?
                .iter()
                .any(|e| e["kind"] == "dead_letter" && e["from"] == entries && e["to"] == dlx)
                .then_some(())
        });
        let minute = |nanos: u64| nanos / 60_000_000_000;
        let polled = minute(builder::now_unix_nanos());
        common::wait_for("the next minute", Duration::from_secs(70), || {
            (minute(builder::now_unix_nanos()) > polled).then_some(())
        });
        dead_letter_on_the_broker(&vhost.0, 2);
        for body in retimed_requests_consumers_first() {
            let reply = env.post_protobuf(&body);
            assert_eq!(reply.status, 200, "{}", reply.text());
        }
        let spans = fixtures::load(SET)
            .into_iter()
            .flat_map(|f| f.spans)
            .collect();
        Recorded {
            env,
            _vhost: vhost,
            spans,
        }
    }

    /// The topology once the broker's figures show both dead letters.
    fn topology(&self) -> Value {
        let entries = topo::rabbit("ledger.entries");
        common::wait_for("the dead letters counted", BROKER_DEADLINE, || {
            let t = self.env.get_json("/api/topology?window=1h");
            (topo::nodes(&t).get(&entries)?["failures"]["dead_letter"] == 2).then_some(t)
        })
    }

    /// The traces that failed: the two dead-lettered messages (read by reconciler) and the
    /// one delivered twice to poster.
    fn failed_traces(&self) -> BTreeSet<String> {
        let mut failed = fixtures::trace_ids_with(&self.spans, "reconciler");
        let mut poster: Vec<&String> = self
            .spans
            .iter()
            .filter(|s| s.service == "poster")
            .map(|s| &s.trace_id)
            .collect();
        poster.sort();
        for w in poster.windows(2).filter(|w| w[0] == w[1]) {
            failed.insert(w[0].clone());
        }
        assert_eq!(
            failed.len(),
            3,
            "the recording: 2 dead letters, 1 redelivery"
        );
        failed
    }

    /// The redelivered trace's two consumes by poster, oldest first.
    fn redelivery(&self) -> (String, [String; 2]) {
        let dead = fixtures::trace_ids_with(&self.spans, "reconciler");
        let trace = self
            .failed_traces()
            .into_iter()
            .find(|t| !dead.contains(t))
            .expect("the redelivered trace");
        let mut consumes: Vec<&SpanInfo> = self
            .spans
            .iter()
            .filter(|s| s.trace_id == trace && s.service == "poster")
            .collect();
        consumes.sort_by_key(|s| s.start_unix_nanos);
        let ids = [consumes[0].span_id.clone(), consumes[1].span_id.clone()];
        (trace, ids)
    }
}

/// Through the API: one message per entry on the consume edge (the redelivery is a failure,
/// not a message), the queue's and the edge's failures with their reasons, the dead-letter
/// flow, the failed spans with their `error.type`, "errors only", and the blast radius.
#[test]
fn recorded_dead_letters_and_a_redelivery_are_failures_with_their_reasons() {
    let r = Recorded::start();
    let t = r.topology();
    let (entries, dlx) = (topo::rabbit("ledger.entries"), topo::rabbit("ledger.dlx"));
    let (poster, reconciler) = (topo::service("poster"), topo::service("reconciler"));
    let consume = topo::edge(&t, "consume", &entries, &poster);
    assert_eq!(
        consume["count"], 5,
        "redeliveries are no messages: {consume}"
    );
    assert_eq!(consume["failures"]["redelivered"], 1, "{consume}");
    let queue = &topo::nodes(&t)[&entries];
    assert_eq!(
        (
            &queue["failures"]["redelivered"],
            &queue["failures"]["dead_letter"]
        ),
        (&json!(1), &json!(2)),
        "{queue}"
    );
    let flow = topo::edge(&t, "dead_letter", &entries, &dlx);
    assert!(flow.is_object(), "{flow}");
    assert_eq!(topo::edge(&t, "consume", &dlx, &reconciler)["count"], 2);

    // Each failed span, marked with its reason; the other deliveries are no errors.
    let (redelivered, [first, again]) = r.redelivery();
    let mut reasons: BTreeSet<(String, String)> = BTreeSet::new();
    for trace in r.failed_traces() {
        for s in r.env.trace_spans(&trace) {
            if s["status"] == "error" {
                let reason = s["attributes"]["error.type"].as_str().unwrap_or_default();
                reasons.insert((s["span_id"].as_str().unwrap().into(), reason.into()));
            }
        }
    }
    let dead_reads: BTreeSet<(String, String)> = r
        .spans
        .iter()
        .filter(|s| s.service == "reconciler")
        .map(|s| (s.span_id.clone(), "dead_lettered".to_string()))
        .collect();
    let mut want = dead_reads;
    want.insert((again.clone(), "redelivered".into()));
    assert_eq!(reasons, want, "first delivery {first} is no error");
    assert_eq!(r.env.trace_spans(&redelivered).len(), 3, "each span once");

    let listed = |q: &str| -> BTreeSet<String> {
        r.env
            .get_json(&format!("/api/traces?{q}&window=1h&limit=100"))["traces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["trace_id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(listed("status=error"), r.failed_traces());
    assert_eq!(
        listed("attr=error.type%3Dredelivered"),
        BTreeSet::from([redelivered])
    );

    // Poster down: its queue piles up. Ledger down: poster stops receiving.
    let i = r
        .env
        .get_json(&format!("/api/impact?node={}&window=1h", pct(&poster)));
    let piling: Vec<&str> = i["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert!(piling.contains(&entries.as_str()), "{i}");
    let i = r.env.get_json(&format!(
        "/api/impact?node={}&window=1h",
        pct("service:ledger")
    ));
    let starved: Vec<&str> = i["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert!(starved.contains(&poster.as_str()), "{i}");
}

fn pct(s: &str) -> String {
    switchyard::percent::encode(s)
}

fn trace_ready(b: &Browser) {
    b.wait_for(
        "the trace view",
        "return document.body.getAttribute('data-trace-ready') === '1';",
    );
}

/// `[error row, reason on its label, reason readable at 1024x700]` of the span's row.
fn row_mark(b: &Browser, span: &str) -> Value {
    b.eval(
        "const r = document.getElementById('span-' + arguments[0]); \
         const reason = r && r.querySelector('.wf-label .err-reason'); \
         const box = reason && reason.getBoundingClientRect(); \
         return [!!r && r.classList.contains('error'), reason && reason.textContent.trim(), \
                 !!box && box.width > 0 && box.right <= innerWidth \
                   && parseFloat(getComputedStyle(reason).fontSize) >= 11];",
        json!([span]),
    )
}

/// In Chromium: "errors only" lists the three failed traces; the redelivered trace marks its
/// second delivery (not the first) and a dead-lettered trace its read from the dead-letter
/// exchange, each with the reason on the label, in both themes; the map draws the
/// dead-letter flow and the queue's failures, and the blast radius of poster is its queue.
#[test]
fn recorded_dead_letters_in_the_browser() {
    let Some(b) = Browser::start() else { return };
    let r = Recorded::start();
    let t = r.topology();
    b.resize(1024, 700);
    b.goto(&r.env.api_url("/traces?status=error&window=1h"));
    let listed = b.wait_for(
        "the failed traces in the search",
        "const a = [...document.querySelectorAll('.trace-row a.trace-link')]; \
         return a.length === 3 && a.map(l => l.getAttribute('href').split('?')[0].split('/').pop());",
    );
    let listed: BTreeSet<String> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, r.failed_traces());

    // The redelivery is no hop: one publish, one message consumed, three spans.
    let (redelivered, [first, again]) = r.redelivery();
    let counts = b.eval(
        "const row = [...document.querySelectorAll('.trace-row')].find(r => \
           r.querySelector('a.trace-link').getAttribute('href').includes(arguments[0])); \
         return [row.querySelector('td.hops').textContent.trim(), row.cells[3].textContent.trim()];",
        json!([redelivered]),
    );
    assert_eq!(counts, json!(["1", "3"]));
    b.goto(&r.env.api_url(&format!("/traces/{redelivered}?window=1h")));
    trace_ready(&b);
    assert_eq!(
        b.eval(
            "return document.getElementById('hop-count').textContent.trim();",
            json!([])
        ),
        json!("1")
    );
    assert_eq!(row_mark(&b, &again), json!([true, "redelivered", true]));
    assert_eq!(row_mark(&b, &first), json!([false, null, false]));
    b.screenshot("recorded-redelivered");
    let read = r
        .spans
        .iter()
        .find(|s| s.service == "reconciler")
        .expect("a dead-letter read");
    b.goto(
        &r.env
            .api_url(&format!("/traces/{}?window=1h", read.trace_id)),
    );
    trace_ready(&b);
    assert_eq!(
        row_mark(&b, &read.span_id),
        json!([true, "dead_lettered", true])
    );
    b.click("#theme-toggle");
    b.wait_for_paint();
    assert_eq!(
        row_mark(&b, &read.span_id),
        json!([true, "dead_lettered", true])
    );
    b.screenshot("recorded-dead-lettered");

    // The map: the dead-letter flow is drawn, the queue shows its failures.
    b.goto(&r.env.api_url("/?window=1h"));
    let state = b.wait_for(
        "the map",
        "return document.body.getAttribute('data-map-ready');",
    );
    assert_eq!(state, json!("1"));
    b.wait_for("a still map", "return !window.switchyard.cy.animated();");
    let entries = topo::rabbit("ledger.entries");
    let drawn = b.eval(
        "const cy = window.switchyard.cy; \
         return {dead: cy.edges('[kind = \"dead_letter\"]').map(e => [e.source().id(), e.target().id()]), \
                 ring: cy.getElementById(arguments[0]).data('ring') || ''};",
        json!([entries]),
    );
    assert_eq!(
        drawn["dead"],
        json!([[entries, topo::rabbit("ledger.dlx")]]),
        "{drawn}"
    );
    assert!(
        drawn["ring"]
            .as_str()
            .unwrap()
            .starts_with("data:image/svg+xml"),
        "{drawn}"
    );
    let queue = &topo::nodes(&t)[&entries];
    assert!(queue["errors"].as_i64().unwrap_or(0) > 0, "{queue}");

    // Blast radius of poster: its queue piles up, marked on the map.
    b.eval(
        "window.switchyard.cy.getElementById('service:poster').emit('tap'); return 1;",
        json!([]),
    );
    b.click("#impact-button");
    b.wait_for(
        "the blast radius",
        "return document.querySelector('#impact h3');",
    );
    let piling = b.eval(
        "const cy = window.switchyard.cy; \
         return [...document.querySelectorAll('.impact-destinations li')].map(li => \
           [li.getAttribute('data-node-id'), cy.getElementById(li.getAttribute('data-node-id')).hasClass('piling')]);",
        json!([]),
    );
    assert!(
        piling.as_array().unwrap().contains(&json!([entries, true])),
        "{piling}"
    );
    b.screenshot("recorded-dead-letters-impact");
}
