//! Journeys that cross traces: a consumer whose span *links* to the publish of its message
//! instead of being its child (a batch consumer's per-message `process` spans) starts a trace
//! of its own, and the journey goes on there. From the traces found for the start node, [`expand`] reads the
//! traces their links reach, and groups every trace read into the sets tied by links
//! ([`Reached::groups`]): each set's spans are walked together, so a journey is counted once
//! however many traces it spans.
//!
//! Which way links are followed depends on the ends ([`Ends::directions`]): upstream (a
//! consume's link to a trace not read yet: read by id) when the journeys may start before the
//! traces found, downstream (the traces whose spans link into one read, for a publish no
//! span read consumed yet, or one to a destination that a span read consumes through a link
//! and whose consuming services this trace lacks: a Kafka topic's other groups) when they may
//! go on after them. Bounded: [`MAX_LINKED_TRACES`]
//! traces read through links per answer, [`MAX_LOOKUPS`] downstream lookups, at most
//! [`super::walk::MAX_HOPS`] rounds, and the answer's time budget.

use super::Ends;
use crate::flow::{is_consume, is_publish, link_targets};
use crate::model::{SpanId, StoredSpan, TraceId};
use foldhash::{HashMap, HashSet};
use std::time::Instant;

/// Traces read through span links per answer at most (besides the traces found).
pub const MAX_LINKED_TRACES: usize = 500;
/// Downstream lookups (traces linking into one trace) per answer at most.
pub const MAX_LOOKUPS: usize = 64;
/// Traces one downstream lookup returns at most.
pub const LOOKUP_TRACES: usize = 32;

/// The reads that reach traces through links (the store's, given by the web layer).
pub trait Reach {
    type Error;
    /// The spans of these traces (those stored), each trace's spans in one list, and whether
    /// the time ran out before all were read.
    fn traces(&mut self, ids: &[TraceId]) -> Result<(Vec<Vec<StoredSpan>>, bool), Self::Error>;
    /// Traces with a span that links into trace `id`, starting from `since_unix_nanos` on.
    fn linking(
        &mut self,
        id: TraceId,
        since_unix_nanos: u64,
        limit: usize,
    ) -> Result<Vec<TraceId>, Self::Error>;
}

/// Which way links are followed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Directions {
    pub upstream: bool,
    pub downstream: bool,
}

impl Ends {
    /// Journeys from a service start with its publishes: only what follows matters. Without
    /// `from` they start wherever they started (upstream); with `from` they go on (downstream).
    /// A destination end takes the whole hop through it, so both of its sides are read.
    pub fn directions(&self) -> Directions {
        let destination = |e: &Option<String>| {
            e.as_deref()
                .is_some_and(|id| id.starts_with("destination:"))
        };
        Directions {
            upstream: self.from.is_none() || destination(&self.from),
            downstream: self.from.is_some() || destination(&self.to),
        }
    }
}

/// Every trace read, and what the link bounds left out.
#[derive(Debug, Default)]
pub struct Reached {
    traces: Vec<Vec<StoredSpan>>,
    /// Traces read through links (after the ones found).
    pub linked: usize,
    /// A bound on traces or lookups left linked traces unread.
    pub limit_reached: bool,
    pub out_of_time: bool,
}

/// Reads what the links of `seeds` (the traces found, newest first) reach, as the ends need.
pub fn expand<R: Reach>(
    seeds: Vec<Vec<StoredSpan>>,
    ends: &Ends,
    reach: &mut R,
    deadline: Instant,
) -> Result<Reached, R::Error> {
    let dirs = ends.directions();
    let mut out = Reached {
        traces: seeds,
        ..Reached::default()
    };
    let mut read: HashSet<TraceId> = out
        .traces
        .iter()
        .filter_map(|t| t.first().map(|s| s.trace_id))
        .collect();
    // Spans some consume read so far is tied to (its parent, its links).
    let mut consumed: HashSet<(TraceId, SpanId)> = HashSet::default();
    let mut lookups = 0usize;
    let mut looked_up: HashSet<usize> = HashSet::default();
    let mut consumers = Consumers::default();
    let mut frontier = 0..out.traces.len();
    for _ in 0..super::walk::MAX_HOPS {
        if frontier.is_empty() {
            break;
        }
        let mut want: Vec<TraceId> = Vec::new();
        let ask = |t: TraceId, want: &mut Vec<TraceId>| {
            if !read.contains(&t) && !want.contains(&t) {
                want.push(t);
            }
        };
        for spans in &out.traces[frontier.clone()] {
            for s in spans.iter().filter(|s| is_consume(s)) {
                consumed.extend(s.parent_span_id.map(|p| (s.trace_id, p)));
                for (t, id) in link_targets(s) {
                    consumed.insert((t, id));
                    if dirs.upstream && t != s.trace_id {
                        ask(t, &mut want);
                    }
                }
            }
        }
        if dirs.downstream {
            for spans in &out.traces[frontier.clone()] {
                consumers.add(spans);
            }
            for (i, spans) in out.traces.iter().enumerate() {
                if looked_up.contains(&i) {
                    continue;
                }
                // The earliest publish that no span read consumed: its consumers, if any were
                // traced, link to it from traces of their own. Else the earliest publish to a
                // destination read through links whose other consumers this trace lacks
                // (a Kafka topic's groups: one consumed in the trace, another links to it).
                let unconsumed = frontier.contains(&i).then(|| {
                    spans
                        .iter()
                        .filter(|s| is_publish(s) && !consumed.contains(&(s.trace_id, s.span_id)))
                        .map(|s| (s.trace_id, s.start_unix_nanos))
                        .min_by_key(|&(_, start)| start)
                });
                let waiting = unconsumed.flatten().or_else(|| consumers.elsewhere(spans));
                let Some((trace, since)) = waiting else {
                    continue;
                };
                if lookups >= MAX_LOOKUPS {
                    out.limit_reached = true;
                    break;
                }
                if Instant::now() >= deadline {
                    out.out_of_time = true;
                    break;
                }
                lookups += 1;
                looked_up.insert(i);
                for t in reach.linking(trace, since, LOOKUP_TRACES)? {
                    ask(t, &mut want);
                }
            }
        }
        let room = MAX_LINKED_TRACES - out.linked;
        if want.len() > room {
            want.truncate(room);
            out.limit_reached = true;
        }
        if want.is_empty() || out.out_of_time {
            break;
        }
        if Instant::now() >= deadline {
            out.out_of_time = true;
            break;
        }
        let (more, late) = reach.traces(&want)?;
        out.out_of_time |= late;
        let start = out.traces.len();
        for spans in more {
            let Some(id) = spans.first().map(|s| s.trace_id) else {
                continue;
            };
            if read.insert(id) {
                out.linked += 1;
                out.traces.push(spans);
            }
        }
        // A trace asked for but not stored is not asked for again.
        read.extend(want);
        frontier = start..out.traces.len();
    }
    Ok(out)
}

/// The services seen consuming each destination that some span read consumes through a
/// link, over every trace read: where one message can reach consumers in traces of their own
/// besides those in its trace.
#[derive(Default)]
struct Consumers {
    /// (system, destination) -> consuming services.
    linked: HashMap<(String, String), HashSet<String>>,
    /// Every consume read, to fill a destination's services once it is seen linked.
    all: HashMap<(String, String), HashSet<String>>,
}

impl Consumers {
    fn add(&mut self, spans: &[StoredSpan]) {
        for s in spans.iter().filter(|s| is_consume(s)) {
            let Some(m) = &s.messaging else { continue };
            let key = (m.system.clone(), m.destination.clone());
            let services = self.all.entry(key.clone()).or_default();
            services.insert(s.service.clone());
            if link_targets(s).next().is_some() || self.linked.contains_key(&key) {
                self.linked.insert(key, services.clone());
            }
        }
    }

    /// The earliest publish of `spans` to a destination consumed through links by a service
    /// that consumed nothing of it in `spans`.
    fn elsewhere(&self, spans: &[StoredSpan]) -> Option<(TraceId, u64)> {
        if self.linked.is_empty() {
            return None;
        }
        let key = |s: &StoredSpan| {
            let m = s.messaging.as_ref()?;
            Some((m.system.clone(), m.destination.clone()))
        };
        let here: HashSet<(Option<(String, String)>, &str)> = spans
            .iter()
            .filter(|s| is_consume(s))
            .map(|s| (key(s), s.service.as_str()))
            .collect();
        spans
            .iter()
            .filter(|s| is_publish(s))
            .filter(|s| {
                let k = key(s);
                let services = k.as_ref().and_then(|k| self.linked.get(k));
                services.is_some_and(|all| {
                    all.iter()
                        .any(|svc| !here.contains(&(k.clone(), svc.as_str())))
                })
            })
            .map(|s| (s.trace_id, s.start_unix_nanos))
            .min_by_key(|&(_, start)| start)
    }
}

impl Reached {
    /// Every trace read in sets tied by links (each set's spans in one list, with the number
    /// of traces in it), in the order of each set's first trace.
    pub fn groups(self) -> Vec<(Vec<StoredSpan>, usize)> {
        let place: HashMap<TraceId, usize> = self
            .traces
            .iter()
            .enumerate()
            .filter_map(|(i, t)| Some((t.first()?.trace_id, i)))
            .collect();
        let mut parent: Vec<usize> = (0..self.traces.len()).collect();
        fn root(parent: &mut [usize], mut i: usize) -> usize {
            while parent[i] != i {
                parent[i] = parent[parent[i]];
                i = parent[i];
            }
            i
        }
        for (i, spans) in self.traces.iter().enumerate() {
            for s in spans.iter().filter(|s| is_consume(s)) {
                for (t, _) in link_targets(s) {
                    if let Some(&j) = place.get(&t) {
                        let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                        parent[a.max(b)] = a.min(b);
                    }
                }
            }
        }
        let mut slot: HashMap<usize, usize> = HashMap::default();
        let mut groups: Vec<(Vec<StoredSpan>, usize)> = Vec::new();
        for (i, spans) in self.traces.into_iter().enumerate() {
            let r = root(&mut parent, i);
            let at = *slot.entry(r).or_insert_with(|| {
                groups.push((Vec::new(), 0));
                groups.len() - 1
            });
            groups[at].0.extend(spans);
            groups[at].1 += 1;
        }
        groups
    }
}
