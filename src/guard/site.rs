//! Cross-site refusal: requests a web page can make without a CORS preflight (a form post, a
//! `no-cors` fetch, an `EventSource`, an image) must not change anything here.
//!
//! Checked: every request with a method other than GET, HEAD and OPTIONS, and every GET, HEAD
//! and OPTIONS but those of the pages, `/static/` and the read API `/api/` (a broker
//! subscription's SSE stream leases messages with a GET). That list is matched on the path as
//! sent, so a path written with escapes (`/%62roker/...`, which the router decodes) is checked
//! too. Browsers say where a request comes from: `Sec-Fetch-Site`, when sent,
//! must be `same-origin` or `none` (typed by the user); without it, `Origin`, when sent, must
//! be this server under the `Host` it was asked for, or an `--allowed-hosts` name. Tools that
//! send neither header are not browsers and are not refused.

use super::host::{split, AllowedHosts};
use super::Parts;

/// Whether the request is checked at all.
fn checked(method: &str, path: &str) -> bool {
    !matches!(method, "GET" | "HEAD" | "OPTIONS") || !is_read_path(path)
}

/// Pages and reads, whose GETs change nothing: a link from another site may open them.
fn is_read_path(path: &str) -> bool {
    matches!(
        path,
        "/" | "/healthz" | "/login" | "/traces" | "/brokers" | "/metrics"
    ) || [
        "/traces/",
        "/services/",
        "/destinations/",
        "/static/",
        "/api/",
        "/jaeger/",
    ]
    .iter()
    .any(|prefix| path.starts_with(prefix))
}

/// `Some(reason)` when the request comes from another site and must be refused.
pub fn cross_site(req: &Parts<'_>, allowed: &AllowedHosts) -> Option<&'static str> {
    if !checked(req.method, req.path) {
        return None;
    }
    if let Some(site) = req.sec_fetch_site {
        return match site {
            b"same-origin" | b"none" => None,
            _ => Some("a request from another site (Sec-Fetch-Site)"),
        };
    }
    match req.origin {
        Some(origin) if !same_origin(origin, req.host, allowed) => {
            Some("a request from another origin (Origin)")
        }
        _ => None,
    }
}

/// Whether `Origin` names this server: its authority equals the `Host` asked for (a port left
/// out on one side is the scheme's default on the other), or its host is an allowed name.
fn same_origin(origin: &[u8], host: Option<&[u8]>, allowed: &AllowedHosts) -> bool {
    let Some((scheme, authority)) = std::str::from_utf8(origin)
        .ok()
        .and_then(|o| o.split_once("://"))
    else {
        // `null` (a file, a sandboxed frame, a data: URL) and anything unparsable.
        return false;
    };
    let Some((o_host, o_port)) = split(authority) else {
        return false;
    };
    if allowed.contains(&o_host) {
        return true;
    }
    let Some((h_host, h_port)) = host
        .and_then(|h| std::str::from_utf8(h).ok())
        .and_then(split)
    else {
        return false;
    };
    let default = match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    };
    o_host == h_host && o_port.or(default) == h_port.or(default)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req<'a>(
        method: &'a str,
        path: &'a str,
        site: Option<&'a str>,
        origin: Option<&'a str>,
    ) -> Parts<'a> {
        Parts {
            method,
            path,
            sec_fetch_site: site.map(str::as_bytes),
            origin: origin.map(str::as_bytes),
            host: Some(b"127.0.0.1:8080"),
            authorization: None,
            cookies: Vec::new(),
            bound: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            client: None,
        }
    }

    fn refused(r: &Parts<'_>) -> bool {
        let allowed = AllowedHosts::parse(&["switchyard.example".into()]).unwrap();
        cross_site(r, &allowed).is_some()
    }

    #[test]
    fn state_changing_requests_from_other_sites_are_refused() {
        let publish = "/broker/topics/t/events";
        assert!(refused(&req("POST", publish, Some("cross-site"), None)));
        assert!(refused(&req("POST", publish, Some("same-site"), None)));
        assert!(refused(&req(
            "POST",
            publish,
            None,
            Some("http://evil.example")
        )));
        assert!(refused(&req("POST", publish, None, Some("null"))));
        assert!(refused(&req(
            "POST",
            publish,
            None,
            Some("http://127.0.0.1:9999")
        )));
        assert!(refused(&req(
            "PUT",
            "/anything",
            None,
            Some("http://localhost:8080")
        )));
        assert!(refused(&req(
            "POST",
            "/v1/traces",
            Some("cross-site"),
            None
        )));
    }

    #[test]
    fn tools_and_this_origin_are_not_refused() {
        let publish = "/broker/topics/t/events";
        assert!(!refused(&req("POST", publish, None, None)));
        assert!(!refused(&req("POST", publish, Some("same-origin"), None)));
        assert!(!refused(&req("POST", publish, Some("none"), None)));
        assert!(!refused(&req(
            "POST",
            publish,
            None,
            Some("http://127.0.0.1:8080")
        )));
        assert!(!refused(&req(
            "POST",
            publish,
            None,
            Some("https://switchyard.example")
        )));
        // Sec-Fetch-Site wins over an Origin that a proxy's Host rewrite made differ.
        assert!(!refused(&req(
            "POST",
            "/login",
            Some("same-origin"),
            Some("https://proxy.example")
        )));
    }

    #[test]
    fn gets_are_checked_beyond_the_pages_and_reads() {
        let sse = "/broker/subscriptions/s/events";
        assert!(refused(&req("GET", sse, Some("cross-site"), None)));
        assert!(refused(&req("GET", sse, None, Some("http://evil.example"))));
        assert!(!refused(&req("GET", sse, None, None)));
        let escaped = "/%62roker/subscriptions/s/events";
        assert!(refused(&req("GET", escaped, Some("cross-site"), None)));
        assert!(!refused(&req(
            "GET",
            "/api/topology",
            Some("cross-site"),
            None
        )));
        // A link from another site to a page still opens (the page changes nothing).
        assert!(!refused(&req("GET", "/traces", Some("cross-site"), None)));
    }

    #[test]
    fn default_ports_match() {
        let allowed = AllowedHosts::default();
        assert!(same_origin(
            b"http://a.example",
            Some(b"a.example:80"),
            &allowed
        ));
        assert!(same_origin(
            b"https://a.example:443",
            Some(b"a.example"),
            &allowed
        ));
        assert!(!same_origin(
            b"http://a.example",
            Some(b"a.example:8080"),
            &allowed
        ));
        assert!(!same_origin(b"http://a.example", None, &allowed));
    }
}
