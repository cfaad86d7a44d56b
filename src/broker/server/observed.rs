//! The embedded broker's account of itself, as a discovered broker gives one: who consumes
//! each subscription and stream (the services that pulled or read from it lately, which the
//! router notes at each pull or read, empty ones included), and a [`BrokerSnapshot`] of its
//! topics, subscriptions and streams with their figures and flows. A task writes a snapshot to
//! the store every interval, like a `--discover` poll, so the topology merges the broker's
//! state with its spans: a subscriber that waits on a topic nobody publishes to leaves no span,
//! but the broker knows it.

use super::router::State;
use super::traced::SYSTEM;
use super::*;
use crate::model::broker::{BrokerDestination, BrokerFlow, BrokerService, FlowKind, NamedBy};
use crate::model::{BrokerSnapshot, Entity, Figures};
use rusqlite::Connection;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A service counts as a consumer while it pulled or read within this time.
pub const CONSUMER_TTL_MS: u64 = 60_000;
/// Consumers remembered per subscription or stream; past it the one seen longest ago goes.
const MAX_CONSUMERS: usize = 64;
/// How the embedded broker is named in the topology's broker figures.
pub const BROKER_LABEL: &str = "switchyard (embedded)";

/// Services (as clients name themselves, `name@instance` included) and when each last pulled
/// or read, per subscription or stream. Owned by the router; bounded by the catalogue (only
/// declared names are noted) and [`MAX_CONSUMERS`].
#[derive(Debug, Default)]
pub(super) struct Consumers(HashMap<String, HashMap<String, u64>>);

impl Consumers {
    pub(super) fn note(&mut self, destination: &str, service: &str, now_ms: u64) {
        if let Some(last) = self.0.get_mut(destination).and_then(|m| m.get_mut(service)) {
            *last = now_ms;
            return;
        }
        let seen = self.0.entry(destination.to_string()).or_default();
        if seen.len() >= MAX_CONSUMERS {
            let oldest = seen.iter().min_by_key(|(_, t)| **t).map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                seen.remove(&oldest);
            }
        }
        seen.insert(service.to_string(), now_ms);
    }

    pub(super) fn forget(&mut self, destination: &str) {
        self.0.remove(destination);
    }

    /// The consumers seen within [`CONSUMER_TTL_MS`], by name.
    pub(super) fn active(&self, destination: &str, now_ms: u64) -> Vec<Consumer> {
        let mut out: Vec<Consumer> = self
            .0
            .get(destination)
            .into_iter()
            .flatten()
            .filter(|(_, &t)| now_ms.saturating_sub(t) <= CONSUMER_TTL_MS)
            .map(|(service, &t)| Consumer {
                service: service.clone(),
                last_seen_unix_ms: t,
            })
            .collect();
        out.sort_by(|a, b| a.service.cmp(&b.service));
        out
    }
}

/// A client's service name without its instance (`fulfilment@fulfilment-1` -> `fulfilment`).
pub fn service_of(client: &str) -> &str {
    match client.split_once('@') {
        Some((name, instance)) if !name.is_empty() && !instance.is_empty() => name,
        _ => client,
    }
}

/// Distinct services of a consumer list.
fn services(consumers: &[Consumer]) -> BTreeSet<&str> {
    consumers.iter().map(|c| service_of(&c.service)).collect()
}

impl State {
    /// The broker's destinations, flows and figures now, as a discovery poll reports them.
    pub(super) fn snapshot(&self, conn: &Connection) -> Result<BrokerSnapshot, BrokerError> {
        let now_ms = self.clock.unix_ms();
        let mut destinations = Vec::new();
        let mut flows = Vec::new();
        let mut clients: BTreeSet<String> = BTreeSet::new();
        let mut consume = |from: &str, consumers: &[Consumer], flows: &mut Vec<BrokerFlow>| {
            for service in services(consumers) {
                clients.insert(service.to_string());
                flows.push(BrokerFlow {
                    kind: FlowKind::Consume,
                    from: from.to_string(),
                    to: service.to_string(),
                    key: None,
                    inferred: false,
                    figures: Figures::default(),
                });
            }
        };
        let topics: BTreeMap<&String, _> = self.catalogue.topics.iter().collect();
        for name in topics.keys() {
            destinations.push(destination(name, Entity::Topic, None, Figures::default()));
        }
        let subs: BTreeMap<&String, _> = self.catalogue.subs.iter().collect();
        for (name, sub) in subs {
            let (ready, leased, dead) = db::counts(conn, sub.id, now_ms)?;
            let consumers = self.consumers.active(name, now_ms);
            let figures = Figures {
                depth: Some(ready),
                unacked: Some(leased),
                consumers: Some(services(&consumers).len() as u64),
                dead_letters: Some(dead),
                ..Figures::default()
            };
            let detail = format!(
                "subscription of {}, {} attempts",
                sub.spec.topic, sub.spec.max_attempts
            );
            destinations.push(destination(name, Entity::Queue, Some(detail), figures));
            flows.push(BrokerFlow {
                kind: FlowKind::Route,
                from: sub.spec.topic.clone(),
                to: name.clone(),
                key: None,
                inferred: false,
                figures: Figures::default(),
            });
            consume(name, &consumers, &mut flows);
        }
        let streams: BTreeMap<&String, _> = self.catalogue.streams.iter().collect();
        for (name, s) in streams {
            let info = self.stream_info(conn, s)?;
            let consumers = self.consumers.active(name, now_ms);
            let figures = Figures {
                consumers: Some(services(&consumers).len() as u64),
                messages: Some(info.next_offset.saturating_sub(info.first_offset)),
                bytes: Some(s.bytes),
                ..Figures::default()
            };
            destinations.push(destination(name, Entity::Stream, None, figures));
            consume(name, &consumers, &mut flows);
        }
        Ok(BrokerSnapshot {
            broker: BROKER_LABEL.to_string(),
            system: SYSTEM.to_string(),
            taken_unix_nanos: now_ms.saturating_mul(1_000_000),
            destinations,
            services: clients
                .into_iter()
                .map(|name| BrokerService {
                    name,
                    named_by: NamedBy::ConnectionName,
                })
                .collect(),
            flows,
        })
    }
}

fn destination(
    name: &str,
    entity: Entity,
    detail: Option<String>,
    figures: Figures,
) -> BrokerDestination {
    BrokerDestination {
        name: name.to_string(),
        namespace: None,
        entity,
        detail,
        subjects: Vec::new(),
        figures,
    }
}

/// Writes the broker's snapshot to the store every `interval` until the broker drains (a
/// broker with nothing declared writes none). A busy store skips a snapshot, never waits.
pub async fn report(broker: Broker, store: crate::store::Store, interval: std::time::Duration) {
    use crate::store::{Room, WriteBatch};
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if broker.is_draining() {
            return;
        }
        let snapshot = match broker.snapshot().await {
            Ok(s) if s.destinations.is_empty() => continue,
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "embedded broker snapshot not taken");
                continue;
            }
        };
        let batch = WriteBatch::BrokerState(Box::new(snapshot));
        let written = store.write(batch, Room::Now, crate::priority::Priority::Background);
        match written {
            Ok(pending) => {
                if let Ok(Err(e)) = pending.await {
                    tracing::debug!(error = %e, "embedded broker snapshot not stored");
                }
            }
            Err(e) => tracing::debug!(error = %e, "embedded broker snapshot not stored"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumers_expire_and_stay_bounded() {
        let mut c = Consumers::default();
        c.note("jobs", "worker@1", 1_000);
        c.note("jobs", "worker@2", 2_000);
        c.note("jobs", "worker@1", 3_000);
        let active = c.active("jobs", 3_000 + CONSUMER_TTL_MS);
        assert_eq!(active.len(), 1, "{active:?}");
        assert_eq!(active[0].service, "worker@1");
        assert_eq!(services(&c.active("jobs", 3_000)).len(), 1);
        for i in 0..(MAX_CONSUMERS as u64 + 10) {
            c.note("jobs", &format!("s{i}"), 10_000 + i);
        }
        assert_eq!(c.active("jobs", 20_000).len(), MAX_CONSUMERS);
        c.forget("jobs");
        assert!(c.active("jobs", 20_000).is_empty());
        assert_eq!(service_of("a@b"), "a");
        assert_eq!(service_of("a@"), "a@");
        assert_eq!(service_of("plain"), "plain");
    }
}
