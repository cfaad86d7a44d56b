//! Helpers for the UI tests: pages parsed as HTML, and a trace whose every name is hostile.

use super::builder::{span, Consumer, Producer, SpanB};
use super::TestEnv;
use scraper::{Html, Selector};

/// A page fetched from the server: status, headers and the parsed document.
pub struct Page {
    pub status: u16,
    pub csp: String,
    pub body: String,
    pub doc: Html,
}

impl Page {
    pub fn get(env: &TestEnv, path: &str) -> Page {
        let reply = env.get(path);
        assert!(
            reply.content_type().starts_with("text/html"),
            "GET {path}: content type {}",
            reply.content_type()
        );
        let body = reply.text();
        Page {
            status: reply.status,
            csp: reply
                .header("content-security-policy")
                .unwrap_or_default()
                .to_string(),
            doc: Html::parse_document(&body),
            body,
        }
    }

    /// `GET` that must answer 200.
    pub fn ok(env: &TestEnv, path: &str) -> Page {
        let page = Page::get(env, path);
        assert_eq!(page.status, 200, "GET {path}:\n{}", page.body);
        page
    }

    pub fn all(&self, css: &str) -> Vec<scraper::ElementRef<'_>> {
        let sel = Selector::parse(css).unwrap_or_else(|e| panic!("selector {css}: {e:?}"));
        self.doc.select(&sel).collect()
    }

    pub fn one(&self, css: &str) -> scraper::ElementRef<'_> {
        let found = self.all(css);
        assert_eq!(found.len(), 1, "expected one {css}, found {}", found.len());
        found[0]
    }

    /// Trimmed text of every element matching `css`.
    pub fn texts(&self, css: &str) -> Vec<String> {
        self.all(css).iter().map(|e| text(e)).collect()
    }

    pub fn attrs(&self, css: &str, attr: &str) -> Vec<String> {
        self.all(css)
            .iter()
            .filter_map(|e| e.value().attr(attr).map(str::to_string))
            .collect()
    }

    /// No script runs but ours: every `<script>` loads a file from /static/, no element
    /// carries an event-handler attribute, no `javascript:` link.
    pub fn assert_no_injected_markup(&self, what: &str) {
        for s in self.all("script") {
            let data_script = s.value().attr("type") == Some("application/json");
            if data_script && s.value().attr("src").is_none() {
                // Data for the page's script (never run): whole JSON, so nothing in it closed
                // the element early (what came after would be markup of its own).
                let data: String = s.text().collect();
                assert!(
                    !data.contains(['<', '>', '&']),
                    "{what}: unescaped data script {:?}",
                    s.html()
                );
                assert!(
                    serde_json::from_str::<serde_json::Value>(&data).is_ok(),
                    "{what}: data script is not JSON: {:?}",
                    s.html()
                );
                continue;
            }
            let src = s.value().attr("src").unwrap_or("");
            assert!(src.starts_with("/static/"), "{what}: script {:?}", s.html());
            assert!(text(&s).is_empty(), "{what}: inline script {:?}", s.html());
        }
        for e in self.all("*") {
            for (name, value) in e.value().attrs() {
                assert!(
                    !name.starts_with("on"),
                    "{what}: handler attribute on {:?}",
                    e.html()
                );
                assert!(
                    !value
                        .trim_start()
                        .to_ascii_lowercase()
                        .starts_with("javascript:"),
                    "{what}: javascript: url in {:?}",
                    e.html()
                );
            }
        }
        assert!(self.all("img[src=x]").is_empty(), "{what}: injected <img>");
    }
}

pub fn text(e: &scraper::ElementRef<'_>) -> String {
    e.text()
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Names that break out of HTML, attributes and script blocks if anything is unescaped.
pub const HOSTILE_SERVICE: &str = "<script>window.__pwned=1</script>svc\"'";
pub const HOSTILE_CONSUMER: &str = "\"><img src=x onerror=\"window.__pwned=2\">";
pub const HOSTILE_DESTINATION: &str = "</script><script>window.__pwned=3</script>q'\"";
pub const HOSTILE_ATTRIBUTE: &str = "</script><svg onload=window.__pwned=4>\u{2028}&amp;";

/// A publish and a consume whose names, destination and attributes are all hostile.
pub fn hostile_trace() -> (SpanB, SpanB) {
    let publish = span(HOSTILE_SERVICE, "<b>send</b> \"x\"", Producer)
        .messaging("rabbitmq", HOSTILE_DESTINATION)
        .attr("messaging.operation.type", "send")
        .attr("note", HOSTILE_ATTRIBUTE)
        .attr("<script>key</script>", "v");
    let consume = publish
        .child(HOSTILE_CONSUMER, "receive </script>", Consumer)
        .messaging("rabbitmq", HOSTILE_DESTINATION)
        .attr("messaging.operation.type", "receive")
        .attr("payload", HOSTILE_ATTRIBUTE)
        .error("</td></tr><script>window.__pwned=5</script>");
    (publish, consume)
}

/// Parses `text` with a real XML parser (Python's expat, through xml.etree) and returns the
/// number of elements named `local` (in any namespace); panics with the parser's message if
/// it is not well-formed XML.
pub fn xml_count(text: &str, local: &str) -> usize {
    use std::io::Write;
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    file.write_all(text.as_bytes()).expect("write xml");
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import sys, xml.etree.ElementTree as E\n\
             root = E.parse(sys.argv[1]).getroot()\n\
             print(sum(1 for e in root.iter() if e.tag.rsplit('}', 1)[-1] == sys.argv[2]))",
        )
        .arg(file.path())
        .arg(local)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "not well-formed XML: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a count")
}
