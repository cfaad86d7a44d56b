//! Reading `/api/topology` JSON into comparable sets, and assertions with readable diffs.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

/// (kind, from, to)
pub type EdgeKey = (String, String, String);

pub fn service(name: &str) -> String {
    format!("service:{name}")
}

pub fn rabbit(name: &str) -> String {
    format!("destination:rabbitmq:{name}")
}

pub fn nats(name: &str) -> String {
    format!("destination:nats:{name}")
}

fn arr<'a>(t: &'a Value, key: &str) -> &'a Vec<Value> {
    t[key]
        .as_array()
        .unwrap_or_else(|| panic!("topology has no {key} array: {t}"))
}

fn s(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_string()
}

/// Edges as (kind, from, to) -> (count, errors).
pub fn edges(t: &Value) -> BTreeMap<EdgeKey, (i64, i64)> {
    let mut out = BTreeMap::new();
    for e in arr(t, "edges") {
        let key = (s(&e["kind"]), s(&e["from"]), s(&e["to"]));
        let value = (e["count"].as_i64().unwrap(), e["errors"].as_i64().unwrap());
        assert!(
            out.insert(key.clone(), value).is_none(),
            "edge {key:?} listed twice"
        );
    }
    out
}

/// One edge object; panics with the edge list when it is missing.
pub fn edge<'a>(t: &'a Value, kind: &str, from: &str, to: &str) -> &'a Value {
    arr(t, "edges")
        .iter()
        .find(|e| e["kind"] == kind && e["from"] == from && e["to"] == to)
        .unwrap_or_else(|| panic!("no {kind} edge {from} -> {to} in {:#?}", edges(t)))
}

pub fn nodes(t: &Value) -> BTreeMap<String, Value> {
    arr(t, "nodes")
        .iter()
        .map(|n| (s(&n["id"]), n.clone()))
        .collect()
}

pub fn node_ids(t: &Value) -> BTreeSet<String> {
    nodes(t).into_keys().collect()
}

/// Dependencies as (from, to, via) -> count (None when inferred).
pub fn dependencies(t: &Value) -> BTreeMap<(String, String, String), Option<i64>> {
    arr(t, "dependencies")
        .iter()
        .map(|d| {
            (
                (s(&d["from"]), s(&d["to"]), s(&d["via"])),
                d["count"].as_i64(),
            )
        })
        .collect()
}

/// Findings as (pattern, main node, every node).
pub fn findings(t: &Value) -> BTreeSet<(String, String, BTreeSet<String>)> {
    arr(t, "findings")
        .iter()
        .map(|f| {
            let nodes: Vec<String> = f["nodes"].as_array().unwrap().iter().map(s).collect();
            assert!(
                !f["description"].as_str().unwrap_or("").is_empty(),
                "finding without a description: {f}"
            );
            (
                s(&f["pattern"]),
                nodes.first().cloned().unwrap_or_default(),
                nodes.into_iter().collect(),
            )
        })
        .collect()
}

/// Asserts two collections are equal, listing what is missing and what is unexpected.
pub fn assert_same_set<T: Ord + Debug + Clone>(
    what: &str,
    actual: impl IntoIterator<Item = T>,
    expected: impl IntoIterator<Item = T>,
) {
    let actual: BTreeSet<T> = actual.into_iter().collect();
    let expected: BTreeSet<T> = expected.into_iter().collect();
    if actual != expected {
        let missing: Vec<&T> = expected.difference(&actual).collect();
        let unexpected: Vec<&T> = actual.difference(&expected).collect();
        panic!("{what} differ\n  missing:    {missing:#?}\n  unexpected: {unexpected:#?}");
    }
}

/// Asserts two topology documents are equal, naming the first differing section.
pub fn assert_same_topology(a: &Value, b: &Value, context: &str) {
    for key in ["nodes", "edges", "dependencies", "findings"] {
        assert_eq!(
            a[key], b[key],
            "{context}: `{key}` differ\n left: {:#}\nright: {:#}",
            a[key], b[key]
        );
    }
    assert_eq!(a, b, "{context}: topology documents differ");
}

/// Whether the topology holds nothing at all.
pub fn is_empty(t: &Value) -> bool {
    arr(t, "nodes").is_empty() && arr(t, "edges").is_empty()
}
