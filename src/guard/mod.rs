//! Who may ask what: the bearer token (`--auth-token`), the `Host` check against DNS
//! rebinding ([`host`]) and the refusal of cross-site requests ([`site`]), for the actix
//! listeners ([`http`], a middleware) and the OTLP/gRPC receiver ([`grpc`], an interceptor).
//!
//! Order of the checks on HTTP: an unknown `Host` is answered 421, a cross-site request 403,
//! a request without the token 401 (a browser asking for a page is sent to `/login` instead).
//! `/healthz` is open to every request. Without `--auth-token` only the token check is off.
//! Wrong tokens are limited per client address and in total ([`attempts`]): past the limit,
//! 429 with `Retry-After` (UNAVAILABLE with `retry-after` over gRPC).

pub mod attempts;
pub mod grpc;
pub mod host;
pub mod http;
pub mod site;
pub mod token;

pub use token::Secret;

use attempts::{AttemptLimits, Attempts};
use host::AllowedHosts;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;
use token::Verifier;

/// Name of the session cookie the login page sets.
pub const SESSION_COOKIE: &str = "switchyard_session";

/// What `serve` asks for.
#[derive(Debug, Clone, Default)]
pub struct GuardConfig {
    pub token: Option<Secret>,
    /// `--allowed-hosts` values.
    pub allowed_hosts: Vec<String>,
    /// Whether the session cookie carries `Secure` (HTTPS at a proxy in front).
    pub secure_cookie: bool,
    /// Failed tokens allowed per client address and in total.
    pub attempts: AttemptLimits,
}

/// The checks of every listener; cheap to clone.
#[derive(Clone)]
pub struct Guard {
    shared: Arc<Shared>,
    /// Whether refused page requests are sent to `/login` (the `--http` listener).
    login_page: bool,
}

struct Shared {
    verifier: Option<Verifier>,
    hosts: AllowedHosts,
    secure_cookie: bool,
    attempts: Attempts,
}

/// Why a request is refused; each answer carries nothing of the server's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 421: a `Host` this server is not known by.
    UnknownHost,
    /// 403: a request from another site.
    CrossSite(&'static str),
    /// 401: no valid token or session.
    Unauthorized,
    /// 429: too many wrong tokens from this address (or from all); retry after this many
    /// seconds.
    TooManyAttempts(u64),
}

impl Refusal {
    pub fn http_status(self) -> u16 {
        match self {
            Refusal::UnknownHost => 421,
            Refusal::CrossSite(_) => 403,
            Refusal::Unauthorized => 401,
            Refusal::TooManyAttempts(_) => 429,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::UnknownHost => "misdirected_request",
            Refusal::CrossSite(_) => "forbidden",
            Refusal::Unauthorized => "unauthorized",
            Refusal::TooManyAttempts(_) => "too_many_requests",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Refusal::UnknownHost => {
                "this server does not answer for that host name (see --allowed-hosts)"
            }
            Refusal::CrossSite(why) => why,
            Refusal::Unauthorized => "this server requires Authorization: Bearer <token>",
            Refusal::TooManyAttempts(_) => {
                "too many wrong tokens from this address (or from all): retry after the time in Retry-After"
            }
        }
    }
}

/// The parts of a request the checks read (raw header values).
pub struct Parts<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub host: Option<&'a [u8]>,
    pub origin: Option<&'a [u8]>,
    pub sec_fetch_site: Option<&'a [u8]>,
    pub authorization: Option<&'a [u8]>,
    /// Every `Cookie` header value.
    pub cookies: Vec<&'a [u8]>,
    /// The address the listener is bound to.
    pub bound: IpAddr,
    /// The client's address (wrong tokens are counted by it).
    pub client: Option<IpAddr>,
}

impl Guard {
    /// Validates the configuration (every error at once) and draws the session key.
    pub fn new(config: &GuardConfig) -> Result<Guard, String> {
        let mut errors = Vec::new();
        let hosts = AllowedHosts::parse(&config.allowed_hosts).unwrap_or_else(|e| {
            errors.push(e);
            AllowedHosts::default()
        });
        let verifier = match &config.token {
            Some(t) => match t.validate().and_then(|()| Verifier::new(t)) {
                Ok(v) => Some(v),
                Err(e) => {
                    errors.push(e);
                    None
                }
            },
            None => None,
        };
        if !errors.is_empty() {
            return Err(errors.join("; "));
        }
        if config.token.as_ref().is_some_and(Secret::is_short) {
            tracing::warn!(
                "the auth token is shorter than {} characters: use a long random one",
                token::SHORT_TOKEN_BYTES
            );
        }
        Ok(Guard {
            shared: Arc::new(Shared {
                verifier,
                hosts,
                secure_cookie: config.secure_cookie,
                attempts: Attempts::new(config.attempts),
            }),
            login_page: false,
        })
    }

    /// The same checks, refused page requests sent to `/login`.
    pub fn with_login_page(&self) -> Guard {
        Guard {
            shared: self.shared.clone(),
            login_page: true,
        }
    }

    pub fn login_page(&self) -> bool {
        self.login_page
    }

    pub fn requires_token(&self) -> bool {
        self.shared.verifier.is_some()
    }

    /// Every check, in order.
    pub fn check(&self, req: &Parts<'_>) -> Result<(), Refusal> {
        if req.path == "/healthz" {
            return Ok(());
        }
        if !self.shared.hosts.answers(req.host, req.bound) {
            return Err(Refusal::UnknownHost);
        }
        if let Some(why) = site::cross_site(req, &self.shared.hosts) {
            return Err(Refusal::CrossSite(why));
        }
        let Some(verifier) = &self.shared.verifier else {
            return Ok(());
        };
        let open = self.login_page && matches!(req.path, "/login" | "/logout");
        if open || self.session_ok(verifier, &req.cookies) {
            return Ok(());
        }
        self.bearer(verifier, req.authorization, req.client)
    }

    /// Checks an `Authorization` value, counting a wrong one against `client` (and refusing
    /// one past the limits without checking it).
    pub(crate) fn bearer(
        &self,
        verifier: &Verifier,
        authorization: Option<&[u8]>,
        client: Option<IpAddr>,
    ) -> Result<(), Refusal> {
        let Some(presented) = authorization else {
            return Err(Refusal::Unauthorized);
        };
        self.presented(verifier, client, |v| v.authorization_ok(presented))
    }

    /// Runs `check` on a presented credential within the attempt limits.
    fn presented(
        &self,
        verifier: &Verifier,
        client: Option<IpAddr>,
        check: impl FnOnce(&Verifier) -> bool,
    ) -> Result<(), Refusal> {
        let attempts = &self.shared.attempts;
        let now = Instant::now();
        attempts
            .allow(client, now)
            .map_err(Refusal::TooManyAttempts)?;
        if check(verifier) {
            attempts.succeeded(client, now);
            Ok(())
        } else {
            attempts.failed(client, now);
            Err(Refusal::Unauthorized)
        }
    }

    fn session_ok(&self, verifier: &Verifier, cookies: &[&[u8]]) -> bool {
        cookies
            .iter()
            .filter_map(|c| std::str::from_utf8(c).ok())
            .flat_map(|c| c.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .any(|(name, value)| name == SESSION_COOKIE && verifier.session_ok(value))
    }

    /// The `Set-Cookie` value of a login with `presented` from `client`; 401 when it is not
    /// the token (or no token is required), 429 past the attempt limits.
    pub fn login(&self, presented: &str, client: Option<IpAddr>) -> Result<String, Refusal> {
        let verifier = self.shared.verifier.as_ref().ok_or(Refusal::Unauthorized)?;
        self.presented(verifier, client, |v| {
            v.token_ok(presented.trim().as_bytes())
        })?;
        Ok(self.cookie(&verifier.session_value(), ""))
    }

    /// The `Set-Cookie` value that ends a session.
    pub fn logout_cookie(&self) -> String {
        self.cookie("", "; Max-Age=0")
    }

    fn cookie(&self, value: &str, extra: &str) -> String {
        let secure = if self.shared.secure_cookie {
            "; Secure"
        } else {
            ""
        };
        format!("{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict{secure}{extra}")
    }
}

/// The listeners (name, address) that are not on loopback.
pub fn exposed<'a>(listeners: &[(&'a str, SocketAddr)]) -> Vec<(&'a str, SocketAddr)> {
    listeners
        .iter()
        .filter(|(_, a)| !a.ip().is_loopback())
        .copied()
        .collect()
}

/// Warns about every listener beyond loopback when no token is required.
pub fn warn_if_exposed(listeners: &[(&str, SocketAddr)], guard: &Guard) {
    if guard.requires_token() {
        return;
    }
    for (name, addr) in exposed(listeners) {
        tracing::warn!(
            listener = name,
            address = %addr,
            "listening beyond loopback without --auth-token: whoever reaches this address can read traces, send spans and use the broker"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts<'a>(path: &'a str, auth: Option<&'a str>, cookies: Vec<&'a str>) -> Parts<'a> {
        Parts {
            method: "GET",
            path,
            host: Some(b"127.0.0.1:1"),
            origin: None,
            sec_fetch_site: None,
            authorization: auth.map(str::as_bytes),
            cookies: cookies.into_iter().map(str::as_bytes).collect(),
            bound: IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            client: Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)),
        }
    }

    fn guard(token: Option<&str>) -> Guard {
        Guard::new(&GuardConfig {
            token: token.map(|t| Secret::from(t.to_string())),
            ..GuardConfig::default()
        })
        .unwrap()
        .with_login_page()
    }

    #[test]
    fn without_a_token_only_host_and_site_are_checked() {
        let g = guard(None);
        assert_eq!(g.check(&parts("/api/stats", None, vec![])), Ok(()));
        assert!(g.login("anything", None).is_err());
        let mut p = parts("/api/stats", None, vec![]);
        p.host = Some(b"evil.example");
        assert_eq!(g.check(&p), Err(Refusal::UnknownHost));
    }

    #[test]
    fn a_token_is_required_but_by_healthz_and_login() {
        let g = guard(Some("tok-tok-tok"));
        let refused = Err(Refusal::Unauthorized);
        assert_eq!(g.check(&parts("/api/stats", None, vec![])), refused);
        assert_eq!(
            g.check(&parts("/api/stats", Some("Bearer no"), vec![])),
            refused
        );
        assert_eq!(
            g.check(&parts("/api/stats", Some("Bearer tok-tok-tok"), vec![])),
            Ok(())
        );
        assert_eq!(g.check(&parts("/healthz", None, vec![])), Ok(()));
        assert_eq!(g.check(&parts("/login", None, vec![])), Ok(()));
        let mut otlp = g.clone();
        otlp.login_page = false;
        assert_eq!(otlp.check(&parts("/login", None, vec![])), refused);
    }

    #[test]
    fn the_login_cookie_opens_pages_and_says_nothing_of_the_token() {
        let g = guard(Some("tok-tok-tok"));
        assert_eq!(g.login("wrong", None), Err(Refusal::Unauthorized));
        let set = g.login("tok-tok-tok", None).unwrap();
        assert!(!set.contains("tok-tok-tok"));
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"));
        assert!(set.contains("Path=/") && !set.contains("Secure"));
        let pair = set.split(';').next().unwrap();
        let header = format!("other=1; {pair}");
        assert_eq!(g.check(&parts("/", None, vec![&header])), Ok(()));
        let forged = format!("{SESSION_COOKIE}=tok-tok-tok");
        assert_eq!(
            g.check(&parts("/", None, vec![&forged])),
            Err(Refusal::Unauthorized)
        );
        assert!(g.logout_cookie().contains("Max-Age=0"));
    }

    #[test]
    fn wrong_tokens_are_limited_per_client_then_refused_unchecked() {
        let g = Guard::new(&GuardConfig {
            token: Some(Secret::from("tok-tok-tok".to_string())),
            attempts: AttemptLimits {
                per_client: 2,
                ..AttemptLimits::default()
            },
            ..GuardConfig::default()
        })
        .unwrap();
        let from = |client: [u8; 4], auth: &'static str| {
            let mut p = parts("/api/stats", Some(auth), vec![]);
            p.client = Some(IpAddr::from(client));
            g.check(&p)
        };
        let guesser = [10, 0, 0, 7];
        assert_eq!(from(guesser, "Bearer a"), Err(Refusal::Unauthorized));
        assert_eq!(
            g.login("b", Some(IpAddr::from(guesser))),
            Err(Refusal::Unauthorized)
        );
        // Past the limit even the right token is refused from that address, unchecked.
        assert!(matches!(
            from(guesser, "Bearer tok-tok-tok"),
            Err(Refusal::TooManyAttempts(s)) if (1..=60).contains(&s)
        ));
        assert!(matches!(
            g.login("tok-tok-tok", Some(IpAddr::from(guesser))),
            Err(Refusal::TooManyAttempts(_))
        ));
        assert_eq!(from([10, 0, 0, 8], "Bearer tok-tok-tok"), Ok(()));
        assert_eq!(Refusal::TooManyAttempts(5).http_status(), 429);
    }

    #[test]
    fn bad_configuration_is_reported_at_once() {
        let err = Guard::new(&GuardConfig {
            token: Some(Secret::from("has space".to_string())),
            allowed_hosts: vec!["http://x".into()],
            secure_cookie: true,
            attempts: AttemptLimits::default(),
        })
        .err()
        .unwrap();
        assert!(
            err.contains("allowed-hosts") && err.contains("visible ASCII"),
            "{err}"
        );
        assert!(!err.contains("has space"));
    }

    #[test]
    fn only_listeners_beyond_loopback_are_exposed() {
        let l = [
            ("HTTP", "0.0.0.0:8080".parse().unwrap()),
            ("OTLP/HTTP", "127.0.0.1:4318".parse().unwrap()),
            ("OTLP/gRPC", "[::]:4317".parse().unwrap()),
            ("x", "[::1]:1".parse().unwrap()),
        ];
        let names: Vec<&str> = exposed(&l).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["HTTP", "OTLP/gRPC"]);
    }
}
