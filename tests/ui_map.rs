//! The map in headless Chromium at 1024x700, on a recorded real-SDK shop (python-pika) and on
//! the demo: numbers on nodes (rate, error ratio ring, broker depth) and on edges (rate and
//! p99), readable labels, edges that never cut through a node box, findings as badges that
//! select and frame their nodes, reach through brokers with depths, the service-only view,
//! and the blast radius; both themes. Screenshots go to test-output/.

mod common;

use common::browser::Browser;
use common::fixtures::{self, Window};
use common::{builder, ui, TestEnv};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

fn open_map(b: &Browser, env: &TestEnv, query: &str) {
    b.resize(1024, 700);
    b.goto(&env.api_url(&format!("/?window=custom&{query}")));
    let state = b.wait_for(
        "the map",
        "return document.body.getAttribute('data-map-ready');",
    );
    assert_eq!(state, json!("1"), "map failed to load");
    b.wait_for("a still map", "return !window.switchyard.cy.animated();");
}

/// The rate as the map writes it.
fn rate(r: f64) -> String {
    if r >= 10.0 {
        format!("{r:.0}/s")
    } else if r >= 0.1 {
        format!("{r:.2}/s")
    } else {
        format!("{:.2}/min", r * 60.0)
    }
}

/// Every node shows its name and its figures; the rate of `publisher` (what it sends) and the
/// error share of `failing` are the topology's; every edge is labelled with its rate and p99.
fn numbers_on_nodes_and_edges(b: &Browser, topo: &Value, publisher: &str, failing: Option<&str>) {
    let drawn = b.eval(
        "const cy = window.switchyard.cy; return {zoom: cy.zoom(), \
         nodes: Object.fromEntries(cy.nodes().map(n => [n.id(), [n.data('label'), n.data('ring') || '']])), \
         edges: Object.fromEntries(cy.edges().map(e => [e.id(), e.data('label')]))};",
        json!([]),
    );
    // 13 px labels at the first zoom: at least 10 px on screen.
    let zoom = drawn["zoom"].as_f64().unwrap();
    assert!(13.0 * zoom >= 10.0, "labels at {:.1} px", 13.0 * zoom);
    for n in topo["nodes"].as_array().unwrap() {
        let id = n["id"].as_str().unwrap();
        let label = drawn["nodes"][id][0].as_str().unwrap_or_default();
        let lines: Vec<&str> = label.lines().collect();
        assert_eq!(lines.len(), 2, "{id}: {label:?}");
        assert!(
            lines[1].contains("/s") || lines[1].contains("/min"),
            "{id}: {label:?}"
        );
        let ring = drawn["nodes"][id][1].as_str().unwrap_or_default();
        assert!(ring.starts_with("data:image/svg+xml"), "{id}: {ring}");
        if let Some(depth) = n["broker"]["depth"].as_u64() {
            assert!(
                lines[1].contains(&format!("depth {depth}")),
                "{id}: {label:?}"
            );
        }
    }
    let sent: f64 = topo["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["from"] == publisher)
        .map(|e| e["rate_per_sec"].as_f64().unwrap())
        .sum();
    let label = drawn["nodes"][publisher][0].as_str().unwrap();
    assert!(label.contains(&rate(sent)), "{publisher}: {label:?}");
    if let Some(failing) = failing {
        let n = topo["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == failing)
            .unwrap();
        let ratio = n["span_errors"].as_f64().unwrap() / n["spans"].as_f64().unwrap();
        let want = if ratio < 0.1 {
            format!("{:.1}% err", ratio * 100.0)
        } else {
            format!("{:.0}% err", ratio * 100.0)
        };
        let label = drawn["nodes"][failing][0].as_str().unwrap();
        assert!(label.contains(&want), "{failing}: {label:?} wants {want}");
    }
    for e in topo["edges"].as_array().unwrap() {
        let id = format!(
            "edge:{}\u{1}{}\u{1}{}",
            e["from"].as_str().unwrap(),
            e["to"].as_str().unwrap(),
            e["kind"].as_str().unwrap()
        );
        let label = drawn["edges"][&id].as_str().unwrap_or_default();
        assert!(
            label.starts_with(&rate(e["rate_per_sec"].as_f64().unwrap())),
            "{id}: {label:?}"
        );
        if e["latency"]["p99_micros"].is_number() {
            assert!(label.contains(" p99 "), "{id}: {label:?}");
        }
    }
    // Hovering an edge shows its numbers whatever the zoom.
    let tip = b.eval(
        "const e = window.switchyard.cy.edges()[0]; e.emit('mouseover'); \
         const t = document.getElementById('tooltip'); \
         const r = [t.hidden, t.textContent, e.hasClass('hovered')]; e.emit('mouseout'); return r;",
        json!([]),
    );
    assert_eq!(tip[0], json!(false), "{tip}");
    assert!(tip[1].as_str().unwrap().contains("p99"), "{tip}");
    assert_eq!(tip[2], json!(true), "{tip}");
}

/// No edge's drawn path passes through a node box other than its own ends.
fn edges_avoid_node_boxes(b: &Browser) {
    let crossings = b.eval(
        "const cy = window.switchyard.cy, hits = window.switchyardLayout.hits, out = []; \
         const boxes = cy.nodes().map(n => { const bb = n.boundingBox({includeLabels: false}); \
           return {id: n.id(), x1: bb.x1 + 2, x2: bb.x2 - 2, y1: bb.y1 + 2, y2: bb.y2 - 2}; }); \
         cy.edges().forEach(e => { \
           const pts = [e.sourceEndpoint()].concat(e.hasClass('routed') ? (e.segmentPoints() || []) : [], [e.targetEndpoint()]); \
           for (let i = 0; i + 1 < pts.length; i++) { boxes.forEach(bx => { \
             if (bx.id !== e.source().id() && bx.id !== e.target().id() && hits(pts[i], pts[i + 1], bx)) { out.push(e.id() + ' x ' + bx.id); } }); } }); \
         return out;",
        json!([]),
    );
    assert_eq!(crossings, json!([]), "edges through node boxes");
}

/// Clicks the badge of `pattern` on `node` and checks that the finding's nodes are selected,
/// all on screen, and described in the side panel, the findings list still there.
fn badge_frames_its_finding(b: &Browser, topo: &Value, node: &str, pattern: &str) -> Value {
    let css =
        format!(".map-badge-group[data-node-id=\"{node}\"] .map-badge[data-pattern=\"{pattern}\"]");
    // The node in the middle of the map, so its badge is on screen and nothing covers it.
    b.eval(
        "const cy = window.switchyard.cy; cy.center(cy.getElementById(arguments[0])); return 1;",
        json!([node]),
    );
    b.wait_for_paint();
    b.wait_for(
        "the badge on screen",
        &format!(
            "const e = document.querySelector('{}'); return e && !e.closest('[hidden]');",
            css.replace('\'', "\\'")
        ),
    );
    let index = b.eval(
        &format!(
            "return Number(document.querySelector('{}').getAttribute('data-finding'));",
            css.replace('\'', "\\'")
        ),
        json!([]),
    );
    let finding = topo["findings"][index.as_u64().unwrap() as usize].clone();
    assert_eq!(finding["pattern"], pattern);
    b.click(&css);
    b.wait_for(
        "the finding framed",
        "return !window.switchyard.cy.animated() && document.getElementById('finding-description');",
    );
    let state = b.eval(
        "const cy = window.switchyard.cy, w = cy.width(), h = cy.height(); \
         const sel = cy.$('node:selected'); \
         return {selected: sel.map(n => n.id()).sort(), \
           inside: sel.every(n => { const bb = n.renderedBoundingBox({includeLabels: false}); \
             return bb.x1 >= -1 && bb.y1 >= -1 && bb.x2 <= w + 1 && bb.y2 <= h + 1; }), \
           text: document.getElementById('finding-description').textContent, \
           findings: document.querySelectorAll('.findings .finding').length};",
        json!([]),
    );
    let want: BTreeSet<&str> = finding["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    let got: BTreeSet<&str> = state["selected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert_eq!(got, want, "{state}");
    assert_eq!(state["inside"], json!(true), "{state}");
    assert_eq!(state["text"], finding["description"], "{state}");
    assert_eq!(
        state["findings"].as_u64(),
        topo["findings"].as_array().map(|f| f.len() as u64),
        "{state}"
    );
    // The address and the panel's link keep the window and name the finding.
    let page_query = b.eval(
        "return document.getElementById('cy').getAttribute('data-page-query');",
        json!([]),
    );
    let want = format!(
        "?{}&finding={pattern}&on={}",
        page_query.as_str().unwrap(),
        node.replace(':', "%3A")
    );
    let links = b.eval(
        "return [location.search, new URL(document.getElementById('finding-link').href).search];",
        json!([]),
    );
    assert_eq!(links, json!([want, want]));
    finding
}

/// A node page's finding links to the map in the same window, with that finding framed.
fn node_page_finding_opens_on_the_map(b: &Browser, env: &TestEnv, window: &Window, node: &str) {
    let page = common::ui::Page::ok(
        env,
        &format!(
            "/services/{}?window=custom&{}",
            node.replace(':', "%3A"),
            window.query()
        ),
    );
    let links = page.attrs(
        ".finding-line[data-pattern=action_response] a.finding-link",
        "href",
    );
    assert_eq!(links.len(), 1, "{links:?}");
    // The page's own window (its picker's bounds) travels with the link.
    let bound = |name: &str| {
        page.one(&format!("input[name={name}]"))
            .value()
            .attr("value")
            .unwrap_or_default()
            .replace(':', "%3A")
    };
    let want = format!(
        "/?window=custom&since={}&until={}&finding=action_response&on={}",
        bound("since"),
        bound("until"),
        node.replace(':', "%3A")
    );
    assert_eq!(links, [want]);
    b.goto(&env.api_url(&links[0]));
    b.wait_for(
        "the linked finding framed",
        "return document.body.getAttribute('data-map-ready') === '1' && \
         !window.switchyard.cy.animated() && document.getElementById('finding-description');",
    );
    let selected = b.eval(
        "return window.switchyard.cy.$('node:selected').map(n => n.id()).includes(arguments[0]);",
        json!([node]),
    );
    assert_eq!(selected, json!(true));
}

/// The map's SVG export carries what the map shows: each node with its figures line (rate,
/// error share, depth or lag) and its error ring (red where there are errors), each edge
/// along its path with its label, a badge per finding and node, and the legend; it is
/// well-formed XML (expat) and Chromium renders it: the red of an error ring is drawn.
fn svg_carries_the_map(b: &Browser, topo: &Value, name: &str) -> Value {
    let got = b.eval(
        "const cy = window.switchyard.cy, topo = window.switchyard.topology; \
         const text = window.switchyardSvg.mapSvg(cy, '#ffffff', topo.findings); \
         const doc = new DOMParser().parseFromString(text, 'image/svg+xml'); \
         const q = s => [...doc.querySelectorAll(s)]; \
         return {text, errors: doc.querySelectorAll('parsererror').length, \
           nodes: Object.fromEntries(q('g.node').map(g => [g.getAttribute('data-id'), \
             [g.querySelector('.name').textContent, (g.querySelector('.figures') || {}).textContent || '', \
              (g.querySelector('.ring') || {getAttribute: () => null}).getAttribute('data-error-percent'), \
              !!g.querySelector('.ring-error')]])), \
           labels: Object.fromEntries(cy.nodes().map(n => [n.id(), [n.data('label'), Math.round(n.data('ratio') * 100)]])), \
           edges: q('g.edge').map(g => [g.getAttribute('data-source'), g.getAttribute('data-target'), \
             (g.querySelector('.edge-label') || {}).textContent || '']), \
           cyEdges: cy.edges().map(e => [e.data('source'), e.data('target'), e.data('label') || '']), \
           badges: q('g.badge').map(g => g.getAttribute('data-node-id') + ' ' + g.getAttribute('data-pattern')), \
           legend: q('g.legend .legend-row text').map(t => t.textContent)};",
        json!([]),
    );
    let text = got["text"].as_str().unwrap();
    std::fs::write(
        common::browser::output_dir().join(format!("{name}.svg")),
        text,
    )
    .unwrap();
    assert_eq!(got["errors"], json!(0), "{name}: DOMParser");
    assert_eq!(
        ui::xml_count(text, "g"),
        text.matches("<g ").count(),
        "{name}: expat reads every group"
    );
    let nodes = got["nodes"].as_object().unwrap();
    let labels = got["labels"].as_object().unwrap();
    assert_eq!(nodes.len(), labels.len(), "{name}");
    let mut red = None;
    for (id, l) in labels {
        let label = l[0].as_str().unwrap();
        let (first, second) = label.split_once('\n').unwrap();
        let n = &nodes[id];
        assert_eq!(n[0], json!(first), "{name}: {id}");
        assert_eq!(
            n[1],
            json!(second),
            "{name}: {id} figures (rate, errors, depth or lag)"
        );
        let percent = l[1].as_u64().unwrap();
        if percent > 0 {
            assert_eq!(n[3], json!(true), "{name}: {id} has an error arc");
            assert_eq!(n[2], json!(percent.to_string()), "{name}: {id}");
        }
        // The widest error arc is the one whose pixels are checked.
        if percent >= 5 && red.as_ref().is_none_or(|(_, p)| percent > *p) {
            red = Some((id.clone(), percent));
        }
    }
    let mut edges: Vec<Value> = got["edges"].as_array().unwrap().clone();
    let mut want: Vec<Value> = got["cyEdges"].as_array().unwrap().clone();
    edges.sort_by_key(|e| e.to_string());
    want.sort_by_key(|e| e.to_string());
    assert_eq!(edges, want, "{name}: every edge with its label");
    let badges: BTreeSet<String> = got["badges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_str().unwrap().to_string())
        .collect();
    for f in topo["findings"].as_array().unwrap() {
        for n in f["nodes"].as_array().unwrap() {
            let key = format!("{} {}", n.as_str().unwrap(), f["pattern"].as_str().unwrap());
            if nodes.contains_key(n.as_str().unwrap()) {
                assert!(badges.contains(&key), "{name}: badge {key} in {badges:?}");
            }
        }
    }
    let legend = got["legend"].to_string();
    for entry in [
        "service",
        "publish",
        "consume",
        "ring: share of errors",
        "badge",
    ] {
        assert!(legend.contains(entry), "{name}: legend {legend}");
    }
    // Rendered by Chromium: the middle of the widest error arc (clockwise from the top) is red.
    let Some((red, percent)) = red else {
        return got["nodes"].clone();
    };
    let pixel = b.eval_async(
        "const [text, id, , done] = arguments; \
         const img = new Image(); \
         img.onerror = () => done('not rendered'); \
         img.onload = () => { \
           const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight; \
           const g = c.getContext('2d'); g.drawImage(img, 0, 0); \
           const doc = new DOMParser().parseFromString(text, 'image/svg+xml'); \
           const ring = [...doc.querySelectorAll('g.node')].find(n => n.getAttribute('data-id') === id).querySelector('.ring-error'); \
           const a = Math.PI * arguments[2] / 100, r = Number(ring.getAttribute('r')); \
           const x = Number(ring.getAttribute('cx')) + r * Math.sin(a), y = Number(ring.getAttribute('cy')) - r * Math.cos(a); \
           const d = g.getImageData(Math.round(x), Math.round(y), 1, 1).data; \
           const bg = g.getImageData(1, 1, 1, 1).data; \
           done({size: [img.naturalWidth, img.naturalHeight], red: [...d], bg: [...bg]}); }; \
         img.src = URL.createObjectURL(new Blob([text], {type: 'image/svg+xml'}));",
        json!([text, red, percent]),
    );
    assert!(pixel["size"][0].as_u64().unwrap() > 100, "{name}: {pixel}");
    let rgb: Vec<u64> = pixel["red"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert!(
        rgb[0] > 180 && rgb[1] < 130 && rgb[2] < 130,
        "{name}: {red}'s ring top {pixel}"
    );
    assert_eq!(pixel["bg"], json!([255, 255, 255, 255]), "{name}: {pixel}");
    got["nodes"].clone()
}

/// Selects `node`, waits for its reach, and returns `[[id, depth]...]` of both lists and the
/// class each listed node has on the map.
fn reach_of(b: &Browser, node: &str) -> Value {
    b.eval(
        &format!("window.switchyard.cy.getElementById('{node}').emit('tap'); return 1;"),
        json!([]),
    );
    b.wait_for("the reach", "return document.querySelector('#reach h3');");
    b.eval(
        "const cy = window.switchyard.cy; \
         const list = c => [...document.querySelectorAll('#reach .' + c + ' li')].map(li => \
           [li.getAttribute('data-node-id'), Number(li.getAttribute('data-depth')), \
            cy.getElementById(li.getAttribute('data-node-id')).hasClass(c === 'upstream' ? 'up' : 'down')]); \
         return {up: list('upstream'), down: list('downstream'), \
           unreached: cy.nodes('.unreached').map(n => n.id()), \
           dimmed: [...document.querySelectorAll('.map-badge-group.dim')].map(g => g.getAttribute('data-node-id'))};",
        json!([]),
    )
}

/// Asks what breaks if `node` goes down, in the side panel, and returns the listed services
/// (with whether they are marked on the map) and destinations piling up.
fn impact_of(b: &Browser, node: &str) -> Value {
    b.eval(
        &format!("window.switchyard.cy.getElementById('{node}').emit('tap'); return 1;"),
        json!([]),
    );
    b.click("#impact-button");
    b.wait_for(
        "the blast radius",
        "return document.querySelector('#impact h3');",
    );
    b.eval(
        "const cy = window.switchyard.cy; \
         return {services: [...document.querySelectorAll('.impact-services li')].map(li => \
             [li.getAttribute('data-node-id'), cy.getElementById(li.getAttribute('data-node-id')).hasClass('starved')]), \
           piling: [...document.querySelectorAll('.impact-destinations li')].map(li => \
             [li.getAttribute('data-node-id'), cy.getElementById(li.getAttribute('data-node-id')).hasClass('piling')])};",
        json!([]),
    )
}

/// The service-only view: services joined by dependency edges labelled with the destination;
/// the toggle brings every node back.
fn service_only_view(b: &Browser, topo: &Value) {
    b.click("#services-only");
    b.wait_for(
        "the service-only view",
        "return window.switchyard.mode() === 'services' && !window.switchyard.cy.animated();",
    );
    let view = b.eval(
        "const cy = window.switchyard.cy; return {kinds: [...new Set(cy.nodes().map(n => n.data('kind')))], \
         deps: cy.edges('[kind = \"dependency\"]').map(e => [e.source().id(), e.target().id(), e.data('label')]), \
         pressed: document.getElementById('services-only').getAttribute('aria-pressed')};",
        json!([]),
    );
    assert!(
        !view["kinds"]
            .as_array()
            .unwrap()
            .contains(&json!("destination")),
        "{view}"
    );
    assert_eq!(view["pressed"], "true");
    let names: std::collections::HashMap<&str, &str> = topo["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n["name"].as_str().unwrap()))
        .collect();
    let deps = view["deps"].as_array().unwrap();
    for d in topo["dependencies"].as_array().unwrap() {
        let via = names[d["via"].as_str().unwrap()];
        assert!(
            deps.iter().any(|e| e[0] == d["from"]
                && e[1] == d["to"]
                && e[2]
                    .as_str()
                    .unwrap()
                    .starts_with(&via[..via.len().min(20)])),
            "{d} not drawn: {view}"
        );
    }
    edges_avoid_node_boxes(b);
    b.screenshot("map-services-only");
    b.click("#services-only");
    b.wait_for(
        "every node back",
        &format!(
            "return window.switchyard.mode() === 'all' && window.switchyard.cy.nodes().length === {};",
            topo["nodes"].as_array().unwrap().len()
        ),
    );
}

fn switch_theme(b: &Browser) {
    let theme = "return document.documentElement.getAttribute('data-theme');";
    let before = b.eval(theme, json!([]));
    b.click("#theme-toggle");
    b.wait_for(
        "the other theme",
        &format!("return document.documentElement.getAttribute('data-theme') !== {before};"),
    );
    b.wait_for_paint();
}

#[test]
fn the_map_of_a_recorded_shop_shows_numbers_findings_reach_and_blast_radius() {
    let Some(b) = Browser::start() else { return };
    let (env, _, window) = TestEnv::with_recording(fixtures::PYTHON_PIKA);
    let topo = env.topology(&window);
    open_map(&b, &env, &window.query());
    numbers_on_nodes_and_edges(&b, &topo, "service:orders", Some("service:billing"));
    edges_avoid_node_boxes(&b);
    let systems = b.eval(
        "return [...document.querySelectorAll('#legend-systems li')].map(li => li.textContent);",
        json!([]),
    );
    assert_eq!(systems, json!(["rabbitmq"]));
    b.screenshot("map-numbers-light");
    let svg = svg_carries_the_map(&b, &topo, "map-recorded-shop");
    assert!(
        svg["service:billing"][1]
            .as_str()
            .unwrap()
            .contains("% err"),
        "{svg}"
    );

    badge_frames_its_finding(&b, &topo, "destination:rabbitmq:order.created", "broadcast");
    // The action/response pair: who asks, who answers.
    badge_frames_its_finding(&b, &topo, "service:wallet", "action_response");
    let facts = b.eval(
        "return Object.fromEntries([...document.querySelectorAll('#details-body dl > div')].map(d => \
           [d.querySelector('dt').textContent, d.querySelector('dd').textContent]));",
        json!([]),
    );
    assert_eq!(facts["Asks"], "wallet", "{facts}");
    assert_eq!(facts["Answers"], "identity", "{facts}");
    assert_eq!(facts["Reply"], "(temporary)", "{facts}");
    // The round trip is measured per request/reply pair: the page shows the API's p99.
    b.wait_for(
        "the round trips",
        "return document.querySelector('#round-trips[data-pairs]');",
    );
    let rt = env.get_json(&format!(
        "/api/round-trips?asker=service%3Awallet&answerer=service%3Aidentity\
         &request=destination%3Arabbitmq%3Aidentity.2fa\
         &reply=destination%3Arabbitmq%3A%28temporary%29&{}",
        window.query()
    ));
    assert_eq!(rt["pairs"], 3, "{rt}");
    let shown = b.eval(
        "return [document.getElementById('round-trips').getAttribute('data-pairs'), \
         [...document.querySelectorAll('#round-trips dl > div')].map(d => d.textContent)];",
        json!([]),
    );
    assert_eq!(shown[0], json!("3"), "{shown}");
    let p99 = rt["p99_micros"].as_f64().unwrap();
    let want = if p99 < 1000.0 {
        format!("Round trip p99{p99:.0} \u{b5}s")
    } else if p99 < 1e6 {
        format!("Round trip p99{:.1} ms", p99 / 1000.0)
    } else {
        format!("Round trip p99{:.2} s", p99 / 1e6)
    };
    assert!(
        shown[1].as_array().unwrap().contains(&json!(want)),
        "{shown} wants {want}"
    );

    let r = reach_of(&b, "service:shipping");
    assert_eq!(
        r["up"],
        json!([
            ["destination:rabbitmq:order.created", 1, true],
            ["service:orders", 2, true]
        ]),
        "{r}"
    );
    assert!(
        r["unreached"]
            .as_array()
            .unwrap()
            .contains(&json!("service:worker")),
        "{r}"
    );
    // The badges of what is out of reach fade with their nodes.
    let dimmed = r["dimmed"].as_array().unwrap();
    assert!(dimmed.contains(&json!("service:worker")), "{r}");
    assert!(
        !dimmed.contains(&json!("destination:rabbitmq:order.created")),
        "{r}"
    );
    let r = reach_of(&b, "service:orders");
    assert_eq!(
        r["down"],
        json!([
            ["destination:rabbitmq:order.created", 1, true],
            ["service:billing", 2, true],
            ["service:shipping", 2, true]
        ]),
        "{r}"
    );
    b.screenshot("map-reach-orders");

    let i = impact_of(&b, "service:orders");
    assert_eq!(
        i,
        json!({"services": [["service:billing", true], ["service:shipping", true]], "piling": []})
    );
    let i = impact_of(&b, "service:worker");
    assert_eq!(
        i,
        json!({"services": [], "piling": [["destination:rabbitmq:tasks", true]]})
    );
    b.screenshot("map-impact-worker");

    service_only_view(&b, &topo);
    switch_theme(&b);
    numbers_on_nodes_and_edges(&b, &topo, "service:orders", Some("service:billing"));
    b.screenshot("map-numbers-other-theme");
    node_page_finding_opens_on_the_map(&b, &env, &window, "service:wallet");
}

#[test]
fn the_demo_map_shows_every_finding_as_a_badge_and_answers_reach_and_impact() {
    let Some(b) = Browser::start() else { return };
    let env = TestEnv::with_args(&["--demo"]);
    // Traffic enough for every pattern of the shop, in a window that stays still: statistics
    // are per minute, so a window ending in a minute that is over (its spans in, 3 s after)
    // keeps the same counts for the page and for this test.
    const MINUTE: u64 = 60_000_000_000;
    // The idle subscriber (marketing's subscription nobody publishes to) comes from the
    // embedded broker's state, as the README promises.
    let patterns = [
        "broadcast",
        "work_queue",
        "action_response",
        "dead_end",
        "idle_subscriber",
    ];
    let window = common::wait_for("demo traffic", Duration::from_secs(180), || {
        let ended = (builder::now_unix_nanos() - 3_000_000_000) / MINUTE * MINUTE;
        let window = Window {
            since_unix_nanos: ended - 10 * MINUTE,
            until_unix_nanos: ended - 1_000_000_000,
        };
        let t = env.topology(&window);
        let found: BTreeSet<&str> = t["findings"]
            .as_array()?
            .iter()
            .filter_map(|f| f["pattern"].as_str())
            .collect();
        let nodes = t["nodes"].as_array().map_or(0, |n| n.len());
        (nodes >= 20 && patterns.iter().all(|p| found.contains(p))).then_some(window)
    });
    let topo = env.topology(&window);
    open_map(&b, &env, &window.query());
    numbers_on_nodes_and_edges(&b, &topo, "service:checkout", None);
    edges_avoid_node_boxes(&b);
    // A badge for each finding's pattern on each of its nodes.
    let badges = b.eval(
        "return [...document.querySelectorAll('#map-badges .map-badge')].map(x => \
           [x.closest('.map-badge-group').getAttribute('data-node-id'), x.getAttribute('data-pattern')]);",
        json!([]),
    );
    let badges = badges.as_array().unwrap();
    for f in topo["findings"].as_array().unwrap() {
        for n in f["nodes"].as_array().unwrap() {
            assert!(
                badges.contains(&json!([n, f["pattern"]])),
                "{} on {n} not drawn",
                f["pattern"]
            );
        }
    }
    b.screenshot("demo-map-numbers");
    let svg = svg_carries_the_map(&b, &topo, "map-demo");
    let depths = topo["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| Some((n["id"].as_str()?, n["broker"]["depth"].as_u64()?)))
        .collect::<Vec<_>>();
    assert!(!depths.is_empty(), "the demo's broker reports depths");
    for (id, depth) in depths {
        let figures = svg[id][1].as_str().unwrap_or_default();
        assert!(
            figures.contains(&format!("depth {depth}")),
            "{id}: {figures}"
        );
    }
    let finding = badge_frames_its_finding(&b, &topo, "service:wallet", "action_response");
    assert!(
        finding["nodes"]
            .as_array()
            .unwrap()
            .contains(&json!("service:identity")),
        "{finding}"
    );
    let facts = b.eval(
        "return [...document.querySelectorAll('#details-body dl > div')].map(d => d.textContent);",
        json!([]),
    );
    assert!(
        facts.to_string().contains("Askswallet") && facts.to_string().contains("Answersidentity"),
        "{facts}"
    );

    // Checkout's events reach shipping two destinations away at least; its reach downstream
    // matches the API's.
    let r = reach_of(&b, "service:checkout");
    let api = env.get_json(&format!(
        "/api/reach?node=service:checkout&{}",
        window.query()
    ));
    let want: Vec<Value> = api["dependents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| json!([x["id"], x["depth"], true]))
        .collect();
    assert_eq!(r["down"], json!(want));
    assert!(want.iter().any(|x| x[1].as_u64().unwrap() >= 2), "{api}");
    b.screenshot("demo-map-reach");

    let i = impact_of(&b, "service:checkout");
    let api = env.get_json(&format!(
        "/api/impact?node=service:checkout&{}",
        window.query()
    ));
    let want: Vec<Value> = api["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| json!([s["id"], true]))
        .collect();
    assert!(!want.is_empty(), "{api}");
    assert_eq!(i["services"], json!(want));
    service_only_view(&b, &topo);
    switch_theme(&b);
    b.screenshot("demo-map-other-theme");
}

#[test]
fn hostile_names_in_reach_impact_badges_and_the_service_view_stay_text() {
    let Some(b) = Browser::start() else { return };
    let env = TestEnv::start();
    let (publish, consume) = ui::hostile_trace();
    let reply = env.post_protobuf(&builder::protobuf(&[&publish, &consume]));
    assert_eq!(reply.status, 200, "{}", reply.text());
    open_map(&b, &env, &builder::window().query());
    let ids = b.eval(
        "return window.switchyard.cy.nodes().map(n => n.id());",
        json!([]),
    );
    for id in ids.as_array().unwrap() {
        let id = id.as_str().unwrap();
        b.eval(
            "window.switchyard.cy.getElementById(arguments[0]).emit('tap'); return 1;",
            json!([id]),
        );
        b.click("#impact-button");
        b.wait_for(
            "reach and impact",
            "return document.querySelector('#impact h3') && document.querySelector('#reach h3');",
        );
    }
    b.click("#services-only");
    b.wait_for(
        "the service view",
        "return window.switchyard.mode() === 'services';",
    );
    b.wait_for_paint();
    let pwned = b.eval(
        "return [window.__pwned === undefined, document.querySelectorAll('img[src=x], svg[onload], script:not([src])').length];",
        json!([]),
    );
    assert_eq!(pwned, json!([true, 0]));
    let text = b.eval("return document.body.textContent;", json!([]));
    assert!(text.as_str().unwrap().contains(ui::HOSTILE_SERVICE));
}

/// Marks, in every document the browser opens, when the map says it is drawn (its body's
/// `data-map-ready`) and the frame after (two animation frames): the same clock for any build's
/// page, whatever its scripts record. Added through the DevTools protocol, so the pages' script
/// policy does not apply to it.
const FRAME_WATCH: &str = "new MutationObserver(function (m, o) { \
    if (document.body && document.body.getAttribute('data-map-ready') === '1') { o.disconnect(); \
      window.__drawnAt = performance.now(); \
      requestAnimationFrame(function () { requestAnimationFrame(function () { \
        window.__framedAt = performance.now(); }); }); } \
  }).observe(document, { subtree: true, attributes: true, attributeFilter: ['data-map-ready'] });";

/// One navigation to the map at `url`: drawn and its first frame after navigation (ms, by the
/// page's clock), the renderer's main-thread CPU (ms, Performance.getMetrics' ThreadTime from
/// before navigation to that frame), the document's navigation timing, and the page's own
/// breakdown (`window.switchyard.timings`, if its scripts keep one).
fn navigate_map(b: &Browser, origin: &str, url: &str) -> Value {
    b.goto(&format!("{origin}/healthz"));
    let cpu = |b: &Browser| {
        let m = b.cdp("Performance.getMetrics", json!({}));
        m["metrics"]
            .as_array()
            .and_then(|all| all.iter().find(|x| x["name"] == "ThreadTime"))
            .and_then(|x| x["value"].as_f64())
            .unwrap_or(0.0)
    };
    let before = cpu(b);
    b.goto(url);
    b.wait_for(
        "the map's first frame",
        "return document.body.getAttribute('data-map-ready') === '1' && window.__framedAt;",
    );
    let mut got = b.eval(
        "const n = performance.getEntriesByType('navigation')[0]; \
         return {drawn: window.__drawnAt, framed: window.__framedAt, ready_at: window.switchyard.readyAt, \
           html: Math.round(n.responseEnd), dom_interactive: Math.round(n.domInteractive), \
           dom_content_loaded: Math.round(n.domContentLoadedEventEnd), \
           topology_fetch: performance.getEntriesByType('resource').filter(r => r.name.indexOf('/api/topology') >= 0) \
             .map(r => [Math.round(r.startTime), Math.round(r.responseEnd)]), \
           timings: window.switchyard.timings || null};",
        json!([]),
    );
    got["cpu"] = json!(((cpu(b) - before) * 1000.0).round());
    got
}

/// Performance figures: a map of 500 nodes and about 2,000 edges, with its labels and finding
/// badges. (1) From navigation: the real page, drawn and its first frame after, with where the
/// time went, five times; with `MAP_BASELINE_BIN` (another build's `switchyard`, e.g. a copy of
/// main's) the same navigations to that build's server holding the same spans, alternating,
/// for a same-run ratio. (2) From its scripts' start: the map's scripts of this build and of
/// `MAP_BASELINE_REV` (default `main`, read with git) loaded into the same page five times,
/// alternating. The best of each, and main-thread CPU (what a loaded machine distorts least).
/// `MAP_BASELINE_BIN=/path/to/main/switchyard cargo test --release --test ui_map -- --ignored large_map --nocapture`
#[test]
#[ignore]
fn large_map_time_to_interactive() {
    let Some(b) = Browser::start() else { return };
    let env = TestEnv::start();
    let baseline_env = std::env::var_os("MAP_BASELINE_BIN")
        .map(|bin| TestEnv::with_program(std::path::Path::new(&bin)));
    let (services, destinations) = (250u64, 250u64);
    let mut spans = Vec::new();
    for k in 0..1000u64 {
        let from = format!("svc-{}", k % services);
        let to = format!("svc-{}", (k * 13 + 5) % services);
        let dest = format!("topic-{}", (k * 7 + k / destinations) % destinations);
        let p = builder::span(&from, "send", builder::Producer).messaging("kafka", &dest);
        let c = p
            .child(&to, "receive", builder::Consumer)
            .messaging("kafka", &dest);
        spans.push(p);
        spans.push(c);
    }
    let refs: Vec<&builder::SpanB> = spans.iter().collect();
    let body = builder::protobuf(&refs);
    for e in std::iter::once(&env).chain(baseline_env.as_ref()) {
        let reply = e.post_protobuf(&body);
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    let q = builder::window().query();
    let topo = env.get_json(&format!("/api/topology?{q}"));
    let (nodes, edges, findings) = (
        topo["nodes"].as_array().unwrap().len(),
        topo["edges"].as_array().unwrap().len(),
        topo["findings"].as_array().unwrap().len(),
    );
    // The real page: navigation to a drawn graph and its first frame, by the page's own clock.
    b.resize(1024, 700);
    b.cdp("Performance.enable", json!({"timeDomain": "threadTicks"}));
    b.cdp(
        "Page.addScriptToEvaluateOnNewDocument",
        json!({ "source": FRAME_WATCH }),
    );
    let page = format!("/?window=custom&{q}");
    let origin = |e: &TestEnv| e.api_url("").trim_end_matches('/').to_string();
    /// One round: this build's navigation and the baseline build's.
    type Loads = (Value, Option<Value>);
    let mut pages: Vec<Loads> = Vec::new();
    for _ in 0..5 {
        let now = navigate_map(&b, &origin(&env), &env.api_url(&page));
        let then = baseline_env
            .as_ref()
            .map(|e| navigate_map(&b, &origin(e), &e.api_url(&page)));
        pages.push((now, then));
    }
    b.goto(&env.api_url(&page));
    b.wait_for(
        "the map",
        "return document.body.getAttribute('data-map-ready') === '1';",
    );
    let shown = b.eval(
        "const cy = window.switchyard.cy; return {nodes: cy.nodes().length, edges: cy.edges().length, \
           badges: document.querySelectorAll('#map-badges .map-badge').length};",
        json!([]),
    );
    assert_eq!(shown["nodes"].as_u64(), Some(nodes as u64), "{shown}");
    assert_eq!(shown["edges"].as_u64(), Some(edges as u64), "{shown}");
    b.screenshot("map-large");
    let best_of = |pick: &dyn Fn(&Loads) -> Option<f64>| {
        pages.iter().filter_map(pick).fold(f64::INFINITY, f64::min)
    };
    let (drawn, framed, cpu) = (
        best_of(&|r| r.0["drawn"].as_f64()),
        best_of(&|r| r.0["framed"].as_f64()),
        best_of(&|r| r.0["cpu"].as_f64()),
    );
    eprintln!(
        "large map: {nodes} nodes, {edges} edges, {findings} findings, {} badges; this build, \
         best of 5 navigations: drawn {drawn:.0} ms after navigation, its first frame at \
         {framed:.0} ms, main-thread CPU {cpu:.0} ms; the first (cold) load: {}",
        shown["badges"], pages[0].0
    );
    eprintln!("  the best load's breakdown: {}", {
        let i = (0..pages.len())
            .min_by(|&a, &b| {
                let f = |k: usize| pages[k].0["framed"].as_f64().unwrap_or(f64::INFINITY);
                f(a).total_cmp(&f(b))
            })
            .unwrap_or(0);
        pages[i].0.clone()
    });
    if let Some(first) = pages[0].1.as_ref() {
        let (old_drawn, old_framed, old_cpu) = (
            best_of(&|r| r.1.as_ref().and_then(|v| v["drawn"].as_f64())),
            best_of(&|r| r.1.as_ref().and_then(|v| v["framed"].as_f64())),
            best_of(&|r| r.1.as_ref().and_then(|v| v["cpu"].as_f64())),
        );
        eprintln!(
            "baseline build (MAP_BASELINE_BIN), best of 5: drawn {old_drawn:.0} ms, first frame \
             {old_framed:.0} ms, main-thread CPU {old_cpu:.0} ms (its first load: {first}); \
             this build / baseline: {:.2}x to drawn, {:.2}x to the first frame, {:.2}x CPU",
            drawn / old_drawn,
            framed / old_framed,
            cpu / old_cpu
        );
    } else {
        eprintln!("no baseline build: set MAP_BASELINE_BIN to another build's switchyard");
    }

    let text = |path: &str| env.get(path).text();
    let vendor = vec![
        text("/static/vendor/cytoscape/cytoscape.min.js"),
        text("/static/vendor/cytoscape-dagre/cytoscape-dagre.min.js"),
    ];
    let names = [
        "svg",
        "map-kit",
        "map-layout",
        "map-badges",
        "map-panel",
        "map",
    ];
    let current: Vec<String> = names
        .iter()
        .map(|f| text(&format!("/static/app/{f}.js")))
        .collect();
    let rev = std::env::var("MAP_BASELINE_REV").unwrap_or_else(|_| "main".into());
    let git_show = |path: &str| {
        std::process::Command::new("git")
            .args(["show", &format!("{rev}:{path}")])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    };
    // The baseline's own copy of every map script (map.js alone cannot run without the
    // helpers split out of it); a file the baseline does not have is left out.
    let baseline: Option<Vec<String>> = git_show("static/app/map.js").map(|_| {
        names
            .iter()
            .filter_map(|f| git_show(&format!("static/app/{f}.js")))
            .collect()
    });
    // The map page without its scripts (its topology data stays: this build reads it, a
    // baseline that fetches the topology ignores it), in a document of the server's origin
    // that has no script policy (the plain-text /healthz), then the libraries, then the map's
    // scripts.
    let run = |scripts: &[String]| -> Value {
        b.goto(&env.api_url("/healthz"));
        b.eval_async(
            "const [page, vendor, scripts] = arguments, done = arguments[arguments.length - 1]; \
             const frames = () => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r))); \
             (async () => { \
               const html = await (await fetch(page)).text(); \
               const doc = new DOMParser().parseFromString(html, 'text/html'); \
               doc.querySelectorAll('script[src]').forEach(s => s.remove()); \
               document.replaceChild(document.adoptNode(doc.documentElement), document.documentElement); \
               const add = src => { const s = document.createElement('script'); s.textContent = src; document.head.appendChild(s); }; \
               vendor.forEach(add); \
               await new Promise(r => setTimeout(r, 0)); \
               const t0 = performance.now(); \
               scripts.forEach(add); \
               while (document.body.getAttribute('data-map-ready') !== '1') { await new Promise(r => setTimeout(r, 2)); } \
               await frames(); \
               const ready = performance.now() - t0; \
               const cy = window.switchyard.cy, t1 = performance.now(); \
               cy.nodes()[0].emit('tap'); await frames(); \
               done({ready: ready, tap: performance.now() - t1, nodes: cy.nodes().length, edges: cy.edges().length, \
                     labels: cy.edges().filter(e => e.data('label')).length, badges: document.querySelectorAll('#map-badges .map-badge').length, \
                     timings: window.switchyard.timings || null}); \
             })();",
            json!([page, vendor, scripts]),
        )
    };
    // Five rounds, this map and the baseline alternating (a busy machine slows both alike),
    // the best of each.
    /// One round: this map's figures and the baseline's.
    type Round = (Value, Option<Value>);
    let mut runs: Vec<Round> = Vec::new();
    for _ in 0..5 {
        let now = run(&current);
        let then = baseline.as_ref().map(|old| run(old));
        runs.push((now, then));
    }
    let best = |pick: &dyn Fn(&Round) -> Option<f64>| {
        runs.iter().filter_map(pick).fold(f64::INFINITY, f64::min)
    };
    let ready = best(&|r| r.0["ready"].as_f64());
    let tap = best(&|r| r.0["tap"].as_f64());
    eprintln!(
        "this map's scripts in the page: interactive {ready:.0} ms after they start, a tap \
         answered in {tap:.0} ms ({})",
        runs[0].0
    );
    match &runs[0].1 {
        Some(shape) => {
            let old_ready = best(&|r| r.1.as_ref().and_then(|v| v["ready"].as_f64()));
            let old_tap = best(&|r| r.1.as_ref().and_then(|v| v["tap"].as_f64()));
            eprintln!(
                "baseline ({rev}): interactive {old_ready:.0} ms, a tap answered in {old_tap:.0} ms \
                 ({shape}); this map / baseline: {:.2}x to interactive, {:.2}x per tap",
                ready / old_ready,
                tap / old_tap
            );
        }
        None => eprintln!("no baseline: git show {rev}:static/app/map.js failed"),
    }
}
