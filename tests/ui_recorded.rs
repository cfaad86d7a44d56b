//! Issue 18's UI points on recorded real-SDK traces, in a real headless Chromium: the pika
//! shop (fixtures/otlp/python-pika) and the Kafka set (fixtures/otlp/kafka: kafkajs and
//! confluent-kafka), stored together and re-timed to end a few seconds ago so that the preset
//! windows ending now hold them. Together they give a service and a destination of one name
//! (pika's service `orders`, Kafka's topic `orders`) and a second consumer, `billing`, of both.
//!
//! One browser session goes through: the node pages' tables (columns, errors, failures, rates
//! per second while the edge was active, one unit per table, which `orders` is which); the
//! publish-to-consume delay of the recorded stream (Kafka) against the recording's own times;
//! the trace view's tools on the recorded failed order (zoom, minimap pan and range, collapse
//! and expand, find, a colour per service, the error on label and bar, the message's journey);
//! and the time window (presets 15 min, 6 h and 7 d, the window on every link, a date typed
//! without a time, a bad date said on the page). No recorded set holds a stream replay (only
//! the embedded broker marks one), so a second test reads the demo's replays of
//! `order.history`. Nested pika publish spans folded into one row on a recording are
//! tests/ui_trace_view.rs's `recorded_nested_pika_publishes_fold_into_one_row`.
//! Screenshots go to test-output/.

mod common;

use common::browser::Browser;
use common::fixtures::{self, SpanInfo, KIND_CONSUMER, KIND_PRODUCER};
use common::{builder, TestEnv};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
// What the pages write: durations (`12.3 ms`) and rates per second with no unit.
use switchyard::web::pages::format::{micros, per_sec};

/// The recorded spans (re-timed) of the pika shop and of the Kafka set.
struct Recorded {
    pika: Vec<SpanInfo>,
    kafka: Vec<SpanInfo>,
}

/// The pika shop and the Kafka set, each re-timed to end five seconds ago, posted as their
/// SDKs sent them.
fn recorded_shop() -> (TestEnv, Recorded) {
    let env = TestEnv::start();
    let end = builder::now_unix_nanos() - 5_000_000_000;
    let mut sets = [fixtures::PYTHON_PIKA, fixtures::KAFKA].map(|set| {
        let files = fixtures::retimed(set, end);
        env.post_fixtures(&files);
        let spans: Vec<SpanInfo> = files.into_iter().flat_map(|f| f.spans).collect();
        let first = spans
            .iter()
            .map(|s| s.start_unix_nanos)
            .min()
            .expect("spans");
        assert!(
            end - first < 10 * 60_000_000_000,
            "{set}: the recording lasts minutes at most, so 15 minutes hold it"
        );
        spans
    });
    let kafka = std::mem::take(&mut sets[1]);
    let pika = std::mem::take(&mut sets[0]);
    (env, Recorded { pika, kafka })
}

/// A duration written by the pages, back in microseconds.
fn parse_micros(text: &str) -> f64 {
    let (n, unit) = text
        .trim()
        .split_once(' ')
        .unwrap_or_else(|| panic!("a duration: {text:?}"));
    let n: f64 = n.parse().unwrap_or_else(|_| panic!("a duration: {text:?}"));
    match unit {
        "µs" => n,
        "ms" => n * 1e3,
        "s" => n * 1e6,
        _ => panic!("a duration: {text:?}"),
    }
}

/// Every edge table of the page: its section's title, column heads, and per row the other
/// end's name, kind badge, node id (its title) and link, the cells' text and the error class.
fn edge_tables(b: &Browser) -> Value {
    b.eval(
        "const t = e => e ? e.textContent.replace(/\\s+/g, ' ').trim() : ''; \
         return [...document.querySelectorAll('section.panel')].filter(s => s.querySelector('table.edges')) \
           .map(s => ({title: t(s.querySelector('h2')), \
             heads: [...s.querySelectorAll('table.edges thead th')].map(t), \
             rows: [...s.querySelectorAll('table.edges tbody tr.edge-row')].map(tr => { \
               const end = tr.cells[0].querySelector('a, span[title]'); \
               return {name: t(end), kind: t(tr.querySelector('.node-kind')), id: end.getAttribute('title'), \
                 href: end.tagName === 'A' ? end.getAttribute('href') : '', cells: [...tr.cells].map(t), \
                 replays: !!tr.querySelector('.replays'), error: tr.classList.contains('error')}; })}));",
        json!([]),
    )
}

fn table<'a>(tables: &'a Value, title: &str) -> &'a Value {
    tables
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["title"] == title)
        .unwrap_or_else(|| panic!("no {title} table: {tables:#}"))
}

fn row<'a>(table: &'a Value, id: &str, through: Option<&str>) -> &'a Value {
    table["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id && through.is_none_or(|t| r["cells"][1] == t))
        .unwrap_or_else(|| panic!("no row of {id} through {through:?}: {table:#}"))
}

fn api_edge<'a>(topo: &'a Value, kind: &str, from: &str, to: &str) -> &'a Value {
    common::topo::edge(topo, kind, from, to)
}

const IN_HEADS: [&str; 8] = [
    "Node",
    "Edge",
    "Count",
    "Errors",
    "Failures",
    "Rate /s (while active)",
    "p50",
    "p99",
];
const VIA_HEADS: [&str; 8] = [
    "Node",
    "Through",
    "Messages paired",
    "Errors",
    "Failures",
    "Rate /s (while active)",
    "p50",
    "p99",
];

/// Point 2: billing consumes pika's `order.created` and Kafka's `orders`, and pika's service
/// `orders` publishes what it consumes from `order.created`.
fn node_tables_rates_and_names(b: &Browser, env: &TestEnv, spans: &Recorded) {
    let spans = &spans.pika;
    let topo = env.get_json("/api/topology?window=15m");
    b.goto(&env.api_url("/services/service%3Abilling?window=15m"));
    b.wait_for("the page", "return document.readyState === 'complete';");
    let tables = edge_tables(b);
    let inbound = table(&tables, "In");
    let upstream = table(&tables, "Upstream services");
    assert_eq!(inbound["heads"], json!(IN_HEADS), "{tables:#}");
    assert_eq!(upstream["heads"], json!(VIA_HEADS), "{tables:#}");

    // Which `orders` is which: the topic in "In", the service upstream, each named, badged
    // and linked as what it is.
    let topic = row(inbound, "destination:kafka:orders", None);
    let service = row(upstream, "service:orders", Some("order.created"));
    assert_eq!(
        [
            &topic["name"],
            &topic["kind"],
            &service["name"],
            &service["kind"]
        ],
        [
            &json!("orders"),
            &json!("destination"),
            &json!("orders"),
            &json!("service")
        ]
    );
    assert!(
        topic["href"]
            .as_str()
            .unwrap()
            .starts_with("/destinations/destination%3Akafka%3Aorders?window=15m"),
        "{topic}"
    );
    assert!(
        service["href"]
            .as_str()
            .unwrap()
            .starts_with("/services/service%3Aorders?window=15m"),
        "{service}"
    );

    // The right figures in the right columns: the recorded failure (billing raised on
    // order-3) with its reason, on the consume edge and on the upstream pair.
    let pika_in = row(inbound, "destination:rabbitmq:order.created", None);
    assert_eq!(
        pika_in["cells"].as_array().unwrap()[1..5],
        [
            json!("consume"),
            json!("5"),
            json!("1"),
            json!("RuntimeError 1")
        ],
        "{pika_in}"
    );
    assert_eq!(pika_in["error"], true);
    assert_eq!(
        service["cells"].as_array().unwrap()[1..5],
        [
            json!("order.created"),
            json!("5"),
            json!("1"),
            json!("RuntimeError 1")
        ],
        "{service}"
    );
    assert_eq!(
        topic["cells"].as_array().unwrap()[1..5],
        [json!("consume"), json!("12"), json!("0"), json!("")],
        "{topic}"
    );
    assert_eq!(topic["error"], false);
    let kafka_up = row(upstream, "service:checkout-js", Some("orders"));
    assert_eq!(kafka_up["cells"][3], "0", "{kafka_up}");

    // One unit per table, named in its head: every rate cell is a bare number; each is the
    // edge's count over the time it was active, not over the window.
    for t in tables.as_array().unwrap() {
        for r in t["rows"].as_array().unwrap() {
            let cell = r["cells"][5].as_str().unwrap();
            assert!(
                cell.parse::<f64>().is_ok(),
                "{}: a bare number per second: {r}",
                t["title"]
            );
        }
    }
    for (from, r) in [
        ("destination:rabbitmq:order.created", pika_in),
        ("destination:kafka:orders", topic),
    ] {
        let e = api_edge(&topo, "consume", from, "service:billing");
        assert_eq!(
            r["cells"][5],
            per_sec(e["active_rate_per_sec"].as_f64().unwrap()),
            "{e}"
        );
    }
    let starts: Vec<u64> = spans
        .iter()
        .filter(|s| s.service == "billing" && s.name == "order.created receive")
        .map(|s| s.start_unix_nanos)
        .collect();
    assert_eq!(starts.len(), 5);
    let spread = (starts.iter().max().unwrap() - starts.iter().min().unwrap()) as f64 / 1e9;
    let shown: f64 = pika_in["cells"][5].as_str().unwrap().parse().unwrap();
    // Active: from its first to its last message, at least a minute (the resolution of the
    // statistics, so up to a minute more when the messages straddle one).
    assert!(
        shown <= 5.0 / 60.0 * 1.001 && shown >= 5.0 / (spread + 121.0),
        "5 messages over the {spread:.1} s they took, not the 900 s window: {shown}"
    );
    b.screenshot("recorded-billing-tables");

    // On the map, the reach of billing lists both `orders`, each with its kind.
    b.goto(&env.api_url("/?window=15m"));
    map_ready(b);
    b.eval(
        "window.switchyard.cy.getElementById('service:billing').emit('tap'); return 1;",
        json!([]),
    );
    let listed = b.wait_for(
        "billing's reach",
        "const li = [...document.querySelectorAll('#reach .upstream li')]; \
         return li.length > 0 && li.map(l => [l.getAttribute('data-node-id'), \
           l.querySelector('button').textContent, l.querySelector('.muted').textContent.split(' ')[0]]);",
    );
    let listed: BTreeSet<(String, String, String)> = serde_json::from_value(listed).expect("rows");
    for (id, kind) in [
        ("destination:kafka:orders", "destination"),
        ("service:orders", "service"),
    ] {
        assert!(
            listed.contains(&(id.into(), "orders".into(), kind.into())),
            "{id}: {listed:?}"
        );
    }
    // The edge's side panel names what its rate is over.
    b.eval(
        "const cy = window.switchyard.cy; \
         cy.edges().filter(e => e.data('source') === 'destination:rabbitmq:order.created' \
           && e.data('target') === 'service:billing')[0].emit('tap'); return 1;",
        json!([]),
    );
    let facts = b.wait_for(
        "the edge's panel",
        "const dts = [...document.querySelectorAll('#details dl dt')].map(d => d.textContent); \
         return dts.includes('Count') && dts;",
    );
    let facts: Vec<String> = serde_json::from_value(facts).unwrap();
    assert!(
        facts.iter().any(|f| f == "Rate over the window"),
        "a rate labelled with what it is over: {facts:?}"
    );
}

fn map_ready(b: &Browser) {
    let state = b.wait_for(
        "the map",
        "return document.body.getAttribute('data-map-ready');",
    );
    assert_eq!(state, json!("1"), "map failed to load");
    b.wait_for("a still map", "return !window.switchyard.cy.animated();");
}

/// The publish-to-consume delay of each consume span of the recording that names its
/// publish (as parent or link), by consuming service.
fn recorded_delays(spans: &[SpanInfo]) -> BTreeMap<String, Vec<f64>> {
    let producers: BTreeMap<&str, &SpanInfo> = spans
        .iter()
        .filter(|s| s.kind == KIND_PRODUCER)
        .map(|s| (s.span_id.as_str(), s))
        .collect();
    let mut out: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for c in spans.iter().filter(|s| s.kind == KIND_CONSUMER) {
        let publish = producers
            .get(c.parent_span_id.as_str())
            .or_else(|| c.links.iter().find_map(|l| producers.get(l.1.as_str())));
        if let Some(p) = publish {
            let us = c.start_unix_nanos.saturating_sub(p.start_unix_nanos) as f64 / 1e3;
            out.entry(c.service.clone()).or_default().push(us);
        }
    }
    out
}

/// Point 1 on the closest recording (no recorded set replays a stream): Kafka's topic page
/// reports no replay, and each group's publish-to-consume p50 and p99 lie within the delays
/// the recording's own times give (nothing inflates them), as the map's edge panel says too.
fn recorded_stream_delays(b: &Browser, env: &TestEnv, spans: &Recorded) {
    let delays = recorded_delays(&spans.kafka);
    b.goto(&env.api_url("/destinations/destination%3Akafka%3Aorders?window=15m"));
    b.wait_for("the page", "return document.readyState === 'complete';");
    let tables = edge_tables(b);
    let out = table(&tables, "Out");
    assert_eq!(out["heads"], json!(IN_HEADS));
    for (service, errors) in [("billing", "0"), ("audit", "2")] {
        let r = row(out, &format!("service:{service}"), None);
        assert_eq!(r["replays"], false, "{r}");
        assert_eq!(
            r["cells"].as_array().unwrap()[1..4],
            [json!("consume"), json!("12"), json!(errors)],
            "{r}"
        );
        let mut d = delays[service].clone();
        d.sort_by(f64::total_cmp);
        let (least, most) = (d[0], d[d.len() - 1]);
        for at in [6, 7] {
            let shown = parse_micros(r["cells"][at].as_str().unwrap());
            assert!(
                shown >= least * 0.95 - 1.0 && shown <= most * 1.05 + 1.0,
                "{service}: {} {shown} µs outside the recorded {least}..{most} µs",
                if at == 6 { "p50" } else { "p99" }
            );
        }
        let failures = r["cells"][4].as_str().unwrap();
        assert!(
            failures.is_empty() == (errors == "0")
                && (failures.is_empty() || failures.ends_with(" 2")),
            "{r}"
        );
    }
    b.screenshot("recorded-kafka-topic");
}

/// Point 3: the recorded failed order, found by "errors only" in the search.
fn trace_tools(b: &Browser, env: &TestEnv, spans: &Recorded) {
    let spans = &spans.pika;
    let billing = spans
        .iter()
        .find(|s| s.service == "billing" && s.error && s.name == "order.created receive")
        .expect("billing's recorded failure");
    let trace: Vec<&SpanInfo> = spans
        .iter()
        .filter(|s| s.trace_id == billing.trace_id)
        .collect();
    assert_eq!(trace.len(), 3, "publish, shipping's and billing's receive");
    let publish = trace.iter().find(|s| s.kind == KIND_PRODUCER).unwrap();
    let shipping = trace.iter().find(|s| s.service == "shipping").unwrap();

    b.resize(1024, 700);
    b.goto(&env.api_url("/traces?service=billing&status=error&window=15m"));
    b.wait_for(
        "the failed order in the search",
        "return document.querySelectorAll('.trace-row a.trace-link').length === 1;",
    );
    b.click(".trace-row a.trace-link");
    trace_ready(b);
    assert!(b.url().contains(&billing.trace_id), "{}", b.url());
    let row = |s: &SpanInfo| format!("document.getElementById('span-{}')", s.span_id);
    const SHOWN: &str = "return [...document.querySelectorAll('#waterfall > .wf-row')].filter(r => !r.hidden).length;";
    assert_eq!(b.eval(SHOWN, json!([])), json!(3));

    // A colour per service, the same on its chip; the error on billing's label and bar only.
    let look = b.eval(
        &format!(
            "const svc = e => getComputedStyle(e).getPropertyValue('--svc').trim(); \
             const chip = n => [...document.querySelectorAll('.service-chips .svc-chip')].find(c => c.textContent.trim() === n); \
             return [{p}, {s}, {b}].map(r => {{ const name = r.querySelector('.wf-label .svc').textContent.trim(); \
               return [name, svc(r), svc(chip(name)), !!r.querySelector(':scope > summary .wf-label .err-mark'), \
                 getComputedStyle(r.querySelector('.span-bar')).boxShadow !== 'none', r.classList.contains('error')]; }});",
            p = row(publish),
            s = row(shipping),
            b = row(billing)
        ),
        json!([]),
    );
    let look = look.as_array().unwrap();
    let names: Vec<&str> = look.iter().map(|l| l[0].as_str().unwrap()).collect();
    assert_eq!(names, ["orders", "shipping", "billing"]);
    let colours: BTreeSet<&str> = look.iter().map(|l| l[1].as_str().unwrap()).collect();
    assert_eq!(colours.len(), 3, "one colour per service: {look:?}");
    for l in look {
        assert_eq!(l[1], l[2], "the row and its service's chip: {l}");
        let failed = l[0] == "billing";
        assert_eq!(
            l.as_array().unwrap()[3..],
            [json!(failed), json!(failed), json!(failed)],
            "marked on label, bar and row: {l}"
        );
    }
    // The minimap draws billing's line in the error colour.
    let minimap = b.eval(
        &format!(
            "const probe = document.createElement('span'); probe.style.color = 'var(--error)'; \
             document.body.appendChild(probe); const e = getComputedStyle(probe).color.match(/\\d+/g).map(Number); probe.remove(); \
             const rows = [...document.querySelectorAll('#waterfall > .wf-row')]; const k = rows.indexOf({b}); \
             const c = document.getElementById('wf-minimap-canvas'); const x = c.getContext('2d'); \
             const lane = y => {{ const d = x.getImageData(0, Math.floor(c.height * (y + 0.5) / rows.length), c.width, 1).data; \
               let n = 0; for (let i = 0; i < d.length; i += 4) {{ if (d[i+3] > 0 && Math.abs(d[i] - e[0]) < 7 && Math.abs(d[i+1] - e[1]) < 7 && Math.abs(d[i+2] - e[2]) < 7) n++; }} return n; }}; \
             return [!document.getElementById('wf-minimap').hidden, rows.map((r, i) => lane(i) > 0), k];",
            b = row(billing)
        ),
        json!([]),
    );
    let k = minimap[2].as_u64().unwrap() as usize;
    let mut want = vec![false; 3];
    want[k] = true;
    assert_eq!(minimap[0], true, "{minimap}");
    assert_eq!(minimap[1], json!(want), "the error lane: {minimap}");

    // Zoom in: the view is the middle half and the whole trace's bar twice the track.
    let ratio = "const r = document.querySelector('#waterfall > .wf-row'); \
                 return r.querySelector('.span-bar').getBoundingClientRect().width / r.querySelector('.wf-track').getBoundingClientRect().width;";
    let view = "return document.getElementById('waterfall').getAttribute('data-view').split(',').map(Number);";
    let whole = b.eval(ratio, json!([])).as_f64().unwrap();
    b.click("#zoom-in");
    let zoomed = b.eval(ratio, json!([])).as_f64().unwrap();
    let zoomed_view: Vec<f64> = serde_json::from_value(b.eval(view, json!([]))).unwrap();
    assert_eq!(zoomed_view, [25.0, 75.0]);
    assert!((zoomed / whole - 2.0).abs() < 0.05, "{whole} then {zoomed}");
    // Pan: the mouse drags the minimap's window a tenth of the way right.
    let boxes = b.eval(
        "const m = document.getElementById('wf-minimap').getBoundingClientRect(); \
         const v = document.getElementById('wf-viewport').getBoundingClientRect(); \
         return [m.left, m.width, v.left + v.width / 2, v.top + v.height / 2];",
        json!([]),
    );
    let (left, width, cx, cy) = (
        boxes[0].as_f64().unwrap(),
        boxes[1].as_f64().unwrap(),
        boxes[2].as_f64().unwrap(),
        boxes[3].as_f64().unwrap(),
    );
    b.drag((cx, cy), (cx + width / 10.0, cy));
    let panned: Vec<f64> = serde_json::from_value(b.eval(view, json!([]))).unwrap();
    assert!(
        (panned[0] - 35.0).abs() < 1.0 && (panned[1] - 85.0).abs() < 1.0,
        "{panned:?}"
    );
    // A range dragged on the minimap outside the window becomes the view.
    b.drag((left + width * 0.05, cy), (left + width * 0.25, cy));
    let ranged: Vec<f64> = serde_json::from_value(b.eval(view, json!([]))).unwrap();
    assert!(
        (ranged[0] - 5.0).abs() < 1.0 && (ranged[1] - 25.0).abs() < 1.0,
        "{ranged:?}"
    );
    b.screenshot("recorded-trace-zoomed");
    b.click("#zoom-reset");
    let whole_view: Vec<f64> = serde_json::from_value(b.eval(view, json!([]))).unwrap();
    assert_eq!(whole_view, [0.0, 100.0]);

    // Collapse and expand: the publish's subtree, then everything.
    let fold = format!("#span-{} > summary .wf-fold", publish.span_id);
    b.click(&fold);
    assert_eq!(b.eval(SHOWN, json!([])), json!(1), "the publish alone");
    b.click(&fold);
    assert_eq!(b.eval(SHOWN, json!([])), json!(3));
    b.click("#collapse-all");
    assert_eq!(b.eval(SHOWN, json!([])), json!(1));

    // Find, typed: the failure's message reveals billing's row under the collapsed publish;
    // the message id is on all three; Enter goes to the next.
    let current = "const r = document.querySelector('.wf-row.match-current'); \
                   return r && !r.hidden && [r.id, document.getElementById('find-count').textContent];";
    b.type_into("#trace-find", "FAILED TO CHARGE");
    let found = b.wait_for("the failure found", current);
    assert_eq!(
        found,
        json!([format!("span-{}", billing.span_id), "1 of 1"])
    );
    b.type_into("#trace-find", "order-3");
    let first = b.wait_for(
        "three matches",
        &current.replace(
            "return r &&",
            "return r && document.getElementById('find-count').textContent === '1 of 3' &&",
        ),
    );
    b.press("#trace-find", "\u{E007}"); // Enter
    let next = b.wait_for(
        "the next match",
        &current.replace(
            "return r &&",
            "return r && document.getElementById('find-count').textContent === '2 of 3' &&",
        ),
    );
    assert_ne!(first[0], next[0], "Enter moves on");
    b.click("#expand-all");
    assert_eq!(b.eval(SHOWN, json!([])), json!(3));

    // The journey of the message: both consumers, each with its wait in the broker from the
    // recorded times, the failure marked; its links keep the window.
    let wait = |c: &SpanInfo| micros((c.start_unix_nanos - publish.start_unix_nanos) as f64 / 1e3);
    let journey = b.eval(
        "const j = document.querySelectorAll('#journeys .journey'); \
         return [j.length, j[0].querySelector('h3 code').textContent, \
           [...j[0].querySelectorAll('tr.delivery')].map(r => [r.cells[0].textContent.trim(), r.querySelector('.wait').textContent.trim(), r.classList.contains('error')]).sort(), \
           j[0].querySelector('a.destination-link').getAttribute('href')];",
        json!([]),
    );
    assert_eq!(
        journey,
        json!([
            1,
            "order-3",
            [
                ["billing", wait(billing), true],
                ["shipping", wait(shipping), false]
            ],
            "/destinations/destination%3Arabbitmq%3Aorder.created?window=15m"
        ])
    );
    b.click(&format!(
        "#journey-{} tr.delivery.error a.hop-link",
        publish.span_id
    ));
    let target = b.wait_for(
        "billing's row",
        "const t = document.querySelector(':target'); return t && t.open && t.id;",
    );
    assert_eq!(target, json!(format!("span-{}", billing.span_id)));
    b.screenshot("recorded-trace-order-3");
}

fn trace_ready(b: &Browser) {
    b.wait_for(
        "the trace view",
        "return document.body.getAttribute('data-trace-ready') === '1';",
    );
}

/// The links of the page to pages that take a window and lack `argument[0]` (the pager's
/// "Older traces" keeps the window's start and moves its end, by design).
const LINKS_WITHOUT: &str = "const want = arguments[0]; \
     return [...document.querySelectorAll('a[href]:not(#older)')].map(a => a.getAttribute('href')) \
       .filter(h => h.startsWith('/') && !h.startsWith('/static/') && !h.startsWith('/api/') \
         && !h.startsWith('/brokers') && !h.startsWith('/changes') && !h.startsWith('/login')) \
       .filter(h => !h.includes(want));";

fn links_keep(b: &Browser, want: &str, page: &str) {
    let lacking = b.eval(LINKS_WITHOUT, json!([want]));
    assert_eq!(lacking, json!([]), "{page}: links without {want}");
}

/// Picks `value` in the page's window picker as a user does.
fn pick_window(b: &Browser, value: &str) {
    b.click(&format!("select[name=window] option[value='{value}']"));
}

/// The date of `unix_nanos`, `YYYY-MM-DD` (UTC).
fn day(unix_nanos: u64) -> String {
    fixtures::rfc3339(unix_nanos)[..10].to_string()
}

/// Point 4: presets, the window on every link, a bare date, a bad date.
fn time_windows(b: &Browser, env: &TestEnv, spans: &Recorded) {
    b.goto(&env.api_url("/?window=15m"));
    map_ready(b);
    let has = "const cy = window.switchyard.cy; \
               return [cy.getElementById('service:orders').length, cy.getElementById('destination:kafka:orders').length];";
    assert_eq!(b.eval(has, json!([])), json!([1, 1]));
    for preset in ["6h", "7d"] {
        pick_window(b, preset);
        b.wait_for(
            "the new window",
            &format!("return location.search.includes('window={preset}') && document.body.getAttribute('data-map-ready') === '1';"),
        );
        map_ready(b);
        assert_eq!(b.eval(has, json!([])), json!([1, 1]), "{preset}");
        let selected = b.eval(
            "return document.querySelector('select[name=window]').value;",
            json!([]),
        );
        assert_eq!(selected, json!(preset));
    }
    let want = "window=7d";
    links_keep(b, want, "the map");
    // The side panel's links keep it too.
    b.eval(
        "window.switchyard.cy.getElementById('service:billing').emit('tap'); return 1;",
        json!([]),
    );
    b.wait_for(
        "billing's recent traces",
        "return document.querySelectorAll('.recent-traces a.trace-link').length > 0;",
    );
    links_keep(b, want, "billing's side panel");
    b.click("#node-page-link");
    b.wait_for(
        "billing's page",
        "return location.pathname.startsWith('/services/') && document.readyState === 'complete';",
    );
    assert!(b.url().contains(want), "{}", b.url());
    links_keep(b, want, "billing's page");
    // Through a destination in its table to the topic's page, then a trace.
    b.click("a[href^='/destinations/destination%3Akafka%3Aorders']");
    b.wait_for(
        "the topic's page",
        "return location.pathname.startsWith('/destinations/') && document.readyState === 'complete';",
    );
    assert!(b.url().contains(want), "{}", b.url());
    links_keep(b, want, "the topic's page");
    b.click(".trace-row a.trace-link");
    trace_ready(b);
    assert!(b.url().contains(want), "{}", b.url());
    links_keep(b, want, "a trace");
    b.click("nav a[href^='/traces']");
    b.wait_for(
        "the search",
        "return location.pathname === '/traces' && document.readyState === 'complete';",
    );
    assert!(
        b.url().contains(want),
        "the nav keeps the window: {}",
        b.url()
    );
    links_keep(b, want, "the search");
    let listed = "return [...document.querySelectorAll('.trace-row a.trace-link')].map(a => a.getAttribute('href').split('?')[0]).sort();";
    let week = b.eval(listed, json!([]));
    assert!(!week.as_array().unwrap().is_empty());

    // Dates typed without a time: from the day before the recording's first span to the day
    // of its last, each the whole day; the same traces as the week.
    let first = (spans.pika.iter().chain(&spans.kafka))
        .map(|s| s.start_unix_nanos)
        .min()
        .unwrap();
    let (since, until) = (
        day(first - 86_400_000_000_000),
        day(builder::now_unix_nanos()),
    );
    pick_window(b, "custom");
    b.type_into("input[name=since]", &since);
    b.type_into("input[name=until]", &until);
    b.click("form.search button[type=submit]");
    b.wait_for(
        "the typed days",
        &format!("return location.search.includes('since={since}') && document.readyState === 'complete';"),
    );
    let typed = b.eval(
        "return [document.querySelector('input[name=since]').value, !document.querySelector('#search-error, #window-error')];",
        json!([]),
    );
    assert_eq!(typed, json!([format!("{since}T00:00:00Z"), true]));
    assert_eq!(
        b.eval(listed, json!([])),
        week,
        "the typed days hold the week's traces"
    );
    let custom = format!("since={since}T00%3A00%3A00Z");
    links_keep(b, &custom, "the search over typed days");

    // A bad date: a message on the page, the form as typed, no traces.
    b.type_into("input[name=since]", "27/11/2026");
    b.click("form.search button[type=submit]");
    let said = b.wait_for(
        "the message",
        "const e = document.querySelector('#search-error, #window-error'); \
         return e && e.getBoundingClientRect().height > 0 && e.textContent;",
    );
    let said = said.as_str().unwrap();
    assert!(
        said.contains("since must be") && said.contains("27/11/2026"),
        "{said}"
    );
    let form = b.eval(
        "return [document.querySelector('input[name=since]').value, document.querySelectorAll('.trace-row').length, !!document.querySelector('h1')];",
        json!([]),
    );
    assert_eq!(form, json!(["27/11/2026", 0, true]));
    b.screenshot("recorded-bad-date");
    // The map says it too.
    b.goto(&env.api_url(&format!("/?window=custom&since=2026-02-30&until={until}")));
    let said = b.wait_for(
        "the map's message",
        "const e = document.getElementById('window-error'); return e && e.getBoundingClientRect().height > 0 && e.textContent;",
    );
    assert!(said.as_str().unwrap().contains("since must be"), "{said}");
}

#[test]
fn recorded_sdk_traces_in_a_real_browser() {
    let Some(b) = Browser::start() else { return };
    let (env, spans) = recorded_shop();
    node_tables_rates_and_names(&b, &env, &spans);
    recorded_stream_delays(&b, &env, &spans);
    trace_tools(&b, &env, &spans);
    time_windows(&b, &env, &spans);
}

/// Point 1 where replays happen: the demo's reporting reads `order.history` as a group and
/// now and then replays it from the start. The stream's page reports the replays apart
/// (count and delay) from the consume edge's publish-to-consume delay, which stays that of
/// the first reads; the map's edge panel says the same.
#[test]
fn the_demo_reports_stream_replays_apart_from_the_delay() {
    let Some(b) = Browser::start() else { return };
    let env = TestEnv::with_args(&["--demo"]);
    let (from, to) = ("destination:switchyard:order.history", "service:reporting");
    let edge = common::wait_for("a replay", Duration::from_secs(240), || {
        let t = env.get_json("/api/topology?window=15m");
        let e = t["edges"].as_array()?.iter().find(|e| {
            e["from"] == from && e["to"] == to && e["replays"]["count"].as_i64() > Some(0)
        })?;
        Some(e.clone())
    });
    assert!(edge["count"].as_i64() > Some(0), "{edge}");
    b.goto(&env.api_url("/destinations/destination%3Aswitchyard%3Aorder.history?window=15m"));
    b.wait_for("the page", "return document.readyState === 'complete';");
    let tables = edge_tables(&b);
    let r = row(table(&tables, "Out"), to, None);
    assert_eq!(r["replays"], true, "{r}");
    let shown = b.eval(
        "const tr = [...document.querySelectorAll('tr.edge-row')].find(tr => tr.cells[0].querySelector('[title=\"service:reporting\"]')); \
         return [tr.cells[2].firstChild.textContent.trim(), tr.querySelector('.replays').textContent.trim(), tr.cells[7].textContent.trim()];",
        json!([]),
    );
    let replays = shown[1].as_str().unwrap();
    let (n, p99) = replays
        .split_once(" replayed, p99 ")
        .unwrap_or_else(|| panic!("{shown}"));
    assert!(n.parse::<u64>().unwrap() > 0, "{shown}");
    let first_reads: u64 = shown[0].as_str().unwrap().parse().unwrap();
    assert!(first_reads > 0, "{shown}");
    let (replay_p99, edge_p99) = (parse_micros(p99), parse_micros(shown[2].as_str().unwrap()));
    assert!(
        edge_p99 < replay_p99,
        "the replays' older events kept out of the edge's delay: {shown}"
    );
    b.screenshot("demo-stream-replays");

    // The map's edge panel: the delay of first reads, and the replays apart.
    b.goto(&env.api_url("/?window=15m"));
    map_ready(&b);
    b.eval(
        "const [f, t] = arguments; window.switchyard.cy.edges().filter(e => e.data('source') === f \
           && e.data('target') === t && e.data('kind') === 'consume')[0].emit('tap'); return 1;",
        json!([from, to]),
    );
    let facts = b.wait_for(
        "the edge's panel",
        "const f = {}; document.querySelectorAll('#details dl > div').forEach(d => f[d.querySelector('dt').textContent] = d.querySelector('dd').textContent); \
         return f['Count'] && f;",
    );
    let replayed = facts["Replayed"].as_str().unwrap_or_default();
    assert!(
        replayed.contains("p99"),
        "the panel reports the replays apart: {facts}"
    );
    let panel_p99 = parse_micros(facts["p99"].as_str().unwrap());
    let panel_replay_p99 = parse_micros(replayed.split("p99 ").nth(1).unwrap());
    assert!(panel_p99 < panel_replay_p99, "{facts}");
}
