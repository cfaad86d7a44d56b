//! The walks of one trace: from each message published outside any consume (a journey's
//! start), every chain of hops that follows it: a publish, a consume tied to it (parent or
//! link, as [`crate::flow`] pairs them), then each publish made while that consume was handled
//! (in its span's subtree), and so on. Bounded: [`MAX_HOPS`] hops per walk, [`MAX_WALKS`]
//! walks per trace, a consume seen twice on one walk (a cycle of links) ends it.

use crate::flow::{self, is_consume, Journey};
use crate::model::StoredSpan;
use foldhash::HashMap;

/// The longest walk followed; longer journeys are cut there (and the answer says so).
pub const MAX_HOPS: usize = 8;
/// Walks taken from one trace at most (a wide fan-out multiplies them); traces walked
/// together (tied by links) take this many each.
pub const MAX_WALKS: usize = 256;
/// Parent steps climbed from a publish to find the consume it was made in.
const MAX_CLIMB: usize = 64;

/// One hop of a walk, as indices into the trace's spans.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Step {
    pub publish: usize,
    pub consume: usize,
}

/// The walks of one trace, and whether a bound cut any of them.
#[derive(Debug, Default)]
pub struct Walks {
    pub walks: Vec<Vec<Step>>,
    pub cut: bool,
}

struct Graph {
    /// Outermost consumes of each outermost publish, in the order they started.
    delivered: HashMap<usize, Vec<usize>>,
    /// Publishes made while a consume was handled, by consume.
    onward: HashMap<usize, Vec<usize>>,
}

/// Every walk of the trace's spans (in any order; steps index this slice).
pub fn walks(spans: &[StoredSpan]) -> Walks {
    walks_within(spans, MAX_WALKS)
}

/// Every walk of the spans (of one trace or of several tied by links), at most `max_walks`.
pub fn walks_within(spans: &[StoredSpan], max_walks: usize) -> Walks {
    let journey = flow::follow_deliveries(spans);
    let messages = journey.published();
    let mut graph = Graph {
        delivered: HashMap::with_capacity_and_hasher(messages.len(), Default::default()),
        onward: HashMap::default(),
    };
    let mut roots = Vec::new();
    for m in &messages {
        let mut consumes: Vec<usize> = m.consumes.iter().map(|&(_, c)| c).collect();
        consumes.sort_by_key(|&c| (spans[c].start_unix_nanos, c));
        graph.delivered.insert(m.publish, consumes);
        match handled_in(&journey, spans, m.publish) {
            Some(c) if journey.producer(c).is_some() => {
                graph.onward.entry(c).or_default().push(m.publish)
            }
            _ => roots.push(m.publish),
        }
    }
    let mut out = Walks::default();
    let mut path = Vec::new();
    for p in roots {
        graph.extend(&mut path, p, &mut out, max_walks);
    }
    out
}

/// The consume a publish was made in: the nearest consume among its ancestors (an inner span
/// of a nested consume stands for its outermost one).
fn handled_in(journey: &Journey<'_>, spans: &[StoredSpan], publish: usize) -> Option<usize> {
    let mut at = publish;
    for _ in 0..MAX_CLIMB {
        at = spans[at]
            .parent_span_id
            .and_then(|_| journey.follows(at))
            .filter(|&up| up != publish)?;
        if is_consume(&spans[at]) {
            return Some(journey.nested_in(at).unwrap_or(at));
        }
    }
    None
}

impl Graph {
    /// Extends `path` with the hops of `publish`; true when it recorded a walk.
    fn extend(&self, path: &mut Vec<Step>, publish: usize, out: &mut Walks, max: usize) -> bool {
        let consumes = self.delivered.get(&publish).map(Vec::as_slice);
        let mut recorded = false;
        for &c in consumes.unwrap_or_default() {
            if out.walks.len() >= max {
                out.cut = true;
                return true;
            }
            if path.len() >= MAX_HOPS || path.iter().any(|s| s.consume == c) {
                out.cut = true;
                continue;
            }
            path.push(Step {
                publish,
                consume: c,
            });
            let mut further = false;
            for &next in self.onward.get(&c).map(Vec::as_slice).unwrap_or_default() {
                further |= self.extend(path, next, out, max);
            }
            if !further && out.walks.len() < max {
                out.walks.push(path.clone());
            }
            path.pop();
            recorded = true;
        }
        recorded
    }
}
