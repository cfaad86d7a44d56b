//! Discovery: the brokers themselves as a source of facts. Each broker given with
//! `--discover KIND=URL` is a [`Source`], polled on its own thread every
//! `--discover-interval` (with its own timeouts, and a growing back-off while it fails); each
//! poll's [`BrokerSnapshot`] goes to the store's writer like any other fact, and the source's
//! [`Status`] (last poll, latency, last error) is what `/brokers` shows. A failing source never
//! stalls ingest or the other sources.
//!
//! Credentials given in a URL are used for the calls and never shown: a source's label, its
//! errors and everything it stores name the broker by kind, host and port only.

pub mod kafka;
pub mod nats;

use crate::model::BrokerSnapshot;

pub mod rabbitmq;
pub mod runner;

pub use runner::Discovery;

/// What a `--discover` value names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// RabbitMQ's management HTTP API (`rabbitmq=http://USER:PASS@HOST:15672[/VHOST]`).
    Rabbitmq,
    /// NATS JetStream over the client protocol (`nats=nats://HOST:4222`).
    Nats,
    /// NATS monitoring endpoints (`nats-monitor=http://HOST:8222`).
    NatsMonitor,
    /// A Kafka cluster over the Kafka protocol (`kafka=HOST:PORT[,HOST:PORT]`, or a URL naming
    /// TLS and SASL: `kafka=sasl_ssl://USER:PASS@HOST:PORT[,HOST:PORT]`).
    Kafka,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Rabbitmq => "rabbitmq",
            Kind::Nats => "nats",
            Kind::NatsMonitor => "nats-monitor",
            Kind::Kafka => "kafka",
        }
    }
}

/// One `--discover KIND=URL` value, parsed. `Debug` hides the URL (it may hold a password).
#[derive(Clone, PartialEq, Eq)]
pub struct Spec {
    pub kind: Kind,
    pub url: String,
}

impl std::fmt::Debug for Spec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            Kind::Kafka => write!(f, "Spec({})", kafka::shown(&self.url)),
            _ => write!(f, "Spec({}={})", self.kind.as_str(), redact(&self.url)),
        }
    }
}

impl std::str::FromStr for Spec {
    type Err = String;

    fn from_str(text: &str) -> Result<Spec, String> {
        let (kind, url) = text.trim().split_once('=').ok_or_else(|| {
            "a broker to discover is KIND=URL, e.g. rabbitmq=http://guest:guest@127.0.0.1:15672"
                .to_string()
        })?;
        let kind = match kind.trim() {
            "rabbitmq" => Kind::Rabbitmq,
            "nats" => Kind::Nats,
            "nats-monitor" => Kind::NatsMonitor,
            "kafka" => Kind::Kafka,
            other => {
                return Err(format!(
                    "unknown broker kind {other:?} (rabbitmq, nats, nats-monitor or kafka)"
                ))
            }
        };
        let url = url.trim();
        if kind == Kind::Kafka {
            // Its own errors: they say what is wrong and never repeat a credential.
            kafka::security::parse(url).map_err(|e| format!("kafka: {e}"))?;
        }
        let scheme_ok = match kind {
            Kind::Rabbitmq | Kind::NatsMonitor => {
                url.starts_with("http://") || url.starts_with("https://")
            }
            Kind::Nats => url.starts_with("nats://") || url.starts_with("tls://"),
            Kind::Kafka => true,
        };
        if !scheme_ok {
            return Err(format!(
                "{}: {} is not a URL this kind takes",
                kind.as_str(),
                redact(url)
            ));
        }
        Ok(Spec {
            kind,
            url: url.to_string(),
        })
    }
}

/// A URL without its credentials (`http://guest:guest@h:15672/x` -> `http://h:15672/x`).
pub fn redact(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if scheme.is_empty() {
        format!("{host}{path}")
    } else {
        format!("{scheme}://{host}{path}")
    }
}

/// Why a poll failed: shown on `/brokers` and logged, never with credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoverError {
    #[error("unreachable: {0}")]
    Unreachable(String),
    #[error("no answer within {0} ms")]
    Timeout(u64),
    #[error("refused the credentials (HTTP {0})")]
    Unauthorized(u16),
    /// A Kafka broker refused the SASL credentials, or TLS failed.
    #[error("refused: {0}")]
    Refused(String),
    #[error("answered HTTP {0}")]
    Status(u16),
    #[error("answered something that is not what it should: {0}")]
    BadAnswer(String),
}

/// A broker polled for its state.
pub trait Source: Send {
    /// The broker as shown: kind, host and port (never credentials).
    fn label(&self) -> &str;
    /// One poll, bounded in time by the source's own timeouts.
    fn poll(&mut self) -> Result<BrokerSnapshot, DiscoverError>;
}

/// A source's health, for `/brokers` and `/api/brokers`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Status {
    pub broker: String,
    pub kind: String,
    pub polls: u64,
    pub errors: u64,
    pub last_poll_unix_nanos: Option<u64>,
    pub last_ok_unix_nanos: Option<u64>,
    /// How long the last poll took.
    pub last_latency_micros: Option<u64>,
    pub last_error: Option<String>,
    /// Destinations, services and flows in the last good snapshot.
    pub destinations: usize,
    pub services: usize,
    pub flows: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_hide_their_credentials() {
        let s: Spec = "rabbitmq=http://guest:s3cret@127.0.0.1:15672/prod"
            .parse()
            .unwrap();
        assert_eq!(s.kind, Kind::Rabbitmq);
        assert!(!format!("{s:?}").contains("s3cret"));
        assert_eq!(redact(&s.url), "http://127.0.0.1:15672/prod");
        let n: Spec = "nats=nats://127.0.0.1:4222".parse().unwrap();
        assert_eq!(n.kind, Kind::Nats);
        let err = "rabbitmq=ftp://u:pw@h".parse::<Spec>().unwrap_err();
        assert!(!err.contains("pw"), "{err}");
        assert_eq!("kafka=h:9092".parse::<Spec>().unwrap().kind, Kind::Kafka);
        assert!("kafka=http://h:9092".parse::<Spec>().is_err());
        let k: Spec = "kafka=sasl_ssl://u:s3cret@h:9093?mechanism=SCRAM-SHA-512"
            .parse()
            .unwrap();
        assert_eq!(format!("{k:?}"), "Spec(kafka sasl_ssl://h:9093)");
        let err = "kafka=ssl://u:s3cret@h:9093".parse::<Spec>().unwrap_err();
        assert!(!err.contains("s3cret"), "{err}");
        assert!("amqp=h:5672".parse::<Spec>().is_err());
        assert!("rabbitmq".parse::<Spec>().is_err());
        assert_eq!(redact("nats://a:b@h:4222"), "nats://h:4222");
        assert_eq!(redact("h:4222"), "h:4222");
    }
}
