//! Host checking against DNS rebinding: a page of `attacker.example` whose name is made to
//! resolve to 127.0.0.1 reaches this server with `Host: attacker.example`; only the names this
//! server is known by are answered.
//!
//! Known: localhost names (`localhost`, `*.localhost`) and loopback addresses, the address the
//! listener is bound to (any IP literal when it is bound to 0.0.0.0 or `::`, whose addresses
//! the process does not know), and each `--allowed-hosts` name (`*.example.com` matches the
//! subdomains). Ports are not compared. A request without a `Host` header (HTTP/1.0 tools) is
//! answered: rebinding needs a browser, and browsers always send one.

use std::net::IpAddr;

/// The names a listener answers besides its own address and the localhost names.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts {
    /// Lowercase names without a trailing dot; `*.example.com` kept as is.
    names: Vec<String>,
}

impl AllowedHosts {
    /// Validates `--allowed-hosts` values; every bad one is reported.
    pub fn parse(values: &[String]) -> Result<AllowedHosts, String> {
        let mut names = Vec::new();
        let mut errors = Vec::new();
        for raw in values {
            let v = raw.trim().trim_end_matches('.').to_ascii_lowercase();
            if v.is_empty() {
                continue;
            }
            if let Some(ip) = parse_ip(&v) {
                names.push(ip.to_string());
            } else if is_name(v.strip_prefix("*.").unwrap_or(&v)) {
                names.push(v);
            } else {
                errors.push(format!(
                    "--allowed-hosts {raw:?}: give a host name (or *.domain) without scheme or port"
                ));
            }
        }
        if errors.is_empty() {
            Ok(AllowedHosts { names })
        } else {
            Err(errors.join("; "))
        }
    }

    /// Whether `name` (lowercase, no port) is one of the `--allowed-hosts` values.
    pub fn contains(&self, name: &str) -> bool {
        self.names.iter().any(|n| match n.strip_prefix("*.") {
            Some(domain) => name
                .strip_suffix(domain)
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
            None => n == name,
        })
    }

    /// Whether a listener bound to `bound` answers a request whose `Host` header is `header`.
    pub fn answers(&self, header: Option<&[u8]>, bound: IpAddr) -> bool {
        let Some(header) = header else {
            return true;
        };
        let Some((host, _port)) = std::str::from_utf8(header).ok().and_then(split) else {
            return false;
        };
        match parse_ip(&host) {
            Some(ip) => {
                ip.is_loopback() || ip == bound || bound.is_unspecified() || self.contains(&host)
            }
            None => is_localhost(&host) || self.contains(&host),
        }
    }
}

/// `localhost` and its subdomains (RFC 6761: they resolve to loopback).
pub fn is_localhost(name: &str) -> bool {
    name == "localhost" || name.ends_with(".localhost")
}

/// Splits `host[:port]` (IPv6 in brackets) into the lowercase host, without brackets or a
/// trailing dot, and the port; `None` when it is not a valid authority.
pub fn split(authority: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        inside.parse::<std::net::Ipv6Addr>().ok()?;
        (inside, after)
    } else {
        match authority.rsplit_once(':') {
            Some((h, _)) if !h.contains(':') => (h, &authority[h.len()..]),
            Some(_) => return None,
            None => (authority, ""),
        }
    };
    let port = match port.strip_prefix(':') {
        None if port.is_empty() => None,
        None => return None,
        Some(p) => Some(p.parse::<u16>().ok()?),
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host.is_empty() || !(parse_ip(&host).is_some() || is_name(&host)) {
        return None;
    }
    Some((host, port))
}

/// An IP literal, IPv6 with or without brackets.
fn parse_ip(text: &str) -> Option<IpAddr> {
    let bare = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    bare.parse().ok()
}

/// A DNS name: labels of letters, digits, `-` and `_`, separated by dots.
fn is_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 253
        && text.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(v: &[&str]) -> AllowedHosts {
        AllowedHosts::parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    const LOOP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn localhost_names_and_the_bound_address_are_answered() {
        let h = hosts(&[]);
        for ok in [
            "localhost",
            "LOCALHOST:8080",
            "app.localhost:1",
            "localhost.",
            "127.0.0.1:8080",
            "127.0.0.2",
            "[::1]:8080",
        ] {
            assert!(h.answers(Some(ok.as_bytes()), LOOP), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "10.0.0.1",
            "",
            "a b",
            "[::1",
            "host:port",
            "::1",
        ] {
            assert!(!h.answers(Some(bad.as_bytes()), LOOP), "{bad}");
        }
        assert!(h.answers(None, LOOP), "no Host header (HTTP/1.0)");
        let bound: IpAddr = "10.0.0.5".parse().unwrap();
        assert!(h.answers(Some(b"10.0.0.5:80"), bound));
        assert!(!h.answers(Some(b"10.0.0.6:80"), bound));
    }

    #[test]
    fn an_unspecified_bind_takes_any_ip_but_only_allowed_names() {
        let any: IpAddr = "0.0.0.0".parse().unwrap();
        let h = hosts(&["switchyard.example.com", "*.corp.example"]);
        assert!(h.answers(Some(b"192.168.1.9:8080"), any));
        assert!(h.answers(Some(b"[fe80::1]:8080"), any));
        assert!(h.answers(Some(b"Switchyard.Example.com"), any));
        assert!(h.answers(Some(b"a.corp.example"), any));
        assert!(h.answers(Some(b"b.a.corp.example:1"), any));
        assert!(!h.answers(Some(b"corp.example"), any));
        assert!(!h.answers(Some(b"xcorp.example"), any));
        assert!(!h.answers(Some(b"evil.example"), any));
    }

    #[test]
    fn bad_allowed_hosts_are_all_reported() {
        let err = AllowedHosts::parse(&["http://x".into(), "x:80".into(), "ok.example".into()])
            .unwrap_err();
        assert!(err.contains("http://x") && err.contains("x:80"), "{err}");
        assert!(hosts(&["10.1.2.3", "[::2]"]).contains("10.1.2.3"));
    }

    #[test]
    fn authorities_split() {
        assert_eq!(split("a.b:80"), Some(("a.b".into(), Some(80))));
        assert_eq!(split("[::1]"), Some(("::1".into(), None)));
        assert_eq!(split("A.B."), Some(("a.b".into(), None)));
        assert_eq!(split("a:"), None);
        assert_eq!(split("a:99999"), None);
        assert_eq!(split("a/b"), None);
    }
}
