//! `GET /api/pathways` and the service page's "downstream journeys" on a recorded real-SDK
//! press (Celery on RabbitMQ): frontend -> render -> renderer -> mail -> backoffice, with its
//! counts and latencies checked against the recorded spans' own timestamps.

mod common;

use common::fixtures::{self, SpanInfo, KIND_CONSUMER, KIND_PRODUCER};
use common::ui::{self, Page};
use common::TestEnv;
use serde_json::Value;
use std::collections::BTreeMap;

const FRONTEND: &str = "service:frontend";
const BACKOFFICE: &str = "service:backoffice";

/// The nearest-rank percentile of sorted values.
fn rank(sorted: &[u64], q: f64) -> u64 {
    let r = (q * sorted.len() as f64).ceil() as usize;
    sorted[r.clamp(1, sorted.len()) - 1]
}

fn micros(from: u64, to: u64) -> u64 {
    to.saturating_sub(from) / 1_000
}

/// The services of a pathway's nodes, in order.
fn services(p: &Value) -> Vec<String> {
    p["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter_map(|n| n.as_str()?.strip_prefix("service:").map(str::to_string))
        .collect()
}

fn find<'a>(answer: &'a Value, want: &[&str]) -> &'a Value {
    answer["pathways"]
        .as_array()
        .expect("pathways")
        .iter()
        .find(|p| services(p) == want)
        .unwrap_or_else(|| panic!("no pathway {want:?} in {answer}"))
}

/// Per recorded two-hop journey (a render task that mailed): end to end, then the wait and
/// processing of each hop, from the spans' own start and end times.
fn recorded_journeys(spans: &[SpanInfo]) -> Vec<[u64; 5]> {
    let mut by_trace: BTreeMap<&str, Vec<&SpanInfo>> = BTreeMap::new();
    for s in spans {
        by_trace.entry(&s.trace_id).or_default().push(s);
    }
    let one = |t: &[&SpanInfo], service: &str, kind: i64| -> Option<SpanInfo> {
        let found: Vec<&&SpanInfo> = t
            .iter()
            .filter(|s| s.service == service && s.kind == kind)
            .collect();
        (found.len() == 1).then(|| (*found[0]).clone())
    };
    by_trace
        .values()
        .filter_map(|t| {
            let publish = one(t, "frontend", KIND_PRODUCER)?;
            let render = one(t, "renderer", KIND_CONSUMER)?;
            let mail = one(t, "renderer", KIND_PRODUCER)?;
            let office = one(t, "backoffice", KIND_CONSUMER)?;
            Some([
                micros(publish.start_unix_nanos, office.end_unix_nanos),
                micros(publish.start_unix_nanos, render.start_unix_nanos),
                micros(render.start_unix_nanos, mail.start_unix_nanos),
                micros(mail.start_unix_nanos, office.start_unix_nanos),
                micros(office.start_unix_nanos, office.end_unix_nanos),
            ])
        })
        .collect()
}

fn spread(v: &Value) -> (u64, u64) {
    (
        v["p50_micros"].as_u64().expect("p50"),
        v["p99_micros"].as_u64().expect("p99"),
    )
}

#[test]
fn pathways_of_a_recorded_press_match_its_spans() {
    let (env, spans, window) = TestEnv::with_recording(fixtures::PYTHON_CELERY);
    let q = window.query();
    let answer = env.get_json(&format!("/api/pathways?from={FRONTEND}&{q}"));
    assert_eq!(answer["partial"], false, "{answer}");
    assert_eq!(answer["from"], FRONTEND);
    // Six renders (one fails before mailing), two broadcast flushes run by both renderer
    // instances, two quotes.
    let two_hops = find(&answer, &["frontend", "renderer", "backoffice"]);
    assert_eq!(two_hops["count"], 5, "{two_hops}");
    assert_eq!(
        two_hops["nodes"],
        serde_json::json!([
            FRONTEND,
            "destination:rabbitmq:render",
            "service:renderer",
            "destination:rabbitmq:mail",
            BACKOFFICE
        ])
    );
    let failed = answer["pathways"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| services(p) == ["frontend", "renderer"])
        .map(|p| (p["count"].as_u64().unwrap(), p["errors"].as_u64().unwrap()))
        .collect::<Vec<_>>();
    assert!(failed.contains(&(1, 1)), "the failing render: {answer}");
    assert_eq!(find(&answer, &["frontend", "backoffice"])["count"], 2);

    let recorded = recorded_journeys(&spans);
    assert_eq!(recorded.len(), 5, "the recording has five mailed renders");
    let column = |i: usize| {
        let mut v: Vec<u64> = recorded.iter().map(|r| r[i]).collect();
        v.sort_unstable();
        (rank(&v, 0.5), rank(&v, 0.99))
    };
    assert_eq!(spread(&two_hops["end_to_end"]), column(0), "{two_hops}");
    let hops = two_hops["hops"].as_array().expect("hops");
    assert_eq!(hops.len(), 2);
    assert_eq!(spread(&hops[0]["wait"]), column(1));
    assert_eq!(spread(&hops[0]["processing"]), column(2));
    assert_eq!(spread(&hops[1]["wait"]), column(3));
    assert_eq!(spread(&hops[1]["processing"]), column(4));
    assert_eq!(hops[1]["from"], "service:renderer");
    assert_eq!(hops[1]["to"], BACKOFFICE);
    // Each example is a trace that took the pathway.
    for ex in two_hops["examples"].as_array().expect("examples") {
        let trace = env.get_json(&format!("/api/traces/{}", ex.as_str().unwrap()));
        let svcs: Vec<&str> = trace["spans"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["service"].as_str().unwrap())
            .collect();
        assert!(
            svcs.contains(&"backoffice") && svcs.contains(&"renderer"),
            "{trace}"
        );
    }

    // Only `to`, and both ends: the same journeys, cut at the ends.
    let to = env.get_json(&format!("/api/pathways?to={BACKOFFICE}&{q}"));
    assert_eq!(
        find(&to, &["frontend", "renderer", "backoffice"])["count"],
        5
    );
    let between = env.get_json(&format!(
        "/api/pathways?from=service:renderer&to={BACKOFFICE}&{q}"
    ));
    let one_hop = find(&between, &["renderer", "backoffice"]);
    assert_eq!(one_hop["count"], 5);
    assert_eq!(
        between["pathways"].as_array().unwrap().len(),
        1,
        "{between}"
    );
    assert_eq!(spread(&one_hop["hops"][0]["wait"]), column(3));

    // A window without the recording finds nothing, completely.
    let empty = env.get_json(
        "/api/pathways?from=service:frontend&since=2001-01-01T00:00:00Z&until=2001-01-01T01:00:00Z",
    );
    assert_eq!(empty["pathways"], serde_json::json!([]));
    assert_eq!(empty["journeys"], 0);
}

#[test]
fn pathways_refuse_bad_ends_and_say_when_a_bound_cut_the_scan() {
    let (env, _, window) = TestEnv::with_recording(fixtures::PYTHON_CELERY);
    let q = window.query();
    for bad in [
        "",
        "from=frontend",
        "to=external:db",
        "from=service:&to=",
        "from=service:frontend&since=yesterday",
    ] {
        let reply = env.get(&format!("/api/pathways?{bad}"));
        assert_eq!(reply.status, 400, "{bad}: {}", reply.text());
        let body: Value = serde_json::from_slice(&reply.body).expect("a JSON error");
        assert!(
            body["error"].is_string() || body["message"].is_string(),
            "{body}"
        );
    }
    // One trace read: the answer is partial and says so.
    let one = env.get_json(&format!("/api/pathways?from={FRONTEND}&limit=1&{q}"));
    assert_eq!(one["partial"], true, "{one}");
    assert_eq!(one["scanned"]["traces"], 1);
    assert_eq!(one["scanned"]["trace_limit_reached"], true);
    assert!(one["journeys"].as_u64().unwrap() >= 1, "{one}");
}

#[test]
fn the_service_page_shows_its_downstream_journeys() {
    let (env, _, window) = TestEnv::with_recording(fixtures::PYTHON_CELERY);
    let page = Page::ok(
        &env,
        &format!(
            "/services/service%3Afrontend?window=custom&{}",
            window.query()
        ),
    );
    let section = page.one("#journeys");
    assert!(ui::text(&section).contains("Downstream journeys from here"));
    let rows = page.all("#journeys .journey-row");
    assert_eq!(rows.len(), 4, "{}", section.html());
    let counts = page.texts("#journeys .journey-row .count");
    assert_eq!(counts, ["5", "4", "2", "1"], "most taken first");
    let first = page.texts("#journeys .journey-row:first-child .pathway .chip");
    assert_eq!(
        first,
        ["frontend", "render", "renderer", "mail", "backoffice"]
    );
    // Bars: a wait and a processing segment per hop.
    let bars = page.all("#journeys .journey-row:first-child .hop-bar");
    assert_eq!(bars.len(), 4);
    let examples = page.attrs("#journeys .journey-row:first-child .example-trace", "href");
    assert!(!examples.is_empty());
    for href in examples {
        assert!(href.starts_with("/traces/"), "{href}");
        assert_eq!(Page::get(&env, &href).status, 200, "{href}");
    }
    let search = page.attrs("#journeys .journey-row:first-child .journey-search", "href");
    assert!(search[0].contains("window=custom"), "{search:?}");
    // A service that publishes nothing says so.
    let office = Page::ok(
        &env,
        &format!(
            "/services/service%3Abackoffice?window=custom&{}",
            window.query()
        ),
    );
    assert!(office.all("#journeys-empty").len() == 1);
}

/// Service and destination names are span data: the journeys section shows them as text.
#[test]
fn hostile_names_in_a_journey_are_shown_as_text() {
    let env = TestEnv::start();
    let (publish, consume) = ui::hostile_trace();
    let reply = env.post_protobuf(&common::builder::protobuf(&[&publish, &consume]));
    assert_eq!(reply.status, 200, "{}", reply.text());
    let q = common::builder::window().query();
    let id: String = format!("service:{}", ui::HOSTILE_SERVICE)
        .bytes()
        .map(|b| format!("%{b:02X}"))
        .collect();
    let page = Page::ok(&env, &format!("/services/{id}?window=custom&{q}"));
    page.assert_no_injected_markup("service page");
    let stops = page.texts("#journeys .journey-row .pathway .chip");
    assert_eq!(
        stops,
        [
            ui::HOSTILE_SERVICE,
            ui::HOSTILE_DESTINATION,
            ui::HOSTILE_CONSUMER
        ],
        "{}",
        page.one("#journeys").html()
    );
}

/// Per (publishing service, consuming service): each message's one-hop journey from the
/// recorded spans alone, tying a consume to its publish by its parent or by a span link, as
/// `[end to end, wait, processing, error]`.
fn recorded_hops(spans: &[SpanInfo]) -> BTreeMap<(String, String), Vec<[u64; 4]>> {
    let mut out: BTreeMap<(String, String), Vec<[u64; 4]>> = BTreeMap::new();
    for p in spans.iter().filter(|s| s.kind == KIND_PRODUCER) {
        let tied = |c: &&SpanInfo| {
            c.kind == KIND_CONSUMER
                && ((c.trace_id == p.trace_id && c.parent_span_id == p.span_id)
                    || c.links
                        .iter()
                        .any(|(t, s)| *t == p.trace_id && *s == p.span_id))
        };
        for c in spans.iter().filter(tied) {
            out.entry((p.service.clone(), c.service.clone()))
                .or_default()
                .push([
                    micros(p.start_unix_nanos, c.end_unix_nanos),
                    micros(p.start_unix_nanos, c.start_unix_nanos),
                    micros(c.start_unix_nanos, c.end_unix_nanos),
                    u64::from(p.error || c.error),
                ]);
        }
    }
    out
}

/// The p50 and p99 of one column of journeys.
fn column(journeys: &[[u64; 4]], i: usize) -> (u64, u64) {
    let mut v: Vec<u64> = journeys.iter().map(|r| r[i]).collect();
    v.sort_unstable();
    (rank(&v, 0.5), rank(&v, 0.99))
}

fn assert_hop_matches(answer: &Value, from: &str, to: &str, recorded: &[[u64; 4]]) {
    let p = find(answer, &[from, to]);
    assert_eq!(p["count"], recorded.len() as u64, "{from} -> {to}: {p}");
    let errors: u64 = recorded.iter().map(|r| r[3]).sum();
    assert_eq!(p["errors"], errors, "{from} -> {to}: {p}");
    assert_eq!(spread(&p["end_to_end"]), column(recorded, 0), "{p}");
    assert_eq!(spread(&p["hops"][0]["wait"]), column(recorded, 1), "{p}");
    assert_eq!(
        spread(&p["hops"][0]["processing"]),
        column(recorded, 2),
        "{p}"
    );
    assert_eq!(
        p["hops"][0]["via"],
        serde_json::json!(["destination:kafka:orders"])
    );
}

/// kafkajs `eachBatch` (per-message `process` spans under the batch's `poll` receive span)
/// and confluent-kafka consume in traces of their own, their `process` spans linking to the
/// publish: the journey goes on there, also for messages one group (kafkajs `eachMessage`)
/// consumed in the publisher's trace. Every message's hop is counted once, with the figures
/// of the recorded spans; the topology still counts each message once per group.
#[test]
fn pathways_follow_the_links_of_recorded_kafka_batch_consumers() {
    let (env, spans, window) = TestEnv::with_recording(fixtures::KAFKA);
    let q = window.query();
    let recorded = recorded_hops(&spans);
    fn of<'a>(
        recorded: &'a BTreeMap<(String, String), Vec<[u64; 4]>>,
        from: &str,
        to: &str,
    ) -> &'a [[u64; 4]] {
        recorded
            .get(&(from.to_string(), to.to_string()))
            .unwrap_or_else(|| panic!("{from} -> {to} in the recording"))
    }
    let hops = |from: &str, to: &str| of(&recorded, from, to);
    // The recording: order-1..12 each reached billing and audit, and some only by a link.
    for from in ["checkout-js", "checkout-py"] {
        for to in ["billing", "audit"] {
            assert_eq!(hops(from, to).len(), 6, "{from} -> {to}");
        }
    }
    let linked_only = spans
        .iter()
        .filter(|s| s.kind == KIND_CONSUMER && !s.links.is_empty())
        .filter(|c| {
            !spans
                .iter()
                .any(|p| p.span_id == c.parent_span_id && p.kind == KIND_PRODUCER)
        })
        .count();
    assert!(
        linked_only >= 12,
        "audit's 12 and billing's batch: {linked_only}"
    );

    for from in ["checkout-js", "checkout-py"] {
        let answer = env.get_json(&format!("/api/pathways?from=service:{from}&{q}"));
        assert_eq!(answer["partial"], false, "{answer}");
        assert!(
            answer["scanned"]["linked_traces"].as_u64() >= Some(1),
            "{answer}"
        );
        assert_eq!(answer["journeys"], 12, "{answer}");
        assert_eq!(answer["pathways_total"], 2, "{answer}");
        for to in ["billing", "audit"] {
            assert_hop_matches(&answer, from, to, hops(from, to));
        }
    }
    // Found from the consumer's end: links are followed back to the publishers' traces.
    let to = env.get_json(&format!("/api/pathways?to=service:audit&{q}"));
    assert_eq!(to["partial"], false, "{to}");
    assert_eq!(to["journeys"], 12, "{to}");
    for from in ["checkout-js", "checkout-py"] {
        assert_hop_matches(&to, from, "audit", hops(from, "audit"));
        // Each example is the trace the journey started in: the publisher's.
        for ex in find(&to, &[from, "audit"])["examples"].as_array().unwrap() {
            let trace = env.get_json(&format!("/api/traces/{}", ex.as_str().unwrap()));
            assert!(
                trace["spans"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|s| s["service"] == from && s["kind"] == "producer"),
                "{trace}"
            );
        }
    }
}

/// orders -> order.created -> billing -> invoice.ready -> mailer, each consumer a batch
/// consumer in a trace of its own (its `process` span under a `poll` span, linking to the
/// publish), each trace sent in its own request: one journey over three traces.
#[test]
fn a_journey_over_three_linked_traces_is_one_pathway_with_its_own_figures() {
    use common::builder::{self, span, Client, Consumer, Producer};
    let env = TestEnv::start();
    let publish = span("orders", "order.created send", Producer)
        .messaging("rabbitmq", "order.created")
        .at_ms(0)
        .lasting_ms(2);
    let poll = span("billing", "poll", Client).at_ms(7).lasting_ms(30);
    let process = poll
        .child("billing", "order.created process", Consumer)
        .messaging("rabbitmq", "order.created")
        .link(&publish)
        .at_ms(11)
        .lasting_ms(23);
    let onward = process
        .child("billing", "invoice.ready send", Producer)
        .messaging("rabbitmq", "invoice.ready")
        .at_ms(17)
        .lasting_ms(1);
    let mail = span("mailer", "invoice.ready process", Consumer)
        .messaging("rabbitmq", "invoice.ready")
        .link(&onward)
        .at_ms(52)
        .lasting_ms(6);
    for spans in [vec![&publish], vec![&poll, &process, &onward], vec![&mail]] {
        let reply = env.post_protobuf(&builder::protobuf(&spans));
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    let t = |s: &common::builder::SpanB| (s.span.start_time_unix_nano, s.span.end_time_unix_nano);
    let ((p0, _), (c1, _), (p1, _), (c2, c2_end)) =
        (t(&publish), t(&process), t(&onward), t(&mail));
    let q = builder::window().query();
    for query in [
        "from=service:orders",
        "to=service:mailer",
        "from=service:orders&to=service:mailer",
    ] {
        let answer = env.get_json(&format!("/api/pathways?{query}&{q}"));
        assert_eq!(answer["partial"], false, "{query}: {answer}");
        assert_eq!(answer["scanned"]["linked_traces"], 2, "{query}: {answer}");
        let p = find(&answer, &["orders", "billing", "mailer"]);
        assert_eq!(p["count"], 1, "{query}: {p}");
        let one = |v: u64| (v, v);
        assert_eq!(spread(&p["end_to_end"]), one(micros(p0, c2_end)), "{p}");
        assert_eq!(spread(&p["hops"][0]["wait"]), one(micros(p0, c1)));
        assert_eq!(spread(&p["hops"][0]["processing"]), one(micros(c1, p1)));
        assert_eq!(spread(&p["hops"][1]["wait"]), one(micros(p1, c2)));
        assert_eq!(spread(&p["hops"][1]["processing"]), one(micros(c2, c2_end)));
        assert_eq!(p["examples"], serde_json::json!([publish.trace_hex()]));
    }
    // From the middle: billing's trace, and the mailer's it links to; nothing upstream.
    let mid = env.get_json(&format!("/api/pathways?from=service:billing&{q}"));
    assert_eq!(mid["scanned"]["linked_traces"], 1, "{mid}");
    assert_eq!(find(&mid, &["billing", "mailer"])["count"], 1);
}
