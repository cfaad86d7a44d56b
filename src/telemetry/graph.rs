//! The edge series: Tempo's service-graph counters and histograms per client/server pair, and
//! Switchyard's own per destination, cumulative since the process started. The store's writer
//! adds each group's [`Observed`] after its commit; a scrape copies them out. Both take the
//! lock for a short section (a merge of one group's pairs, a copy), never across an await.
//!
//! Label sets are capped (`--metrics-max-series`): a new one past the cap is not added and
//! counted in `dropped` instead, so a storm of new service or destination names cannot grow
//! the scrape without bound. Series already known keep counting.

use super::histogram::{Histogram, Snapshot, DELAY_BOUNDS, TEMPO_BOUNDS};
use crate::accounting::minutes::Observed;
use crate::model::BrokerSnapshot;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

/// The default cap on label sets of the edge and destination series.
pub const DEFAULT_MAX_SERIES: usize = 10_000;

/// A client/server pair of services (`client`, `server` labels; `connection_type` is
/// `messaging_system` for pairs through a broker, empty for direct calls).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PairLabels {
    pub client: String,
    pub server: String,
    pub messaging: bool,
}

#[derive(Clone, Debug)]
pub struct PairSeries {
    pub total: u64,
    pub failed: u64,
    pub client_seconds: Histogram,
    pub server_seconds: Histogram,
}

/// A destination (`destination`, `system` labels).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DestinationLabels {
    pub system: String,
    pub destination: String,
}

#[derive(Clone, Debug)]
pub struct DestinationSeries {
    pub published: u64,
    pub consumed: u64,
    pub delay_seconds: Histogram,
}

/// A gauge a discovered broker reported at its last poll.
#[derive(Clone, Debug, PartialEq)]
pub struct BrokerGauge {
    pub broker: String,
    pub system: String,
    pub destination: String,
    /// The consuming service of a lag gauge (empty for a depth gauge).
    pub consumer: String,
    pub lag: bool,
    pub value: u64,
}

#[derive(Default)]
struct Series {
    pairs: HashMap<PairLabels, PairSeries>,
    destinations: HashMap<DestinationLabels, DestinationSeries>,
    /// Per discovered broker, its last poll's gauges (replaced at each poll).
    brokers: HashMap<String, Vec<BrokerGauge>>,
}

impl Series {
    fn len(&self) -> usize {
        self.pairs.len()
            + self.destinations.len()
            + self.brokers.values().map(Vec::len).sum::<usize>()
    }
}

/// Everything a scrape shows of the graph, copied out of the lock, sorted by labels.
#[derive(Clone, Debug, Default)]
pub struct GraphSnapshot {
    pub pairs: Vec<(PairLabels, PairSeriesSnapshot)>,
    pub destinations: Vec<(DestinationLabels, DestinationSnapshot)>,
    pub brokers: Vec<BrokerGauge>,
    pub series: usize,
    pub max_series: usize,
    pub dropped: u64,
}

#[derive(Clone, Debug)]
pub struct PairSeriesSnapshot {
    pub total: u64,
    pub failed: u64,
    pub client_seconds: Snapshot,
    pub server_seconds: Snapshot,
}

#[derive(Clone, Debug)]
pub struct DestinationSnapshot {
    pub published: u64,
    pub consumed: u64,
    pub delay_seconds: Snapshot,
}

pub struct Graph {
    series: Mutex<Series>,
    max_series: AtomicUsize,
    dropped: AtomicU64,
}

impl Default for Graph {
    fn default() -> Self {
        Graph {
            series: Mutex::default(),
            max_series: AtomicUsize::new(DEFAULT_MAX_SERIES),
            dropped: AtomicU64::new(0),
        }
    }
}

impl Graph {
    pub fn set_max_series(&self, max: usize) {
        self.max_series.store(max, Ordering::Relaxed);
    }

    /// Adds a committed group's pairs and destination counts.
    pub fn record(&self, observed: &Observed) {
        if observed.pairs.is_empty() && observed.destinations.is_empty() {
            return;
        }
        let max = self.max_series.load(Ordering::Relaxed);
        let mut dropped = 0;
        // A std Mutex: held for one group's merge, never across an await.
        let Ok(mut s) = self.series.lock() else {
            return;
        };
        let mut len = s.len();
        for (k, d) in &observed.pairs {
            let labels = PairLabels {
                client: k.client.0.name.clone(),
                server: k.server.0.name.clone(),
                messaging: k.messaging,
            };
            if !s.pairs.contains_key(&labels) {
                if len >= max {
                    dropped += 1;
                    continue;
                }
                len += 1;
            }
            let e = s.pairs.entry(labels).or_insert_with(|| PairSeries {
                total: 0,
                failed: 0,
                client_seconds: Histogram::new(TEMPO_BOUNDS),
                server_seconds: Histogram::new(TEMPO_BOUNDS),
            });
            e.total += d.count;
            e.failed += d.failed;
            e.client_seconds.add_sketch(&d.client, d.client_sum_micros);
            e.server_seconds.add_sketch(&d.server, d.server_sum_micros);
        }
        for (node, d) in &observed.destinations {
            let labels = DestinationLabels {
                system: node.system.clone().unwrap_or_default(),
                destination: node.name.clone(),
            };
            if !s.destinations.contains_key(&labels) {
                if len >= max {
                    dropped += 1;
                    continue;
                }
                len += 1;
            }
            let e = s
                .destinations
                .entry(labels)
                .or_insert_with(|| DestinationSeries {
                    published: 0,
                    consumed: 0,
                    delay_seconds: Histogram::new(DELAY_BOUNDS),
                });
            e.published += d.published;
            e.consumed += d.consumed;
            e.delay_seconds.add_sketch(&d.delay, d.delay_sum_micros);
        }
        drop(s);
        if dropped > 0 {
            self.dropped.fetch_add(dropped, Ordering::Relaxed);
        }
    }

    /// Replaces a discovered broker's gauges with its latest poll's: each destination's depth
    /// and each consumer's lag (JetStream's pending messages) where the broker reports them.
    pub fn record_broker(&self, snap: &BrokerSnapshot) {
        let mut gauges = Vec::new();
        for d in &snap.destinations {
            if let Some(depth) = d.figures.depth {
                gauges.push(BrokerGauge {
                    broker: snap.broker.clone(),
                    system: snap.system.clone(),
                    destination: d.name.clone(),
                    consumer: String::new(),
                    lag: false,
                    value: depth,
                });
            }
        }
        for f in &snap.flows {
            if let (crate::model::broker::FlowKind::Consume, Some(pending)) =
                (f.kind, f.figures.pending)
            {
                gauges.push(BrokerGauge {
                    broker: snap.broker.clone(),
                    system: snap.system.clone(),
                    destination: f.from.clone(),
                    consumer: f.to.clone(),
                    lag: true,
                    value: pending,
                });
            }
        }
        let max = self.max_series.load(Ordering::Relaxed);
        let Ok(mut s) = self.series.lock() else {
            return;
        };
        let others = s.len() - s.brokers.get(&snap.broker).map_or(0, Vec::len);
        let room = max.saturating_sub(others);
        if gauges.len() > room {
            self.dropped
                .fetch_add((gauges.len() - room) as u64, Ordering::Relaxed);
            gauges.truncate(room);
        }
        s.brokers.insert(snap.broker.clone(), gauges);
    }

    /// A copy of every series, sorted by labels.
    pub fn snapshot(&self) -> GraphSnapshot {
        let (mut pairs, mut destinations, mut brokers, series) = match self.series.lock() {
            Ok(s) => (
                s.pairs
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            PairSeriesSnapshot {
                                total: v.total,
                                failed: v.failed,
                                client_seconds: v.client_seconds.snapshot(),
                                server_seconds: v.server_seconds.snapshot(),
                            },
                        )
                    })
                    .collect::<Vec<_>>(),
                s.destinations
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            DestinationSnapshot {
                                published: v.published,
                                consumed: v.consumed,
                                delay_seconds: v.delay_seconds.snapshot(),
                            },
                        )
                    })
                    .collect::<Vec<_>>(),
                s.brokers.values().flatten().cloned().collect::<Vec<_>>(),
                s.len(),
            ),
            Err(_) => Default::default(),
        };
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        destinations.sort_by(|a, b| a.0.cmp(&b.0));
        brokers.sort_by(|a, b| {
            (&a.broker, &a.destination, &a.consumer).cmp(&(&b.broker, &b.destination, &b.consumer))
        });
        GraphSnapshot {
            pairs,
            destinations,
            brokers,
            series,
            max_series: self.max_series.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounting::minutes::{DestinationDelta, NodeRef, PairDelta, PairKey};
    use crate::model::NodeKey;
    use std::sync::Arc;

    fn pair(client: &str, server: &str, count: u64) -> (PairKey, PairDelta) {
        let mut d = PairDelta {
            count,
            failed: 1,
            ..PairDelta::default()
        };
        d.client.add(1_000, count as i64);
        d.server.add(300_000, count as i64);
        (
            PairKey {
                client: NodeRef(Arc::new(NodeKey::service(client, None))),
                server: NodeRef(Arc::new(NodeKey::service(server, None))),
                messaging: true,
            },
            d,
        )
    }

    #[test]
    fn counts_accumulate_and_new_label_sets_past_the_cap_are_counted_not_added() {
        let g = Graph::default();
        g.set_max_series(2);
        let dest = Arc::new(NodeKey::destination("rabbitmq", "orders"));
        let observed = Observed {
            pairs: vec![pair("a", "b", 2)],
            destinations: vec![(
                dest,
                DestinationDelta {
                    published: 3,
                    consumed: 2,
                    ..Default::default()
                },
            )],
        };
        g.record(&observed);
        g.record(&observed);
        g.record(&Observed {
            pairs: vec![pair("a", "c", 1), pair("a", "b", 1)],
            destinations: vec![],
        });
        let s = g.snapshot();
        assert_eq!(s.pairs.len(), 1);
        assert_eq!(s.pairs[0].1.total, 5);
        assert_eq!(s.pairs[0].1.failed, 3);
        assert_eq!(s.pairs[0].1.server_seconds.cumulative[1], 0);
        assert_eq!(s.pairs[0].1.server_seconds.cumulative[2], 5);
        assert_eq!(s.destinations[0].1.published, 6);
        assert_eq!((s.series, s.max_series, s.dropped), (2, 2, 1));
    }
}
