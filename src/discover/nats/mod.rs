//! NATS as a discovery source, two ways:
//!
//! - `nats=nats://[USER:PASS@|TOKEN@]HOST:4222` ([`jetstream`]): JetStream over the client
//!   protocol (async-nats): streams become `stream` destinations, durable and ephemeral
//!   consumers `consume` flows stream -> the service reading them.
//! - `nats-monitor=http://HOST:8222` ([`monitor`]): the monitoring endpoints (`/connz` with
//!   subscriptions, `/jsz` with consumers): core subscriptions become `subject` destinations
//!   with `consume` flows to the connection's service, and push consumers' connections name
//!   the JetStream source's services ([`names`]).
//!
//! Every call is bounded in time ([`Limits::timeout`]) and every listing in count and bytes;
//! credentials in the URL are used and never shown (labels are `nats HOST:PORT` and
//! `nats-monitor HOST:PORT`).

pub mod api;
#[cfg(test)]
mod fixture_tests;
pub mod jetstream;
pub mod monitor;
pub mod names;

use super::{DiscoverError, Kind, Source, Spec};
use crate::model::broker::{BrokerDestination, BrokerFlow, BrokerService, BrokerSnapshot, Figures};
use std::collections::BTreeMap;
use std::time::Duration;

/// The bounds of one source's calls.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Longest wait for any one call (connect, request, HTTP answer).
    pub timeout: Duration,
    /// Longest wait for all the calls of one poll together (many streams, many pages).
    pub poll_budget: Duration,
    /// Most streams, consumers (all streams together) and connections read per poll; the rest
    /// is left out (and logged).
    pub max_streams: usize,
    pub max_consumers: usize,
    pub max_connections: usize,
    /// Largest monitoring answer read.
    pub max_bytes: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            timeout: Duration::from_secs(5),
            poll_budget: Duration::from_secs(30),
            max_streams: 2_000,
            max_consumers: 10_000,
            max_connections: 5_000,
            max_bytes: 32 << 20,
        }
    }
}

impl Limits {
    /// The per-call timeout in the unit [`DiscoverError::Timeout`] takes.
    pub fn timeout_millis(&self) -> u64 {
        millis(self.timeout)
    }
}

pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The source a `nats` or `nats-monitor` spec names, with the default limits.
pub fn open(spec: &Spec) -> Result<Box<dyn Source>, DiscoverError> {
    open_with(spec, Limits::default())
}

pub fn open_with(spec: &Spec, limits: Limits) -> Result<Box<dyn Source>, DiscoverError> {
    match spec.kind {
        Kind::Nats => Ok(Box::new(jetstream::JetStreamSource::new(spec, limits)?)),
        Kind::NatsMonitor => Ok(Box::new(monitor::MonitorSource::new(spec, limits)?)),
        Kind::Rabbitmq | Kind::Kafka => Err(DiscoverError::BadAnswer(format!(
            "not a NATS source: {}",
            spec.kind.as_str()
        ))),
    }
}

/// A URL taken apart: where to connect, and the credentials to use (never shown).
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub scheme: String,
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    pub password: Option<String>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Endpoint({}://{})", self.scheme, self.host_port())
    }
}

impl Endpoint {
    /// Parses `scheme://[user[:password]@]host[:port][/...]`; `default_port` when none is given.
    pub fn parse(url: &str, default_port: u16) -> Result<Endpoint, DiscoverError> {
        let bad = |why: &str| DiscoverError::BadAnswer(format!("{why}: {}", super::redact(url)));
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("no scheme"))?;
        let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        // An IPv6 host keeps its brackets: `[::1]:4222`.
        let host_end = if hostport.starts_with('[') {
            hostport.find(']').map_or(hostport.len(), |i| i + 1)
        } else {
            hostport.find(':').unwrap_or(hostport.len())
        };
        let (host, port) = hostport.split_at(host_end);
        let port = match port.strip_prefix(':') {
            Some(p) => p.parse::<u16>().map_err(|_| bad("bad port"))?,
            None if port.is_empty() => default_port,
            None => return Err(bad("bad host")),
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let (user, password) = match userinfo {
            None => (None, None),
            Some(u) => match u.split_once(':') {
                Some((user, pass)) => (
                    Some(crate::percent::decode(user)),
                    Some(crate::percent::decode(pass)),
                ),
                None => (Some(crate::percent::decode(u)), None),
            },
        };
        Ok(Endpoint {
            scheme: scheme.to_ascii_lowercase(),
            host: host.to_string(),
            port,
            user: user.filter(|u| !u.is_empty()),
            password,
        })
    }

    pub fn host_port(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// A snapshot under construction: one destination per name, one service per name, and one
/// flow per (kind, from, to, key), whose figures add up.
#[derive(Default)]
pub struct Assembly {
    destinations: BTreeMap<String, BrokerDestination>,
    services: BTreeMap<String, BrokerService>,
    flows: BTreeMap<(String, String, Option<String>), BrokerFlow>,
}

impl Assembly {
    pub fn destination(&mut self, d: BrokerDestination) -> &mut BrokerDestination {
        self.destinations.entry(d.name.clone()).or_insert(d)
    }

    pub fn service(&mut self, s: &names::Service) {
        self.services
            .entry(s.name.clone())
            .or_insert_with(|| BrokerService {
                name: s.name.clone(),
                named_by: s.named_by,
            });
    }

    pub fn flow(&mut self, f: BrokerFlow) {
        let key = (f.from.clone(), f.to.clone(), f.key.clone());
        match self.flows.get_mut(&key) {
            Some(old) if old.kind == f.kind => add(&mut old.figures, &f.figures),
            _ => {
                self.flows.insert(key, f);
            }
        }
    }

    pub fn finish(self, broker: &str, taken_unix_nanos: u64) -> BrokerSnapshot {
        BrokerSnapshot {
            broker: broker.to_string(),
            system: "nats".to_string(),
            taken_unix_nanos,
            destinations: self.destinations.into_values().collect(),
            services: self.services.into_values().collect(),
            flows: self.flows.into_values().collect(),
        }
    }
}

/// Adds the counts of `more` to `into` (two consumers of one stream read by one service).
fn add(into: &mut Figures, more: &Figures) {
    let sum = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0).saturating_add(b.unwrap_or(0))),
    };
    into.pending = sum(into.pending, more.pending);
    into.ack_pending = sum(into.ack_pending, more.ack_pending);
    into.redelivered = sum(into.redelivered, more.redelivered);
    into.consumers = sum(into.consumers, more.consumers);
}

pub fn now_unix_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_keep_credentials_out_of_sight() {
        let e = Endpoint::parse("nats://alice:s%40cret@127.0.0.1:4223", 4222).unwrap();
        assert_eq!(e.host_port(), "127.0.0.1:4223");
        assert_eq!(e.user.as_deref(), Some("alice"));
        assert_eq!(e.password.as_deref(), Some("s@cret"));
        assert!(!format!("{e:?}").contains("cret"));
        let t = Endpoint::parse("nats://tok3n@nats.local", 4222).unwrap();
        assert_eq!(t.host_port(), "nats.local:4222");
        assert_eq!((t.user.as_deref(), t.password), (Some("tok3n"), None));
        let m = Endpoint::parse("http://127.0.0.1:8222/", 80).unwrap();
        assert_eq!(
            Endpoint::parse("nats://[::1]", 4222).unwrap().host_port(),
            "[::1]:4222"
        );
        assert_eq!(m.host_port(), "127.0.0.1:8222");
        let err = Endpoint::parse("nats://u:pw@h:99999", 4222).unwrap_err();
        assert!(!err.to_string().contains("pw"), "{err}");
        assert!(Endpoint::parse("nats://u:pw@", 4222).is_err());
    }
}
