//! Change over time: two topologies (a base window and a newer one) compared by node id and
//! by edge key `(from, to, kind)`. Nodes and edges are added or removed; an edge present in
//! both is changed when its rate, error ratio or p99 latency moved beyond a threshold. Pure:
//! both topologies come from [`super::build`].
//!
//! Invariants: every node id and edge key of the two windows is in exactly one of added,
//! removed, changed or unchanged; the lists are sorted (nodes by id, edges by key).

use super::{Edge, Node, SeenIn, Topology};
use crate::model::{EdgeKind, NodeKind};
use serde::Serialize;
use std::collections::BTreeMap;

/// How far a figure of an edge must move to count as a change. Defaults:
/// [`Thresholds::DEFAULT`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Thresholds {
    /// Relative change of the rate over the window (0.5: 50 % up or down).
    pub rate_change: f64,
    /// Absolute change of the error ratio, errors per message (0.05: 5 points).
    pub error_change: f64,
    /// Relative change of the p99 latency (0.5: 50 % up or down).
    pub latency_change: f64,
}

impl Thresholds {
    pub const DEFAULT: Thresholds = Thresholds {
        rate_change: 0.5,
        error_change: 0.05,
        latency_change: 0.5,
    };

    /// The defaults with what was given instead; each must be a finite number >= 0.
    pub fn with(
        rate: Option<f64>,
        error: Option<f64>,
        latency: Option<f64>,
    ) -> Result<Thresholds, String> {
        let pick = |name: &str, v: Option<f64>, default: f64| match v {
            None => Ok(default),
            Some(v) if v.is_finite() && v >= 0.0 => Ok(v),
            Some(v) => Err(format!("{name} must be a number >= 0, not {v}")),
        };
        Ok(Thresholds {
            rate_change: pick("rate_change", rate, Self::DEFAULT.rate_change)?,
            error_change: pick("error_change", error, Self::DEFAULT.error_change)?,
            latency_change: pick("latency_change", latency, Self::DEFAULT.latency_change)?,
        })
    }
}

impl Default for Thresholds {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A window's bounds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Bounds {
    pub since_unix_nanos: u64,
    pub until_unix_nanos: u64,
}

/// A node as the diff names it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeSummary {
    pub id: String,
    pub kind: NodeKind,
    pub name: String,
    pub system: Option<String>,
    pub namespace: Option<String>,
    pub seen_in: Vec<SeenIn>,
}

/// An edge's figures in one window.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EdgeFigures {
    pub count: i64,
    pub errors: i64,
    pub rate_per_sec: f64,
    /// Errors per message; null without messages.
    pub error_ratio: Option<f64>,
    pub p99_micros: Option<f64>,
    pub seen_in: Vec<SeenIn>,
}

/// Which figure moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    Rate,
    ErrorRatio,
    LatencyP99,
}

/// One figure that moved beyond its threshold.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Change {
    pub measure: Measure,
    pub base: f64,
    pub new: f64,
    /// Relative for rate and latency (`(new - base) / base`; null when base is 0), absolute
    /// for the error ratio (`new - base`).
    pub change: Option<f64>,
}

/// An edge added (no `base`), removed (no `new`) or changed (both, with `changes`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EdgeDiff {
    pub from: String,
    pub to: String,
    pub kind: EdgeKind,
    pub base: Option<EdgeFigures>,
    pub new: Option<EdgeFigures>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
}

/// `/api/topology/diff`'s answer.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Diff {
    pub base: Bounds,
    pub window: Bounds,
    pub thresholds: Thresholds,
    pub nodes_added: Vec<NodeSummary>,
    pub nodes_removed: Vec<NodeSummary>,
    pub edges_added: Vec<EdgeDiff>,
    pub edges_removed: Vec<EdgeDiff>,
    pub edges_changed: Vec<EdgeDiff>,
    pub nodes_unchanged: usize,
    pub edges_unchanged: usize,
}

impl Diff {
    /// Nothing added, removed or changed.
    pub fn is_empty(&self) -> bool {
        self.nodes_added.is_empty()
            && self.nodes_removed.is_empty()
            && self.edges_added.is_empty()
            && self.edges_removed.is_empty()
            && self.edges_changed.is_empty()
    }
}

fn bounds(t: &Topology) -> Bounds {
    Bounds {
        since_unix_nanos: t.since_unix_nanos,
        until_unix_nanos: t.until_unix_nanos,
    }
}

pub fn summary(n: &Node) -> NodeSummary {
    NodeSummary {
        id: n.id.clone(),
        kind: n.kind,
        name: n.name.clone(),
        system: n.system.clone(),
        namespace: n.namespace.clone(),
        seen_in: n.seen_in.clone(),
    }
}

pub fn figures(e: &Edge) -> EdgeFigures {
    EdgeFigures {
        count: e.count,
        errors: e.errors,
        rate_per_sec: e.rate_per_sec,
        error_ratio: (e.count > 0).then(|| e.errors as f64 / e.count as f64),
        p99_micros: e.latency.p99_micros,
        seen_in: e.seen_in.clone(),
    }
}

/// `(new - base) / base`, or `None` from zero.
fn relative(base: f64, new: f64) -> Option<f64> {
    (base > 0.0).then(|| (new - base) / base)
}

/// The figures of an edge in both windows that moved beyond their thresholds.
pub fn changes(base: &EdgeFigures, new: &EdgeFigures, t: &Thresholds) -> Vec<Change> {
    let mut out = Vec::new();
    let (b, n) = (base.rate_per_sec, new.rate_per_sec);
    let moved = match relative(b, n) {
        Some(r) => r.abs() > t.rate_change,
        None => n > 0.0,
    };
    if moved {
        out.push(Change {
            measure: Measure::Rate,
            base: b,
            new: n,
            change: relative(b, n),
        });
    }
    if let (Some(b), Some(n)) = (base.error_ratio, new.error_ratio) {
        if (n - b).abs() > t.error_change {
            out.push(Change {
                measure: Measure::ErrorRatio,
                base: b,
                new: n,
                change: Some(n - b),
            });
        }
    }
    if let (Some(b), Some(n)) = (base.p99_micros, new.p99_micros) {
        let moved = match relative(b, n) {
            Some(r) => r.abs() > t.latency_change,
            None => n > 0.0,
        };
        if moved {
            out.push(Change {
                measure: Measure::LatencyP99,
                base: b,
                new: n,
                change: relative(b, n),
            });
        }
    }
    out
}

type EdgeKey<'a> = (&'a str, &'a str, EdgeKind);

fn key(e: &Edge) -> EdgeKey<'_> {
    (e.from.as_str(), e.to.as_str(), e.kind)
}

/// Compares `base` (the older window) with `new`.
pub fn diff(base: &Topology, new: &Topology, t: &Thresholds) -> Diff {
    let mut out = Diff {
        base: bounds(base),
        window: bounds(new),
        thresholds: *t,
        nodes_added: Vec::new(),
        nodes_removed: Vec::new(),
        edges_added: Vec::new(),
        edges_removed: Vec::new(),
        edges_changed: Vec::new(),
        nodes_unchanged: 0,
        edges_unchanged: 0,
    };
    let mut nodes: BTreeMap<&str, (Option<&Node>, Option<&Node>)> = BTreeMap::new();
    for n in &base.nodes {
        nodes.entry(&n.id).or_default().0 = Some(n);
    }
    for n in &new.nodes {
        nodes.entry(&n.id).or_default().1 = Some(n);
    }
    for pair in nodes.values() {
        match pair {
            (None, Some(n)) => out.nodes_added.push(summary(n)),
            (Some(b), None) => out.nodes_removed.push(summary(b)),
            _ => out.nodes_unchanged += 1,
        }
    }
    let mut edges: BTreeMap<EdgeKey, (Option<&Edge>, Option<&Edge>)> = BTreeMap::new();
    for e in &base.edges {
        edges.entry(key(e)).or_default().0 = Some(e);
    }
    for e in &new.edges {
        edges.entry(key(e)).or_default().1 = Some(e);
    }
    for ((from, to, kind), pair) in edges {
        let item = |base: Option<EdgeFigures>, new: Option<EdgeFigures>, changes| EdgeDiff {
            from: from.to_string(),
            to: to.to_string(),
            kind,
            base,
            new,
            changes,
        };
        match pair {
            (None, Some(n)) => out.edges_added.push(item(None, Some(figures(n)), vec![])),
            (Some(b), None) => out.edges_removed.push(item(Some(figures(b)), None, vec![])),
            (Some(b), Some(n)) => {
                let (b, n) = (figures(b), figures(n));
                let moved = changes(&b, &n, t);
                if moved.is_empty() {
                    out.edges_unchanged += 1;
                } else {
                    out.edges_changed.push(item(Some(b), Some(n), moved));
                }
            }
            (None, None) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::EdgeKind::*;
    use crate::model::TimeWindow;
    use crate::topology::build;
    use crate::topology::detect::testing::rows;

    const MINUTE: u64 = 60_000_000_000;

    fn topo(edges: &[(&str, &str, EdgeKind, i64)], errors: &[i64], p99: &[u64]) -> Topology {
        let mut r = rows(edges);
        for (i, e) in r.edges.iter_mut().enumerate() {
            e.errors = errors.get(i).copied().unwrap_or(0);
            if let Some(&micros) = p99.get(i) {
                e.latency.add(micros, e.count.max(1));
                e.latency_sum_micros = micros as i64 * e.count;
            }
        }
        build(r, TimeWindow::new(0, 60 * MINUTE).unwrap())
    }

    #[test]
    fn nodes_and_edges_added_and_removed_by_id_and_key() {
        let base = topo(
            &[("s:a", "d:q", Publish, 10), ("d:q", "s:b", Consume, 10)],
            &[],
            &[],
        );
        let new = topo(
            &[("s:a", "d:q", Publish, 10), ("d:q", "s:c", Consume, 10)],
            &[],
            &[],
        );
        let d = diff(&base, &new, &Thresholds::DEFAULT);
        let ids = |l: &[NodeSummary]| l.iter().map(|n| n.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&d.nodes_added), ["s:c"]);
        assert_eq!(ids(&d.nodes_removed), ["s:b"]);
        assert_eq!(d.nodes_unchanged, 2);
        assert_eq!(d.edges_added.len(), 1);
        assert_eq!(
            (d.edges_added[0].to.as_str(), d.edges_added[0].kind),
            ("s:c", Consume)
        );
        assert!(d.edges_added[0].base.is_none());
        assert_eq!(d.edges_removed[0].to, "s:b");
        assert_eq!(d.edges_removed[0].base.as_ref().unwrap().count, 10);
        assert!(d.edges_removed[0].new.is_none());
        assert_eq!((d.edges_changed.len(), d.edges_unchanged), (0, 1));
        assert!(!d.is_empty());
        assert!(diff(&new, &new, &Thresholds::DEFAULT).is_empty());
    }

    #[test]
    fn the_same_pair_of_nodes_with_another_kind_is_another_edge() {
        let base = topo(&[("s:a", "s:b", Call, 5)], &[], &[]);
        let new = topo(&[("s:a", "s:b", Publish, 5)], &[], &[]);
        let d = diff(&base, &new, &Thresholds::DEFAULT);
        assert_eq!(
            (d.edges_added[0].kind, d.edges_removed[0].kind),
            (Publish, Call)
        );
        assert_eq!(d.nodes_unchanged, 2);
    }

    #[test]
    fn changes_beyond_each_threshold_and_not_within() {
        // Rate x3, error ratio 0 -> 10 %, p99 1 ms -> 4 ms on the first edge; the second moves
        // within every threshold (rate +40 %, ratio +4 points, p99 +40 %).
        let base = topo(
            &[("s:a", "d:q", Publish, 100), ("s:a", "d:r", Publish, 100)],
            &[0, 0],
            &[1_000, 1_000],
        );
        let new = topo(
            &[("s:a", "d:q", Publish, 300), ("s:a", "d:r", Publish, 140)],
            &[30, 5],
            &[4_000, 1_400],
        );
        let d = diff(&base, &new, &Thresholds::DEFAULT);
        assert_eq!((d.edges_changed.len(), d.edges_unchanged), (1, 1));
        let e = &d.edges_changed[0];
        assert_eq!(e.to, "d:q");
        let measures: Vec<Measure> = e.changes.iter().map(|c| c.measure).collect();
        assert_eq!(
            measures,
            [Measure::Rate, Measure::ErrorRatio, Measure::LatencyP99]
        );
        assert!((e.changes[0].change.unwrap() - 2.0).abs() < 1e-9);
        assert!((e.changes[1].change.unwrap() - 0.1).abs() < 1e-9);
        assert!(e.changes[2].change.unwrap() > 2.0, "{:?}", e.changes[2]);
        assert_eq!(e.base.as_ref().unwrap().count, 100);
        assert_eq!(e.new.as_ref().unwrap().count, 300);
        // Lower thresholds catch the second edge too; a drop counts like a rise.
        let strict = Thresholds::with(Some(0.3), Some(0.03), Some(0.3)).unwrap();
        assert_eq!(diff(&base, &new, &strict).edges_changed.len(), 2);
        let back = diff(&new, &base, &Thresholds::DEFAULT);
        assert_eq!(back.edges_changed.len(), 1);
        assert!(back.edges_changed[0].changes[0].change.unwrap() < -0.5);
    }

    #[test]
    fn thresholds_refuse_what_is_no_number_at_or_above_zero() {
        assert_eq!(
            Thresholds::with(None, None, None).unwrap(),
            Thresholds::DEFAULT
        );
        assert!(Thresholds::with(Some(-0.1), None, None).is_err());
        assert!(Thresholds::with(None, Some(f64::NAN), None).is_err());
        assert!(Thresholds::with(None, None, Some(f64::INFINITY)).is_err());
    }

    #[test]
    fn a_rate_from_zero_is_a_change_without_a_ratio() {
        let f = |count: i64, rate: f64| EdgeFigures {
            count,
            errors: 0,
            rate_per_sec: rate,
            error_ratio: None,
            p99_micros: None,
            seen_in: vec![],
        };
        let c = changes(&f(0, 0.0), &f(5, 1.0), &Thresholds::DEFAULT);
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].measure, c[0].change), (Measure::Rate, None));
        assert!(changes(&f(0, 0.0), &f(0, 0.0), &Thresholds::DEFAULT).is_empty());
    }
}
