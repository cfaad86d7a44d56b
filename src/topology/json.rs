//! `/api/topology`'s body, compact JSON: the document `serde_json` makes of a [`Topology`],
//! byte for byte, but the nodes, edges and findings that a broker part holds unchanged are
//! copied from the JSON made once per poll instead of serialised again (most of a large
//! broker's answer: thousands of queues, bindings and their findings).

use super::brokers::edge_key;
use super::{Edge, Finding, Node, Topology};
use serde::Serialize;
use std::io::Write;

/// A broker part's nodes, edges and findings as JSON, made once when the part is built.
#[derive(Default)]
pub struct Fragments {
    nodes: Vec<Box<[u8]>>,
    edges: Vec<Box<[u8]>>,
    /// The findings, comma-separated (no brackets).
    findings: Vec<u8>,
}

fn json<T: Serialize>(v: &T) -> Box<[u8]> {
    serde_json::to_vec(v).unwrap_or_default().into_boxed_slice()
}

impl Fragments {
    pub(super) fn of(nodes: &[Node], edges: &[Edge], findings: &[Finding]) -> Fragments {
        let mut all = Vec::new();
        for (i, f) in findings.iter().enumerate() {
            if i > 0 {
                all.push(b',');
            }
            all.extend_from_slice(&json(f));
        }
        Fragments {
            nodes: nodes.iter().map(json).collect(),
            edges: edges.iter().map(json).collect(),
            findings: all,
        }
    }
}

/// The topology as compact JSON: what `serde_json::to_vec(topo)` gives, faster when it was
/// merged with a broker part. An item is copied only when it equals the part's own, so a
/// topology changed after its build is still written right.
pub fn to_vec(topo: &Topology) -> serde_json::Result<Vec<u8>> {
    let Some(part) = &topo.part else {
        return serde_json::to_vec(topo);
    };
    let frag = &part.json;
    let mut out: Vec<u8> = Vec::with_capacity(
        frag.nodes
            .iter()
            .chain(&frag.edges)
            .map(|f| f.len() + 1)
            .sum::<usize>()
            + frag.findings.len()
            + 64 * 1024,
    );
    let io = serde_json::Error::io;
    write!(
        out,
        "{{\"since_unix_nanos\":{},\"until_unix_nanos\":{},\"nodes\":[",
        topo.since_unix_nanos, topo.until_unix_nanos
    )
    .map_err(io)?;
    for (i, n) in topo.nodes.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match part.node(&n.id) {
            Some((j, same)) if same == n => out.extend_from_slice(&frag.nodes[j]),
            _ => serde_json::to_writer(&mut out, n)?,
        }
    }
    out.extend_from_slice(b"],\"edges\":[");
    // Both lists are sorted by (from, to, kind): walk the part's beside the topology's.
    let (theirs, mut j) = (part.edges(), 0);
    for (i, e) in topo.edges.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        while j < theirs.len() && edge_key(&theirs[j]) < edge_key(e) {
            j += 1;
        }
        match theirs.get(j) {
            Some(same) if same == e => out.extend_from_slice(&frag.edges[j]),
            _ => serde_json::to_writer(&mut out, e)?,
        }
    }
    out.extend_from_slice(b"],\"dependencies\":");
    serde_json::to_writer(&mut out, &topo.dependencies)?;
    out.extend_from_slice(b",\"findings\":[");
    // The part's findings come last, as the build appends them.
    let (all, ours) = (&topo.findings, &part.findings);
    let copied = all.len() >= ours.len() && all[all.len() - ours.len()..] == ours[..];
    let fresh = if copied {
        &all[..all.len() - ours.len()]
    } else {
        &all[..]
    };
    for (i, f) in fresh.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, f)?;
    }
    if copied && !frag.findings.is_empty() {
        if !fresh.is_empty() {
            out.push(b',');
        }
        out.extend_from_slice(&frag.findings);
    }
    out.extend_from_slice(b"]}");
    Ok(out)
}
