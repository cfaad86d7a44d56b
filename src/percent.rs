//! Percent-encoding (RFC 3986), one character set for the whole crate: the names and times in
//! the pages' links, the names in the broker client's request paths, and the CloudEvents `ce-*`
//! header values the broker reads.

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Everything but the unreserved characters (`A-Z a-z 0-9 - . _ ~`) is encoded, so the result
/// is safe as one path segment and as one query value (RFC 3339 times carry `:` and `+`).
pub const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Encodes `text` with [`COMPONENT`] (hex digits in upper case).
pub fn encode(text: &str) -> String {
    utf8_percent_encode(text, COMPONENT).to_string()
}

/// Decodes `%XX` escapes; a `%` without two hex digits after it stays as it is, and bytes that
/// do not form UTF-8 become U+FFFD.
pub fn decode(text: &str) -> String {
    percent_decode_str(text).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unreserved_characters_stay_as_they_are() {
        assert_eq!(encode("service:shop/a b<"), "service%3Ashop%2Fa%20b%3C");
        assert_eq!(encode("Az09-._~"), "Az09-._~");
        assert_eq!(
            encode("2026-01-01T00:00:00+01:00"),
            "2026-01-01T00%3A00%3A00%2B01%3A00"
        );
        assert_eq!(encode("é"), "%C3%A9");
    }

    #[test]
    fn decoding_keeps_what_is_not_an_escape() {
        assert_eq!(decode("/a%20b"), "/a b");
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz%4"), "%zz%4");
        assert_eq!(decode("%C3%A9%ff"), "é\u{fffd}");
        assert_eq!(decode(&encode("ünï/cödé %")), "ünï/cödé %");
    }
}
