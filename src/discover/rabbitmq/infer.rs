//! Publishers where the broker does not report them. At RabbitMQ's default
//! `management.rates_mode = basic` a channel's per-exchange publish statistics are empty; what
//! remains is each channel's publish counter and each exchange's incoming counter. Across two
//! polls, within a vhost: when one service alone published and its growth accounts for the
//! exchanges' growth, every exchange that received messages received them from it; otherwise
//! a service and an exchange whose counters grew by the same unique amount are paired. Pairs found are kept while the service stays connected.

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
    /// Channel name -> its publish counter.
    channels: HashMap<String, u64>,
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
                .filter_map(|c| Some((c.name.clone(), c.message_stats.as_ref()?.publish?)))
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
                let (Some(&n), Some(service)) = (
                    now.channels.get(&c.name),
                    channel_service.get(c.name.as_str()),
                ) else {
                    continue;
                };
                let grew = n.saturating_sub(last.channels.get(&c.name).copied().unwrap_or(0));
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
            for (publishers, exchanges) in by_vhost.values() {
                self.found.extend(pair(publishers, exchanges));
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
    use super::pair;

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
