//! `GET /api/topology/diff`, `/api/topology/diff.dot` and `switchyard export --diff` on spans
//! sent over OTLP into two windows (tests/common/two_windows.rs): what was added, removed and
//! changed, the thresholds, the default base window, and clear 400s for bad input.

mod common;

use common::two_windows::{self, TwoWindows};
use common::TestEnv;
use serde_json::Value;

const CHECKOUT: &str = "service:checkout";
const ORDERS: &str = "destination:rabbitmq:orders";

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_string())
        .collect()
}

fn edges(list: &Value) -> Vec<(String, String, String)> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["from"].as_str().unwrap().to_string(),
                e["to"].as_str().unwrap().to_string(),
                e["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn edge(from: &str, to: &str, kind: &str) -> (String, String, String) {
    (from.to_string(), to.to_string(), kind.to_string())
}

fn setup() -> (TestEnv, TwoWindows) {
    let env = TestEnv::start();
    let w = two_windows::send(&env);
    (env, w)
}

#[test]
fn the_diff_names_what_was_added_removed_and_changed_with_both_values() {
    let (env, w) = setup();
    let d = env.get_json(&format!("/api/topology/diff?{}", w.query()));
    assert_eq!(d["base"]["since_unix_nanos"], w.base.since_unix_nanos);
    assert_eq!(d["window"]["until_unix_nanos"], w.new.until_unix_nanos);
    assert_eq!(
        ids(&d["nodes_added"]),
        ["destination:rabbitmq:refunds", "service:shipping"]
    );
    assert_eq!(ids(&d["nodes_removed"]), ["service:billing"]);
    assert_eq!(d["nodes_unchanged"], 2);
    assert_eq!(
        edges(&d["edges_added"]),
        [
            edge(ORDERS, "service:shipping", "consume"),
            edge(CHECKOUT, "destination:rabbitmq:refunds", "publish"),
        ]
    );
    assert_eq!(
        edges(&d["edges_removed"]),
        [edge(ORDERS, "service:billing", "consume")]
    );
    let removed = &d["edges_removed"][0];
    assert_eq!(removed["base"]["count"], 20);
    assert!(removed["new"].is_null());
    assert_eq!(d["edges_added"][0]["new"]["count"], 60);
    assert!(d["edges_added"][0]["base"].is_null());
    // Three times the rate on the same edge: changed, with the base and the new values.
    assert_eq!(
        edges(&d["edges_changed"]),
        [edge(CHECKOUT, ORDERS, "publish")]
    );
    let changed = &d["edges_changed"][0];
    assert_eq!(
        (
            changed["base"]["count"].as_i64(),
            changed["new"]["count"].as_i64()
        ),
        (Some(20), Some(60))
    );
    let c = &changed["changes"][0];
    assert_eq!(c["measure"], "rate");
    let (base, new) = (c["base"].as_f64().unwrap(), c["new"].as_f64().unwrap());
    assert!((base - 20.0 / 600.0).abs() < 1e-9, "{c}");
    assert!((new - 60.0 / 600.0).abs() < 1e-9, "{c}");
    assert!((c["change"].as_f64().unwrap() - 2.0).abs() < 1e-9, "{c}");
    assert_eq!(d["thresholds"]["rate_change"], 0.5);
    assert_eq!(d["thresholds"]["error_change"], 0.05);
    assert_eq!(d["thresholds"]["latency_change"], 0.5);

    // A threshold above the change: the edge is unchanged.
    let d = env.get_json(&format!("/api/topology/diff?{}&rate_change=2.5", w.query()));
    assert_eq!(d["edges_changed"].as_array().unwrap().len(), 0);
    assert_eq!(d["edges_unchanged"], 1);
    assert_eq!(d["thresholds"]["rate_change"], 2.5);

    // Without a base window: the period of the same length just before, here the same one.
    let only_new = env.get_json(&format!("/api/topology/diff?{}", w.new.query()));
    let explicit = env.get_json(&format!("/api/topology/diff?{}", w.query()));
    assert_eq!(only_new, explicit);

    // The reverse comparison swaps added and removed.
    let back = env.get_json(&format!(
        "/api/topology/diff?base_since={}&base_until={}&since={}&until={}",
        w.new.since(),
        w.new.until(),
        w.base.since(),
        w.base.until()
    ));
    assert_eq!(ids(&back["nodes_added"]), ["service:billing"]);
    assert_eq!(
        edges(&back["edges_removed"]),
        edges(&explicit["edges_added"])
    );
}

#[test]
fn bad_windows_thresholds_and_formats_get_a_clear_400_and_change_nothing() {
    let (env, w) = setup();
    let cases = [
        (
            format!("base_since=yesterday&{}", w.new.query()),
            "base_since must be a date",
        ),
        (
            format!("base_until=soon&{}", w.new.query()),
            "base_until must be a date",
        ),
        (
            format!("base_since={}&base_until={}", w.new.until(), w.new.since()),
            "base_since must not be after base_until",
        ),
        (
            format!("since={}&until={}", w.new.until(), w.new.since()),
            "since must not be after until",
        ),
        (
            format!("{}&rate_change=lots", w.query()),
            "rate_change must be a number",
        ),
        (
            format!("{}&error_change=-0.1", w.query()),
            "error_change must be a number >= 0",
        ),
        (
            format!("{}&format=xml", w.query()),
            "format must be json or dot",
        ),
    ];
    for (query, message) in cases {
        let reply = env.get(&format!("/api/topology/diff?{query}"));
        let (status, body) = reply.answer();
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"], "bad_request", "{query}: {body}");
        assert!(
            body["message"].as_str().unwrap().starts_with(message),
            "{query}: {body}"
        );
    }
    let reply = env.get(&format!(
        "/api/topology/diff.dot?{}&latency_change=x",
        w.query()
    ));
    assert_eq!(reply.status, 400);
    assert_eq!(env.spans_in_store(), 20 * 2 + 60 * 2 + 5);
}

#[test]
fn the_dot_marks_added_green_removed_grey_dashed_and_changed_bold() {
    let (env, w) = setup();
    let reply = env.get(&format!("/api/topology/diff.dot?{}", w.query()));
    assert_eq!(reply.status, 200);
    assert!(
        reply.content_type().starts_with("text/vnd.graphviz"),
        "{}",
        reply.content_type()
    );
    let dot = reply.text();
    assert_eq!(
        env.get(&format!("/api/topology/diff?{}&format=dot", w.query()))
            .text(),
        dot
    );
    let line = |needle: &str| -> String {
        dot.lines()
            .find(|l| l.trim_start().starts_with(needle))
            .unwrap_or_else(|| panic!("no line starting {needle} in\n{dot}"))
            .to_string()
    };
    let shipping = line("\"service:shipping\" [");
    assert!(
        shipping.contains("diff=\"added\"") && shipping.contains("#188038"),
        "{shipping}"
    );
    let billing = line("\"service:billing\" [");
    assert!(
        billing.contains("diff=\"removed\"") && billing.contains("dashed"),
        "{billing}"
    );
    let gone = line(&format!("\"{ORDERS}\" -> \"service:billing\""));
    assert!(
        gone.contains("style=dashed") && gone.contains("(gone)"),
        "{gone}"
    );
    let changed = line(&format!("\"{CHECKOUT}\" -> \"{ORDERS}\""));
    assert!(
        changed.contains("style=bold") && changed.contains("rate +200%"),
        "{changed}"
    );
    let same = line(&format!("\"{CHECKOUT}\" ["));
    assert!(same.contains("diff=\"same\""), "{same}");
    // Graphviz reads it.
    if let Ok(out) = std::process::Command::new("dot")
        .arg("-Tsvg")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(dot.as_bytes())?;
            c.wait_with_output()
        })
    {
        assert!(out.status.success(), "dot refused:\n{dot}");
    }
}

#[test]
fn export_diff_prints_what_the_api_answers() {
    let (env, w) = setup();
    let api = env.get_json(&format!("/api/topology/diff?{}", w.query()));
    let args = [
        "--diff",
        "--base-since",
        &w.base.since(),
        "--base-until",
        &w.base.until(),
        "--since",
        &w.new.since(),
        "--until",
        &w.new.until(),
    ];
    let mut json_args = args.to_vec();
    json_args.extend(["--format", "json"]);
    let (status, out, err) = env.export_cli(&json_args);
    assert!(status.success(), "{err}");
    let exported: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(exported, api);
    let (status, dot, err) = env.export_cli(&args);
    assert!(status.success(), "{err}");
    assert_eq!(
        dot,
        env.get(&format!("/api/topology/diff.dot?{}", w.query()))
            .text()
    );
    let (status, _, err) = env.export_cli(&["--base-since", "2026-01-01"]);
    assert!(!status.success(), "--base-since needs --diff");
    assert!(err.contains("--diff"), "{err}");
}
