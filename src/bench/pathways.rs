//! `switchyard bench pathways`: `/api/pathways?from=` of one service against `/api/topology`
//! on the same data, requests alternated so a busy machine weighs on both alike.
//!
//! ```sh
//! switchyard serve --db /tmp/bench.db &
//! switchyard bench ingest --max-spans 1000000
//! switchyard bench pathways --from service:svc-0
//! ```

use super::percentile;
use super::query::get_json;
use crate::percent;
use clap::Args;
use serde_json::Value;
use std::time::{Duration, Instant};

#[derive(Debug, Args)]
pub struct PathwaysBench {
    /// API base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub api: String,
    /// The start node (a service id); by default the service that publishes most.
    #[arg(long)]
    pub from: Option<String>,
    /// Requests per endpoint.
    #[arg(long, default_value_t = 300)]
    pub requests: usize,
    /// Extra query parameters of the pathways request (`since=...&until=...`, `limit=...`).
    #[arg(long, default_value = "")]
    pub query: String,
}

/// The service with the most published messages in the last hour's topology.
fn busiest_publisher(topo: &Value) -> Option<String> {
    topo["edges"]
        .as_array()?
        .iter()
        .filter(|e| e["kind"] == "publish")
        .max_by_key(|e| e["count"].as_i64().unwrap_or(0))
        .and_then(|e| e["from"].as_str().map(str::to_string))
}

fn once(agent: &ureq::Agent, url: &str) -> Option<u64> {
    let t = Instant::now();
    let body = agent.get(url).call().ok()?.into_string().ok()?;
    let elapsed = t.elapsed().as_micros() as u64;
    (!body.is_empty()).then_some(elapsed)
}

pub fn run(a: PathwaysBench, auth: &super::Auth) -> anyhow::Result<()> {
    let agent = auth.agent(ureq::AgentBuilder::new().timeout(Duration::from_secs(30)));
    let topology_url = format!("{}/api/topology", a.api);
    let from = match a.from {
        Some(f) => f,
        None => busiest_publisher(&get_json(&agent, &topology_url)?)
            .ok_or_else(|| anyhow::anyhow!("no publishing service in the last hour"))?,
    };
    let mut url = format!("{}/api/pathways?from={}", a.api, percent::encode(&from));
    if !a.query.is_empty() {
        url.push('&');
        url.push_str(&a.query);
    }
    let first: Value = get_json(&agent, &url)?;
    let spans = get_json::<Value>(&agent, &format!("{}/api/stats", a.api))
        .map(|s| s["spans_in_store"].as_u64().unwrap_or(0))
        .unwrap_or(0);
    println!(
        "pathways from {from}: {} spans stored; {} traces read, {} journeys, {} pathways, partial {}",
        spans,
        first["scanned"]["traces"],
        first["journeys"],
        first["pathways_total"],
        first["partial"]
    );
    let (mut paths, mut topo) = (Vec::new(), Vec::new());
    for _ in 0..a.requests {
        paths.extend(once(&agent, &url));
        topo.extend(once(&agent, &topology_url));
    }
    paths.sort_unstable();
    topo.sort_unstable();
    let (tp50, tp99) = (percentile(&topo, 0.5), percentile(&topo, 0.99));
    for (name, s) in [("GET /api/topology", &topo), ("GET /api/pathways", &paths)] {
        let (p50, p99) = (percentile(s, 0.5), percentile(s, 0.99));
        println!(
            "  {name:<20} p50 {p50:>7} us  p99 {p99:>7} us  ({:.2}x / {:.2}x topology)  {} answered",
            p50 as f64 / tp50.max(1) as f64,
            p99 as f64 / tp99.max(1) as f64,
            s.len()
        );
    }
    Ok(())
}
