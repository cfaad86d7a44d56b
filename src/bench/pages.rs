//! `switchyard bench pages`: the time of every HTML page over HTTP (request to last byte,
//! generator beside the server), against the `/healthz` round trip. Fill the store first with
//! `switchyard bench ingest --max-spans 1000000`.

use super::ingest::healthz_baseline;
use super::percentile;
use super::query::{get_json, time};
use crate::api::{Stats, TopologyNodes, TraceList, TraceRef};
use crate::model::NodeKind;
use clap::Args;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct PagesBench {
    /// API base URL; repeated, the servers are timed in turn on each page (the first is the
    /// baseline of the ratios, and its answers pick the ids).
    #[arg(long, default_values_t = vec!["http://127.0.0.1:8080".to_string()])]
    pub api: Vec<String>,
    /// Each server's process id, in the order of `--api`, for its CPU time per request.
    #[arg(long)]
    pub server_pid: Vec<u32>,
    /// Requests per page and server in each round.
    #[arg(long, default_value_t = 50)]
    pub requests: usize,
    /// Rounds: each times every page on every server in turn; the figures pool all rounds.
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
    /// The window of the map, node and search pages.
    #[arg(long, default_value = "1h")]
    pub window: String,
}

/// Percent-encodes all but unreserved characters (the bench depends on nothing in `web`).
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The pages to time: every page kind, with ids picked from the store's own answers.
fn pages(agent: &ureq::Agent, api: &str, w: &str) -> anyhow::Result<Vec<(String, String)>> {
    let topo: TopologyNodes = get_json(agent, &format!("{api}/api/topology"))?;
    let traces: TraceList<TraceRef> = get_json(agent, &format!("{api}/api/traces?limit=20"))?;
    let first = |kind: NodeKind| {
        topo.nodes
            .iter()
            .find(|n| n.kind == kind)
            .map(|n| (n.id.clone(), n.name.clone()))
    };
    let mut out = vec![
        ("map".to_string(), format!("/?window={w}")),
        ("trace search (all)".to_string(), "/traces".to_string()),
        (
            "trace search (window)".to_string(),
            format!("/traces?window={w}"),
        ),
        (
            "trace search (errors)".to_string(),
            "/traces?status=error".to_string(),
        ),
    ];
    if let Some((id, name)) = first(NodeKind::Service) {
        out.push((
            "service page".into(),
            format!("/services/{}?window={w}", enc(&id)),
        ));
        out.push((
            "trace search (service)".into(),
            format!("/traces?service={}", enc(&name)),
        ));
        out.push((
            "trace search (service, errors)".into(),
            format!("/traces?service={}&status=error", enc(&name)),
        ));
        out.push((
            "API trace search (service)".into(),
            format!("/api/traces?service={}&limit=50", enc(&name)),
        ));
    }
    if let Some((id, name)) = first(NodeKind::Destination) {
        out.push((
            "destination page".into(),
            format!("/destinations/{}?window={w}", enc(&id)),
        ));
        out.push((
            "trace search (destination)".into(),
            format!("/traces?destination={}", enc(&name)),
        ));
    }
    if let Some(t) = traces.traces.first() {
        out.push(("trace view".into(), format!("/traces/{}", t.trace_id)));
        if let Some(op) = &t.root_name {
            out.push((
                "trace search (operation)".into(),
                format!("/traces?operation={}", enc(op)),
            ));
            if let Some(svc) = &t.root_service {
                out.push((
                    "trace search (service, op)".into(),
                    format!("/traces?service={}&operation={}", enc(svc), enc(op)),
                ));
            }
        }
        // The next page of a search: a window that ends at a trace's start, mid-data.
        let until = t.start_unix_nanos / 1_000_000_000 * 1_000_000_000;
        out.push((
            "trace search (older page)".into(),
            format!(
                "/traces?window=custom&since=1970-01-01T00%3A00%3A00Z&until={}",
                enc(&crate::model::window::rfc3339(until))
            ),
        ));
    }
    out.push((
        "trace search (attribute)".into(),
        "/traces?attr=messaging.system%3Drabbitmq".into(),
    ));
    out.push((
        "trace search (attr. miss)".into(),
        "/traces?attr=messaging.system%3Dkafka".into(),
    ));
    out.push(("trace search (duration)".into(), "/traces?min_ms=5".into()));
    Ok(out)
}

/// One page's samples on one server: latencies (µs) and the server's CPU seconds while
/// they ran (`None` without its pid).
#[derive(Default)]
struct Timed {
    micros: Vec<u64>,
    cpu_secs: Option<f64>,
}

pub fn run(a: PagesBench, auth: &super::Auth) -> anyhow::Result<()> {
    let agent = auth.agent(ureq::AgentBuilder::new().timeout(Duration::from_secs(60)));
    let first = a
        .api
        .first()
        .ok_or_else(|| anyhow::anyhow!("--api is required"))?;
    let stats: Stats = get_json(&agent, &format!("{first}/api/stats"))?;
    println!(
        "pages: {} requests per page and server, {} round(s); store {}",
        a.requests,
        a.rounds,
        serde_json::to_string(&stats).unwrap_or_default(),
    );
    for api in &a.api {
        println!("  {api}: /healthz p50 {} us", healthz_baseline(&agent, api));
    }
    let pages = pages(&agent, first, &a.window)?;
    let cpu = |i: usize| {
        a.server_pid
            .get(i)
            .and_then(|&p| super::process_usage(p))
            .map(|u| u.1)
    };
    let mut timed: Vec<Vec<Timed>> = pages
        .iter()
        .map(|_| a.api.iter().map(|_| Timed::default()).collect())
        .collect();
    for _ in 0..a.rounds.max(1) {
        for (p, (_, path)) in pages.iter().enumerate() {
            for (i, api) in a.api.iter().enumerate() {
                let before = cpu(i);
                let mut s = time(&agent, &format!("{api}{path}"), a.requests);
                let t = &mut timed[p][i];
                t.micros.append(&mut s);
                t.cpu_secs = match (before, cpu(i)) {
                    (Some(b), Some(after)) => Some(t.cpu_secs.unwrap_or(0.0) + after - b),
                    _ => None,
                };
            }
        }
    }
    println!(
        "latency request to last byte; CPU = the server's user+system time per request (10 ms \
         ticks: pool enough requests)"
    );
    for (p, (name, path)) in pages.iter().enumerate() {
        println!("  {name:<28} {path}");
        for t in timed[p].iter_mut() {
            t.micros.sort_unstable();
        }
        let base = &timed[p][0].micros;
        for (i, api) in a.api.iter().enumerate() {
            let t = &timed[p][i];
            let s = &t.micros;
            let per_request = t.cpu_secs.map(|c| c * 1000.0 / s.len().max(1) as f64);
            let ratio = |q: f64| percentile(s, q) as f64 / percentile(base, q).max(1) as f64;
            println!(
                "    {api:<28} p50 {:>8} us  p99 {:>8} us  max {:>8} us  CPU {}{}",
                percentile(s, 0.5),
                percentile(s, 0.99),
                s.last().copied().unwrap_or(0),
                per_request.map_or("?".to_string(), |c| format!("{c:.2} ms")),
                if i > 0 {
                    format!(
                        "  (p50 {:.2}x, p99 {:.2}x the first)",
                        ratio(0.5),
                        ratio(0.99)
                    )
                } else {
                    String::new()
                }
            );
        }
    }
    Ok(())
}
