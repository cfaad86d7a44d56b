//! SQL text for ClickHouse, built only here. ClickHouse 18.16 (Debian's package) has no bound
//! parameters over HTTP (`{name:Type}` placeholders and `param_*` came in 19.15; 18.16 answers
//! "Unknown setting param_x"), so values are written into the query as literals, and only by
//! [`render`]: a template with `?` placeholders and typed values ([`Value`]), each written by
//! one escaping function per type. Strings are always quoted and escaped ([`string`]);
//! numbers come from Rust integers; ids are hex of fixed length. Identifiers (the database) are
//! validated where they are parsed (`url.rs`) and written by [`ident`].

use crate::model::{SpanId, TraceId};
use std::fmt::Write;

/// A value written into a query as a literal.
pub enum Value<'a> {
    Str(&'a str),
    U64(u64),
    I64(i64),
    /// A trace id, as `unhex('<32 hex digits>')` (a `FixedString(16)` column).
    Trace(TraceId),
    /// A span id, as `unhex('<16 hex digits>')` (a `FixedString(8)` column).
    Span(SpanId),
    /// The UTC day of a time in unix nanoseconds, as `toDate('YYYY-MM-DD')` (a `Date` column:
    /// 18.16 compares a `Date` with a date, not with a number).
    Day(u64),
    /// A list of values, as `(a, b, ...)` (for `IN`); an empty list is `(NULL)`, which
    /// matches nothing.
    List(Vec<Value<'a>>),
}

/// A template had a different number of `?` than values: a bug, never input.
#[derive(Debug, thiserror::Error)]
#[error("query template has {placeholders} placeholders for {values} values")]
pub struct TemplateError {
    placeholders: usize,
    values: usize,
}

/// Writes each value into the template in place of its `?`, in order. Templates are constants
/// of the crate and hold no `?` other than placeholders.
pub fn render(template: &str, values: &[Value<'_>]) -> Result<String, TemplateError> {
    let placeholders = template.matches('?').count();
    if placeholders != values.len() {
        return Err(TemplateError {
            placeholders,
            values: values.len(),
        });
    }
    let mut out = String::with_capacity(template.len() + 16 * values.len());
    let mut values = values.iter();
    for (i, part) in template.split('?').enumerate() {
        if i > 0 {
            if let Some(v) = values.next() {
                literal(&mut out, v);
            }
        }
        out.push_str(part);
    }
    Ok(out)
}

fn literal(out: &mut String, v: &Value<'_>) {
    match v {
        Value::Str(s) => out.push_str(&string(s)),
        Value::U64(n) => {
            let _ = write!(out, "{n}");
        }
        Value::I64(n) => {
            // Parenthesized, so that `- -1` can never read as a comment or a double minus.
            let _ = write!(out, "({n})");
        }
        Value::Trace(t) => {
            let _ = write!(out, "unhex('{}')", t.to_hex());
        }
        Value::Span(s) => {
            let _ = write!(out, "unhex('{}')", s.to_hex());
        }
        Value::Day(nanos) => {
            let (y, m, d) = civil_from_days((nanos / 86_400_000_000_000) as i64);
            let _ = write!(out, "toDate('{y:04}-{m:02}-{d:02}')");
        }
        Value::List(items) if items.is_empty() => out.push_str("(NULL)"),
        Value::List(items) => {
            out.push('(');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                literal(out, item);
            }
            out.push(')');
        }
    }
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A string literal: single-quoted; backslash and quote escaped with a backslash; every
/// control character (and DEL) as `\xHH`, so the literal is one line of printable text.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            c if c.is_ascii_control() => {
                let _ = write!(out, "\\x{:02X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// An identifier already validated as `[A-Za-z_][A-Za-z0-9_]*` (`url.rs`), back-quoted.
pub fn ident(name: &str) -> String {
    debug_assert!(is_plain_ident(name));
    format!("`{name}`")
}

/// Whether `name` is a plain identifier: ASCII letters, digits and `_`, not starting with a
/// digit, at most 64 characters.
pub fn is_plain_ident(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 64
}

/// Strings an attacker might put in a service name or an attribute (for the tests here and
/// against a real server).
#[cfg(test)]
pub fn tests_hostile() -> &'static [&'static str] {
    tests::HOSTILE
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Strings an attacker might put in a service name or an attribute.
    pub const HOSTILE: &[&str] = &[
        "",
        "'",
        "''",
        "\\",
        "\\'",
        "a\\",
        "'; DROP TABLE spans; --",
        "' OR 1=1 --",
        "x' FORMAT TabSeparated",
        "\0",
        "a\0b",
        "line\nbreak\r\ttab",
        "\u{7f}\u{1}\u{1f}",
        "é ü 漢字 🚀",
        "?",
        "??'?",
        "/* comment */",
        "`backtick`",
        "\"double\"",
        "\\x41",
        "\\N",
        "{x:String}",
    ];

    #[test]
    fn strings_are_quoted_and_escaped() {
        assert_eq!(string("a'b"), r"'a\'b'");
        assert_eq!(string(r"a\b"), r"'a\\b'");
        assert_eq!(string("a\0b\n"), r"'a\x00b\x0A'");
        assert_eq!(string("é"), "'é'");
        for s in HOSTILE {
            let lit = string(s);
            // One line, and no quote inside that is not escaped.
            assert!(!lit.contains('\n') && !lit.contains('\0'), "{lit}");
            let inner = &lit[1..lit.len() - 1];
            let mut escaped = false;
            for c in inner.chars() {
                assert!(escaped || c != '\'', "unescaped quote in {lit}");
                escaped = !escaped && c == '\\';
            }
            assert!(
                !escaped,
                "a trailing backslash escapes the closing quote: {lit}"
            );
        }
    }

    #[test]
    fn render_fills_placeholders_in_order_and_counts_them() {
        let q = render(
            "SELECT ? WHERE a = ? AND b IN ? AND c = ?",
            &[
                Value::Str("it's"),
                Value::I64(-1),
                Value::List(vec![Value::U64(1), Value::U64(2)]),
                Value::Trace(TraceId([0xab; 16])),
            ],
        )
        .unwrap();
        assert_eq!(
            q,
            format!(
                r"SELECT 'it\'s' WHERE a = (-1) AND b IN (1, 2) AND c = unhex('{}')",
                "ab".repeat(16)
            )
        );
        // A `?` inside a value is data, not a placeholder.
        assert_eq!(
            render("SELECT ?", &[Value::Str("?")]).unwrap(),
            "SELECT '?'"
        );
        assert_eq!(
            render("x IN ?", &[Value::List(vec![])]).unwrap(),
            "x IN (NULL)"
        );
        assert!(render("SELECT ?, ?", &[Value::U64(1)]).is_err());
        assert!(render("SELECT 1", &[Value::U64(1)]).is_err());
    }

    #[test]
    fn days_render_as_dates() {
        let day = |d: u64| render("?", &[Value::Day(d * 86_400_000_000_000 + 5)]).unwrap();
        assert_eq!(day(0), "toDate('1970-01-01')");
        assert_eq!(day(20_454), "toDate('2026-01-01')");
        assert_eq!(day(11_016), "toDate('2000-02-29')");
        assert_eq!(day(11_017), "toDate('2000-03-01')");
    }

    #[test]
    fn identifiers_are_plain() {
        for ok in ["switchyard", "_a1", "A_b_2"] {
            assert!(is_plain_ident(ok), "{ok}");
        }
        for bad in ["", "1a", "a-b", "a b", "a`b", "a;b", "é", &"a".repeat(65)] {
            assert!(!is_plain_ident(bad), "{bad}");
        }
    }
}
