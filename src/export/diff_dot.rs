//! Graphviz DOT of a diff between two windows: the newer window's graph plus what the base
//! window had and the newer one lost. Each node and edge carries `diff` (`added`, `removed`,
//! `changed` or `same`): added ones are green, removed ones grey and dashed, changed edges
//! bold with what moved in their label. Deterministic: nodes by id, edges by key.

use super::dot::{id, quote};
use crate::model::NodeKind;
use crate::topology::diff::{Change, Diff, Measure, NodeSummary};
use crate::topology::{diff, Topology};
use std::collections::BTreeMap;
use std::fmt::Write;

const ADDED: &str = "#188038";
const REMOVED: &str = "#9aa0a6";
const CHANGED: &str = "#e37400";

fn shape(kind: NodeKind) -> &'static str {
    match kind {
        NodeKind::Service => "box",
        NodeKind::Destination => "cylinder",
        NodeKind::External => "ellipse",
    }
}

fn node_line(n: &NodeSummary, state: &str) -> String {
    let style = match (n.kind, state) {
        (_, "removed") => "rounded,dashed",
        (NodeKind::External, _) => "dashed",
        (NodeKind::Service, _) => "rounded",
        _ => "solid",
    };
    let color = match state {
        "added" => format!(", color=\"{ADDED}\", fontcolor=\"{ADDED}\", penwidth=2"),
        "removed" => format!(", color=\"{REMOVED}\", fontcolor=\"{REMOVED}\""),
        _ => String::new(),
    };
    format!(
        "{} [label={}, shape={}, style={}{color}, diff={}];",
        id(&n.id),
        quote(&n.name),
        shape(n.kind),
        quote(style),
        quote(state)
    )
}

/// One change as people read it: `rate +150%`, `errors +12.0 pts`, `p99 -40%`.
pub fn change_text(c: &Change) -> String {
    let name = match c.measure {
        Measure::Rate => "rate",
        Measure::ErrorRatio => "errors",
        Measure::LatencyP99 => "p99",
    };
    match (c.measure, c.change) {
        (Measure::ErrorRatio, Some(d)) => format!("{name} {:+.1} pts", d * 100.0),
        (_, Some(r)) => format!("{name} {:+.0}%", r * 100.0),
        (_, None) => format!("{name} from 0"),
    }
}

pub fn to_dot(new: &Topology, d: &Diff) -> String {
    let mut out = String::from("digraph switchyard_diff {\n");
    out.push_str("  rankdir=LR;\n  graph [fontname=\"Helvetica\"];\n  node [fontname=\"Helvetica\", fontsize=11];\n  edge [fontname=\"Helvetica\", fontsize=9];\n");
    let added: BTreeMap<&str, ()> = d.nodes_added.iter().map(|n| (n.id.as_str(), ())).collect();
    let mut nodes: Vec<(NodeSummary, &str)> = new
        .nodes
        .iter()
        .map(|n| {
            let state = if added.contains_key(n.id.as_str()) {
                "added"
            } else {
                "same"
            };
            (diff::summary(n), state)
        })
        .collect();
    nodes.extend(d.nodes_removed.iter().map(|n| (n.clone(), "removed")));
    nodes.sort_by(|a, b| a.0.id.cmp(&b.0.id));
    for (n, state) in &nodes {
        let _ = writeln!(out, "  {}", node_line(n, state));
    }
    let key =
        |from: &str, to: &str, kind: &str| (from.to_string(), to.to_string(), kind.to_string());
    let mut marked: BTreeMap<(String, String, String), String> = BTreeMap::new();
    for e in &d.edges_added {
        let label = format!(
            "{} {} (new)",
            e.kind.as_str(),
            e.new.as_ref().map_or(0, |f| f.count)
        );
        let attrs = format!(
            "label={}, color=\"{ADDED}\", fontcolor=\"{ADDED}\", penwidth=2, diff=\"added\"",
            quote(&label)
        );
        marked.insert(key(&e.from, &e.to, e.kind.as_str()), attrs);
    }
    for e in &d.edges_removed {
        let label = format!(
            "{} {} (gone)",
            e.kind.as_str(),
            e.base.as_ref().map_or(0, |f| f.count)
        );
        let attrs = format!("label={}, style=dashed, color=\"{REMOVED}\", fontcolor=\"{REMOVED}\", diff=\"removed\"", quote(&label));
        marked.insert(key(&e.from, &e.to, e.kind.as_str()), attrs);
    }
    for e in &d.edges_changed {
        let what: Vec<String> = e.changes.iter().map(change_text).collect();
        let label = format!(
            "{} {} ({})",
            e.kind.as_str(),
            e.new.as_ref().map_or(0, |f| f.count),
            what.join(", ")
        );
        let attrs = format!(
            "label={}, style=bold, color=\"{CHANGED}\", penwidth=2.5, diff=\"changed\"",
            quote(&label)
        );
        marked.insert(key(&e.from, &e.to, e.kind.as_str()), attrs);
    }
    for e in &new.edges {
        let k = key(&e.from, &e.to, e.kind.as_str());
        marked.entry(k).or_insert_with(|| {
            let label = format!("{} {}", e.kind.as_str(), e.count);
            format!("label={}, diff=\"same\"", quote(&label))
        });
    }
    for ((from, to, _), attrs) in &marked {
        let _ = writeln!(out, "  {} -> {} [{attrs}];", id(from), id(to));
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::EdgeKind::*;
    use crate::topology::detect::testing::topo;
    use crate::topology::diff::Thresholds;

    #[test]
    fn added_green_removed_grey_dashed_changed_bold() {
        let base = topo(&[("s:a", "d:q", Publish, 10), ("d:q", "s:b", Consume, 10)]);
        let new = topo(&[("s:a", "d:q", Publish, 40), ("d:q", "s:\"c\"", Consume, 10)]);
        let d = diff::diff(&base, &new, &Thresholds::DEFAULT);
        let dot = to_dot(&new, &d);
        assert!(dot.starts_with("digraph switchyard_diff {\n"), "{dot}");
        assert!(dot.contains(&format!("\"s:\\\"c\\\"\" [label=\"\\\"c\\\"\", shape=box, style=\"rounded\", color=\"{ADDED}\"")), "{dot}");
        assert!(
            dot.contains(&format!(
                "\"s:b\" [label=\"b\", shape=box, style=\"rounded,dashed\", color=\"{REMOVED}\""
            )),
            "{dot}"
        );
        assert!(dot.contains(&format!("\"d:q\" -> \"s:b\" [label=\"consume 10 (gone)\", style=dashed, color=\"{REMOVED}\"")), "{dot}");
        assert!(
            dot.contains("\"s:a\" -> \"d:q\" [label=\"publish 40 (rate +300%)\", style=bold"),
            "{dot}"
        );
        assert!(
            dot.contains("\"d:q\" -> \"s:\\\"c\\\"\" [label=\"consume 10 (new)\""),
            "{dot}"
        );
        assert!(
            dot.contains("\"d:q\" [label=\"q\", shape=cylinder, style=\"solid\", diff=\"same\"];"),
            "{dot}"
        );
        // Deterministic.
        assert_eq!(
            dot,
            to_dot(&new, &diff::diff(&base, &new, &Thresholds::DEFAULT))
        );
    }
}
