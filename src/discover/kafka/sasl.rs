//! SASL authentication of a new connection, as Kafka clients do it: SaslHandshake v1 names
//! the mechanism, then SaslAuthenticate v0 carries its messages. PLAIN (RFC 4616: one message,
//! the password in it, so only over TLS unless the network is trusted) and SCRAM-SHA-256 /
//! SCRAM-SHA-512 (RFC 5802 and 7677: the password never leaves; the broker's last message
//! proves it knows the salted password too, and is checked).
//!
//! Nothing here logs, and no error holds the user or the password: a broker's own error
//! message is shown cut to 200 characters and with the password taken out (a PLAIN broker
//! has it).

use super::security::{Mechanism, Sasl};
use super::wire::{Conn, Reader, WireError, Writer};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};

pub const SASL_HANDSHAKE: i16 = 17;
pub const SASL_AUTHENTICATE: i16 = 36;

/// Most PBKDF2 iterations a broker may ask for (Kafka allows 4096 to 16384): bounds the CPU
/// one connection costs.
const MAX_ITERATIONS: u32 = 100_000;

/// Authenticates `conn` (a new connection, before any other request) with `sasl`.
pub fn authenticate(conn: &mut Conn, sasl: &Sasl) -> Result<(), WireError> {
    let mechanism = sasl.mechanism.as_str();
    let mut w = Writer::default();
    w.string(mechanism);
    let answer = conn.call(SASL_HANDSHAKE, 1, &w)?;
    let mut r = Reader::new(&answer);
    let error = r.i16()?;
    let offered = r.list(2, |r| r.string())?;
    if error != 0 {
        return Err(WireError::Denied(format!(
            "SaslHandshake error {error}: the broker takes {} ({mechanism} asked)",
            offered.join(", ").chars().take(200).collect::<String>()
        )));
    }
    match sasl.mechanism {
        Mechanism::Plain => {
            let token = format!("\0{}\0{}", sasl.user, sasl.password.expose());
            step(conn, token.as_bytes(), sasl)?;
            Ok(())
        }
        Mechanism::ScramSha256 | Mechanism::ScramSha512 => {
            let nonce = client_nonce()?;
            let (first, bare) = client_first(&sasl.user, &nonce);
            let server_first = step(conn, first.as_bytes(), sasl)?;
            let server_first = String::from_utf8_lossy(&server_first).into_owned();
            let (last, signature) = client_final(
                sasl.mechanism,
                sasl.password.expose(),
                &bare,
                &server_first,
                &nonce,
            )
            .map_err(|e| WireError::Denied(format!("{mechanism}: {e}")))?;
            let server_final = step(conn, last.as_bytes(), sasl)?;
            verify_server_final(&String::from_utf8_lossy(&server_final), &signature)
                .map_err(|e| WireError::Denied(format!("{mechanism}: {e}")))
        }
    }
}

/// One SaslAuthenticate v0 exchange: our bytes out, the broker's back (or its refusal).
fn step(conn: &mut Conn, token: &[u8], sasl: &Sasl) -> Result<Vec<u8>, WireError> {
    let mut w = Writer::default();
    w.bytes(token);
    let answer = conn.call(SASL_AUTHENTICATE, 0, &w)?;
    let mut r = Reader::new(&answer);
    let error = r.i16()?;
    let message = r.nullable_string()?.unwrap_or_default();
    let bytes = r.bytes()?.to_vec();
    if error != 0 {
        // The password and the user are blanked out of the whole message before it is cut,
        // so no part of either survives the cut.
        let mut message = message;
        for secret in [sasl.password.expose(), sasl.user.as_str()] {
            if !secret.is_empty() {
                message = message.replace(secret, "***");
            }
        }
        let shown: String = message.chars().take(200).collect();
        return Err(WireError::Denied(format!(
            "SaslAuthenticate error {error} ({}): {shown}",
            sasl.mechanism.as_str()
        )));
    }
    Ok(bytes)
}

/// 24 random bytes, base64 (no ',' in it, as SCRAM requires).
fn client_nonce() -> Result<String, WireError> {
    let mut raw = [0u8; 24];
    getrandom::fill(&mut raw).map_err(|e| WireError::Io(format!("random nonce: {e}")))?;
    Ok(B64.encode(raw))
}

/// SCRAM's client-first message and its bare part (no channel binding: `n,,`).
pub fn client_first(user: &str, nonce: &str) -> (String, String) {
    let name = user.replace('=', "=3D").replace(',', "=2C");
    let bare = format!("n={name},r={nonce}");
    (format!("n,,{bare}"), bare)
}

/// SCRAM's client-final message for the server-first one, and the server signature the
/// server-final message must carry.
pub fn client_final(
    mechanism: Mechanism,
    password: &str,
    first_bare: &str,
    server_first: &str,
    client_nonce: &str,
) -> Result<(String, Vec<u8>), String> {
    let (mut nonce, mut salt, mut iterations) = (None, None, None);
    for attr in server_first.split(',') {
        match attr.split_once('=') {
            Some(("r", v)) => nonce = Some(v),
            Some(("s", v)) => salt = Some(B64.decode(v).map_err(|_| "a salt not in base64")?),
            Some(("i", v)) => iterations = v.parse::<u32>().ok(),
            Some(("e", v)) => return Err(format!("the broker refused: {}", cut(v))),
            Some(("m", _)) => return Err("an extension SCRAM cannot skip".to_string()),
            _ => {}
        }
    }
    let (Some(nonce), Some(salt), Some(iterations)) = (nonce, salt, iterations) else {
        return Err("a SCRAM server-first message without r, s or i".to_string());
    };
    if !nonce.starts_with(client_nonce) || nonce.len() == client_nonce.len() {
        return Err("a SCRAM nonce that does not extend ours".to_string());
    }
    if iterations == 0 || iterations > MAX_ITERATIONS {
        return Err(format!(
            "{iterations} SCRAM iterations (at most {MAX_ITERATIONS})"
        ));
    }
    let salted = hi(mechanism, password.as_bytes(), &salt, iterations);
    let client_key = hmac(mechanism, &salted, b"Client Key");
    let stored_key = hash(mechanism, &client_key);
    let without_proof = format!("c=biws,r={nonce}");
    let auth_message = format!("{first_bare},{server_first},{without_proof}");
    let client_signature = hmac(mechanism, &stored_key, auth_message.as_bytes());
    let proof: Vec<u8> = client_key
        .iter()
        .zip(&client_signature)
        .map(|(a, b)| a ^ b)
        .collect();
    let server_key = hmac(mechanism, &salted, b"Server Key");
    let server_signature = hmac(mechanism, &server_key, auth_message.as_bytes());
    Ok((
        format!("{without_proof},p={}", B64.encode(proof)),
        server_signature,
    ))
}

/// The server-final message: `v=` the expected signature (compared in constant time), or
/// `e=` the broker's refusal.
pub fn verify_server_final(message: &str, expected: &[u8]) -> Result<(), String> {
    use subtle::ConstantTimeEq as _;
    if let Some(e) = message.strip_prefix("e=") {
        return Err(format!("the broker refused: {}", cut(e)));
    }
    let given = message
        .split(',')
        .find_map(|a| a.strip_prefix("v="))
        .and_then(|v| B64.decode(v).ok())
        .ok_or("a SCRAM server-final message without v")?;
    if bool::from(given.ct_eq(expected)) {
        Ok(())
    } else {
        Err("the broker's SCRAM signature is wrong (it does not know this password)".to_string())
    }
}

fn cut(text: &str) -> String {
    text.chars().take(200).collect()
}

fn hmac(mechanism: Mechanism, key: &[u8], data: &[u8]) -> Vec<u8> {
    const ANY_KEY: &str = "HMAC takes keys of any length";
    match mechanism {
        Mechanism::ScramSha512 => {
            let mut mac = <Hmac<Sha512> as Mac>::new_from_slice(key).expect(ANY_KEY);
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        _ => {
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect(ANY_KEY);
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
    }
}

fn hash(mechanism: Mechanism, data: &[u8]) -> Vec<u8> {
    match mechanism {
        Mechanism::ScramSha512 => Sha512::digest(data).to_vec(),
        _ => Sha256::digest(data).to_vec(),
    }
}

/// RFC 5802's Hi(): PBKDF2 with the mechanism's HMAC, one block.
fn hi(mechanism: Mechanism, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
    match mechanism {
        Mechanism::ScramSha512 => {
            let mut out = vec![0u8; 64];
            pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out);
            out
        }
        _ => {
            let mut out = vec![0u8; 32];
            pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 section 3: user "user", password "pencil".
    #[test]
    fn scram_sha_256_matches_rfc_7677() {
        let nonce = "rOprNGfwEbeRWgbNEkqO";
        let (first, bare) = client_first("user", nonce);
        assert_eq!(first, "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first =
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let (last, signature) =
            client_final(Mechanism::ScramSha256, "pencil", &bare, server_first, nonce).unwrap();
        assert_eq!(
            last,
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        verify_server_final("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", &signature).unwrap();
        assert!(
            verify_server_final("v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", &signature)
                .is_err()
        );
        assert!(verify_server_final("e=invalid-proof", &signature).is_err());
        // A wrong password gives another proof.
        let (other, _) = client_final(
            Mechanism::ScramSha256,
            "pencil2",
            &bare,
            server_first,
            nonce,
        )
        .unwrap();
        assert_ne!(other, last);
    }

    #[test]
    fn bad_server_first_messages_are_refused() {
        let bare = "n=u,r=abc";
        for (server_first, says) in [
            ("r=xyz123,s=QQ==,i=4096", "does not extend ours"),
            ("r=abc,s=QQ==,i=4096", "does not extend ours"),
            ("r=abcd,s=QQ==,i=4000000000", "iterations"),
            ("r=abcd,s=QQ==,i=0", "iterations"),
            ("r=abcd,s=!!,i=4096", "base64"),
            ("r=abcd,i=4096", "without r, s or i"),
            ("e=unknown-user", "refused"),
            ("m=ext,r=abcd,s=QQ==,i=4096", "extension"),
        ] {
            let e =
                client_final(Mechanism::ScramSha512, "pw", bare, server_first, "abc").unwrap_err();
            assert!(e.contains(says), "{server_first}: {e}");
        }
    }

    #[test]
    fn user_names_are_escaped() {
        assert_eq!(client_first("a=b,c", "n").1, "n=a=3Db=2Cc,r=n");
    }
}
