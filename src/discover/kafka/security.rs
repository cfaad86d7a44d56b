//! The `kafka=` value: the bootstrap servers and how to reach them. Either the plain list
//! `HOST:PORT[,HOST:PORT]` (no TLS, no authentication), or a URL whose scheme is one of
//! Kafka's `security.protocol` values:
//!
//! ```text
//! plaintext://HOST:PORT[,HOST:PORT]
//! ssl://HOST:PORT[,HOST:PORT][?ca=FILE]
//! sasl_plaintext://USER:PASS@HOST:PORT[,HOST:PORT][?mechanism=M]
//! sasl_ssl://USER:PASS@HOST:PORT[,HOST:PORT][?mechanism=M&ca=FILE]
//! ```
//!
//! `M` is `PLAIN` (the default), `SCRAM-SHA-256` or `SCRAM-SHA-512` (Kafka's `sasl.mechanism`
//! names); `USER`, `PASS` and the `ca` path are percent-decoded (`%40` for `@`, `%2C` for
//! `,`, `%20` for a space); `ca` names a PEM file of certificates trusted besides the
//! system's roots (an `@` in its path must be written `%40`: a raw one would be taken for
//! the end of the credentials). Every error here names the
//! part that is wrong and never repeats the user or the password; the password lives in a
//! [`Secret`], whose `Debug` hides it.

use std::path::PathBuf;

/// Kafka's `sasl.mechanism`, as sent in SaslHandshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

impl Mechanism {
    pub fn as_str(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }

    fn parse(text: &str) -> Result<Mechanism, String> {
        match text.to_ascii_uppercase().as_str() {
            "PLAIN" => Ok(Mechanism::Plain),
            "SCRAM-SHA-256" => Ok(Mechanism::ScramSha256),
            "SCRAM-SHA-512" => Ok(Mechanism::ScramSha512),
            _ => Err(format!(
                "mechanism {text:?} is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"
            )),
        }
    }
}

/// A password: used for authentication, never shown (`Debug` prints `***`; no `Display`).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(text: String) -> Secret {
        Secret(text)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// SASL credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sasl {
    pub mechanism: Mechanism,
    pub user: String,
    pub password: Secret,
}

/// A parsed `kafka=` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// `HOST:PORT` each (an IPv6 host in brackets).
    pub servers: Vec<String>,
    /// The scheme as given (lowercase), `None` for the plain list.
    pub scheme: Option<&'static str>,
    pub tls: bool,
    /// Certificates trusted besides the system's (`?ca=`).
    pub ca: Option<PathBuf>,
    pub sasl: Option<Sasl>,
}

impl Target {
    /// How the cluster is shown (`/brokers`, logs): scheme and servers, never the user or
    /// the password.
    pub fn label(&self) -> String {
        match self.scheme {
            None => format!("kafka {}", self.servers.join(",")),
            Some(s) => format!("kafka {s}://{}", self.servers.join(",")),
        }
    }
}

const SCHEMES: [(&str, bool, bool); 4] = [
    ("plaintext", false, false),
    ("ssl", true, false),
    ("sasl_plaintext", false, true),
    ("sasl_ssl", true, true),
];

/// Parses a `kafka=` value (see the module's doc).
pub fn parse(value: &str) -> Result<Target, String> {
    let value = value.trim();
    let Some((scheme, rest)) = value.split_once("://") else {
        return Ok(Target {
            servers: bootstrap(value)?,
            scheme: None,
            tls: false,
            ca: None,
            sasl: None,
        });
    };
    let lower = scheme.to_ascii_lowercase();
    let &(name, tls, sasl) = SCHEMES.iter().find(|(s, ..)| *s == lower).ok_or_else(|| {
        format!("scheme {scheme:?} is not plaintext, ssl, sasl_plaintext or sasl_ssl")
    })?;
    // The credentials end at the last '@' (a password may hold '?'); the query starts at the
    // first '?' after them.
    let (userinfo, rest) = match rest.rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    if userinfo.is_some_and(|u| u.contains("?ca=") || u.contains("&ca=")) {
        // A raw '@' in the ca= path was taken for the end of the credentials; said without
        // repeating them.
        return Err(
            "an '@' in the ca= path is written %40 (and a '?' or '&' in the password %3F or %26)"
                .to_string(),
        );
    }
    if sasl && userinfo.is_none() {
        // Checked before the servers, whose errors repeat them: here they may hold a password.
        return Err(format!("{name}:// needs USER:PASS@ before the servers"));
    }
    let (servers, query) = rest.split_once('?').unwrap_or((rest, ""));
    let servers = bootstrap(servers)?;
    let mut mechanism = None;
    let mut ca = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, val) = pair.split_once('=').unwrap_or((pair, ""));
        let val = decode(val, key)?;
        match key {
            "mechanism" if sasl => mechanism = Some(Mechanism::parse(&val)?),
            "ca" if tls && val.is_empty() => return Err("ca= names no file".to_string()),
            "ca" if tls => ca = Some(PathBuf::from(val)),
            "mechanism" | "ca" => {
                return Err(format!("{name}:// takes no {key} (it is for {}://)", {
                    if key == "ca" {
                        "ssl or sasl_ssl"
                    } else {
                        "sasl_plaintext or sasl_ssl"
                    }
                }))
            }
            other => return Err(format!("unknown parameter {other:?} (mechanism or ca)")),
        }
    }
    let sasl = match (sasl, userinfo) {
        (true, Some(info)) => {
            let (user, password) = info
                .split_once(':')
                .ok_or("the credentials are USER:PASS (percent-encoded) before the '@'")?;
            let user = decode(user, "the user")?;
            if user.is_empty() {
                return Err("the user is empty".to_string());
            }
            Some(Sasl {
                mechanism: mechanism.unwrap_or(Mechanism::Plain),
                user,
                password: Secret(decode(password, "the password")?),
            })
        }
        (true, None) => return Err(format!("{name}:// needs USER:PASS@ before the servers")),
        (false, Some(_)) => {
            return Err(format!(
                "{name}:// takes no credentials (sasl_plaintext:// or sasl_ssl:// do)"
            ))
        }
        (false, None) => None,
    };
    Ok(Target {
        servers,
        scheme: Some(name),
        tls,
        ca,
        sasl,
    })
}

/// Percent-decoded UTF-8; the error names `what`, never the text.
fn decode(text: &str, what: &str) -> Result<String, String> {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| format!("{what} is not UTF-8 once percent-decoded"))
}

/// The bootstrap servers: `HOST:PORT` separated by commas (an IPv6 host in brackets).
pub fn bootstrap(value: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for server in value.split(',').map(str::trim) {
        if server.contains('@') {
            // Never repeated: what is before the '@' may be a password.
            return Err(
                "credentials go in a sasl_plaintext:// or sasl_ssl:// URL (USER:PASS@HOST:PORT)"
                    .to_string(),
            );
        }
        let (host, port) = server
            .rsplit_once(':')
            .ok_or_else(|| format!("{server:?} is not HOST:PORT"))?;
        if host.is_empty() || host.contains(['/', '@', ' ', '?']) {
            return Err(format!("{server:?} is not HOST:PORT"));
        }
        let port: u16 = port
            .parse()
            .map_err(|_| format!("{server:?} has no valid port"))?;
        out.push(format!("{host}:{port}"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_lists_are_host_port_pairs() {
        assert_eq!(
            bootstrap("127.0.0.1:9092, kafka-2:9093").unwrap(),
            vec!["127.0.0.1:9092", "kafka-2:9093"]
        );
        assert_eq!(bootstrap("[::1]:9092").unwrap(), vec!["[::1]:9092"]);
        assert!(bootstrap("127.0.0.1").is_err());
        assert!(bootstrap("h:99999").is_err());
        assert!(bootstrap("tcp://h:9092").is_err());
        assert!(bootstrap("u:p@h:9092").is_err());
        assert!(bootstrap("h:9092,").is_err());
        let plain = parse("h:9092,k:9093").unwrap();
        assert_eq!((plain.tls, plain.sasl.is_none()), (false, true));
        assert_eq!(plain.label(), "kafka h:9092,k:9093");
    }

    #[test]
    fn urls_name_the_security_protocol_and_credentials() {
        let t = parse("SASL_SSL://al%40ce:p%40ss%2Cw?rd@h1:9093,h2:9093?mechanism=scram-sha-512&ca=/etc/ca.pem")
            .unwrap();
        assert_eq!(t.servers, vec!["h1:9093", "h2:9093"]);
        assert!(t.tls);
        assert_eq!(t.ca, Some(PathBuf::from("/etc/ca.pem")));
        let sasl = t.sasl.clone().unwrap();
        assert_eq!(sasl.mechanism, Mechanism::ScramSha512);
        assert_eq!(sasl.user, "al@ce");
        assert_eq!(sasl.password.expose(), "p@ss,w?rd");
        assert_eq!(t.label(), "kafka sasl_ssl://h1:9093,h2:9093");
        assert!(
            !format!("{t:?}").contains("p@ss"),
            "Debug hides the password"
        );
        let t = parse("sasl_plaintext://u:p@h:9092").unwrap();
        assert_eq!(
            (t.tls, t.sasl.unwrap().mechanism),
            (false, Mechanism::Plain)
        );
        // A CA path holding '@' is written percent-encoded, like the credentials.
        let t = parse("sasl_ssl://u:p%40ss@h:9093?ca=/etc/kafka%40prod/ca%20file.pem").unwrap();
        assert_eq!(t.ca, Some(PathBuf::from("/etc/kafka@prod/ca file.pem")));
        assert_eq!(t.sasl.unwrap().password.expose(), "p@ss");
        let t = parse("ssl://h:9093?ca=/srv/a%40b/ca.pem").unwrap();
        assert_eq!(t.ca, Some(PathBuf::from("/srv/a@b/ca.pem")));
        let t = parse("ssl://h:9093").unwrap();
        assert_eq!((t.tls, t.sasl, t.ca), (true, None, None));
        assert!(!parse("plaintext://h:9092").unwrap().tls);
    }

    #[test]
    fn bad_values_are_refused_without_repeating_credentials() {
        for (value, says) in [
            ("sasl_ssl://h:9093", "needs USER:PASS@"),
            ("ssl://u:hunter2@h:9093", "takes no credentials"),
            (
                "sasl_ssl://u:hunter2@h:9093?mechanism=GSSAPI",
                "is not PLAIN",
            ),
            ("sasl_plaintext://u:hunter2@h:9092?ca=/x", "takes no ca"),
            ("ssl://h:9093?mechanism=PLAIN", "takes no mechanism"),
            ("sasl_ssl://u:hunter2@h:9093?pass=x", "unknown parameter"),
            ("sasl_ssl://uhunter2@h:9093", "USER:PASS"),
            (
                "sasl_ssl://u:hunter2%ff@h:9093",
                "the password is not UTF-8",
            ),
            ("https://u:hunter2@h:9093", "is not plaintext"),
            ("sasl_ssl://u:hunter2@h", "is not HOST:PORT"),
            ("sasl_ssl://u:hunter2", "needs USER:PASS@"),
            ("u:hunter2@h:9092", "credentials go in"),
            ("ssl://h:9093?ca=/srv/a@b/ca.pem", "written %40"),
            (
                "sasl_ssl://u:hunter2@h:9093?ca=/srv/a@b/ca.pem",
                "written %40",
            ),
        ] {
            let e = parse(value).unwrap_err();
            assert!(e.contains(says), "{value}: {e}");
            assert!(!e.contains("hunter2"), "{value}: {e}");
        }
    }
}
