//! The bearer token (`--auth-token`) and the session cookie that stands for it.
//!
//! The token is never compared byte by byte: each presented value is run through HMAC-SHA-256
//! under a key drawn at start, and the MAC checked against the token's in constant time (no
//! early exit, no length leak). The session cookie is an HMAC of the token under the same key:
//! it proves a login without holding the token, and it is worthless once the process exits
//! (a restart asks the browser to log in again).

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Longest token: far beyond any random token, small enough for one header line.
pub const MAX_TOKEN_BYTES: usize = 1024;
/// Shorter tokens are accepted with a warning at start.
pub const SHORT_TOKEN_BYTES: usize = 16;

/// A token as given on the command line or in a file. Its `Debug` never shows it, so a
/// `ServeArgs` printed by mistake does not either.
#[derive(Clone)]
pub struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// Any text: checked later by [`Secret::validate`], whose errors never quote it (clap's own
/// errors would print a rejected value).
impl From<String> for Secret {
    fn from(text: String) -> Secret {
        Secret(text)
    }
}

impl Secret {
    /// Reads a token file (at most [`MAX_TOKEN_BYTES`] plus a line end); surrounding
    /// whitespace, a trailing newline included, is not part of the token.
    pub fn from_file(path: &std::path::Path) -> Result<Secret, String> {
        use std::io::Read;
        let file = std::fs::File::open(path)
            .map_err(|e| format!("--auth-token-file {}: {e}", path.display()))?;
        let mut text = String::new();
        file.take(MAX_TOKEN_BYTES as u64 + 3)
            .read_to_string(&mut text)
            .map_err(|e| format!("--auth-token-file {}: {e}", path.display()))?;
        Ok(Secret(text.trim().to_string()))
    }

    /// A token is 1 to [`MAX_TOKEN_BYTES`] visible ASCII characters (it travels in a header).
    pub fn validate(&self) -> Result<(), String> {
        let t = self.0.as_bytes();
        if t.is_empty() {
            return Err("the auth token is empty".into());
        }
        if t.len() > MAX_TOKEN_BYTES {
            return Err(format!(
                "the auth token is longer than {MAX_TOKEN_BYTES} bytes"
            ));
        }
        if !t.iter().all(|b| (0x21..=0x7e).contains(b)) {
            return Err(
                "the auth token may hold only visible ASCII characters (no spaces or control characters)"
                    .into(),
            );
        }
        Ok(())
    }

    pub fn is_short(&self) -> bool {
        self.0.len() < SHORT_TOKEN_BYTES
    }

    /// The token itself, for a client that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Checks presented tokens and session cookies against one token.
pub struct Verifier {
    key: [u8; 32],
    token_mac: [u8; 32],
    session: [u8; 32],
}

impl Verifier {
    /// A verifier with a fresh random key.
    pub fn new(token: &Secret) -> Result<Verifier, String> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| format!("no random key for the session: {e}"))?;
        Ok(Verifier::with_key(token, key))
    }

    fn with_key(token: &Secret, key: [u8; 32]) -> Verifier {
        let token_mac = mac(&key, &[token.0.as_bytes()]);
        let session = mac(&key, &[b"session\0", token.0.as_bytes()]);
        Verifier {
            key,
            token_mac,
            session,
        }
    }

    /// Whether `presented` is the token (constant time).
    pub fn token_ok(&self, presented: &[u8]) -> bool {
        let Ok(mut m) = HmacSha256::new_from_slice(&self.key) else {
            return false;
        };
        m.update(presented);
        m.verify_slice(&self.token_mac).is_ok()
    }

    /// Whether an `Authorization` header value is `Bearer <token>` (scheme case-insensitive).
    pub fn authorization_ok(&self, header: &[u8]) -> bool {
        let Some(scheme) = header.get(..7) else {
            return false;
        };
        scheme.eq_ignore_ascii_case(b"bearer ") && self.token_ok(header[7..].trim_ascii())
    }

    /// The session cookie's value (hex).
    pub fn session_value(&self) -> String {
        hex::encode(self.session)
    }

    /// Whether a cookie value is this process's session (constant time).
    pub fn session_ok(&self, value: &str) -> bool {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(value, &mut bytes).is_ok() && bool::from(bytes.ct_eq(&self.session))
    }
}

fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // An HMAC takes a key of any length: this cannot fail.
    let mut m = match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return [0u8; 32],
    };
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verifier(token: &str) -> Verifier {
        Verifier::with_key(&Secret(token.into()), [7u8; 32])
    }

    #[test]
    fn only_the_token_passes() {
        let v = verifier("s3cret-token");
        assert!(v.token_ok(b"s3cret-token"));
        for wrong in [
            &b""[..],
            b"s3cret-toke",
            b"s3cret-token ",
            b"S3CRET-TOKEN",
            b"x",
        ] {
            assert!(!v.token_ok(wrong), "{wrong:?}");
        }
    }

    #[test]
    fn bearer_headers_parse() {
        let v = verifier("abc");
        assert!(v.authorization_ok(b"Bearer abc"));
        assert!(v.authorization_ok(b"bearer  abc "));
        assert!(!v.authorization_ok(b"Basic abc"));
        assert!(!v.authorization_ok(b"Bearer"));
        assert!(!v.authorization_ok(b"Bearerabc"));
        assert!(!v.authorization_ok(b"abc"));
    }

    #[test]
    fn the_session_is_neither_the_token_nor_valid_under_another_key() {
        let v = verifier("abc");
        let value = v.session_value();
        assert!(v.session_ok(&value));
        assert!(!value.contains("abc"));
        assert!(!v.session_ok("abc"));
        assert!(!v.session_ok(&value[..62]));
        let other = Verifier::with_key(&Secret("abc".into()), [8u8; 32]);
        assert!(!other.session_ok(&value), "a new process does not take it");
        let fresh = Verifier::new(&Secret("abc".into())).unwrap();
        assert!(!fresh.session_ok(&value));
    }

    #[test]
    fn tokens_are_validated_without_being_quoted() {
        for bad in ["", "two words", "tab\there", "é"] {
            let err = Secret(bad.into()).validate().unwrap_err();
            assert!(bad.is_empty() || !err.contains(bad), "{err}");
        }
        assert!(Secret("x".repeat(MAX_TOKEN_BYTES + 1)).validate().is_err());
        assert!(Secret("ok-token".into()).validate().is_ok());
        assert!(format!("{:?}", Secret("hidden".into())).contains("redacted"));
    }

    #[test]
    fn token_files_lose_their_line_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "file-token\n").unwrap();
        let s = Secret::from_file(&path).unwrap();
        assert!(verifier(&s.0).token_ok(b"file-token"));
        assert!(Secret::from_file(&dir.path().join("missing")).is_err());
    }
}
