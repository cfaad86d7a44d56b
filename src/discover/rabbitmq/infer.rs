//! Publishers where the broker does not report them. At RabbitMQ's default
//! `management.rates_mode = basic` a channel's per-exchange publish statistics are empty; what
//! remains is each channel's publish counter and each exchange's incoming counter. Across two
//! polls, within a vhost: when one service alone published and its growth accounts for the
//! exchanges' growth, every exchange that received messages received them from it; otherwise
//! a service and an exchange whose counters grew by the same unique amount are paired. A vhost where a channel
//! closed between the two polls is left unpaired for that poll (its last publishes are gone
//! from the counters). Pairs found are kept while the service stays connected.

use super::api::Answers;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Counters of the previous poll and the pairs found so far.
#[derive(Debug, Default)]
pub struct Publishers {
    /// `None` until the first poll: its counters have no earlier value to compare with.
    last: Option<Counters>,
    /// (service, exchange) pairs inferred so far.
    found: BTreeSet<(String, String)>,
}

#[derive(Debug, Default)]
struct Counters {
    /// Channel name -> its vhost and publish counter.
    channels: HashMap<String, (String, u64)>,
    /// (vhost, exchange) -> its incoming counter.
    exchanges: HashMap<(String, String), u64>,
}

impl Publishers {
    /// Takes this poll's counters; returns every (service, exchange) pair inferred so far whose
    /// service is still connected. `channel_service` maps a channel to its service.
    pub fn observe(
        &mut self,
        a: &Answers,
        channel_service: &HashMap<&str, &str>,
    ) -> Vec<(String, String)> {
        let now = Counters {
            channels: a
                .channels
                .iter()
                .filter_map(|c| {
                    let n = c.message_stats.as_ref()?.publish?;
                    Some((c.name.clone(), (c.vhost.clone(), n)))
                })
                .collect(),
            exchanges: a
                .exchanges
                .iter()
                .filter_map(|e| {
                    let n = e.message_stats.as_ref()?.publish_in?;
                    Some(((e.vhost.clone(), e.name.clone()), n))
                })
                .collect(),
        };
        if let Some(last) = &self.last {
            // vhost -> (channels that published, with how many; exchanges that received, with
            // how many).
            type Grown<'a> = (Vec<(&'a str, u64)>, Vec<(&'a str, u64)>);
            let mut by_vhost: BTreeMap<&str, Grown> = BTreeMap::new();
            for c in &a.channels {
                let (Some(&(_, n)), Some(service)) = (
                    now.channels.get(&c.name),
                    channel_service.get(c.name.as_str()),
                ) else {
                    continue;
                };
                let before = last.channels.get(&c.name).map_or(0, |(_, n)| *n);
                let grew = n.saturating_sub(before);
                if grew > 0 {
                    by_vhost
                        .entry(&c.vhost)
                        .or_default()
                        .0
                        .push((service, grew));
                }
            }
            for ((vhost, name), &n) in &now.exchanges {
                let before = last.exchanges.get(&(vhost.clone(), name.clone()));
                let grew = n.saturating_sub(before.copied().unwrap_or(0));
                if grew > 0 {
                    by_vhost.entry(vhost).or_default().1.push((name, grew));
                }
            }
            // A channel closed since the last poll took its last publishes with it: what the
            // exchanges of its vhost received cannot be accounted for, so nothing is paired
            // there this time (a producer that sent and left is not its neighbour's traffic).
            let closed: BTreeSet<&str> = last
                .channels
                .iter()
                .filter(|(name, _)| !now.channels.contains_key(*name))
                .map(|(_, (vhost, _))| vhost.as_str())
                .collect();
            for (vhost, (publishers, exchanges)) in &by_vhost {
                if !closed.contains(vhost) {
                    self.found.extend(pair(publishers, exchanges));
                }
            }
        }
        self.last = Some(now);
        let connected: BTreeSet<&str> = channel_service.values().copied().collect();
        self.found
            .retain(|(service, _)| connected.contains(service.as_str()));
        self.found.iter().cloned().collect()
    }
}

/// Pairs publishers with exchanges by how much each grew: one publisher whose growth accounts
/// for all the exchanges' growth published to each of them; otherwise a publisher and an
/// exchange that alone grew by the same amount are a pair. Growth nobody visible accounts for
/// (publishes through the management API, other vhosts' shovels) pairs with no one.
fn pair(publishers: &[(&str, u64)], exchanges: &[(&str, u64)]) -> Vec<(String, String)> {
    let services: BTreeSet<&str> = publishers.iter().map(|(s, _)| *s).collect();
    let published: u64 = publishers.iter().map(|(_, n)| n).sum();
    let received: u64 = exchanges.iter().map(|(_, n)| n).sum();
    if services.len() == 1 && published == received {
        let service = publishers[0].0;
        return exchanges
            .iter()
            .map(|(e, _)| (service.to_string(), e.to_string()))
            .collect();
    }
    let unique = |n: u64, among: &[(&str, u64)]| among.iter().filter(|(_, m)| *m == n).count() == 1;
    publishers
        .iter()
        .filter(|(_, n)| unique(*n, publishers))
        .filter_map(|(service, n)| {
            let (exchange, _) = exchanges.iter().find(|(_, m)| m == n)?;
            unique(*n, exchanges).then(|| (service.to_string(), exchange.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{pair, Publishers};
    use crate::discover::rabbitmq::api::{Answers, Channel, Exchange, MessageStats};
    use std::collections::HashMap;

    /// One poll's answers: channels (name, publish counter) and exchanges (name, incoming).
    fn answers(channels: &[(&str, u64)], exchanges: &[(&str, u64)]) -> Answers {
        let stats = |n: u64, incoming: bool| {
            Some(MessageStats {
                publish: (!incoming).then_some(n),
                publish_in: incoming.then_some(n),
                ..MessageStats::default()
            })
        };
        Answers {
            channels: channels
                .iter()
                .map(|(name, n)| Channel {
                    name: name.to_string(),
                    vhost: "/".into(),
                    message_stats: stats(*n, false),
                    ..Channel::default()
                })
                .collect(),
            exchanges: exchanges
                .iter()
                .map(|(name, n)| Exchange {
                    name: name.to_string(),
                    vhost: "/".into(),
                    message_stats: stats(*n, true),
                    ..Exchange::default()
                })
                .collect(),
            ..Answers::default()
        }
    }

    #[test]
    fn a_producer_that_left_between_polls_is_not_taken_for_its_neighbour() {
        let services = HashMap::from([("c-front", "frontend"), ("c-back", "backoffice")]);
        let mut p = Publishers::default();
        p.observe(
            &answers(&[("c-front", 0), ("c-back", 0)], &[("flush", 0)]),
            &services,
        );
        // frontend sent 2 to flush and closed its channel; backoffice sent 2 elsewhere (to an
        // exchange without counters, the default exchange's replies).
        let found = p.observe(&answers(&[("c-back", 2)], &[("flush", 2)]), &services);
        assert!(found.is_empty(), "{found:?}");
        // With every channel still open, the lone publisher accounting for it is paired.
        let found = p.observe(&answers(&[("c-back", 5)], &[("flush", 5)]), &services);
        assert_eq!(found, vec![("backoffice".to_string(), "flush".to_string())]);
    }

    #[test]
    fn publishers_pair_by_growth() {
        let p = |v: Vec<(String, String)>| -> Vec<(String, String)> { v };
        // One publisher accounting for everything: every exchange that grew.
        assert_eq!(
            p(pair(&[("shop", 7)], &[("orders", 5), ("audit", 2)])).len(),
            2
        );
        // Growth from elsewhere: only the exact match.
        assert_eq!(
            pair(&[("shop", 5)], &[("orders", 5), ("", 40)]),
            vec![("shop".to_string(), "orders".to_string())]
        );
        // Two publishers, distinct amounts.
        let two = pair(
            &[("shop", 5), ("billing", 3)],
            &[("orders", 5), ("invoices", 3)],
        );
        assert_eq!(two.len(), 2);
        // Ambiguous amounts pair with nothing.
        assert!(pair(
            &[("shop", 5), ("billing", 5)],
            &[("orders", 5), ("invoices", 5)]
        )
        .is_empty());
    }
}
