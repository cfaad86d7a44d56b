//! Trace and span identifiers: validated, fixed-size, shown as lowercase hex.

use std::fmt;

/// A 16-byte W3C trace id. Invariant: never all zeroes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceId(pub [u8; 16]);

/// An 8-byte span id. Invariant: never all zeroes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpanId(pub [u8; 8]);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdError {
    #[error("{what} must be {want} bytes, got {got}")]
    Length {
        what: &'static str,
        want: usize,
        got: usize,
    },
    #[error("{what} must not be all zeroes")]
    Zero { what: &'static str },
    #[error("{what} is not valid hex")]
    Hex { what: &'static str },
}

macro_rules! id_impl {
    ($ty:ident, $len:expr, $what:expr) => {
        impl $ty {
            pub const LEN: usize = $len;

            pub fn from_bytes(bytes: &[u8]) -> Result<Self, IdError> {
                let arr: [u8; $len] = bytes.try_into().map_err(|_| IdError::Length {
                    what: $what,
                    want: $len,
                    got: bytes.len(),
                })?;
                if arr.iter().all(|b| *b == 0) {
                    return Err(IdError::Zero { what: $what });
                }
                Ok($ty(arr))
            }

            pub fn from_hex(text: &str) -> Result<Self, IdError> {
                let bytes = hex::decode(text).map_err(|_| IdError::Hex { what: $what })?;
                Self::from_bytes(&bytes)
            }

            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            pub fn as_bytes(&self) -> &[u8] {
                &self.0
            }

            /// A compact index key: the id folded to 64 bits (both halves of a trace id, so
            /// 64-bit ids widened with a zero high half still spread). Keys may collide;
            /// lookups by key always compare the full id.
            pub fn key(&self) -> i64 {
                let mut folded = [0u8; 8];
                for (i, b) in self.0.iter().enumerate() {
                    folded[i % 8] ^= b;
                }
                i64::from_be_bytes(folded)
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($ty), self.to_hex())
            }
        }

        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::from_hex(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

id_impl!(TraceId, 16, "trace id");
id_impl!(SpanId, 8, "span id");

impl SpanId {
    /// The inverse of [`SpanId::key`] (a span id is exactly 8 bytes, so its key is itself).
    pub fn from_key(key: i64) -> Option<SpanId> {
        SpanId::from_bytes(&key.to_be_bytes()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_hex() {
        let id = TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap();
        assert_eq!(id.to_hex(), "0af7651916cd43dd8448eb211c80319c");
        let span = SpanId::from_hex("b7ad6b7169203331").unwrap();
        assert_eq!(span.to_string(), "b7ad6b7169203331");
        let json = serde_json::to_string(&span).unwrap();
        assert_eq!(serde_json::from_str::<SpanId>(&json).ok(), Some(span));
        assert!(serde_json::from_str::<TraceId>("\"00\"").is_err());
    }

    #[test]
    fn keys_fold_both_halves_and_span_keys_invert() {
        let narrow = TraceId::from_hex("0000000000000000a3ce929d0e0e4736").unwrap();
        let other = TraceId::from_hex("0000000000000000b3ce929d0e0e4736").unwrap();
        assert_ne!(narrow.key(), 0);
        assert_ne!(narrow.key(), other.key());
        let span = SpanId::from_hex("b7ad6b7169203331").unwrap();
        assert_eq!(SpanId::from_key(span.key()), Some(span));
    }

    #[test]
    fn rejects_bad_ids() {
        assert_eq!(
            TraceId::from_bytes(&[1; 8]),
            Err(IdError::Length {
                what: "trace id",
                want: 16,
                got: 8
            })
        );
        assert_eq!(
            SpanId::from_bytes(&[0; 8]),
            Err(IdError::Zero { what: "span id" })
        );
        assert_eq!(
            SpanId::from_hex("zz"),
            Err(IdError::Hex { what: "span id" })
        );
    }
}
