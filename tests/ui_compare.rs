//! The map's compare mode in headless Chromium at 1024x700: on spans sent into two windows
//! (tests/common/two_windows.rs) added nodes and edges are green, removed ones come back grey
//! and dashed, the changed edge is marked with its change, the legend and the side panel say
//! so, in both themes; a custom base window and a bad one; and on the demo. Screenshots go
//! to test-output/.

mod common;

use common::browser::Browser;
use common::fixtures::Window;
use common::{builder, two_windows, TestEnv};
use serde_json::{json, Value};
use std::time::Duration;

fn open_map(b: &Browser, env: &TestEnv, window: &Window) {
    b.resize(1024, 700);
    b.goto(&env.api_url(&format!("/?window=custom&{}", window.query())));
    let state = b.wait_for(
        "the map",
        "return document.body.getAttribute('data-map-ready');",
    );
    assert_eq!(state, json!("1"), "map failed to load");
}

/// Turns compare on (or applies a new base) and waits for the diff on the map.
fn compare(b: &Browser, click: &str) -> Value {
    let before = b.eval(
        "return document.body.getAttribute('data-compare-ready');",
        json!([]),
    );
    b.click(click);
    let state = b.wait_for(
        "the comparison",
        &format!(
            "const s = document.body.getAttribute('data-compare-ready'); return s !== null && s !== {before} && s;"
        ),
    );
    b.wait_for("a still map", "return !window.switchyard.cy.animated();");
    b.wait_for_paint();
    state
}

/// What the map draws: classes and labels of the elements the diff marks.
fn drawn(b: &Browser) -> Value {
    b.eval(
        "const cy = window.switchyard.cy; \
         const pick = sel => cy.$(sel).map(x => x.id()).sort(); \
         return {added: pick('.diff-added'), removed: pick('.diff-removed'), changed: pick('.diff-changed'), \
           labels: Object.fromEntries(cy.edges('.diff-changed').map(e => [e.id(), e.data('label')])), \
           summary: document.getElementById('compare-summary').textContent, \
           list: [...document.querySelectorAll('#compare-list li')].map(li => [li.className, li.textContent]), \
           legend: [...document.querySelectorAll('.legend-compare')].map(li => !li.hidden), \
           panel: !document.getElementById('compare-panel').hidden};",
        json!([]),
    )
}

fn edge_id(from: &str, to: &str, kind: &str) -> String {
    format!("edge:{from}\u{1}{to}\u{1}{kind}")
}

/// The drawn colour of an element's `prop` is the theme's `var`.
fn colour_is_the_themes(b: &Browser, id: &str, prop: &str, var: &str) {
    let v = b.eval(
        "const [id, prop, v] = arguments; \
         const hex = getComputedStyle(document.documentElement).getPropertyValue(v).trim(); \
         const n = parseInt(hex.slice(1), 16); \
         const want = 'rgb(' + [(n >> 16) & 255, (n >> 8) & 255, n & 255].join(',') + ')'; \
         return [window.switchyard.cy.getElementById(id).style(prop).replace(/ /g, ''), want];",
        json!([id, prop, var]),
    );
    assert_eq!(v[0], v[1], "{id} {prop}");
}

#[test]
fn compare_mode_draws_added_green_removed_grey_and_the_change_on_the_edge() {
    let Some(b) = Browser::start() else { return };
    let env = TestEnv::start();
    let w = two_windows::send(&env);
    open_map(&b, &env, &w.new);
    // The compare controls fit the toolbar at 1024 px.
    let right = b.eval(
        "return document.getElementById('compare').getBoundingClientRect().right;",
        json!([]),
    );
    assert!(right.as_f64().unwrap() <= 1024.0, "{right}");
    compare(&b, "#compare");
    let d = drawn(&b);
    let orders = "destination:rabbitmq:orders";
    let changed = edge_id("service:checkout", orders, "publish");
    assert_eq!(
        d["added"],
        json!([
            "destination:rabbitmq:refunds",
            edge_id(orders, "service:shipping", "consume"),
            edge_id(
                "service:checkout",
                "destination:rabbitmq:refunds",
                "publish"
            ),
            "service:shipping"
        ])
    );
    assert_eq!(
        d["removed"],
        json!([
            format!("diff-removed:{orders}\u{1}service:billing\u{1}consume"),
            "service:billing"
        ])
    );
    assert_eq!(d["changed"], json!([changed]));
    let label = d["labels"][&changed].as_str().unwrap();
    assert!(label.ends_with("\nrate +200%"), "{label:?}");
    assert_eq!(d["summary"], "4 added \u{b7} 2 removed \u{b7} 1 changed");
    assert_eq!(d["legend"], json!([true, true, true]));
    assert!(d["panel"].as_bool().unwrap());
    let list = d["list"].as_array().unwrap();
    assert_eq!(list.len(), 7, "{list:?}");
    assert!(
        list.contains(&json!(["removed", "gone: service billing"])),
        "{list:?}"
    );
    assert!(
        list.contains(&json!([
            "changed",
            "checkout \u{2192} orders (publish): rate +200%"
        ])),
        "{list:?}"
    );
    // The removed service has a place on the map of its own.
    let placed = b.eval(
        "const cy = window.switchyard.cy; const g = cy.getElementById('service:billing').boundingBox(); \
         return cy.nodes().not('#service\\\\:billing').every(n => { const o = n.boundingBox(); \
           return g.x2 <= o.x1 || o.x2 <= g.x1 || g.y2 <= o.y1 || o.y2 <= g.y1; });",
        json!([]),
    );
    assert_eq!(placed, json!(true), "the removed node overlaps another");
    colour_is_the_themes(&b, "service:shipping", "border-color", "--diff-added");
    colour_is_the_themes(&b, "service:billing", "border-color", "--diff-removed");
    colour_is_the_themes(&b, &changed, "line-color", "--diff-changed");
    b.screenshot("map-compare-light");
    b.switch_theme();
    b.wait_for(
        "the compare colours in the other theme",
        "const cy = window.switchyard.cy; return cy.getElementById('service:shipping').style('border-width') === '4px';",
    );
    colour_is_the_themes(&b, "service:shipping", "border-color", "--diff-added");
    colour_is_the_themes(&b, "service:billing", "border-color", "--diff-removed");
    colour_is_the_themes(&b, &changed, "line-color", "--diff-changed");
    b.screenshot("map-compare-other-theme");

    // A custom base window: the newer window against itself changes nothing.
    b.eval(
        "const s = document.getElementById('compare-base'); s.value = 'custom'; \
         s.dispatchEvent(new Event('change')); \
         document.getElementById('compare-since').value = arguments[0]; \
         document.getElementById('compare-until').value = arguments[1];",
        json!([w.new.since(), w.new.until()]),
    );
    compare(&b, "#compare-apply");
    let d = drawn(&b);
    assert_eq!(d["summary"], "0 added \u{b7} 0 removed \u{b7} 0 changed");
    assert_eq!(
        (d["added"].clone(), d["removed"].clone()),
        (json!([]), json!([]))
    );
    // A bad one says why, on the toolbar.
    b.eval(
        "document.getElementById('compare-since').value = 'last tuesday';",
        json!([]),
    );
    let state = compare(&b, "#compare-apply");
    assert_eq!(state, json!("error"));
    let summary = b.eval("const s = document.getElementById('compare-summary'); return [s.className, s.textContent];", json!([]));
    assert_eq!(summary[0], "compare-summary bad");
    assert!(
        summary[1]
            .as_str()
            .unwrap()
            .starts_with("base_since must be a date"),
        "{summary}"
    );

    // Off: the map as it was.
    b.click("#compare");
    let off = drawn(&b);
    assert_eq!(
        (
            off["added"].clone(),
            off["removed"].clone(),
            off["changed"].clone()
        ),
        (json!([]), json!([]), json!([]))
    );
    assert_eq!(off["legend"], json!([false, false, false]));
    let label = b.eval(
        "return window.switchyard.cy.getElementById(arguments[0]).data('label');",
        json!([changed]),
    );
    assert!(!label.as_str().unwrap().contains("rate +"), "{label}");
}

#[test]
fn compare_mode_on_the_demo_marks_what_the_previous_period_did_not_have() {
    let Some(b) = Browser::start() else { return };
    let env = TestEnv::with_args(&["--demo"]);
    const MINUTE: u64 = 60_000_000_000;
    // A window that ended (its minute is over) with demo traffic in it.
    let window = common::wait_for("demo traffic", Duration::from_secs(180), || {
        let ended = (builder::now_unix_nanos() - 3_000_000_000) / MINUTE * MINUTE;
        let window = Window {
            since_unix_nanos: ended - 10 * MINUTE,
            until_unix_nanos: ended - 1_000_000_000,
        };
        let nodes = env.topology(&window)["nodes"]
            .as_array()
            .map_or(0, Vec::len);
        (nodes >= 8).then_some(window)
    });
    let diff = env.get_json(&format!("/api/topology/diff?{}", window.query()));
    open_map(&b, &env, &window);
    compare(&b, "#compare");
    let d = drawn(&b);
    let mut want: Vec<String> = diff["nodes_added"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_string())
        .chain(diff["edges_added"].as_array().unwrap().iter().map(|e| {
            edge_id(
                e["from"].as_str().unwrap(),
                e["to"].as_str().unwrap(),
                e["kind"].as_str().unwrap(),
            )
        }))
        .collect();
    want.sort();
    assert!(!want.is_empty(), "the demo started in this window: {diff}");
    assert_eq!(d["added"], json!(want));
    b.screenshot("demo-map-compare");
    b.switch_theme();
    b.screenshot("demo-map-compare-other-theme");
}
