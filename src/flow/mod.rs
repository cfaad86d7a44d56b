//! Follows messages across the asynchronous hops of one trace: which consume came from which
//! publish (the consume's parent, else a span link to a publish among the spans given: the same
//! trace, or several traces read together, as pathways do), the message's time in
//! the broker, and for request/reply (action/response) which consume of the requester's service
//! is the reply to which request. The waterfall page and `/api/traces/{id}` both show this.
//! Pure: no IO, no SQL, no async.

use crate::model::StoredSpan;
use crate::model::{SpanId, SpanKind, TraceId};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

pub use exchange::{Exchange, RoundTrips};
pub use message::{Delivery, Message, Published};

mod exchange;
mod message;
#[cfg(test)]
pub(crate) mod sample;
#[cfg(test)]
mod tests;

/// How a consume is tied to the publish of its message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// The publish is the consume's parent span.
    Parent,
    /// A span link of the consume points at the publish.
    Link,
}

/// One message's hop through a broker: the span that published it and a span that consumed it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hop {
    pub publish_span_id: SpanId,
    pub consume_span_id: SpanId,
    /// Where the message was published (topic, exchange...).
    pub destination: Option<String>,
    /// Where it was consumed from; differs when an exchange routes to a queue.
    pub consume_destination: Option<String>,
    pub system: Option<String>,
    pub publish_service: String,
    pub consume_service: String,
    /// Publish start to consume start, as the topology's consume edges measure latency.
    pub broker_wait_micros: f64,
    pub via: Via,
}

/// A request answered by a reply: the requester published the request, a consumer of it
/// published the reply while handling it, and the requester's service consumed that reply.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub request_span_id: SpanId,
    pub reply_publish_span_id: SpanId,
    pub reply_consume_span_id: SpanId,
    /// The requester's service (it published the request and consumed the reply).
    pub service: String,
    /// Request publish start to reply consume start.
    pub round_trip_micros: f64,
}

pub fn is_publish(s: &StoredSpan) -> bool {
    match &s.messaging {
        Some(m) => m.operation == "produce",
        None => s.kind == SpanKind::Producer,
    }
}

pub fn is_consume(s: &StoredSpan) -> bool {
    match &s.messaging {
        Some(m) => m.operation == "consume",
        None => s.kind == SpanKind::Consumer,
    }
}

/// `(trace id, span id)` of each link of a span, as stored (hex).
pub fn links(s: &StoredSpan) -> Vec<(String, String)> {
    let Some(list) = s.links.as_array() else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|l| {
            Some((
                l.get("trace_id")?.as_str()?.to_string(),
                l.get("span_id")?.as_str()?.to_string(),
            ))
        })
        .collect()
}

/// Nanoseconds between two instants as microseconds (zero when `to` is earlier).
fn micros_between(from_unix_nanos: u64, to_unix_nanos: u64) -> f64 {
    to_unix_nanos.saturating_sub(from_unix_nanos) as f64 / 1000.0
}

/// The hops and replies of one trace, by index into its spans.
pub struct Journey<'a> {
    spans: &'a [StoredSpan],
    producer: Vec<Option<(usize, Via)>>,
    follows: Vec<Option<usize>>,
    /// (request publish, reply consume), grouped by request in the order they were found.
    replies: Vec<(usize, usize)>,
    /// For the inner span of nested spans of one message, the outermost one.
    nested: Vec<Option<usize>>,
}

/// A span's place among the spans followed: span ids are unique within their trace.
type Key = (TraceId, SpanId);

/// The (trace, span) each link of a span points at, for the links that parse.
pub fn link_targets(s: &StoredSpan) -> impl Iterator<Item = Key> + '_ {
    s.links.as_array().into_iter().flatten().filter_map(|l| {
        let trace = TraceId::from_hex(l.get("trace_id")?.as_str()?).ok()?;
        Some((trace, SpanId::from_hex(l.get("span_id")?.as_str()?).ok()?))
    })
}

/// Follows the messages of one trace's spans (in any order; indices refer to this slice).
/// The spans of several traces may be given together: a consume whose link points at a
/// publish of another of them is then tied to it (a batch consumer's `process` span).
pub fn follow(spans: &[StoredSpan]) -> Journey<'_> {
    follow_with(spans, true)
}

/// As [`follow`], without looking for replies (request/reply) in each consumer's subtree:
/// for analyses that only walk deliveries (pathways). [`Journey::replies`] is then empty.
pub fn follow_deliveries(spans: &[StoredSpan]) -> Journey<'_> {
    follow_with(spans, false)
}

fn follow_with(spans: &[StoredSpan], with_replies: bool) -> Journey<'_> {
    let by_id: foldhash::HashMap<Key, usize> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| ((s.trace_id, s.span_id), i))
        .collect();
    let producer: Vec<Option<(usize, Via)>> = spans
        .iter()
        .map(|s| producer_of(s, &by_id, spans))
        .collect();
    let follows: Vec<Option<usize>> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| {
            s.parent_span_id
                .and_then(|p| by_id.get(&(s.trace_id, p)).copied())
                .or(producer[i].map(|(p, _)| p))
                .filter(|&p| p != i)
        })
        .collect();
    let replies = if with_replies {
        replies(spans, &producer, &follows)
    } else {
        Vec::new()
    };
    let nested = nested(spans, &by_id);
    Journey {
        spans,
        producer,
        follows,
        replies,
        nested,
    }
}

/// Nested spans of one message (as the accounting counts them once): a publish whose parent is
/// a publish of the same destination, or likewise a consume (pika, for one, can emit both).
/// Each inner span maps to the outermost span of its chain. A consume that links to a
/// message of its own under a consume of a batch is that message's consume, not nested:
/// kafkajs `eachBatch`'s `process` spans, each linking to its producer, under the batch's
/// `poll` receive span ([`own_message`]).
fn nested(spans: &[StoredSpan], by_id: &foldhash::HashMap<Key, usize>) -> Vec<Option<usize>> {
    let same_message = |inner: &StoredSpan, outer: &StoredSpan| {
        let (a, b) = (inner.messaging.as_ref(), outer.messaging.as_ref());
        let destination =
            a.map(|m| (&m.system, &m.destination)) == b.map(|m| (&m.system, &m.destination));
        destination
            && ((is_publish(inner) && is_publish(outer))
                || (is_consume(inner) && is_consume(outer) && !own_message(inner, outer)))
    };
    let parent_of = |i: usize| -> Option<usize> {
        let p = *by_id.get(&(spans[i].trace_id, spans[i].parent_span_id?))?;
        (p != i && same_message(&spans[i], &spans[p])).then_some(p)
    };
    (0..spans.len())
        .map(|i| {
            let mut outer = parent_of(i)?;
            // Bounded: a cycle of parents ends after as many steps as there are spans.
            for _ in 0..spans.len() {
                match parent_of(outer) {
                    Some(p) if p != i => outer = p,
                    _ => break,
                }
            }
            Some(outer)
        })
        .collect()
}

/// Whether a consume span under another consume handles a message of its own: it links to a
/// span, and the outer one does not link to exactly that span alone (a batch's receive links
/// to none of its messages, as kafkajs's `poll`, or to all of them).
fn own_message(inner: &StoredSpan, outer: &StoredSpan) -> bool {
    let mut theirs = link_targets(outer);
    let only = match (theirs.next(), theirs.next()) {
        (Some(k), None) => Some(k),
        _ => None,
    };
    link_targets(inner).any(|k| Some(k) != only)
}

/// The publish among the spans that a consume span is tied to: its parent, else a link.
fn producer_of(
    s: &StoredSpan,
    by_id: &foldhash::HashMap<Key, usize>,
    spans: &[StoredSpan],
) -> Option<(usize, Via)> {
    if !is_consume(s) {
        return None;
    }
    let parent = s.parent_span_id.map(|p| ((s.trace_id, p), Via::Parent));
    let linked = link_targets(s).map(|k| (k, Via::Link));
    parent
        .into_iter()
        .chain(linked)
        .filter_map(|(id, via)| Some((*by_id.get(&id)?, via)))
        .find(|&(i, _)| is_publish(&spans[i]))
}

/// Action/response: for each publish `p`, the consumes by `p`'s own service of messages
/// published while a consumer of `p` handled it (searched in that consumer's subtree).
fn replies(
    spans: &[StoredSpan],
    producer: &[Option<(usize, Via)>],
    follows: &[Option<usize>],
) -> Vec<(usize, usize)> {
    const MAX_VISIT: usize = 256;
    let mut children: HashMap<usize, Vec<usize>> = HashMap::new();
    for (i, f) in follows.iter().enumerate() {
        if let Some(f) = f {
            children.entry(*f).or_default().push(i);
        }
    }
    let mut found: Vec<(usize, usize)> = Vec::new();
    for (c, p) in producer.iter().enumerate() {
        let Some((p, _)) = *p else { continue };
        let mut stack = vec![c];
        let mut visited = HashSet::new();
        while let Some(x) = stack.pop() {
            if visited.len() >= MAX_VISIT || !visited.insert(x) {
                continue;
            }
            let reply = x != c
                && producer[x].is_some_and(|(px, _)| px != p)
                && spans[x].service == spans[p].service;
            if reply {
                found.push((p, x));
            }
            if let Some(kids) = children.get(&x) {
                stack.extend(kids);
            }
        }
    }
    // Grouped by request, each group in the order it was found.
    found.sort_by_key(|&(p, _)| p);
    found
}

impl Journey<'_> {
    /// The publish that span `i` consumes, if it is a consume tied to one in this trace.
    pub fn producer(&self, i: usize) -> Option<usize> {
        self.producer.get(i).copied().flatten().map(|(p, _)| p)
    }

    /// The span that span `i` hangs under: its parent when that is in the trace, else the
    /// publish it consumes (so a consume tied by a link hangs under its publish).
    pub fn follows(&self, i: usize) -> Option<usize> {
        self.follows.get(i).copied().flatten()
    }

    /// The number of hops (consumes tied to a publish of this trace), as the trace list
    /// counts them: a redelivery or a replay is the same message again, not another hop.
    pub fn hop_count(&self) -> usize {
        self.producer
            .iter()
            .zip(self.spans)
            .filter(|(p, s)| p.is_some() && !again(s))
            .count()
    }

    /// The hop that ends at span `i`, if it is a consume tied to a publish of this trace.
    pub fn hop(&self, i: usize) -> Option<Hop> {
        let (p, via) = self.producer.get(i).copied().flatten()?;
        let (publish, consume) = (&self.spans[p], &self.spans[i]);
        let pm = publish.messaging.as_ref();
        let cm = consume.messaging.as_ref();
        Some(Hop {
            publish_span_id: publish.span_id,
            consume_span_id: consume.span_id,
            destination: pm.map(|m| m.destination.clone()),
            consume_destination: cm.map(|m| m.destination.clone()),
            system: pm.or(cm).map(|m| m.system.clone()),
            publish_service: publish.service.clone(),
            consume_service: consume.service.clone(),
            broker_wait_micros: micros_between(publish.start_unix_nanos, consume.start_unix_nanos),
            via,
        })
    }

    /// The outermost span of the nested spans of one message that span `i` is an inner one of
    /// (shown folded into that row, counted once).
    pub fn nested_in(&self, i: usize) -> Option<usize> {
        self.nested.get(i).copied().flatten()
    }

    /// Every hop, in the order of the consume spans.
    pub fn hops(&self) -> Vec<Hop> {
        (0..self.spans.len()).filter_map(|i| self.hop(i)).collect()
    }

    /// The replies to the request published by span `p` (none unless it is such a request).
    pub fn replies_to(&self, p: usize) -> Vec<Reply> {
        let from = self.replies.partition_point(|&(r, _)| r < p);
        self.replies[from..]
            .iter()
            .take_while(|&&(r, _)| r == p)
            .filter_map(|&(r, x)| self.reply(r, x))
            .collect()
    }

    /// Every request/reply pair, grouped by request.
    pub fn replies(&self) -> Vec<Reply> {
        self.replies
            .iter()
            .filter_map(|&(r, x)| self.reply(r, x))
            .collect()
    }

    fn reply(&self, request: usize, consume: usize) -> Option<Reply> {
        let (req, got) = (&self.spans[request], &self.spans[consume]);
        Some(Reply {
            request_span_id: req.span_id,
            reply_publish_span_id: self.spans[self.producer(consume)?].span_id,
            reply_consume_span_id: got.span_id,
            service: got.service.clone(),
            round_trip_micros: micros_between(req.start_unix_nanos, got.start_unix_nanos),
        })
    }
}

/// A consume that delivers a message again: marked so by its broker
/// (`messaging.switchyard.redelivered`, `.replay`), or stored failed as a redelivery by
/// pairing (`error.type` `redelivered`).
fn again(s: &StoredSpan) -> bool {
    use crate::model::messaging::{ERROR_TYPE, REDELIVERED, REPLAY};
    let a = &s.attributes;
    a[REDELIVERED] == true || a[REPLAY] == true || a[ERROR_TYPE] == "redelivered"
}
