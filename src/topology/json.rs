//! `/api/topology`'s body, compact JSON: the document `serde_json` makes of a [`Topology`],
//! byte for byte, but the nodes, edges and findings that a broker part holds unchanged are
//! copied from the JSON made once per poll instead of serialised again (most of a large
//! broker's answer: thousands of queues, bindings and their findings).

use super::brokers::edge_key;
use super::{Edge, Finding, Node, Topology};
use crate::model::TimeWindow;
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
    let mut out = Vec::new();
    write(topo, &mut out, |_| false, &mut Vec::new())?;
    Ok(out)
}

/// An answer that holds for every window over the same minutes of the same stored rows: a
/// topology is read from per-minute rows, so what differs between two such windows (one that
/// ends "now" and another a second later) is the bounds themselves and, on the edges with
/// traced messages, the rate over the window and the active time and rate
/// ([`Edge::set_window`]). Those edges are written again for each window; the rest of the
/// body is copied.
pub struct Template {
    body: Vec<u8>,
    /// Where the bounds end (`{"since_unix_nanos":..,"until_unix_nanos":..` before it).
    head: usize,
    /// The edges that depend on the window, and where each was written.
    edges: Vec<(std::ops::Range<usize>, Edge)>,
}

impl Template {
    /// The answer for `topo` (what [`to_vec`] writes) and the template of it.
    pub fn of(topo: &Topology) -> serde_json::Result<Template> {
        let mut body = Vec::new();
        let mut at = Vec::new();
        write(topo, &mut body, Edge::depends_on_window, &mut at)?;
        let head = format!(
            "{{\"since_unix_nanos\":{},\"until_unix_nanos\":{}",
            topo.since_unix_nanos, topo.until_unix_nanos
        )
        .len();
        let edges = at
            .into_iter()
            .map(|(i, r)| (r, topo.edges[i].clone()))
            .collect();
        Ok(Template { body, head, edges })
    }

    /// The answer the template was made from.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The answer for `window`, which must cover the same minutes as the window the template
    /// was made for: byte for byte what building the topology for `window` from the same
    /// rows and writing it gives.
    pub fn answer(&self, window: &TimeWindow) -> serde_json::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.body.len() + 64);
        for piece in self.pieces(window)? {
            match piece {
                Piece::Copied(r) => out.extend_from_slice(&self.body[r]),
                Piece::Written(w) => out.extend_from_slice(&w),
            }
        }
        Ok(out)
    }

    /// [`Template::answer`] as pieces in order: ranges of [`Template::body`] to send as they
    /// are and the bytes written for `window` (the bounds and the edges that depend on
    /// them), so that an answer of megabytes is sent without copying the template into a
    /// buffer of its own first.
    pub fn pieces(&self, window: &TimeWindow) -> serde_json::Result<Vec<Piece>> {
        let mut pieces = Vec::with_capacity(2 * self.edges.len() + 2);
        let mut head = Vec::with_capacity(self.head + 8);
        write!(
            head,
            "{{\"since_unix_nanos\":{},\"until_unix_nanos\":{}",
            window.since_unix_nanos, window.until_unix_nanos
        )
        .map_err(serde_json::Error::io)?;
        pieces.push(Piece::Written(head));
        let mut copied = self.head;
        for (r, e) in &self.edges {
            if copied < r.start {
                pieces.push(Piece::Copied(copied..r.start));
            }
            let mut e = e.clone();
            e.set_window(window);
            pieces.push(Piece::Written(serde_json::to_vec(&e)?));
            copied = r.end;
        }
        pieces.push(Piece::Copied(copied..self.body.len()));
        Ok(pieces)
    }
}

/// A piece of a [`Template`]'s answer for one window.
#[derive(Debug)]
pub enum Piece {
    /// These bytes of the template's body, unchanged.
    Copied(std::ops::Range<usize>),
    /// Bytes written for the window.
    Written(Vec<u8>),
}

/// Writes `topo` as `serde_json` would, copying what equals its broker part's own JSON, and
/// notes (index, bytes) of each edge `mark` picks.
fn write(
    topo: &Topology,
    out: &mut Vec<u8>,
    mark: impl Fn(&Edge) -> bool,
    marked: &mut Vec<(usize, std::ops::Range<usize>)>,
) -> serde_json::Result<()> {
    let empty = Fragments::default();
    let part = topo.part.as_deref();
    let frag = part.map_or(&empty, |p| &p.json);
    // What is copied, and a generous guess at what is written afresh (traced edges, the
    // findings of the detectors that read traffic): growing a body of megabytes copies it.
    let fresh = (topo.nodes.len() + topo.edges.len() + topo.findings.len())
        .saturating_sub(frag.nodes.len() + frag.edges.len() + part.map_or(0, |p| p.findings.len()));
    out.reserve(
        frag.nodes
            .iter()
            .chain(&frag.edges)
            .map(|f| f.len() + 1)
            .sum::<usize>()
            + frag.findings.len()
            + 512 * (fresh + topo.dependencies.len())
            + 64 * 1024,
    );
    let io = serde_json::Error::io;
    write!(
        out,
        "{{\"since_unix_nanos\":{},\"until_unix_nanos\":{},\"nodes\":[",
        topo.since_unix_nanos, topo.until_unix_nanos
    )
    .map_err(io)?;
    let mut next = 0;
    for (i, n) in topo.nodes.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match part.and_then(|p| p.node_from(next, &n.id)) {
            Some((j, same)) if same == n => {
                out.extend_from_slice(&frag.nodes[j]);
                next = j + 1;
            }
            _ => serde_json::to_writer(&mut *out, n)?,
        }
    }
    out.extend_from_slice(b"],\"edges\":[");
    // Both lists are sorted by (from, to, kind): walk the part's beside the topology's.
    let (theirs, mut j) = (part.map_or(&[][..], |p| p.edges()), 0);
    for (i, e) in topo.edges.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        while j < theirs.len() && edge_key(&theirs[j]) < edge_key(e) {
            j += 1;
        }
        let start = out.len();
        match theirs.get(j) {
            Some(same) if same == e => out.extend_from_slice(&frag.edges[j]),
            _ => serde_json::to_writer(&mut *out, e)?,
        }
        if mark(e) {
            marked.push((i, start..out.len()));
        }
    }
    out.extend_from_slice(b"],\"dependencies\":");
    serde_json::to_writer(&mut *out, &topo.dependencies)?;
    out.extend_from_slice(b",\"findings\":[");
    // The part's findings come last, as the build appends them.
    let ours = part.map_or(&[][..], |p| &p.findings[..]);
    let all = &topo.findings;
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
        serde_json::to_writer(&mut *out, f)?;
    }
    if copied && !frag.findings.is_empty() {
        if !fresh.is_empty() {
            out.push(b',');
        }
        out.extend_from_slice(&frag.findings);
    }
    out.extend_from_slice(b"]}");
    Ok(())
}
