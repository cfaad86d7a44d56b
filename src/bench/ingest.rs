//! `switchyard bench ingest`: sustained OTLP/HTTP protobuf load from several connections.

use super::traces::Generator;
use super::{percentile, process_usage};
use crate::model::window::now_unix_nanos;
use clap::Args;
use prost::Message;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Args)]
pub struct IngestBench {
    /// OTLP/HTTP base URL of the server under test; repeat it for several collectors
    /// sharing one store (the connections take them in turn).
    #[arg(long, default_value = "http://127.0.0.1:4318")]
    pub target: Vec<String>,
    /// API base URL, to count what was stored at the end.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub api: String,
    /// How long to send.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Spans per request.
    #[arg(long, default_value_t = 512)]
    pub batch: usize,
    /// Concurrent connections.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Distinct services in the generated traces.
    #[arg(long, default_value_t = 20)]
    pub services: usize,
    /// Pid of the server, to report its RSS and CPU time; repeat it for several collectors
    /// (their CPU time is added up).
    #[arg(long)]
    pub server_pid: Vec<u32>,
    /// Pid of the store's server (clickhouse-server), to report its CPU time apart.
    #[arg(long)]
    pub store_pid: Option<u32>,
    /// Stop after this many spans (0: no limit).
    #[arg(long, default_value_t = 0)]
    pub max_spans: u64,
    /// Offered load in spans per second, spread over the connections (0: as fast as the
    /// server answers). Latency is only meaningful at a rate the server sustains.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
}

pub fn run(a: IngestBench, auth: &super::Auth) -> anyhow::Result<()> {
    let agent = auth.agent(ureq::AgentBuilder::new().timeout(Duration::from_secs(30)));
    let baseline = healthz_baseline(&agent, &a.api);
    let before_count = stored(&agent, &a.api).unwrap_or(0);
    let before_usage = usage(&a.server_pid);
    let before_store = a.store_pid.and_then(process_usage);
    let before_self = process_usage(std::process::id());
    let load_before = load_average();
    let acked = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    // An answer no retry changes (401, 403): the run stops and says so.
    let denied = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let threads: Vec<_> = (0..a.connections.max(1))
        .map(|i| {
            let (agent, url, acked, refused, stop) = (
                agent.clone(),
                format!("{}/v1/traces", a.target[i % a.target.len().max(1)]),
                acked.clone(),
                refused.clone(),
                stop.clone(),
            );
            let denied = denied.clone();
            let (batch, services, duration, max) = (a.batch, a.services, a.duration, a.max_spans);
            // Each connection sends its share of the rate on a fixed schedule.
            let connections = a.connections.max(1);
            let interval = (a.rate > 0).then(|| {
                Duration::from_secs_f64(batch as f64 * a.connections.max(1) as f64 / a.rate as f64)
            });
            std::thread::spawn(move || {
                let mut gen = Generator::new(now_unix_nanos() ^ ((i as u64 + 1) << 48), services);
                let mut latencies = Vec::new();
                // Connections start staggered over one interval.
                let mut due = started
                    + interval
                        .map(|every| every.mul_f64(i as f64 / connections as f64))
                        .unwrap_or_default();
                while started.elapsed() < duration && !stop.load(Ordering::Relaxed) {
                    if let Some(every) = interval {
                        let now = Instant::now();
                        if due > now {
                            std::thread::sleep(due - now);
                        }
                        due += every;
                    }
                    let (req, n) = gen.request(batch, now_unix_nanos());
                    let body = req.encode_to_vec();
                    loop {
                        let t = Instant::now();
                        match agent
                            .post(&url)
                            .set("Content-Type", "application/x-protobuf")
                            .send_bytes(&body)
                        {
                            Ok(_) => {
                                latencies.push(t.elapsed().as_micros() as u64);
                                let total = acked.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
                                if max > 0 && total >= max {
                                    stop.store(true, Ordering::Relaxed);
                                }
                                break;
                            }
                            Err(ureq::Error::Status(code @ (401 | 403), _)) => {
                                denied.store(u64::from(code), Ordering::Relaxed);
                                stop.store(true, Ordering::Relaxed);
                                break;
                            }
                            Err(ureq::Error::Status(429 | 503, _)) => {
                                refused.fetch_add(1, Ordering::Relaxed);
                                std::thread::sleep(Duration::from_millis(50));
                            }
                            Err(e) => {
                                eprintln!("request failed: {e}");
                                std::thread::sleep(Duration::from_millis(200));
                                break;
                            }
                        }
                    }
                }
                latencies
            })
        })
        .collect();
    let mut latencies: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap_or_default())
        .collect();
    let elapsed = started.elapsed().as_secs_f64();
    let denied = denied.load(Ordering::Relaxed);
    if denied != 0 {
        anyhow::bail!(
            "the server answered {denied} to the spans: a server started with --auth-token needs \
             bench --auth-token TOKEN (or SWITCHYARD_AUTH_TOKEN)"
        );
    }
    latencies.sort_unstable();
    let acked = acked.load(Ordering::Relaxed);
    let stored_now = stored(&agent, &a.api).unwrap_or(0);
    println!(
        "ingest: {} connections to {} server(s), {} spans/request, {:.1} s",
        a.connections,
        a.target.len(),
        a.batch,
        elapsed
    );
    println!(
        "  load average           {} at start, {} at end",
        load_before,
        load_average()
    );
    println!(
        "  acknowledged spans     {acked}  ({:.0} spans/s)",
        acked as f64 / elapsed
    );
    println!(
        "  stored (delta)         {}  (lost: {})",
        stored_now - before_count,
        acked as i64 - (stored_now - before_count)
    );
    println!(
        "  refused (429/503)      {}",
        refused.load(Ordering::Relaxed)
    );
    println!(
        "  request latency        p50 {} us, p99 {} us, max {} us",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(0)
    );
    println!(
        "  baseline /healthz      p50 {} us  (request p50 = {:.1}x baseline)",
        baseline,
        percentile(&latencies, 0.5) as f64 / baseline.max(1) as f64
    );
    if let (Some((_, cpu0)), Some((rss, cpu1))) = (before_usage, usage(&a.server_pid)) {
        let cpu = (cpu1 - cpu0).max(0.01);
        println!("  server RSS             {:.1} MiB", rss as f64 / 1048576.0);
        println!(
            "  server CPU             {:.1} s ({:.0} spans per CPU-second)",
            cpu,
            acked as f64 / cpu
        );
    }
    if let (Some(pid), Some((_, cpu0))) = (a.store_pid, before_store) {
        if let Some((_, cpu1)) = process_usage(pid) {
            let cpu = (cpu1 - cpu0).max(0.01);
            println!(
                "  store CPU              {:.1} s ({:.0} spans per CPU-second)",
                cpu,
                acked as f64 / cpu
            );
        }
    }
    if let (Some((_, cpu0)), Some((_, cpu1))) = (before_self, process_usage(std::process::id())) {
        let cpu = (cpu1 - cpu0).max(0.01);
        println!(
            "  generator CPU          {:.1} s ({:.0} spans per CPU-second)",
            cpu,
            acked as f64 / cpu
        );
    }
    Ok(())
}

/// The summed RSS and CPU seconds of the servers (none if any is gone or none was given).
fn usage(pids: &[u32]) -> Option<(u64, f64)> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().try_fold((0, 0.0), |(rss, cpu), pid| {
        let (r, c) = process_usage(*pid)?;
        Some((rss + r, cpu + c))
    })
}

/// The 1, 5 and 15 minute load averages, as `/proc/loadavg` has them (other processes on the
/// machine share its CPU with the run).
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}

fn stored(agent: &ureq::Agent, api: &str) -> Option<i64> {
    let body = agent
        .get(&format!("{api}/api/stats"))
        .call()
        .ok()?
        .into_string()
        .ok()?;
    serde_json::from_str::<serde_json::Value>(&body)
        .ok()?
        .get("spans_in_store")?
        .as_i64()
}

/// Median microseconds of an HTTP round trip to /healthz: the baseline every figure is read against.
pub fn healthz_baseline(agent: &ureq::Agent, api: &str) -> u64 {
    let mut samples: Vec<u64> = (0..200)
        .filter_map(|_| {
            let t = Instant::now();
            agent.get(&format!("{api}/healthz")).call().ok()?;
            Some(t.elapsed().as_micros() as u64)
        })
        .collect();
    samples.sort_unstable();
    percentile(&samples, 0.5)
}
