//! `--discover nats-monitor=http://HOST:8222`: the monitoring endpoints. `/connz` with each
//! connection's subscriptions gives core NATS subjects and who reads them; `/jsz` with
//! consumers gives each push consumer's deliver subject, which ties the consumer to the
//! connection subscribed to it (recorded for the JetStream source, see [`super::names`]).
//! Blocking HTTP (ureq) with timeouts and a cap on the bytes read.

use super::api::ConsumerInfo;
use super::names::{self, Revealed, Service};
use super::{now_unix_nanos, Assembly, Endpoint, Limits};
use crate::discover::{DiscoverError, Source, Spec};
use crate::model::broker::{
    BrokerDestination, BrokerFlow, BrokerSnapshot, Entity, Figures, FlowKind, NamedBy,
};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::collections::HashMap;
use std::io::Read;

/// `/connz?subs=detail`.
#[derive(Debug, Default, Deserialize)]
pub struct Connz {
    #[serde(default)]
    pub server_id: String,
    /// All the connections, of which `connections` holds the first `limit`.
    #[serde(default)]
    pub total: u64,
    #[serde(default)]
    pub connections: Option<Vec<Connection>>,
}

#[derive(Debug, Deserialize)]
pub struct Connection {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub lang: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub authorized_user: Option<String>,
    #[serde(default)]
    pub subscriptions_list_detail: Option<Vec<Subscription>>,
}

#[derive(Debug, Deserialize)]
pub struct Subscription {
    pub subject: String,
}

/// `/jsz?consumers=true`.
#[derive(Debug, Default, Deserialize)]
pub struct Jsz {
    #[serde(default)]
    pub server_id: String,
    #[serde(default)]
    pub account_details: Option<Vec<AccountDetail>>,
}

#[derive(Debug, Deserialize)]
pub struct AccountDetail {
    #[serde(default)]
    pub stream_detail: Option<Vec<StreamDetail>>,
}

#[derive(Debug, Deserialize)]
pub struct StreamDetail {
    #[serde(default)]
    pub consumer_detail: Option<Vec<ConsumerInfo>>,
}

pub struct MonitorSource {
    label: String,
    base: String,
    authorization: Option<String>,
    limits: Limits,
    agent: ureq::Agent,
}

impl MonitorSource {
    pub fn new(spec: &Spec, limits: Limits) -> Result<MonitorSource, DiscoverError> {
        let endpoint = Endpoint::parse(&spec.url, 80)?;
        if endpoint.scheme != "http" {
            return Err(DiscoverError::Unreachable(
                "only http:// monitoring endpoints are supported".to_string(),
            ));
        }
        let authorization = endpoint.user.as_ref().map(|user| {
            use base64::Engine;
            let pair = format!("{user}:{}", endpoint.password.as_deref().unwrap_or(""));
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            )
        });
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(limits.timeout)
            .timeout(limits.timeout)
            .redirects(0)
            .build();
        Ok(MonitorSource {
            label: format!("nats-monitor {}", endpoint.host_port()),
            base: format!("http://{}", endpoint.host_port()),
            authorization,
            limits,
            agent,
        })
    }

    fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, DiscoverError> {
        let mut request = self.agent.get(&format!("{}{path}", self.base));
        if let Some(a) = &self.authorization {
            request = request.set("Authorization", a);
        }
        let answer = request.call().map_err(|e| self.http_error(e))?;
        let mut body = Vec::new();
        answer
            .into_reader()
            .take(self.limits.max_bytes.saturating_add(1))
            .read_to_end(&mut body)
            .map_err(|e| self.io_error(&e))?;
        if body.len() as u64 > self.limits.max_bytes {
            return Err(DiscoverError::BadAnswer(format!(
                "{path}: answer larger than {} bytes",
                self.limits.max_bytes
            )));
        }
        serde_json::from_slice(&body).map_err(|e| DiscoverError::BadAnswer(format!("{path}: {e}")))
    }

    /// ureq's own messages name the URL; these name the failure only.
    fn http_error(&self, e: ureq::Error) -> DiscoverError {
        match e {
            ureq::Error::Status(code @ (401 | 403), _) => DiscoverError::Unauthorized(code),
            ureq::Error::Status(code, _) => DiscoverError::Status(code),
            ureq::Error::Transport(t) => match t.kind() {
                ureq::ErrorKind::Dns => DiscoverError::Unreachable("unknown host".to_string()),
                ureq::ErrorKind::ConnectionFailed => {
                    DiscoverError::Unreachable("connection refused".to_string())
                }
                ureq::ErrorKind::Io => {
                    match std::error::Error::source(&t).and_then(|s| s.downcast_ref()) {
                        Some(io) => self.io_error(io),
                        None => DiscoverError::Unreachable("connection failed".to_string()),
                    }
                }
                other => DiscoverError::Unreachable(other.to_string()),
            },
        }
    }

    fn io_error(&self, e: &std::io::Error) -> DiscoverError {
        match e.kind() {
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
                DiscoverError::Timeout(self.limits.timeout_millis())
            }
            _ => DiscoverError::Unreachable("the answer broke off".to_string()),
        }
    }
}

impl Source for MonitorSource {
    fn label(&self) -> &str {
        &self.label
    }

    fn poll(&mut self) -> Result<BrokerSnapshot, DiscoverError> {
        let taken = now_unix_nanos();
        let connz: Connz = self.get(&connz_path(self.limits.max_connections))?;
        let read = connz.connections.as_ref().map_or(0, Vec::len);
        if (read as u64) < connz.total {
            tracing::warn!(
                read,
                total = connz.total,
                "nats: connections beyond the limit left out"
            );
        }
        // A server without JetStream answers /jsz with no accounts: nothing to reveal.
        let jsz: Jsz = self.get(JSZ_PATH)?;
        let (snapshot, revealed) = snapshot(&self.label, taken, &connz, &jsz);
        names::record(&connz.server_id, revealed);
        Ok(snapshot)
    }
}

/// Connections with their subscriptions (subject and queue group), at most `limit` of them.
pub fn connz_path(limit: usize) -> String {
    format!("/connz?subs=detail&limit={limit}")
}

/// Accounts, streams and consumers with their configuration (deliver subjects).
pub const JSZ_PATH: &str = "/jsz?consumers=true&config=true";

/// Core subscriptions as subject destinations read by their connections' services, and which
/// connection each push consumer delivers to.
pub fn snapshot(
    label: &str,
    taken_unix_nanos: u64,
    connz: &Connz,
    jsz: &Jsz,
) -> (BrokerSnapshot, Revealed) {
    let mut delivers: HashMap<&str, (&str, &str)> = HashMap::new();
    let consumers = jsz
        .account_details
        .iter()
        .flatten()
        .flat_map(|a| a.stream_detail.iter().flatten());
    for c in consumers.flat_map(|s| s.consumer_detail.iter().flatten()) {
        if let Some(subject) = c.config.deliver_subject.as_deref() {
            delivers.insert(subject, (&c.stream_name, &c.name));
        }
    }
    let mut out = Assembly::default();
    let mut revealed = Revealed::new();
    for conn in connz.connections.iter().flatten() {
        let service = connection_service(conn);
        for sub in conn.subscriptions_list_detail.iter().flatten() {
            if let Some((stream, consumer)) = delivers.get(sub.subject.as_str()) {
                revealed.insert((stream.to_string(), consumer.to_string()), service.clone());
                continue;
            }
            if is_internal(&sub.subject) {
                continue;
            }
            let one = Figures {
                consumers: Some(1),
                ..Figures::default()
            };
            let subject = out.destination(BrokerDestination {
                name: sub.subject.clone(),
                namespace: None,
                entity: Entity::Subject,
                detail: None,
                subjects: Vec::new(),
                figures: Figures {
                    consumers: Some(0),
                    ..Figures::default()
                },
            });
            subject.figures.consumers = subject.figures.consumers.map(|n| n + 1);
            out.service(&service);
            out.flow(BrokerFlow {
                kind: FlowKind::Consume,
                from: sub.subject.clone(),
                to: service.name.clone(),
                key: None,
                inferred: false,
                figures: one,
            });
        }
    }
    (out.finish(label, taken_unix_nanos), revealed)
}

/// A connection's service: its own name, else `user (lang version)` (never its address).
pub fn connection_service(conn: &Connection) -> Service {
    if let Some(name) = conn.name.as_deref().filter(|n| !n.trim().is_empty()) {
        return Service {
            name: name.to_string(),
            named_by: NamedBy::ConnectionName,
        };
    }
    let user = conn
        .authorized_user
        .as_deref()
        .filter(|u| !u.is_empty())
        .unwrap_or("anonymous");
    let product = [conn.lang.as_deref(), conn.version.as_deref()]
        .into_iter()
        .flatten()
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let product = if product.is_empty() {
        "unknown client"
    } else {
        &product
    };
    Service {
        name: format!("{user} ({product})"),
        named_by: NamedBy::UserAndProduct,
    }
}

/// Reply inboxes and the server's own subjects (`$JS.…`, `$SYS.…`) are plumbing, not
/// destinations.
fn is_internal(subject: &str) -> bool {
    subject.starts_with("_INBOX.") || subject.starts_with('$')
}
