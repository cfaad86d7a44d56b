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

    /// The labels as written in a line, `{k="v",...` without its closing brace (empty for no
    /// labels): render a series' labels once and use them for each of its lines.
    pub fn body(labels: Labels<'_>) -> String {
        let mut out = String::with_capacity(64);
        Self::label_body(&mut out, labels);
        out
    }

    fn label_body(out: &mut String, labels: Labels<'_>) {
        for (i, (k, v)) in labels.iter().enumerate() {
            out.push(if i == 0 { '{' } else { ',' });
            out.push_str(k);
            out.push_str("=\"");
            escape_into(out, v);
            out.push('"');
        }
    }

    /// One line: `name`, the label body (from [`Text::body`]), the value.
    pub fn line(&mut self, name: &str, body: &str, value: impl std::fmt::Display) {
        self.0.push_str(name);
        if !body.is_empty() {
            self.0.push_str(body);
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    pub fn sample(&mut self, name: &str, labels: Labels<'_>, value: impl std::fmt::Display) {
        self.line(name, &Self::body(labels), value);
    }

    /// A counter or gauge family of one sample.
    pub fn single(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    pub fn histogram(&mut self, name: &str, labels: Labels<'_>, h: &Snapshot) {
        self.histogram_lines(name, &Self::body(labels), h);
    }

    /// A histogram's buckets, sum and count, under a label body from [`Text::body`].
    pub fn histogram_lines(&mut self, name: &str, body: &str, h: &Snapshot) {
        let base = body.len();
        let mut body = body.to_string();
        for (i, count) in h.cumulative.iter().enumerate() {
            body.truncate(base);
            body.push(if base == 0 { '{' } else { ',' });
            body.push_str("le=\"");
            body.push_str(h.bounds.le.get(i).copied().unwrap_or("+Inf"));
            body.push('"');
            self.0.push_str(name);
            self.0.push_str("_bucket");
            self.0.push_str(&body);
            let _ = writeln!(self.0, "}} {count}");
        }
        body.truncate(base);
        self.0.push_str(name);
        self.line("_sum", &body, h.sum_seconds);
        self.0.push_str(name);
        self.line("_count", &body, h.count());
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
        t.sample("y", &[], 1.5);
        t.histogram(
            "n_seconds",
            &[],
            &Snapshot {
                bounds: crate::telemetry::histogram::TEMPO_BOUNDS,
                cumulative: vec![0; 9],
                sum_seconds: 0.0,
            },
        );
        t.histogram(
            "h_seconds",
            &[("r", "otlp_http")],
            &Snapshot {
                bounds: &crate::telemetry::histogram::Bounds {
                    seconds: &[0.5],
                    le: &["0.5"],
                },
                cumulative: vec![1, 2],
                sum_seconds: 1.25,
            },
        );
        let s = t.into_string();
        assert!(s.contains("\ny 1.5\n"), "{s}");
        assert!(s.contains("\nn_seconds_bucket{le=\"0.1\"} 0\n"), "{s}");
        assert!(
            s.contains("\nn_seconds_bucket{le=\"+Inf\"} 0\nn_seconds_sum 0\nn_seconds_count 0\n"),
            "{s}"
        );
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
