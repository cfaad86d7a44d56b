//! `switchyard bench query`: API latency against the `/healthz` round trip.

use super::ingest::healthz_baseline;
use super::percentile;
use crate::api::{TraceList, TraceRef};
use clap::Args;
use std::time::{Duration, Instant};

#[derive(Debug, Args)]
pub struct QueryBench {
    /// API base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub api: String,
    /// Requests per endpoint.
    #[arg(long, default_value_t = 300)]
    pub requests: usize,
}

pub(super) fn time(agent: &ureq::Agent, url: &str, n: usize) -> Vec<u64> {
    let mut out: Vec<u64> = (0..n)
        .filter_map(|_| {
            let t = Instant::now();
            let resp = agent.get(url).call().ok()?;
            let _ = resp.into_string().ok()?;
            Some(t.elapsed().as_micros() as u64)
        })
        .collect();
    out.sort_unstable();
    out
}

/// One API answer, read as its type.
pub(super) fn get_json<T: serde::de::DeserializeOwned>(
    agent: &ureq::Agent,
    url: &str,
) -> anyhow::Result<T> {
    Ok(serde_json::from_str(
        &agent.get(url).call()?.into_string()?,
    )?)
}

pub fn run(a: QueryBench, auth: &super::Auth) -> anyhow::Result<()> {
    let agent = auth.agent(ureq::AgentBuilder::new().timeout(Duration::from_secs(30)));
    let baseline = healthz_baseline(&agent, &a.api);
    let list: TraceList<TraceRef> = get_json(&agent, &format!("{}/api/traces?limit=50", a.api))?;
    let ids: Vec<String> = list.traces.iter().map(|t| t.trace_id.to_hex()).collect();
    let report = |name: &str, s: &[u64]| {
        println!(
            "  {name:<28} p50 {:>6} us  p99 {:>6} us  ({:.1}x / {:.1}x baseline)",
            percentile(s, 0.5),
            percentile(s, 0.99),
            percentile(s, 0.5) as f64 / baseline.max(1) as f64,
            percentile(s, 0.99) as f64 / baseline.max(1) as f64
        );
    };
    println!(
        "query: {} requests per endpoint; baseline /healthz p50 {} us; load average {}",
        a.requests,
        baseline,
        super::ingest::load_average()
    );
    report(
        "GET /api/topology (1 h)",
        &time(&agent, &format!("{}/api/topology", a.api), a.requests),
    );
    report(
        "GET /api/topology.dot",
        &time(&agent, &format!("{}/api/topology.dot", a.api), a.requests),
    );
    if !ids.is_empty() {
        let mut s: Vec<u64> = Vec::new();
        for i in 0..a.requests {
            s.extend(time(
                &agent,
                &format!("{}/api/traces/{}", a.api, ids[i % ids.len()]),
                1,
            ));
        }
        s.sort_unstable();
        report("GET /api/traces/{id}", &s);
    }
    report(
        "GET /api/traces?limit=20",
        &time(
            &agent,
            &format!("{}/api/traces?limit=20", a.api),
            a.requests,
        ),
    );
    Ok(())
}
