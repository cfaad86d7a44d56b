//! Push delivery (webhooks): a subscription with `push` has a task that pulls one message at a
//! time, POSTs it to the endpoint in CloudEvents structured mode (with the receive span's
//! `traceparent`), acks on 2xx and nacks otherwise with an exponential backoff; after
//! `max_attempts` the message goes to the dead-letter queue as for any subscription. The task
//! waits on the runtime; the blocking HTTP call runs on the blocking pool.
//!
//! A push cannot be turned against its own server: unless `allow_push_to_self`, a target on
//! one of the server's listening addresses (or loopback on one of their ports) is refused when
//! the subscription is declared (literal addresses and `localhost`) and again when it connects
//! (every name resolved, redirects not followed), and push tasks start only once those
//! addresses are known. And a message travels through at most [`MAX_PUSH_HOPS`] pushes: each
//! push carries its hop count (the `switchyardhops` extension attribute and the
//! `Switchyard-Hops` header), a publish beyond the bound is refused, and a message whose next
//! push would pass it goes to the dead-letter queue instead.

use super::*;
use crate::broker::proto::{HOPS_ATTRIBUTE, HOPS_HEADER, MAX_PUSH_HOPS};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use tokio::sync::watch;

/// Longest wait of one pull.
const PULL_WAIT: Duration = Duration::from_secs(5);

/// The server's own listening addresses, once known (see [`Broker::listening_on`]).
#[derive(Clone)]
pub(super) struct OwnAddrs {
    allow: bool,
    addrs: Arc<watch::Sender<Option<Arc<Vec<SocketAddr>>>>>,
}

impl OwnAddrs {
    pub(super) fn new(allow: bool) -> OwnAddrs {
        OwnAddrs {
            allow,
            addrs: Arc::new(watch::Sender::new(None)),
        }
    }

    fn current(&self) -> Arc<Vec<SocketAddr>> {
        self.addrs.borrow().clone().unwrap_or_default()
    }

    /// Waits until pushes may start: the addresses are known, or pushes to them are allowed.
    async fn ready(&self) {
        if self.allow {
            return;
        }
        let mut rx = self.addrs.subscribe();
        let _ = rx.wait_for(Option::is_some).await;
    }

    /// Refuses (400) a push URL whose host is literally this server.
    pub(super) fn check(&self, push: &Push) -> Result<(), BrokerError> {
        if self.allow {
            return Ok(());
        }
        let own = self.current();
        let refused = target(&push.url).is_some_and(|(host, port)| {
            literal_addrs(&host, port)
                .into_iter()
                .any(|a| is_self(a, &own))
        });
        if refused {
            return Err(BrokerError::BadRequest(format!(
                "push url {:?} points at this switchyard server (a push into its own broker \
                 loops); serve with --broker-allow-push-to-self to allow it",
                push.url
            )));
        }
        Ok(())
    }

    /// Resolves a push target's `host:port`, without this server's addresses (an error when
    /// only those are left).
    fn resolve(&self, netloc: &str) -> std::io::Result<Vec<SocketAddr>> {
        let addrs: Vec<SocketAddr> = netloc.to_socket_addrs()?.collect();
        if self.allow {
            return Ok(addrs);
        }
        let own = self.current();
        let left: Vec<SocketAddr> = addrs.into_iter().filter(|a| !is_self(*a, &own)).collect();
        if left.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!("push target {netloc} is this switchyard server"),
            ));
        }
        Ok(left)
    }
}

impl Broker {
    /// The server's listening addresses: push targets on them are refused (unless allowed),
    /// and push tasks start.
    pub fn listening_on(&self, addrs: Vec<SocketAddr>) {
        self.own.addrs.send_replace(Some(Arc::new(addrs)));
    }
}

/// Host and port of an `http://` URL (port 80 by default).
fn target(url: &str) -> Option<(String, u16)> {
    let rest = url.strip_prefix("http://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let hostport = authority.rsplit('@').next()?;
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    let port = match port {
        Some(p) if !p.is_empty() => p.parse().ok()?,
        _ => 80,
    };
    Some((host.to_ascii_lowercase(), port))
}

/// The addresses a host names without a lookup: an IP literal, or loopback for `localhost`.
fn literal_addrs(host: &str, port: u16) -> Vec<SocketAddr> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return vec![SocketAddr::new(ip, port)];
    }
    let host = host.trim_end_matches('.');
    if host == "localhost" || host.ends_with(".localhost") {
        return vec![
            SocketAddr::new(IpAddr::from([127, 0, 0, 1]), port),
            SocketAddr::new(IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]), port),
        ];
    }
    Vec::new()
}

/// Whether a connection to `addr` reaches one of the listeners `own`: the same port, and the
/// same address, loopback, the unspecified address, or (for a listener on every interface) an
/// address of this host.
fn is_self(addr: SocketAddr, own: &[SocketAddr]) -> bool {
    let ip = addr.ip().to_canonical();
    own.iter().any(|o| {
        o.port() == addr.port()
            && (o.ip().to_canonical() == ip
                || ip.is_loopback()
                || ip.is_unspecified()
                || (o.ip().is_unspecified() && is_local(ip)))
    })
}

/// Whether `ip` is an address of this host (a socket can be bound to it).
fn is_local(ip: IpAddr) -> bool {
    std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

/// Starts the push task of a subscription (on the current tokio runtime, if any).
pub fn start(broker: &Broker, spec: &SubscriptionSpec) {
    let (Some(push), Ok(rt)) = (spec.push.clone(), tokio::runtime::Handle::try_current()) else {
        return;
    };
    let broker = broker.clone();
    let sub = spec.name.clone();
    let timeout = Duration::from_millis(spec.visibility_timeout_ms).min(Duration::from_secs(30));
    rt.spawn(async move { run(broker, sub, push, timeout).await });
}

async fn run(broker: Broker, sub: String, push: Push, timeout: Duration) {
    broker.own.ready().await;
    let own = broker.own.clone();
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(timeout)
        .timeout(timeout)
        // A redirect is not a 2xx (and could point anywhere).
        .redirects(0)
        .resolver(move |netloc: &str| own.resolve(netloc))
        .build();
    let caller = Caller {
        service: Some(push.service()),
        trace: TraceContext::default(),
    };
    while !broker.is_draining() {
        let batch = match broker.pull(sub.clone(), 1, PULL_WAIT, caller.clone()).await {
            Ok(b) => b,
            Err(BrokerError::NotFound(_)) | Err(BrokerError::Closed) => return,
            Err(_) => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        for mut d in batch {
            let hops = hops(&d.event).saturating_add(1);
            let action = if hops > MAX_PUSH_HOPS {
                Settle::DeadLetter
            } else {
                if let Some(attributes) = d.event.as_object_mut() {
                    attributes.insert(HOPS_ATTRIBUTE.into(), hops.into());
                }
                deliver(&agent, &push, &d, hops).await
            };
            match broker
                .settle(sub.clone(), vec![d.lease_id], action, caller.clone())
                .await
            {
                Ok(_) => {}
                // Deleted: the task ends with its subscription.
                Err(BrokerError::NotFound(_)) => return,
                Err(e) => {
                    tracing::warn!(subscription = %sub, error = %e, "push settlement failed")
                }
            }
        }
    }
}

/// POSTs one delivery: an ack on a 2xx answer, else a nack with the backoff.
async fn deliver(agent: &ureq::Agent, push: &Push, d: &Delivery, hops: u32) -> Settle {
    let (agent, url) = (agent.clone(), push.url.clone());
    let (body, traceparent) = (d.event.to_string(), d.traceparent.clone());
    let ok = tokio::task::spawn_blocking(move || {
        agent
            .post(&url)
            .set("content-type", "application/cloudevents+json")
            .set("traceparent", &traceparent)
            .set(HOPS_HEADER, &hops.to_string())
            .send_string(&body)
            .is_ok_and(|r| (200..300).contains(&r.status()))
    })
    .await
    .unwrap_or(false);
    if ok {
        Settle::Ack
    } else {
        Settle::Nack {
            delay_ms: push.backoff_ms(d.attempt),
        }
    }
}

/// The push hops a structured event went through (its `switchyardhops` attribute; 0 without).
fn hops(event: &serde_json::Value) -> u32 {
    crate::broker::proto::event::hops_value(event.get(HOPS_ATTRIBUTE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_read_from_urls() {
        assert_eq!(
            target("http://127.0.0.1:8080/x"),
            Some(("127.0.0.1".into(), 8080))
        );
        assert_eq!(
            target("http://Example.com/x"),
            Some(("example.com".into(), 80))
        );
        assert_eq!(target("http://u:p@[::1]:9/x?y"), Some(("::1".into(), 9)));
        assert_eq!(target("http://h:99999/"), None);
        assert_eq!(target("https://h/"), None);
    }

    #[test]
    fn the_servers_own_addresses_are_refused_and_others_are_not() {
        let own = vec![
            "127.0.0.1:8080".parse().unwrap(),
            "0.0.0.0:4318".parse().unwrap(),
        ];
        let own_addrs = OwnAddrs::new(false);
        own_addrs.addrs.send_replace(Some(Arc::new(own)));
        let push = |url: &str| Push {
            url: url.into(),
            service: None,
            backoff_ms: None,
        };
        for url in [
            "http://127.0.0.1:8080/broker/topics/t/events",
            "http://127.0.0.2:8080/",
            "http://localhost:8080/x",
            "http://[::1]:8080/",
            "http://[::ffff:127.0.0.1]:8080/",
            "http://0.0.0.0:8080/",
            "http://127.0.0.1:4318/v1/traces",
        ] {
            assert!(own_addrs.check(&push(url)).is_err(), "{url}");
        }
        for url in [
            "http://127.0.0.1:9000/hook",
            "http://192.0.2.1:8080/",
            "http://example.com:8080/",
        ] {
            assert!(own_addrs.check(&push(url)).is_ok(), "{url}");
        }
        assert!(own_addrs.resolve("127.0.0.1:8080").is_err());
        assert!(own_addrs.resolve("localhost:8080").is_err());
        assert_eq!(own_addrs.resolve("127.0.0.1:9000").unwrap().len(), 1);
        let allowed = OwnAddrs::new(true);
        allowed.addrs.send_replace(own_addrs.addrs.borrow().clone());
        assert!(allowed
            .check(&push("http://127.0.0.1:8080/broker/topics/t/events"))
            .is_ok());
        assert!(allowed.resolve("127.0.0.1:8080").is_ok());
    }
}
