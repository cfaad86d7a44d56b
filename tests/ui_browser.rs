//! The UI in headless Chromium: the map drawn from real recordings, a node clicked, a trace
//! opened from it, a hop followed, the DOT downloaded; and hostile span data that must not
//! execute anywhere. Screenshots go to test-output/.

mod common;

use common::browser::Browser;
use common::builder;
use common::fixtures;
use common::{ui, TestEnv};
use serde_json::json;

fn map_ready(b: &Browser) {
    let state = b.wait_for(
        "the map",
        "return document.body.getAttribute('data-map-ready');",
    );
    assert_eq!(state, json!("1"), "map failed to load");
}

#[test]
fn map_node_trace_and_hop_in_a_real_browser() {
    let Some(b) = Browser::start() else { return };
    let (env, _, window) = TestEnv::with_recording(fixtures::PYTHON_PIKA);
    let topo = env.topology(&window);

    b.goto(&env.api_url(&format!("/?window=custom&{}", window.query())));
    map_ready(&b);
    let drawn = b.eval(
        "const cy = window.switchyard.cy; return {nodes: cy.nodes().length, edges: cy.edges().length, \
         visible: cy.nodes().filter(n => n.visible()).length};",
        json!([]),
    );
    assert_eq!(
        drawn["nodes"],
        json!(topo["nodes"].as_array().unwrap().len())
    );
    assert_eq!(
        drawn["edges"],
        json!(topo["edges"].as_array().unwrap().len())
    );
    assert_eq!(drawn["visible"], drawn["nodes"]);
    b.screenshot("map-python-pika");

    // Free-text filter: matching nodes stay, the rest fade.
    let filtered = b.eval(
        "const t = document.getElementById('filter-text'); t.value = 'orders'; \
         t.dispatchEvent(new Event('input')); const cy = window.switchyard.cy; \
         const r = [cy.getElementById('service:orders').hasClass('filtered'), \
                    cy.getElementById('service:worker').hasClass('filtered')]; \
         t.value = ''; t.dispatchEvent(new Event('input')); return r;",
        json!([]),
    );
    assert_eq!(filtered, json!([false, true]));

    // The details of a destination list the findings it is part of.
    b.eval(
        "window.switchyard.cy.getElementById('destination:rabbitmq:order.created').emit('tap'); return 1;",
        json!([]),
    );
    let findings = b.eval(
        "return [...document.querySelectorAll('#details-body .node-findings li')].map(li => li.textContent);",
        json!([]),
    );
    assert!(findings.to_string().contains("broadcast"), "{findings}");

    // A real click on the orders node opens its details with recent traces.
    let at = b.eval(
        "const n = window.switchyard.cy.getElementById('service:orders'); \
         const r = document.getElementById('cy').getBoundingClientRect(); \
         const p = n.renderedPosition(); return [r.left + p.x, r.top + p.y];",
        json!([]),
    );
    b.click_at(at[0].as_f64().unwrap(), at[1].as_f64().unwrap());
    b.wait_for(
        "recent traces of orders",
        "return document.querySelector('#details-body .recent-traces a.trace-link');",
    );
    let title = b.eval(
        "return document.querySelector('#details-body h3').textContent;",
        json!([]),
    );
    assert_eq!(title, json!("orders"));
    b.screenshot("map-orders-selected");

    // The DOT download link answers DOT for the same window.
    let dot = b.eval(
        "return fetch(document.getElementById('download-dot').href).then(r => r.text());",
        json!([]),
    );
    assert!(
        dot.as_str().unwrap_or_default().starts_with("digraph"),
        "{dot}"
    );

    b.click("#details-body .recent-traces a.trace-link");
    b.wait_for(
        "the trace view",
        "return location.pathname.startsWith('/traces/') && document.querySelector('.waterfall');",
    );
    let rows = b.eval(
        "return document.querySelectorAll('.wf-row').length;",
        json!([]),
    );
    let trace_id = b.url().rsplit('/').next().unwrap().to_string();
    assert_eq!(rows, json!(env.trace_spans(&trace_id).len()));
    b.screenshot("trace-orders");

    // Open a consume row and follow its hop back to the publish.
    b.click(".wf-row.role-consume > summary");
    b.click(".wf-row.role-consume[open] .hop-link");
    let target = b.wait_for(
        "the hop target",
        "const t = document.querySelector(':target'); return t && t.className;",
    );
    assert!(
        target.as_str().unwrap().contains("role-publish"),
        "{target}"
    );
}

#[test]
fn hostile_span_data_never_executes_in_the_browser() {
    let Some(b) = Browser::start() else { return };
    let env = TestEnv::start();
    let (publish, consume) = ui::hostile_trace();
    let reply = env.post_protobuf(&builder::protobuf(&[&publish, &consume]));
    assert_eq!(reply.status, 200, "{}", reply.text());
    let q = builder::window().query();
    let pwned = "return [window.__pwned === undefined, document.querySelectorAll('img[src=x], svg[onload]').length];";

    b.goto(&env.api_url(&format!("/?window=custom&{q}")));
    map_ready(&b);
    let names = b.eval(
        "return window.switchyard.cy.nodes().map(n => n.data('name'));",
        json!([]),
    );
    assert!(
        names
            .as_array()
            .unwrap()
            .contains(&json!(ui::HOSTILE_SERVICE)),
        "{names}"
    );
    // Select every node and edge so their details (names, traces) are rendered.
    b.eval(
        "const cy = window.switchyard.cy; cy.elements().forEach(e => e.emit('tap')); \
         cy.edges().forEach(e => e.emit('mouseover'));",
        json!([]),
    );
    b.click(".side details > summary");
    b.click(".node-select");
    // The click's node is selected, its details shown and the view still: all rendered.
    b.wait_for(
        "the selected node's details",
        "const id = document.querySelector('.node-select').getAttribute('data-node-id'); \
         const cy = window.switchyard.cy; const n = cy.getElementById(id); \
         const h = document.querySelector('#details-body h3'); \
         return document.querySelector('.side details').open && n.selected() && !cy.animated() \
           && h !== null && h.textContent === n.data('name');",
    );
    b.wait_for_paint();
    assert_eq!(b.eval(pwned, json!([])), json!([true, 0]), "map");
    b.screenshot("xss-map");

    for path in [
        "/traces".to_string(),
        format!("/traces/{}", publish.trace_hex()),
        format!(
            "/services/{}?window=custom&{q}",
            "service%3A%3Cscript%3Ewindow.__pwned%3D1%3C%2Fscript%3Esvc%22%27"
        ),
    ] {
        b.goto(&env.api_url(&path));
        b.wait_for("page load", "return document.readyState === 'complete';");
        b.eval(
            "document.querySelectorAll('details').forEach(d => d.open = true); return 1;",
            json!([]),
        );
        assert_eq!(b.eval(pwned, json!([])), json!([true, 0]), "{path}");
    }
    let text = b.eval("return document.body.textContent;", json!([]));
    assert!(text.as_str().unwrap().contains(ui::HOSTILE_SERVICE));
    b.screenshot("xss-service");
}

#[test]
fn the_map_downloads_as_an_svg_of_every_node_and_edge_with_names_escaped() {
    let Some(b) = Browser::start() else { return };
    let env = TestEnv::start();
    let (publish, consume) = ui::hostile_trace();
    // XML 1.0 forbids control characters even as references: the SVG must still parse.
    let control = builder::span("ctl\u{1}\u{1b}[31m\u{7f}", "send", builder::Producer)
        .messaging("rabbitmq", "q\u{b}\u{c}");
    let reply = env.post_protobuf(&builder::protobuf(&[&publish, &consume, &control]));
    assert_eq!(reply.status, 200, "{}", reply.text());
    b.goto(&env.api_url(&format!("/?window=custom&{}", builder::window().query())));
    map_ready(&b);
    let parsed = b.eval(
        "const cy = window.switchyard.cy; \
         const text = window.switchyardSvg.mapSvg(cy, '#ffffff', window.switchyard.topology.findings); \
         const doc = new DOMParser().parseFromString(text, 'image/svg+xml'); \
         document.getElementById('download-svg').click(); \
         return {error: doc.querySelectorAll('parsererror').length, \
                 scripts: doc.querySelectorAll('script, foreignObject, [onload]').length, \
                 nodes: doc.querySelectorAll('g.node').length, edges: doc.querySelectorAll('g.edge').length, \
                 cyNodes: cy.nodes().length, cyEdges: cy.edges().length, \
                 titles: [...doc.querySelectorAll('g.node > title')].map(t => t.textContent), text};",
        json!([]),
    );
    assert_eq!(parsed["error"], json!(0), "{parsed}");
    // A second, independent XML parser reads every node too.
    assert_eq!(
        ui::xml_count(parsed["text"].as_str().unwrap(), "g"),
        parsed["text"].as_str().unwrap().matches("<g ").count(),
        "{parsed}"
    );
    assert_eq!(parsed["scripts"], json!(0), "{parsed}");
    assert_eq!(parsed["nodes"], parsed["cyNodes"], "{parsed}");
    assert_eq!(parsed["edges"], parsed["cyEdges"], "{parsed}");
    assert!(parsed["cyEdges"].as_u64().unwrap() >= 2, "{parsed}");
    assert!(
        parsed["titles"]
            .as_array()
            .unwrap()
            .contains(&json!(ui::HOSTILE_SERVICE)),
        "{parsed}"
    );
    assert_eq!(
        b.eval("return window.__pwned === undefined;", json!([])),
        json!(true)
    );
}

#[test]
fn the_map_follows_new_spans_without_losing_zoom_or_selection() {
    let Some(b) = Browser::start() else { return };
    let env = TestEnv::start();
    let post = |service: &str, topic: &str| {
        let p = builder::span(service, "send", builder::Producer).messaging("kafka", topic);
        let c = p
            .child("live-consumer", "receive", builder::Consumer)
            .messaging("kafka", topic);
        let reply = env.post_protobuf(&builder::protobuf(&[&p, &c]));
        assert_eq!(reply.status, 200, "{}", reply.text());
    };
    b.goto(&env.api_url("/?window=1h"));
    map_ready(&b);
    let count = "return window.switchyard.cy.nodes().length;";
    assert_eq!(b.eval(count, json!([])), json!(0));
    post("live-producer", "live.topic");
    b.wait_for(
        "the first nodes",
        "return window.switchyard.cy.nodes().length >= 3;",
    );
    b.eval(
        "const cy = window.switchyard.cy; cy.zoom(1.5); cy.getElementById('service:live-producer').select(); return 1;",
        json!([]),
    );
    post("second-producer", "other.topic");
    b.wait_for(
        "the new producer",
        "return window.switchyard.cy.getElementById('service:second-producer').nonempty();",
    );
    let state = b.eval(
        "const cy = window.switchyard.cy; return [cy.zoom(), cy.$(':selected').map(n => n.id())];",
        json!([]),
    );
    assert_eq!(state, json!([1.5, ["service:live-producer"]]));
    b.screenshot("map-live");
}

#[test]
fn trace_lists_follow_new_spans_without_a_reload() {
    let Some(b) = Browser::start() else { return };
    let env = TestEnv::start();
    let post = |service: &str| {
        let p = builder::span(service, "send", builder::Producer)
            .at(builder::now_unix_nanos())
            .messaging("kafka", "live.list");
        let c = p
            .child("list-consumer", "receive", builder::Consumer)
            .messaging("kafka", "live.list");
        let reply = env.post_protobuf(&builder::protobuf(&[&p, &c]));
        assert_eq!(reply.status, 200, "{}", reply.text());
    };
    post("first-producer");
    // The search page: a marker set on the page survives, so no reload happened.
    b.goto(&env.api_url("/traces"));
    b.wait_for("page load", "return document.readyState === 'complete';");
    b.eval("window.__kept = 1; return 1;", json!([]));
    let rows = "return document.querySelectorAll('#trace-results .trace-row').length;";
    assert_eq!(b.eval(rows, json!([])), json!(1));
    post("second-producer");
    b.wait_for(
        "the new trace in the search results",
        "return document.querySelectorAll('#trace-results .trace-row').length === 2;",
    );
    assert_eq!(b.eval("return window.__kept;", json!([])), json!(1));

    // The map's side panel: the selected node's recent traces follow too.
    b.goto(&env.api_url("/?window=1h"));
    map_ready(&b);
    b.eval(
        "window.switchyard.cy.getElementById('destination:kafka:live.list').emit('tap'); return 1;",
        json!([]),
    );
    let listed =
        "return document.querySelectorAll('#details-body .recent-traces a.trace-link').length;";
    b.wait_for(
        "two recent traces",
        &listed.replace("length;", "length === 2;"),
    );
    post("third-producer");
    b.wait_for(
        "the third trace in the side panel",
        &listed.replace("length;", "length === 3;"),
    );
}

/// Regenerates docs/screenshot-map.png and docs/screenshot-trace.png from the demo shop:
/// `cargo test --release --test ui_browser -- --ignored docs_screenshots`.
#[test]
#[ignore]
fn docs_screenshots() {
    let Some(b) = Browser::start() else { return };
    let env = TestEnv::with_args(&["--demo"]);
    // Every node of the shop, traffic enough for counts that read as traffic, and a shipping
    // trace without errors to show.
    let wait = std::time::Duration::from_secs(60);
    let nodes = common::wait_for("demo traffic", wait, || {
        if env.spans_in_store() < 200 {
            return None;
        }
        let t = env.get_json("/api/topology?window=5m");
        let nodes = t["nodes"].as_array().map_or(0, |n| n.len());
        let traces = env.get_json("/api/traces?service=shipping&limit=20");
        let clean = traces["traces"]
            .as_array()?
            .iter()
            .any(|t| t["error_count"] == json!(0));
        (nodes >= 24 && clean).then_some(nodes)
    });
    let docs = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs");
    b.goto(&env.api_url("/?window=5m"));
    map_ready(&b);
    // Every node drawn and laid out (a live refresh adds the ones the first load missed)
    // before clicking a position.
    b.wait_for(
        "every demo node on the map",
        &format!(
            "const cy = window.switchyard.cy; return cy.nodes().length >= {nodes} && !cy.animated();"
        ),
    );
    b.wait_for_paint();
    let at = b.eval(
        "const n = window.switchyard.cy.getElementById('service:checkout').nonempty() ? \
         window.switchyard.cy.getElementById('service:checkout') : window.switchyard.cy.nodes('[name = \"checkout\"]'); \
         const r = document.getElementById('cy').getBoundingClientRect(); \
         const p = n.renderedPosition(); return [r.left + p.x, r.top + p.y];",
        json!([]),
    );
    b.click_at(at[0].as_f64().unwrap(), at[1].as_f64().unwrap());
    b.wait_for(
        "recent traces",
        "return document.querySelector('#details-body .recent-traces a.trace-link');",
    );
    // The whole map in its colours (the selection's reach dims the rest), fitted to the view.
    b.eval(
        "const cy = window.switchyard.cy; cy.elements().removeClass('faded unreached up down starved piling'); cy.fit(undefined, 20); return 1;",
        json!([]),
    );
    b.wait_for_paint();
    std::fs::copy(b.screenshot("docs-map"), docs.join("screenshot-map.png")).unwrap();
    let theme = "return document.documentElement.getAttribute('data-theme');";
    let before = b.eval(theme, json!([]));
    b.click("#theme-toggle");
    b.wait_for(
        "the other theme",
        &format!("return document.documentElement.getAttribute('data-theme') !== {before};"),
    );
    b.wait_for_paint();
    b.screenshot("docs-map-other-theme");
    b.click("#theme-toggle");

    let traces = env.get_json("/api/traces?service=shipping&limit=20");
    let trace = traces["traces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["error_count"] == json!(0))
        .expect("a shipping trace")["trace_id"]
        .as_str()
        .unwrap()
        .to_string();
    let spans = env.trace_spans(&trace);
    let consume = spans
        .iter()
        .find(|s| s["service"] == json!("shipping") && s["kind"] == json!("consumer"))
        .expect("shipping consume")["span_id"]
        .as_str()
        .unwrap()
        .to_string();
    b.goto(&env.api_url(&format!("/traces/{trace}#span-{consume}")));
    b.wait_for(
        "trace view",
        "return document.querySelector('.wf-row[open]');",
    );
    // The top of the page: the toolbar, the minimap and the waterfall's first rows.
    b.eval("window.scrollTo(0, 0); return 1;", json!([]));
    b.wait_for_paint();
    std::fs::copy(
        b.screenshot("docs-trace"),
        docs.join("screenshot-trace.png"),
    )
    .unwrap();
}

/// Performance figure: the event-trace view of a 1,000-span trace, from navigation to load.
/// `cargo test --release --test ui_browser -- --ignored large_trace --nocapture`
#[test]
#[ignore]
fn large_trace_time_to_load() {
    let Some(b) = Browser::start() else { return };
    let env = TestEnv::start();
    let root =
        builder::span("gateway", "publish batch", builder::Producer).messaging("kafka", "batch");
    let mut spans = vec![];
    for i in 0..999u64 {
        let c = root
            .child(&format!("worker-{}", i % 20), "receive", builder::Consumer)
            .messaging("kafka", "batch")
            .attr("messaging.operation.type", "receive")
            .attr("worker.index", i as i64)
            .at(builder::base_time() + (i + 1) * 100_000);
        spans.push(c);
    }
    let mut refs: Vec<&builder::SpanB> = vec![&root];
    refs.extend(spans.iter());
    let reply = env.post_protobuf(&builder::protobuf(&refs));
    assert_eq!(reply.status, 200, "{}", reply.text());
    // Best of three, for the page and for the JSON of the same trace.
    let best = |path: &str| {
        (0..3)
            .map(|_| {
                let t = std::time::Instant::now();
                assert_eq!(env.get(path).status, 200);
                t.elapsed()
            })
            .min()
            .unwrap()
    };
    let page = env.get(&format!("/traces/{}", root.trace_hex()));
    let server = best(&format!("/traces/{}", root.trace_hex()));
    let api = best(&format!("/api/traces/{}", root.trace_hex()));
    b.goto(&env.api_url(&format!("/traces/{}", root.trace_hex())));
    let timing = b.eval(
        "const t = performance.getEntriesByType('navigation')[0]; \
         return [t.responseEnd, t.domInteractive, t.loadEventEnd, document.querySelectorAll('.wf-row').length];",
        json!([]),
    );
    b.screenshot("trace-large");
    eprintln!(
        "large trace: {} rows, {} KiB of HTML; page {:.0} ms, JSON API {:.0} ms; \
         response end {}, interactive {}, loaded {} ms",
        timing[3],
        page.text().len() / 1024,
        server.as_secs_f64() * 1000.0,
        api.as_secs_f64() * 1000.0,
        timing[0],
        timing[1],
        timing[2]
    );
}

/// The demo's poisoned tasks: once the broker has nacked or dead-lettered them, the map draws
/// the work queue's consume edge in the error colour (not an all-green map), "errors only"
/// finds a failed delivery whose trace view shows the reason on the row, and the work queue's
/// page shows the subscription (depth, in flight, dead letters, consumers).
#[test]
fn the_demo_map_shows_broker_side_failures() {
    let Some(b) = Browser::start() else { return };
    let env = TestEnv::with_args(&["--demo"]);
    let (from, to) = (
        "destination:switchyard:fulfilment.workers",
        "service:fulfilment",
    );
    common::wait_for(
        "errors on the work queue",
        std::time::Duration::from_secs(60),
        || {
            let t = env.get_json("/api/topology?window=5m");
            t["edges"]
                .as_array()?
                .iter()
                .any(|e| e["from"] == from && e["to"] == to && e["errors"].as_i64() > Some(0))
                .then_some(())
        },
    );
    b.goto(&env.api_url("/?window=5m"));
    map_ready(&b);
    let drawn = b.eval(
        "const [from, to] = arguments; const cy = window.switchyard.cy; \
         const e = cy.edges().filter(x => x.data('source') === from && x.data('target') === to)[0]; \
         const probe = document.createElement('span'); probe.style.color = 'var(--error)'; \
         document.body.appendChild(probe); const error = getComputedStyle(probe).color; probe.remove(); \
         const flat = c => String(c).replace(/\\s/g, ''); \
         return {errors: e ? e.data('errors') : 0, color: flat(e ? e.style('line-color') : ''), error: flat(error), \
                 counts: document.body.textContent.includes('with errors')};",
        json!([from, to]),
    );
    assert!(drawn["errors"].as_i64() > Some(0), "{drawn}");
    assert_eq!(drawn["color"], drawn["error"], "{drawn}");
    assert_eq!(drawn["counts"], json!(true), "{drawn}");
    b.screenshot("map-demo-failures");

    // "Errors only" lists a failed delivery's trace; its view marks the failed row with the
    // broker's reason on the label.
    b.goto(&env.api_url("/traces?status=error&destination=fulfilment.workers&window=5m"));
    b.wait_for(
        "a failed trace in the search",
        "return document.querySelectorAll('.trace-row a.trace-link').length > 0;",
    );
    b.click(".trace-row a.trace-link");
    b.wait_for(
        "the trace view",
        "return document.body.getAttribute('data-trace-ready') === '1';",
    );
    let reasons = b.eval(
        "return [...document.querySelectorAll('#waterfall > .wf-row.error .wf-label .err-reason')] \
           .map(r => r.textContent.trim());",
        json!([]),
    );
    assert!(
        reasons
            .as_array()
            .unwrap()
            .iter()
            .any(|r| ["nack", "lease_expired", "dead_letter"]
                .contains(&r.as_str().unwrap_or_default())),
        "{reasons}"
    );
    b.screenshot("trace-demo-failure");

    // The work queue's own page: the subscription's depth, in flight, dead letters and
    // consumers (not "no such topic").
    let page = env.api_url("/destinations/destination:switchyard:fulfilment.workers?window=5m");
    let shown = common::wait_for(
        "the subscription with its consumers and dead letters",
        std::time::Duration::from_secs(90),
        || {
            b.goto(&page);
            let v = b.eval(
                "const s = document.querySelector('#broker-subscription'); \
                 const c = document.querySelectorAll('#broker-consumers .consumer').length; \
                 return !!s && c === 2 && !document.querySelector('#broker-undeclared') \
                   && ['.ready', '.leased', '.dead'].map(x => Number(s.querySelector(x).textContent.trim()));",
                json!([]),
            );
            let n = v.as_array()?;
            (n.len() == 3 && n[2].as_u64() > Some(0)).then(|| v.clone())
        },
    );
    assert!(shown[0].is_u64() && shown[1].is_u64(), "{shown}");
    b.screenshot("subscription-demo");
}
