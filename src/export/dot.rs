//! Graphviz DOT: one node per service, destination and external peer, shapes by kind,
//! clusters by broker system, edge labels with counts, in sorted order. Each node and edge
//! carries `seen_in` (`traces`, `broker` or `traces,broker`); what only a broker reported is
//! dashed; what only a `--declared` AsyncAPI document names (`seen_in="declared"`) is dotted and
//! magenta, with an open arrowhead. A destination whose kind is known carries `entity`
//! (`topic`, `queue`, ...: see the topology's `entity`). A node in findings carries `findings` (their pattern names)
//! and a double outline.

use crate::model::{EdgeKind, NodeKind};
use crate::topology::declared::declared_only;
use crate::topology::{Node, SeenIn, Topology};
use std::collections::BTreeMap;
use std::fmt::Write;

/// A DOT ID that Graphviz reads back as exactly `text`. In a quoted ID only `\"` is an
/// escape (a backslash stays a backslash, and one before the closing quote would escape it),
/// so text with a backslash or a control character becomes an HTML-like ID `<...>`, whose
/// entities are decoded instead. Graphviz copies an ID into its SVG output (`<title>`) with
/// its entities as they are, and XML 1.0 forbids the C0 controls but tab, newline and
/// carriage return even as references: those (and DEL) are written as their Unicode control
/// pictures (U+2400..U+2421, `␀`..`␡`), so the SVG of any name parses. A name that holds the
/// picture itself reads back the same as one that holds the control character.
pub fn id(text: &str) -> String {
    if !text.contains('\\') && !text.chars().any(char::is_control) {
        return format!("\"{}\"", text.replace('"', "\\\""));
    }
    let mut out = String::with_capacity(text.len() + 2);
    out.push('<');
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c if c.is_control() => match control_picture(c) {
                Some(p) => out.push(p),
                None => out.push_str(&format!("&#{};", c as u32)),
            },
            c => out.push(c),
        }
    }
    out.push('>');
    out
}

/// The visible stand-in of a control character that XML 1.0 forbids (C0 but tab, newline and
/// carriage return; DEL too, which XML allows but shows as nothing).
pub fn control_picture(c: char) -> Option<char> {
    match c {
        '\t' | '\n' | '\r' => None,
        '\u{0}'..='\u{1f}' => char::from_u32(0x2400 + c as u32),
        '\u{7f}' => Some('\u{2421}'),
        _ => None,
    }
}

/// Escapes a string for a double-quoted DOT label (escString: `\\` shows one backslash).
pub fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `seen_in` as one attribute value.
fn seen_in(list: &[SeenIn]) -> String {
    let names: Vec<&str> = list.iter().map(|s| s.as_str()).collect();
    quote(&names.join(","))
}

/// The findings a node takes part in, by pattern name, as one attribute value (empty: none).
fn findings_of(topo: &Topology) -> BTreeMap<&str, Vec<&'static str>> {
    let mut by_node: BTreeMap<&str, Vec<&'static str>> = BTreeMap::new();
    for f in &topo.findings {
        for n in &f.nodes {
            let list = by_node.entry(n.as_str()).or_default();
            if !list.contains(&f.pattern) {
                list.push(f.pattern);
            }
        }
    }
    for list in by_node.values_mut() {
        list.sort_unstable();
    }
    by_node
}

fn node_line(n: &Node, findings: &BTreeMap<&str, Vec<&'static str>>) -> String {
    let (shape, style) = match n.kind {
        NodeKind::Service if declared_only(&n.seen_in) => ("box", "rounded,filled,dotted"),
        NodeKind::Destination if declared_only(&n.seen_in) => ("cylinder", "filled,dotted"),
        NodeKind::Service if n.broker_only() => ("box", "rounded,filled,dashed"),
        NodeKind::Service => ("box", "rounded,filled"),
        NodeKind::Destination if n.broker_only() => ("cylinder", "filled,dashed"),
        NodeKind::Destination => ("cylinder", "filled"),
        NodeKind::External => ("ellipse", "dashed"),
    };
    let fill = match n.kind {
        NodeKind::Service => "#e8f0fe",
        NodeKind::Destination => "#fef7e0",
        NodeKind::External => "#ffffff",
    };
    let mut line = format!(
        "{} [label={}, shape={shape}, style={}, fillcolor={}, seen_in={}",
        id(&n.id),
        quote(&n.name),
        quote(style),
        quote(fill),
        seen_in(&n.seen_in)
    );
    if let Some(Some(entity)) = n.entity {
        let _ = write!(line, ", entity={}", quote(entity.as_str()));
    }
    if let Some(patterns) = findings.get(n.id.as_str()) {
        let _ = write!(
            line,
            ", findings={}, peripheries=2",
            quote(&patterns.join(","))
        );
    }
    line.push_str("];");
    line
}

pub fn to_dot(topo: &Topology) -> String {
    let mut out = String::new();
    out.push_str("digraph switchyard {\n");
    out.push_str("  rankdir=LR;\n  graph [fontname=\"Helvetica\"];\n  node [fontname=\"Helvetica\", fontsize=11];\n  edge [fontname=\"Helvetica\", fontsize=9];\n");
    let findings = findings_of(topo);
    let mut nodes: Vec<&Node> = topo.nodes.iter().collect();
    nodes.sort_by(|a, b| a.id.cmp(&b.id));
    let mut by_system: BTreeMap<&str, Vec<&Node>> = BTreeMap::new();
    for n in &nodes {
        match (n.kind, n.system.as_deref()) {
            (NodeKind::Destination, Some(system)) => by_system.entry(system).or_default().push(n),
            _ => {
                let _ = writeln!(out, "  {}", node_line(n, &findings));
            }
        }
    }
    for (i, (system, members)) in by_system.iter().enumerate() {
        let _ = writeln!(
            out,
            "  subgraph cluster_{i} {{\n    label={};\n    style=\"rounded,dashed\";",
            quote(system)
        );
        for n in members {
            let _ = writeln!(out, "    {}", node_line(n, &findings));
        }
        out.push_str("  }\n");
    }
    for e in &topo.edges {
        let mut label = format!("{} {}", e.kind.as_str(), e.count);
        if e.errors > 0 {
            let _ = write!(label, " ({} errors)", e.errors);
        }
        let style = match e.kind {
            _ if declared_only(&e.seen_in) => ", style=dotted, color=\"#d01884\", arrowhead=empty",
            EdgeKind::DeadLetter => ", style=dashed, color=\"#9334e6\"",
            _ if e.broker_only() => ", style=dashed",
            EdgeKind::Call => ", style=dashed",
            EdgeKind::Route => ", style=dotted",
            _ => "",
        };
        let color = if e.errors > 0 {
            ", color=\"#d93025\""
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "  {} -> {} [label={}{style}{color}, seen_in={}];",
            id(&e.from),
            id(&e.to),
            quote(&label),
            seen_in(&e.seen_in)
        );
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::EdgeKind::*;
    use crate::topology::detect::testing::topo;

    #[test]
    fn ids_survive_backslashes_and_quotes() {
        assert_eq!(id("service:a\"b"), "\"service:a\\\"b\"");
        assert_eq!(id("service:CORP\\billing"), "<service:CORP\\billing>");
        assert_eq!(id("x\\<&>\n"), "<x\\&lt;&amp;&gt;&#10;>");
        assert_eq!(
            id("a\u{1}b\u{1b}\u{7f}\u{85}"),
            "<a\u{2401}b\u{241b}\u{2421}&#133;>"
        );
    }

    #[test]
    fn escapes_and_orders() {
        assert_eq!(quote("a\"b\\c\nd"), "\"a\\\"b\\\\c\\nd\"");
        let t = topo(&[
            ("s:b", "d:x", Publish, 2),
            ("s:a", "d:x", Publish, 1),
            ("d:x", "s:c", Consume, 3),
        ]);
        let dot = to_dot(&t);
        let a = dot.find("\"s:a\" -> \"d:x\"").unwrap();
        let b = dot.find("\"s:b\" -> \"d:x\"").unwrap();
        assert!(a < b);
        assert!(dot.contains("label=\"consume 3\""));
        assert!(dot.contains("subgraph cluster_0"));
        assert_eq!(dot, to_dot(&t));
    }

    #[test]
    fn broker_only_is_dashed_and_findings_are_marked() {
        let mut t = topo(&[("s:a", "d:x", Publish, 2), ("d:x", "s:b", Consume, 2)]);
        // What only a broker reports: a queue and its consumer, no traced message.
        let mut queue = t.nodes[0].clone();
        queue.id = "d:idle".into();
        queue.name = "idle".into();
        queue.kind = NodeKind::Destination;
        queue.seen_in = vec![SeenIn::Broker];
        t.nodes.push(queue);
        let mut edge = t.edges[0].clone();
        edge.from = "d:idle".into();
        edge.to = "s:b".into();
        edge.kind = Consume;
        edge.seen_in = vec![SeenIn::Broker];
        t.edges.push(edge);
        t.findings.push(crate::topology::detect::Finding {
            pattern: "idle_subscriber",
            nodes: vec!["d:idle".into(), "s:b".into()],
            description: String::new(),
        });
        let dot = to_dot(&t);
        let line = |needle: &str| {
            dot.lines()
                .find(|l| l.trim_start().starts_with(needle))
                .unwrap_or_else(|| panic!("{needle} in {dot}"))
                .to_string()
        };
        let idle = line("\"d:idle\" [");
        assert!(idle.contains("style=\"filled,dashed\""), "{idle}");
        assert!(idle.contains("seen_in=\"broker\""), "{idle}");
        assert!(idle.contains("findings=\"idle_subscriber\""), "{idle}");
        let traced = line("\"d:x\" [");
        assert!(!traced.contains("dashed"), "{traced}");
        assert!(!traced.contains("findings="), "{traced}");
        let b = line("\"s:b\" [");
        assert!(b.contains("findings="), "{b}");
        let broker_edge = line("\"d:idle\" -> \"s:b\"");
        assert!(broker_edge.contains("style=dashed"), "{broker_edge}");
        assert!(broker_edge.contains("seen_in=\"broker\""), "{broker_edge}");
        let traced_edge = line("\"d:x\" -> \"s:b\"");
        assert!(!traced_edge.contains("dashed"), "{traced_edge}");
    }
}
