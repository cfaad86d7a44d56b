//! The Prometheus text exposition format (version 0.0.4): `# HELP` and `# TYPE` lines, then
//! samples with escaped label values; histograms as cumulative `_bucket{le}` samples ending
//! with `+Inf`, then `_sum` and `_count`.

use crate::telemetry::histogram::Snapshot;
use std::fmt::Write;

/// The content type Prometheus asks for and reads.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub type Labels<'a> = &'a [(&'a str, &'a str)];

#[derive(Default)]
pub struct Text(String);

impl Text {
    pub fn with_capacity(bytes: usize) -> Text {
        Text(String::with_capacity(bytes))
    }

    pub fn into_string(self) -> String {
        self.0
    }

    /// Starts a metric family: `kind` is `counter`, `gauge` or `histogram`.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn labels(&mut self, labels: Labels<'_>, le: Option<&str>) {
        if labels.is_empty() && le.is_none() {
            return;
        }
        self.0.push('{');
        let mut first = true;
        for (k, v) in labels.iter().copied().chain(le.map(|le| ("le", le))) {
            if !first {
                self.0.push(',');
            }
            first = false;
            self.0.push_str(k);
            self.0.push_str("=\"");
            escape_into(&mut self.0, v);
            self.0.push('"');
        }
        self.0.push('}');
    }

    pub fn sample(&mut self, name: &str, labels: Labels<'_>, value: impl std::fmt::Display) {
        self.0.push_str(name);
        self.labels(labels, None);
        let _ = writeln!(self.0, " {value}");
    }

    /// A counter or gauge family of one sample.
    pub fn single(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    pub fn histogram(&mut self, name: &str, labels: Labels<'_>, h: &Snapshot) {
        let mut bucket = String::with_capacity(name.len() + 7);
        bucket.push_str(name);
        bucket.push_str("_bucket");
        let mut le = String::new();
        for (i, count) in h.cumulative.iter().enumerate() {
            le.clear();
            match h.bounds.get(i) {
                Some(b) => {
                    let _ = write!(le, "{b}");
                }
                None => le.push_str("+Inf"),
            }
            self.0.push_str(&bucket);
            self.labels(labels, Some(&le));
            let _ = writeln!(self.0, " {count}");
        }
        self.0.push_str(name);
        self.0.push_str("_sum");
        self.labels(labels, None);
        let _ = writeln!(self.0, " {}", h.sum_seconds);
        self.0.push_str(name);
        self.0.push_str("_count");
        self.labels(labels, None);
        let _ = writeln!(self.0, " {}", h.count());
    }
}

/// A label value as the format wants it: backslash, double quote and newline escaped.
fn escape_into(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped_and_histograms_end_with_inf() {
        let mut t = Text::default();
        t.family("x_total", "counter", "X.");
        t.sample("x_total", &[("a", "q\"b\\c\nd")], 3);
        t.histogram(
            "h_seconds",
            &[("r", "otlp_http")],
            &Snapshot {
                bounds: &[0.5],
                cumulative: vec![1, 2],
                sum_seconds: 1.25,
            },
        );
        let s = t.into_string();
        assert!(s.contains("x_total{a=\"q\\\"b\\\\c\\nd\"} 3\n"), "{s}");
        assert!(
            s.contains("h_seconds_bucket{r=\"otlp_http\",le=\"0.5\"} 1\n"),
            "{s}"
        );
        assert!(
            s.contains("h_seconds_bucket{r=\"otlp_http\",le=\"+Inf\"} 2\n"),
            "{s}"
        );
        assert!(
            s.contains("h_seconds_sum{r=\"otlp_http\"} 1.25\nh_seconds_count{r=\"otlp_http\"} 2\n"),
            "{s}"
        );
    }
}
