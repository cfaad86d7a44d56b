//! The `--clickhouse` URL: `http://[USER:PASS@]HOST[:PORT]/DATABASE` (port 8123 by default).
//! Credentials are percent-decoded into their own fields and never shown: `Display` and
//! `Debug` print the URL without them.

use super::sql::is_plain_ident;

/// ClickHouse's HTTP port.
pub const DEFAULT_PORT: u16 = 8123;

#[derive(Clone, PartialEq, Eq)]
pub struct ClickHouseUrl {
    /// As written in a URL: a name, an IPv4 address, or `[IPv6]`.
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: Option<String>,
    pub password: Option<String>,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("a ClickHouse URL is http://[USER:PASS@]HOST:8123/DATABASE, not {0}")]
    Shape(String),
    #[error("the ClickHouse URL has no database (http://HOST:8123/DATABASE)")]
    NoDatabase,
    #[error("database name {0:?} is not plain (ASCII letters, digits and _, not starting with a digit, at most 64)")]
    Database(String),
    #[error("the ClickHouse URL's port is not a number from 1 to 65535")]
    Port,
    #[error("only http:// is supported (TLS in front of ClickHouse: a local proxy)")]
    Scheme,
}

impl ClickHouseUrl {
    pub fn parse(text: &str) -> Result<ClickHouseUrl, UrlError> {
        let text = text.trim();
        let Some(rest) = text.strip_prefix("http://") else {
            return Err(if text.contains("://") {
                UrlError::Scheme
            } else {
                UrlError::Shape(shown(text))
            });
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            Some(u) => {
                let (user, pass) = u.split_once(':').unwrap_or((u, ""));
                (
                    Some(crate::percent::decode(user)),
                    Some(crate::percent::decode(pass)),
                )
            }
            None => (None, None),
        };
        let (host, port) = split_host_port(hostport)?;
        if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '?' || c == '#') {
            return Err(UrlError::Shape(shown(text)));
        }
        let database = path.strip_suffix('/').unwrap_or(path);
        if database.is_empty() {
            return Err(UrlError::NoDatabase);
        }
        if !is_plain_ident(database) {
            return Err(UrlError::Database(database.chars().take(80).collect()));
        }
        Ok(ClickHouseUrl {
            host: host.to_string(),
            port,
            database: database.to_string(),
            user: user.filter(|u| !u.is_empty()),
            password,
        })
    }

    /// The server's address for HTTP requests: `http://HOST:PORT/`.
    pub fn endpoint(&self) -> String {
        format!("http://{}:{}/", self.host, self.port)
    }
}

fn split_host_port(hostport: &str) -> Result<(&str, u16), UrlError> {
    let (host, port) = if hostport.starts_with('[') {
        match hostport.split_once(']') {
            Some((h, rest)) => (&hostport[..h.len() + 1], rest.strip_prefix(':')),
            None => return Err(UrlError::Shape(shown(hostport))),
        }
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or(UrlError::Port)?,
    };
    Ok((host, port))
}

/// Text of a refused URL as an error shows it: without anything before an `@`.
fn shown(text: &str) -> String {
    let text = text.rsplit_once('@').map_or(text, |(_, h)| h);
    text.chars().take(80).collect()
}

impl std::fmt::Display for ClickHouseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}:{}/{}", self.host, self.port, self.database)
    }
}

impl std::fmt::Debug for ClickHouseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClickHouseUrl({self}, user: {:?})", self.user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_and_without_credentials() {
        let u = ClickHouseUrl::parse("http://127.0.0.1:18123/switchyard").unwrap();
        assert_eq!(
            (
                u.host.as_str(),
                u.port,
                u.database.as_str(),
                u.user,
                u.password
            ),
            ("127.0.0.1", 18123, "switchyard", None, None)
        );
        let u =
            ClickHouseUrl::parse("http://writer:s3cret%3A%40%2Fpass@ch.internal/db_1/").unwrap();
        assert_eq!(u.port, DEFAULT_PORT);
        assert_eq!(u.user.as_deref(), Some("writer"));
        assert_eq!(u.password.as_deref(), Some("s3cret:@/pass"));
        assert_eq!(u.database, "db_1");
        assert_eq!(u.endpoint(), "http://ch.internal:8123/");
        let u = ClickHouseUrl::parse("http://[::1]:9123/d").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("[::1]", 9123));
    }

    #[test]
    fn credentials_are_never_shown() {
        let u = ClickHouseUrl::parse("http://writer:hunter2@ch:8123/db").unwrap();
        assert_eq!(u.to_string(), "http://ch:8123/db");
        assert!(!format!("{u:?}").contains("hunter2"));
        let e = ClickHouseUrl::parse("http://writer:hunter2@ch:99999/db").unwrap_err();
        assert!(!e.to_string().contains("hunter2"));
        let e = ClickHouseUrl::parse("writer:hunter2@ch:8123/db").unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn bad_urls_are_refused_with_the_reason() {
        assert_eq!(
            ClickHouseUrl::parse("https://ch:8443/db"),
            Err(UrlError::Scheme)
        );
        assert_eq!(
            ClickHouseUrl::parse("http://ch:8123"),
            Err(UrlError::NoDatabase)
        );
        assert_eq!(
            ClickHouseUrl::parse("http://ch:8123/"),
            Err(UrlError::NoDatabase)
        );
        assert!(matches!(
            ClickHouseUrl::parse("http://ch:8123/a;DROP"),
            Err(UrlError::Database(_))
        ));
        assert!(matches!(
            ClickHouseUrl::parse("http://ch:8123/a/b"),
            Err(UrlError::Database(_))
        ));
        assert!(matches!(
            ClickHouseUrl::parse("http://ch:8123/db?x=1"),
            Err(UrlError::Database(_))
        ));
        assert_eq!(ClickHouseUrl::parse("http://ch:0/db"), Err(UrlError::Port));
        assert_eq!(ClickHouseUrl::parse("http://ch:x/db"), Err(UrlError::Port));
        assert!(matches!(
            ClickHouseUrl::parse("http://:8123/db"),
            Err(UrlError::Shape(_))
        ));
    }
}
