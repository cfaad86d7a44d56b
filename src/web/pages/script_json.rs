//! JSON written into a page inside `<script type="application/json">`: data a page's script
//! reads without a second request (a large trace's rows, the map's topology). Pure.

use serde::Serialize;
use std::fmt;

/// JSON whose `<`, `>` and `&` are written as `\u` escapes, so no text in it can close the
/// script element that holds it or open another: safe to write into the page unescaped.
/// Those three characters only ever occur inside JSON strings, where the escapes read back as
/// the same text.
pub struct ScriptJson(String);

impl ScriptJson {
    pub fn of(value: &impl Serialize) -> ScriptJson {
        let text = serde_json::to_string(value).unwrap_or_else(|_| "null".to_string());
        ScriptJson::escaped(&text)
    }

    /// Already serialised JSON (e.g. `/api/topology`'s body); empty when it is not UTF-8.
    pub fn of_json(json: &[u8]) -> ScriptJson {
        match std::str::from_utf8(json) {
            Ok(text) => ScriptJson::escaped(text),
            Err(_) => ScriptJson::empty(),
        }
    }

    fn escaped(text: &str) -> ScriptJson {
        let mut out = String::with_capacity(text.len() + 64);
        let mut rest = text;
        // Copies runs between the three characters whole: megabytes of JSON hold few of them.
        while let Some(i) = rest.find(['<', '>', '&']) {
            out.push_str(&rest[..i]);
            out.push_str(match rest.as_bytes()[i] {
                b'<' => "\\u003c",
                b'>' => "\\u003e",
                _ => "\\u0026",
            });
            rest = &rest[i + 1..];
        }
        out.push_str(rest);
        ScriptJson(out)
    }

    pub fn empty() -> ScriptJson {
        ScriptJson(String::new())
    }
}

impl fmt::Display for ScriptJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// The text holds no `<`, `>` or `&` (see `ScriptJson::escaped`): HTML escaping would only
// break it.
impl askama::filters::HtmlSafe for ScriptJson {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_json_cannot_close_its_element() {
        let text =
            ScriptJson::of(&["</script><script>alert(1)</script>", "a & b", "<!--"]).to_string();
        assert!(!text.contains(['<', '>', '&']), "{text}");
        let back: Vec<String> = serde_json::from_str(&text).unwrap();
        assert_eq!(back[0], "</script><script>alert(1)</script>");
        assert_eq!(back[1], "a & b");
        assert_eq!(back[2], "<!--");
    }

    #[test]
    fn serialised_json_reads_back_the_same() {
        let value = serde_json::json!({"name": "</script>\u{2028}é & <b>", "n": [1, 2]});
        let text = ScriptJson::of_json(&serde_json::to_vec(&value).unwrap()).to_string();
        assert!(!text.contains(['<', '>', '&']), "{text}");
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, value);
        assert_eq!(ScriptJson::of_json(b"\xff\"").to_string(), "");
    }
}
