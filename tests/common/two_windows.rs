//! Two consecutive 10-minute windows three hours ago, with spans at explicit times sent over
//! OTLP: between them `billing` stops consuming `orders` (removed), `shipping` starts
//! (added), `checkout` starts publishing to `refunds` (added), and `checkout` publishes three
//! times as much to `orders` (changed). The base window is the period just before the newer
//! one, so `/api/topology/diff` with only `since`/`until` compares them.

use super::builder::{self, span, Consumer, Producer, SpanB};
use super::fixtures::Window;
use super::TestEnv;

const MINUTE: u64 = 60_000_000_000;

pub struct TwoWindows {
    pub base: Window,
    pub new: Window,
}

impl TwoWindows {
    /// `since=..&until=..` of the newer window with the base window's bounds.
    pub fn query(&self) -> String {
        format!(
            "base_since={}&base_until={}&{}",
            self.base.since(),
            self.base.until(),
            self.new.query()
        )
    }
}

/// `n` publishes from `checkout` to `dest`, each consumed by `consumer` (when given), one
/// second apart from `start`.
fn flow(start: u64, n: u64, dest: &str, consumer: Option<&str>) -> Vec<SpanB> {
    let mut out = Vec::new();
    for i in 0..n {
        let p = span("checkout", &format!("{dest} publish"), Producer)
            .messaging("rabbitmq", dest)
            .at(start + i * 1_000_000_000);
        if let Some(c) = consumer {
            out.push(
                p.child(c, &format!("{dest} process"), Consumer)
                    .messaging("rabbitmq", dest),
            );
        }
        out.push(p);
    }
    out
}

pub fn send(env: &TestEnv) -> TwoWindows {
    let t0 = (builder::base_time() / MINUTE - 180) * MINUTE;
    let base = Window {
        since_unix_nanos: t0,
        until_unix_nanos: t0 + 10 * MINUTE,
    };
    let new = Window {
        since_unix_nanos: t0 + 10 * MINUTE,
        until_unix_nanos: t0 + 20 * MINUTE,
    };
    let mut spans = flow(t0 + MINUTE, 20, "orders", Some("billing"));
    spans.extend(flow(
        new.since_unix_nanos + MINUTE,
        60,
        "orders",
        Some("shipping"),
    ));
    spans.extend(flow(new.since_unix_nanos + 2 * MINUTE, 5, "refunds", None));
    let refs: Vec<&SpanB> = spans.iter().collect();
    let reply = env.post_protobuf(&builder::protobuf(&refs));
    assert_eq!(reply.status, 200, "{}", reply.text());
    TwoWindows { base, new }
}
