//! The round trip of an action/response exchange, measured per request/reply pair: the
//! requester's request publish to its consume of the reply, for each pair [`super::follow`]
//! ties together (the reply published while handling the request, the request and the reply's
//! consume tied to their publishes by parent or link). Percentiles are of those round trips,
//! not a sum of the two legs' percentiles.

use super::follow;
use crate::model::{NodeKey, StoredSpan};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// An action/response exchange by node ids: the service that asks, the one that answers,
/// the destination of the requests and that of the replies.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct Exchange {
    pub asker: String,
    pub answerer: String,
    pub request: String,
    pub reply: String,
}

/// Round trips of an exchange in a window, from the traces read.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RoundTrips {
    /// Request/reply pairs found.
    pub pairs: usize,
    pub p50_micros: Option<f64>,
    pub p90_micros: Option<f64>,
    pub p99_micros: Option<f64>,
    pub max_micros: Option<f64>,
    /// Traces read for them (the newest ones with a request, at most the bound).
    pub traces_read: usize,
    /// False when older traces with requests were left unread (the bound on traces, or the
    /// search's own bound): the figures are those of the newest pairs.
    pub complete: bool,
}

fn service_id(s: &StoredSpan) -> String {
    NodeKey::service(&s.service, s.service_namespace.as_deref()).id
}

fn destination_id(s: &StoredSpan) -> Option<String> {
    let m = s.messaging.as_ref()?;
    Some(NodeKey::destination(&m.system, &m.destination).id)
}

impl Exchange {
    /// The round trip (microseconds) of each pair of this exchange among one trace's spans.
    pub fn round_trips(&self, spans: &[StoredSpan]) -> Vec<f64> {
        let by_id: HashMap<_, usize> = spans
            .iter()
            .enumerate()
            .map(|(i, s)| (s.span_id, i))
            .collect();
        let is = |id, service: &str, destination: &str| {
            by_id.get(&id).is_some_and(|&i| {
                let s = &spans[i];
                service_id(s) == service && destination_id(s).as_deref() == Some(destination)
            })
        };
        follow(spans)
            .replies()
            .into_iter()
            .filter(|r| {
                is(r.request_span_id, &self.asker, &self.request)
                    && is(r.reply_publish_span_id, &self.answerer, &self.reply)
                    && is(r.reply_consume_span_id, &self.asker, &self.reply)
            })
            .map(|r| r.round_trip_micros)
            .collect()
    }
}

/// Nearest-rank percentile `p` (0..=1) of sorted samples.
fn rank(sorted: &[f64], p: f64) -> Option<f64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let k = ((p * n as f64).ceil() as usize).clamp(1, n);
    Some(sorted[k - 1])
}

impl RoundTrips {
    pub fn of(mut samples: Vec<f64>, traces_read: usize, complete: bool) -> RoundTrips {
        samples.sort_by(f64::total_cmp);
        RoundTrips {
            pairs: samples.len(),
            p50_micros: rank(&samples, 0.5),
            p90_micros: rank(&samples, 0.9),
            p99_micros: rank(&samples, 0.99),
            max_micros: samples.last().copied(),
            traces_read,
            complete,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::sample::{consume, publish, Change};

    fn wallet_identity() -> Exchange {
        Exchange {
            asker: "service:wallet".into(),
            answerer: "service:identity".into(),
            request: "destination:rabbitmq:identity.2fa".into(),
            reply: "destination:rabbitmq:(temporary)".into(),
        }
    }

    #[test]
    fn each_request_reply_pair_gives_its_own_round_trip() {
        // Two requests: 3 ms there and 2 ms back, then 1 ms there and 20 ms back. The sum of
        // the legs' maxima (3 + 20) is no round trip; the real ones are 5 and 21 ms.
        let spans = vec![
            publish(0x1).at(0, 1).by("wallet").on("identity.2fa"),
            consume(0x2)
                .under(0x1)
                .at(3, 4)
                .by("identity")
                .on("identity.2fa"),
            publish(0x3)
                .under(0x2)
                .at(3, 4)
                .by("identity")
                .on("(temporary)"),
            consume(0x4)
                .under(0x3)
                .at(5, 6)
                .by("wallet")
                .on("(temporary)"),
            publish(0x11).at(100, 101).by("wallet").on("identity.2fa"),
            consume(0x12)
                .under(0x11)
                .at(101, 102)
                .by("identity")
                .on("identity.2fa"),
            publish(0x13)
                .under(0x12)
                .at(101, 102)
                .by("identity")
                .on("(temporary)"),
            consume(0x14)
                .under(0x13)
                .at(121, 122)
                .by("wallet")
                .on("(temporary)"),
            // Another service's exchange through the same destinations is not this one.
            publish(0x21).at(200, 201).by("audit").on("identity.2fa"),
            consume(0x22)
                .under(0x21)
                .at(201, 202)
                .by("identity")
                .on("identity.2fa"),
            publish(0x23)
                .under(0x22)
                .at(201, 202)
                .by("identity")
                .on("(temporary)"),
            consume(0x24)
                .under(0x23)
                .at(290, 291)
                .by("audit")
                .on("(temporary)"),
        ];
        let mut got = wallet_identity().round_trips(&spans);
        got.sort_by(f64::total_cmp);
        assert_eq!(got, [5_000.0, 21_000.0]);
        let swapped = Exchange {
            asker: "service:identity".into(),
            answerer: "service:wallet".into(),
            ..wallet_identity()
        };
        assert!(swapped.round_trips(&spans).is_empty());
    }

    #[test]
    fn percentiles_are_of_the_samples_by_nearest_rank() {
        let r = RoundTrips::of((1..=100).rev().map(f64::from).collect(), 100, true);
        assert_eq!(r.pairs, 100);
        assert_eq!(
            (r.p50_micros, r.p90_micros, r.p99_micros, r.max_micros),
            (Some(50.0), Some(90.0), Some(99.0), Some(100.0))
        );
        let one = RoundTrips::of(vec![7.0], 1, false);
        assert_eq!((one.p50_micros, one.p99_micros), (Some(7.0), Some(7.0)));
        assert_eq!(RoundTrips::of(Vec::new(), 0, true).p99_micros, None);
    }
}
