//! Pathways: a message's journey over several hops (A -> destination -> B -> destination -> C)
//! aggregated per sequence of nodes, with counts and the end-to-end and per-hop latencies
//! (the message's wait in each broker, each service's processing). Pure: the walks of each
//! trace come from [`crate::flow`]'s pairing ([`walk`]), over several traces when span links
//! tie them ([`linked`]: a batch consumer's spans link to the publishes); [`Ends`] cuts them
//! to the nodes asked for; [`Aggregate`] counts them. The store reads the traces, the web layer answers
//! `GET /api/pathways` and the service page's "downstream journeys".

pub mod aggregate;
pub mod linked;
#[cfg(test)]
mod tests;
pub mod walk;

pub use aggregate::{Aggregate, Pathway, Pathways, Scan, Spread, StepStats};

use crate::model::{NodeKey, StoredSpan};
use std::collections::HashMap;
use std::ops::Range;
use walk::Step;

/// Where a pathway starts and ends (topology node ids). `from` alone: every journey leaving
/// it; `to` alone: every journey from its start to `to`; both: the journeys from one to the
/// other. A service starts a pathway with the messages it publishes and ends it with the
/// messages it consumes; a destination takes in the whole hop through it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ends {
    pub from: Option<String>,
    pub to: Option<String>,
}

/// The nodes one step touches: the publishing service, the destination it published to, the
/// one consumed from when it differs (an exchange routing to a queue), the consuming service.
/// Each id goes with its node's name in `names` (a service's name without its namespace).
pub struct StepNodes {
    pub publisher: String,
    pub via: Vec<String>,
    pub consumer: String,
    pub names: HashMap<String, String>,
}

pub fn step_nodes(spans: &[StoredSpan], step: Step) -> StepNodes {
    let (p, c) = (&spans[step.publish], &spans[step.consume]);
    let mut names: HashMap<String, String> = HashMap::new();
    let mut service = |s: &StoredSpan| {
        let key = NodeKey::service(&s.service, s.service_namespace.as_deref());
        names.insert(key.id.clone(), key.name);
        key.id
    };
    let (publisher, consumer) = (service(p), service(c));
    let mut via: Vec<String> = Vec::new();
    for m in [p.messaging.as_ref(), c.messaging.as_ref()]
        .into_iter()
        .flatten()
    {
        let key = NodeKey::destination(&m.system, &m.destination);
        if !via.contains(&key.id) {
            names.insert(key.id.clone(), key.name);
            via.push(key.id);
        }
    }
    StepNodes {
        publisher,
        via,
        consumer,
        names,
    }
}

impl Ends {
    /// The steps of a walk (given by the nodes of each step) between the ends (`None`: the
    /// walk does not pass them in order).
    pub fn cut(&self, nodes: &[StepNodes]) -> Option<Range<usize>> {
        let last = nodes.len().checked_sub(1)?;
        let start = match &self.from {
            None => 0,
            Some(from) => (0..nodes.len()).find(|&k| {
                let n = &nodes[k];
                &n.publisher == from
                    || n.via.contains(from)
                    || (k > 0 && &nodes[k - 1].consumer == from)
            })?,
        };
        let end = match &self.to {
            None => last,
            Some(to) => (start..nodes.len())
                .find(|&k| nodes[k].via.contains(to) || &nodes[k].consumer == to)?,
        };
        Some(start..end + 1)
    }
}

/// Takes in one trace: its walks, cut to the ends, each distinct part counted once.
pub fn add_trace(agg: &mut Aggregate, spans: &[StoredSpan], ends: &Ends) {
    add_group(agg, spans, ends, 1);
}

/// Takes in the spans of `traces` traces tied by links ([`linked::Reached::groups`]), walked
/// together: a journey that goes on in a linked trace is one journey.
pub fn add_group(agg: &mut Aggregate, spans: &[StoredSpan], ends: &Ends, traces: usize) {
    let walks = walk::walks_within(spans, walk::MAX_WALKS.saturating_mul(traces.max(1)));
    if walks.cut {
        agg.scan.walks_cut = true;
    }
    let mut seen: std::collections::HashSet<&[Step]> = std::collections::HashSet::new();
    for w in &walks.walks {
        let nodes: Vec<StepNodes> = w.iter().map(|&s| step_nodes(spans, s)).collect();
        let Some(range) = ends.cut(&nodes) else {
            continue;
        };
        if seen.insert(&w[range.clone()]) {
            agg.add(spans, &w[range.clone()], &nodes[range]);
        }
    }
}
