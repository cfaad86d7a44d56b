//! `switchyard bench diff`: `/api/topology/diff` of two 1 h windows against `/api/topology` of
//! one 1 h window, on the same data in the same run. The two requests alternate, so a busy
//! machine weighs on both alike; the `/healthz` round trip is the baseline of the run.
//!
//! ```sh
//! switchyard bench ingest --max-spans 1000000 --rate 0   # fill the store
//! switchyard bench diff --api http://127.0.0.1:8080
//! ```
//!
//! The base window ends `--base-offset` before the newer one, so both hold the traffic that
//! is older than the offset and the diff compares every edge they share (its heaviest case).

use super::ingest::healthz_baseline;
use super::percentile;
use crate::model::window::{now_unix_nanos, rfc3339};
use clap::Args;
use std::time::{Duration, Instant};

#[derive(Debug, Args)]
pub struct DiffBench {
    /// API base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub api: String,
    /// Requests per endpoint.
    #[arg(long, default_value_t = 200)]
    pub requests: usize,
    /// How much earlier the base window ends than the newer one.
    #[arg(long = "base-offset", default_value = "2m", value_parser = humantime::parse_duration)]
    pub base_offset: Duration,
}

fn once(agent: &ureq::Agent, url: &str) -> anyhow::Result<(u64, String)> {
    let t = Instant::now();
    let body = agent.get(url).call()?.into_string()?;
    Ok((t.elapsed().as_micros() as u64, body))
}

pub fn run(a: DiffBench, auth: &super::Auth) -> anyhow::Result<()> {
    let agent = auth.agent(ureq::AgentBuilder::new().timeout(Duration::from_secs(30)));
    let baseline = healthz_baseline(&agent, &a.api).max(1);
    let hour = 3_600_000_000_000u64;
    let until = now_unix_nanos() + 60_000_000_000;
    let offset = u64::try_from(a.base_offset.as_nanos()).unwrap_or(u64::MAX);
    let (since, base_until) = (until - hour, until.saturating_sub(offset));
    let window = format!("since={}&until={}", rfc3339(since), rfc3339(until));
    let topology = format!("{}/api/topology?{window}", a.api);
    let diff = format!(
        "{}/api/topology/diff?base_since={}&base_until={}&{window}",
        a.api,
        rfc3339(base_until.saturating_sub(hour)),
        rfc3339(base_until)
    );
    let (_, first) = once(&agent, &diff)?;
    let d: serde_json::Value = serde_json::from_str(&first)?;
    let len = |k: &str| d[k].as_array().map_or(0, Vec::len);
    println!(
        "diff: {} requests each, alternating; baseline /healthz p50 {baseline} us; edges: {} \
         unchanged, {} changed, {} added, {} removed; nodes: {} unchanged, {} added, {} removed",
        a.requests,
        d["edges_unchanged"],
        len("edges_changed"),
        len("edges_added"),
        len("edges_removed"),
        d["nodes_unchanged"],
        len("nodes_added"),
        len("nodes_removed"),
    );
    let (mut t, mut f) = (Vec::new(), Vec::new());
    for _ in 0..a.requests {
        t.push(once(&agent, &topology)?.0);
        f.push(once(&agent, &diff)?.0);
    }
    t.sort_unstable();
    f.sort_unstable();
    let line = |name: &str, s: &[u64]| {
        println!(
            "  {name:<34} p50 {:>7} us  p99 {:>7} us  ({:.1}x / {:.1}x baseline)",
            percentile(s, 0.5),
            percentile(s, 0.99),
            percentile(s, 0.5) as f64 / baseline as f64,
            percentile(s, 0.99) as f64 / baseline as f64
        );
    };
    line("GET /api/topology (1 h)", &t);
    line("GET /api/topology/diff (2 x 1 h)", &f);
    println!(
        "  diff / topology: p50 {:.2}x, p99 {:.2}x",
        percentile(&f, 0.5) as f64 / percentile(&t, 0.5).max(1) as f64,
        percentile(&f, 0.99) as f64 / percentile(&t, 0.99).max(1) as f64
    );
    Ok(())
}
