//! TLS for `--notify-url https://...`: rustls (the *ring* provider, no OpenSSL), trusting the
//! system's roots (`rustls-native-certs`) plus the certificates of `--notify-ca FILE` (PEM),
//! for a receiver whose certificate a private CA signed. The receiver's name (or IP address)
//! in the URL is checked against its certificate. Built once at start; a CA file that cannot
//! be read or holds no certificate stops `serve` before anything starts.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;

/// The TLS client every https receiver's thread uses: a cheap clone.
#[derive(Clone)]
pub struct Tls {
    config: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls")
    }
}

impl Tls {
    /// The system's roots plus `extra_ca`'s certificates. Errors name the file and what is
    /// wrong with it.
    pub fn new(extra_ca: Option<&Path>) -> Result<Tls, String> {
        Ok(Tls {
            config: client_config(extra_ca, "--notify-ca", "every https --notify-url post")?,
        })
    }
}

/// A TLS client configuration (rustls, *ring*) trusting the system's roots plus the
/// certificates of `extra_ca` (PEM), named `option` in errors; `users` says in the warning
/// what fails when no root is trusted at all. Also used by Kafka discovery (`ssl://`,
/// `sasl_ssl://` and their `?ca=`).
pub fn client_config(
    extra_ca: Option<&Path>,
    option: &str,
    users: &str,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let (system, _) = roots.add_parsable_certificates(native.certs);
    if let Some(path) = extra_ca {
        let (added, refused) = roots.add_parsable_certificates(ca_file(path, option)?);
        if added == 0 {
            return Err(format!(
                "{option} {}: none of its {refused} certificates can be a root",
                path.display()
            ));
        }
    }
    if roots.is_empty() {
        tracing::warn!(
            system,
            "no trusted root certificates (none on the system, no {option}): {users} will fail"
        );
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The certificates of a PEM file.
fn ca_file(
    path: &Path,
    option: &str,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let shown = path.display();
    let text = std::fs::read(path).map_err(|e| format!("{option} {shown}: {e}"))?;
    let certs = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{option} {shown}: not a PEM certificate file ({e})"))?;
    if certs.is_empty() {
        return Err(format!(
            "{option} {shown}: no PEM certificate (-----BEGIN CERTIFICATE-----) in it"
        ));
    }
    Ok(certs)
}

/// One TLS connection to a receiver, as ureq reads and writes it.
struct Stream(rustls::StreamOwned<rustls::ClientConnection, Box<dyn ureq::ReadWrite>>);

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsStream")
    }
}

impl ureq::ReadWrite for Stream {
    fn socket(&self) -> Option<&TcpStream> {
        self.0.get_ref().socket()
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// A handshake or setup failure, said plainly ("tls: invalid peer certificate:
/// UnknownIssuer"): the post's log line shows it (never the URL, which may hold credentials).
fn failed(what: impl std::fmt::Display) -> ureq::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("tls: {what}")).into()
}

impl ureq::TlsConnector for Tls {
    fn connect(
        &self,
        host: &str,
        mut io: Box<dyn ureq::ReadWrite>,
    ) -> Result<Box<dyn ureq::ReadWrite>, ureq::Error> {
        // An IPv6 address comes in brackets.
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let name = rustls::pki_types::ServerName::try_from(host)
            .map_err(|_| failed("the host is not a name or an IP address a certificate can name"))?
            .to_owned();
        let mut conn = rustls::ClientConnection::new(self.config.clone(), name).map_err(failed)?;
        // The handshake now (rustls completes it in one call, or fails), so that a
        // certificate error is this connection's error.
        conn.complete_io(&mut io).map_err(failed)?;
        Ok(Box::new(Stream(rustls::StreamOwned::new(conn, io))))
    }
}

/// Why a post failed, for the log: the error's kind and its causes (a TLS handshake's, an
/// I/O error's), never ureq's own message, which names the URL.
pub fn transport_reason(t: &ureq::Transport) -> String {
    use std::error::Error as _;
    let mut reason = format!("{:?}", t.kind());
    let mut cause = t.source();
    // Bounded: a chain of causes is short; stop at 4.
    for _ in 0..4 {
        let Some(c) = cause else { break };
        reason.push_str(": ");
        reason.push_str(&c.to_string());
        cause = c.source();
    }
    reason
}
