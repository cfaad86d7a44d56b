//! `--notify-url`: each pass of the change watcher that found something posts one JSON
//! summary to the URL, from its own thread: the watcher only puts the summary on a bounded
//! queue ([`QUEUE`]; when it is full the summary is dropped and counted), so a slow or failing
//! receiver never slows ingest or the watcher. Each post has a timeout ([`TIMEOUT`]) and is
//! tried [`ATTEMPTS`] times with a doubling wait between tries; failures are counted and
//! logged at most once a minute. The URL's user and password (sent as HTTP basic auth) and
//! its query are never logged or shown: only [`NotifyUrl::redacted`] is. An `https://` URL is
//! posted over TLS ([`super::tls`]: the system's roots plus `--notify-ca`); a certificate the
//! receiver's name does not match, or no trusted root signed, fails the post with a log line
//! saying so.

use super::Notice;
use crate::model::window::{now_unix_nanos, rfc3339};
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Summaries waiting to be posted at most.
pub const QUEUE: usize = 64;
/// Longest wait for one post (connect, send, answer).
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// Tries per summary.
pub const ATTEMPTS: u32 = 3;
/// Wait before the second try; doubled before each next one.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Notices one summary lists at most (the rest are counted in `more`).
pub const MAX_LISTED: usize = 100;

/// A parsed `--notify-url`: `http://` or `https://`, `[user:pass@]host[:port][/path][?query]`.
#[derive(Clone, PartialEq, Eq)]
pub struct NotifyUrl {
    /// What is requested: no user info.
    target: String,
    /// `user:pass` for basic auth, percent-decoded.
    userinfo: Option<String>,
    redacted: String,
    /// Posted over TLS.
    pub https: bool,
}

impl std::fmt::Debug for NotifyUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl NotifyUrl {
    pub fn parse(text: &str) -> Result<NotifyUrl, String> {
        let text = text.trim();
        let (scheme, rest) = match (text.strip_prefix("http://"), text.strip_prefix("https://")) {
            (Some(rest), _) => ("http", rest),
            (_, Some(rest)) => ("https", rest),
            _ => {
                return Err(
                    "--notify-url must be an http:// or https:// URL such as https://hooks.example/switchyard"
                        .into(),
                )
            }
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        let (userinfo, host) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err("--notify-url has no host (https://HOST[:PORT]/PATH)".into());
        }
        let tail = tail.split('#').next().unwrap_or("");
        let path = tail.split('?').next().unwrap_or("");
        let userinfo = userinfo.map(|u| {
            percent_encoding::percent_decode_str(u)
                .decode_utf8_lossy()
                .into_owned()
        });
        Ok(NotifyUrl {
            target: format!("{scheme}://{host}{tail}"),
            userinfo,
            redacted: format!("{scheme}://{host}{path}"),
            https: scheme == "https",
        })
    }

    /// The URL without user info and query: what logs and pages may show.
    pub fn redacted(&self) -> &str {
        &self.redacted
    }
}

/// The webhook's counters (what `/api/changes` reports).
#[derive(Debug, Default, Serialize)]
pub struct Counters {
    pub queued: AtomicU64,
    pub sent: AtomicU64,
    /// Summaries given up after every try.
    pub failed: AtomicU64,
    /// Tries that failed (retried or not).
    pub attempts_failed: AtomicU64,
    /// Summaries dropped because the queue was full.
    pub dropped: AtomicU64,
}

/// The body of one post.
#[derive(Serialize)]
struct Summary<'a> {
    event: &'static str,
    at: String,
    at_unix_nanos: u64,
    count: usize,
    changes: &'a [Notice],
    more: usize,
}

pub fn summary_json(notices: &[Notice], at_unix_nanos: u64) -> Vec<u8> {
    let listed = &notices[..notices.len().min(MAX_LISTED)];
    serde_json::to_vec(&Summary {
        event: "architecture_changed",
        at: rfc3339(at_unix_nanos),
        at_unix_nanos,
        count: notices.len(),
        changes: listed,
        more: notices.len() - listed.len(),
    })
    .unwrap_or_default()
}

/// The handle the watcher posts through; a cheap clone.
#[derive(Clone)]
pub struct Notifier {
    tx: crossbeam_channel::Sender<Vec<u8>>,
    pub counters: Arc<Counters>,
    pub url: Arc<NotifyUrl>,
}

impl Notifier {
    /// Starts the posting thread (`tls`: for an https URL). It ends when every handle is
    /// dropped.
    pub fn start(url: NotifyUrl, tls: Option<super::tls::Tls>) -> Notifier {
        let (tx, rx) = crossbeam_channel::bounded::<Vec<u8>>(QUEUE);
        let counters = Arc::new(Counters::default());
        let url = Arc::new(url);
        let (c, u) = (counters.clone(), url.clone());
        let spawned = std::thread::Builder::new()
            .name("notify".into())
            .spawn(move || post_loop(&rx, &u, &c, tls));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "could not start the --notify-url thread");
        }
        Notifier { tx, counters, url }
    }

    /// Queues a summary of `notices`, or drops it (counted) when the queue is full.
    pub fn send(&self, notices: &[Notice]) {
        let body = summary_json(notices, now_unix_nanos());
        match self.tx.try_send(body) {
            Ok(()) => {
                self.counters.queued.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                if let Some(suppressed) = crate::lograte::ERRORS.allow("changes.notify_queue") {
                    tracing::warn!(url = %self.url.redacted(), suppressed, "--notify-url queue is full: change summary dropped");
                }
            }
        }
    }
}

fn post_loop(
    rx: &crossbeam_channel::Receiver<Vec<u8>>,
    url: &NotifyUrl,
    c: &Counters,
    tls: Option<super::tls::Tls>,
) {
    let mut agent = ureq::AgentBuilder::new().timeout(TIMEOUT).redirects(0);
    if let Some(tls) = tls {
        agent = agent.tls_connector(Arc::new(tls));
    }
    let agent = agent.build();
    let auth = url.userinfo.as_ref().map(|u| {
        use base64::Engine;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(u)
        )
    });
    while let Ok(body) = rx.recv() {
        let mut wait = FIRST_BACKOFF;
        for attempt in 1..=ATTEMPTS {
            let mut req = agent
                .post(&url.target)
                .set("Content-Type", "application/json")
                .set("User-Agent", "switchyard");
            if let Some(a) = &auth {
                req = req.set("Authorization", a);
            }
            match req.send_bytes(&body) {
                Ok(_) => {
                    c.sent.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Err(e) => {
                    c.attempts_failed.fetch_add(1, Ordering::Relaxed);
                    // ureq's error names the URL it was given: log only the kind or status and
                    // the causes (a certificate error says what is wrong with it).
                    let reason = match &e {
                        ureq::Error::Status(code, _) => format!("status {code}"),
                        ureq::Error::Transport(t) => super::tls::transport_reason(t),
                    };
                    if attempt == ATTEMPTS {
                        c.failed.fetch_add(1, Ordering::Relaxed);
                        if let Some(suppressed) = crate::lograte::ERRORS.allow("changes.notify") {
                            tracing::warn!(url = %url.redacted(), reason = %reason, attempts = ATTEMPTS, suppressed, "--notify-url post failed");
                        }
                    } else {
                        std::thread::sleep(wait);
                        wait *= 2;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_keeps_its_secrets_out_of_what_is_shown() {
        let u = NotifyUrl::parse("http://bot:p%40ss@127.0.0.1:9000/hook?token=s3cret#x").unwrap();
        assert_eq!(u.redacted(), "http://127.0.0.1:9000/hook");
        assert_eq!(format!("{u:?}"), "http://127.0.0.1:9000/hook");
        assert_eq!(u.target, "http://127.0.0.1:9000/hook?token=s3cret");
        assert_eq!(u.userinfo.as_deref(), Some("bot:p@ss"));
        let plain = NotifyUrl::parse("http://example.test").unwrap();
        assert_eq!(
            (plain.redacted(), plain.userinfo.is_none()),
            ("http://example.test", true)
        );
        let tls = NotifyUrl::parse("https://bot:pw@hooks.example:8443/x?k=v").unwrap();
        assert_eq!(tls.redacted(), "https://hooks.example:8443/x");
        assert_eq!(tls.target, "https://hooks.example:8443/x?k=v");
        assert!(tls.https && !plain.https);
        assert!(NotifyUrl::parse("ftp://x/y")
            .unwrap_err()
            .contains("http:// or https://"));
        assert!(NotifyUrl::parse("ftp://x").is_err());
        assert!(NotifyUrl::parse("http:///path").is_err());
        assert!(NotifyUrl::parse("http://user@/x").is_err());
    }

    #[test]
    fn a_summary_lists_a_bounded_number_of_notices() {
        let notices: Vec<Notice> = (0..MAX_LISTED + 3)
            .map(|i| {
                Notice::new(
                    1,
                    super::super::ChangeKind::NewService,
                    format!("service:{i}"),
                    "x".into(),
                )
            })
            .collect();
        let v: serde_json::Value = serde_json::from_slice(&summary_json(&notices, 7)).unwrap();
        assert_eq!(v["event"], "architecture_changed");
        assert_eq!(v["count"], MAX_LISTED + 3);
        assert_eq!(v["more"], 3);
        assert_eq!(v["changes"].as_array().unwrap().len(), MAX_LISTED);
        assert_eq!(v["changes"][0]["kind"], "new_service");
    }
}
