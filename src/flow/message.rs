//! The journey of each message of one trace: its publish (nested publishes of the message
//! folded into the outermost), every consumer that received it with its wait in the broker,
//! the subscribers that did not (as the caller's topology names them), and for a request the
//! responses its service received. Pure: the subscribers come in as a function.

use super::{is_publish, Journey, Reply};

/// One consumer's receipt of a message.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    /// Index of the consume span.
    pub consume: usize,
    pub service: String,
    /// Where it was consumed from (differs from the publish's behind an exchange).
    pub destination: Option<String>,
    /// Publish start to consume start: the message's time in the broker.
    pub wait_micros: f64,
    pub duration_micros: u64,
    pub error: bool,
}

/// One message's spans: its outermost publish, the inner ones, and each consume tied to one
/// of them (`(publish, consume)`, in the order of the publishes, then of the spans).
#[derive(Clone, Debug, PartialEq)]
pub struct Published {
    pub publish: usize,
    pub nested: Vec<usize>,
    pub consumes: Vec<(usize, usize)>,
}

/// One message: a publish and what became of it.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// Index of the outermost publish span.
    pub publish: usize,
    /// Inner publish spans of the same message (folded into the outer one).
    pub nested: Vec<usize>,
    pub service: String,
    pub system: Option<String>,
    pub destination: Option<String>,
    pub message_id: Option<String>,
    /// In the order the consumers started.
    pub deliveries: Vec<Delivery>,
    /// Services that subscribe to the destination (per the caller) and did not receive this
    /// message in the trace, sorted.
    pub missing: Vec<String>,
    /// For a request (action/response): the replies its service received.
    pub replies: Vec<Reply>,
}

impl Journey<'_> {
    /// Every message published in the trace (nested publishes counted once), in the order of
    /// their spans. `subscribers(system, destination)` names the services that consume from
    /// a destination (from the topology); those that received nothing are `missing`.
    pub fn messages(&self, subscribers: impl Fn(&str, &str) -> Vec<String>) -> Vec<Message> {
        let spans = self.spans;
        self.published()
            .into_iter()
            .map(
                |Published {
                     publish: p,
                     nested,
                     consumes,
                 }| {
                    let all: Vec<usize> =
                        std::iter::once(p).chain(nested.iter().copied()).collect();
                    let mut deliveries: Vec<Delivery> = consumes
                        .iter()
                        .map(|&(from, c)| self.delivery(from, c))
                        .collect();
                    deliveries.sort_by_key(|d| (spans[d.consume].start_unix_nanos, d.consume));
                    let publish = &spans[p];
                    let m = publish.messaging.as_ref();
                    let mut missing: Vec<String> = m
                        .map(|m| subscribers(&m.system, &m.destination))
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|s| !deliveries.iter().any(|d| &d.service == s))
                        .collect();
                    missing.sort();
                    missing.dedup();
                    let replies = all.iter().flat_map(|&r| self.replies_to(r)).collect();
                    Message {
                        publish: p,
                        nested,
                        service: publish.service.clone(),
                        system: m.map(|m| m.system.clone()),
                        destination: m.map(|m| m.destination.clone()),
                        message_id: m.and_then(|m| m.message_id.clone()),
                        deliveries,
                        missing,
                        replies,
                    }
                },
            )
            .collect()
    }

    /// Every message published (its outermost publish, in the order of their starts) with its
    /// inner publishes and the outermost consumes tied to any of them, as
    /// `(publish it is tied to, consume)`: what [`Journey::messages`] tells of each, without
    /// the figures (for walks over many traces).
    pub fn published(&self) -> Vec<Published> {
        let spans = self.spans;
        let mut inner: Vec<Vec<usize>> = vec![Vec::new(); spans.len()];
        for i in 0..spans.len() {
            if let Some(outer) = self.nested_in(i) {
                inner[outer].push(i);
            }
        }
        // Consumes by the publish they are tied to (nested consumes counted once).
        let mut consumed: Vec<Vec<usize>> = vec![Vec::new(); spans.len()];
        for c in (0..spans.len()).filter(|&c| self.nested_in(c).is_none()) {
            if let Some(from) = self.producer(c) {
                consumed[from].push(c);
            }
        }
        let mut order: Vec<usize> = (0..spans.len())
            .filter(|&i| is_publish(&spans[i]) && self.nested_in(i).is_none())
            .collect();
        order.sort_by_key(|&i| (spans[i].start_unix_nanos, i));
        order
            .into_iter()
            .map(|p| {
                let nested = std::mem::take(&mut inner[p]);
                let consumes = std::iter::once(p)
                    .chain(nested.iter().copied())
                    .flat_map(|from| consumed[from].iter().map(move |&c| (from, c)))
                    .collect();
                Published {
                    publish: p,
                    nested,
                    consumes,
                }
            })
            .collect()
    }

    fn delivery(&self, publish: usize, consume: usize) -> Delivery {
        let (p, c) = (&self.spans[publish], &self.spans[consume]);
        Delivery {
            consume,
            service: c.service.clone(),
            destination: c.messaging.as_ref().map(|m| m.destination.clone()),
            wait_micros: super::micros_between(p.start_unix_nanos, c.start_unix_nanos),
            duration_micros: c.duration_micros,
            error: c.status == crate::model::StatusCode::Error,
        }
    }
}
