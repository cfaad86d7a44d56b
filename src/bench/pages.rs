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
    /// API base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub api: String,
    /// Requests per page.
    #[arg(long, default_value_t = 50)]
    pub requests: usize,
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

pub fn run(a: PagesBench, auth: &super::Auth) -> anyhow::Result<()> {
    let agent = auth.agent(ureq::AgentBuilder::new().timeout(Duration::from_secs(60)));
    let baseline = healthz_baseline(&agent, &a.api);
    let stats: Stats = get_json(&agent, &format!("{}/api/stats", a.api))?;
    println!(
        "pages: {} requests per page; store {}; baseline /healthz p50 {} us",
        a.requests,
        serde_json::to_string(&stats).unwrap_or_default(),
        baseline
    );
    for (name, path) in pages(&agent, &a.api, &a.window)? {
        let s = time(&agent, &format!("{}{path}", a.api), a.requests);
        println!(
            "  {name:<28} p50 {:>8} us  p99 {:>8} us  max {:>8} us  {path}",
            percentile(&s, 0.5),
            percentile(&s, 0.99),
            s.last().copied().unwrap_or(0),
        );
    }
    Ok(())
}
