//! A blocking client of the management HTTP API: basic auth from the URL's user info, connect
//! and read timeouts, and a cap on the bytes read per answer. Requests go to a URL without
//! the user info, so no error or log line can carry the credentials.

use crate::discover::{redact, DiscoverError};
use base64::Engine;
use serde::de::DeserializeOwned;
use std::io::Read;
use std::time::Duration;

/// Bounds of every call.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub connect: Duration,
    /// Longest wait for each read, and for a whole answer.
    pub read: Duration,
    /// Largest answer body.
    pub max_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connect: Duration::from_secs(3),
            read: Duration::from_secs(10),
            max_bytes: 64 << 20,
        }
    }
}

/// Where the management API is and who to be.
pub struct Client {
    agent: ureq::Agent,
    /// `http://host:port` (no user info, no path).
    base: String,
    authorization: Option<String>,
    /// The vhost in the URL's path, if any.
    pub vhost: Option<String>,
    limits: Limits,
}

impl Client {
    /// `http://USER:PASS@HOST:PORT[/VHOST]` (user and password percent-decoded; the vhost
    /// too, so `/` is `%2F`).
    pub fn new(url: &str, limits: Limits) -> Result<Client, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("{} has no scheme", redact(url)))?;
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let (userinfo, host) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        if host.is_empty() {
            return Err(format!("{} has no host", redact(url)));
        }
        let authorization = userinfo.map(|u| {
            let (user, pass) = u.split_once(':').unwrap_or((u, ""));
            let pair = format!(
                "{}:{}",
                crate::percent::decode(user),
                crate::percent::decode(pass)
            );
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            )
        });
        let vhost = Some(path.trim_matches('/'))
            .filter(|p| !p.is_empty())
            .map(crate::percent::decode);
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(limits.connect)
            .timeout_read(limits.read)
            .timeout(limits.connect + limits.read)
            .redirects(0)
            .build();
        Ok(Client {
            agent,
            base: format!("{scheme}://{host}"),
            authorization,
            vhost,
            limits,
        })
    }

    /// `host:port` as shown.
    pub fn address(&self) -> &str {
        self.base.split_once("://").map_or(&self.base, |(_, h)| h)
    }

    /// `GET /api/{what}` (with `/{vhost}` when one is configured and `per_vhost`), parsed.
    pub fn list<T: DeserializeOwned>(
        &self,
        what: &str,
        per_vhost: bool,
    ) -> Result<T, DiscoverError> {
        let mut path = format!("/api/{what}");
        if let (true, Some(v)) = (per_vhost, &self.vhost) {
            path.push('/');
            path.push_str(&crate::percent::encode(v));
        }
        self.get(&path)
    }

    /// `GET path`, parsed as JSON.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, DiscoverError> {
        let mut request = self.agent.get(&format!("{}{path}", self.base));
        if let Some(a) = &self.authorization {
            request = request.set("Authorization", a);
        }
        let response = request.call().map_err(|e| self.error(e))?;
        let mut body = Vec::new();
        response
            .into_reader()
            .take(self.limits.max_bytes + 1)
            .read_to_end(&mut body)
            .map_err(|e| io_error(&e, self.limits.read))?;
        if body.len() as u64 > self.limits.max_bytes {
            return Err(DiscoverError::BadAnswer(format!(
                "{path}: answer larger than {} bytes",
                self.limits.max_bytes
            )));
        }
        serde_json::from_slice(&body)
            .map_err(|e| DiscoverError::BadAnswer(format!("{path}: not the expected JSON ({e})")))
    }

    fn error(&self, e: ureq::Error) -> DiscoverError {
        match e {
            ureq::Error::Status(code @ (401 | 403), _) => DiscoverError::Unauthorized(code),
            ureq::Error::Status(code, _) => DiscoverError::Status(code),
            ureq::Error::Transport(t) => {
                let io =
                    std::error::Error::source(&t).and_then(|s| s.downcast_ref::<std::io::Error>());
                match io {
                    Some(io) => io_error(io, self.limits.read),
                    None => DiscoverError::Unreachable(t.kind().to_string()),
                }
            }
        }
    }
}

fn io_error(e: &std::io::Error, read: Duration) -> DiscoverError {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::TimedOut | ErrorKind::WouldBlock => {
            DiscoverError::Timeout(read.as_millis() as u64)
        }
        _ => DiscoverError::Unreachable(e.kind().to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_address_credentials_and_vhost() {
        let c = Client::new(
            "http://us%40er:p%3Ass@127.0.0.1:15672/%2F",
            Limits::default(),
        )
        .unwrap();
        assert_eq!(c.address(), "127.0.0.1:15672");
        assert_eq!(c.vhost.as_deref(), Some("/"));
        let expected = base64::engine::general_purpose::STANDARD.encode("us@er:p:ss");
        assert_eq!(c.authorization, Some(format!("Basic {expected}")));
        let plain = Client::new("http://h:15672", Limits::default()).unwrap();
        assert_eq!((plain.vhost, plain.authorization), (None, None));
        let err = Client::new("http://u:secret@", Limits::default())
            .err()
            .unwrap();
        assert!(!err.contains("secret"), "{err}");
    }
}
