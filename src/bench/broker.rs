//! `switchyard bench broker`: persisted publish-to-deliver throughput and latency of the
//! embedded broker over HTTP, with a bounded number of messages in flight (published, not yet
//! delivered). Publishers stamp each message with its publish start; consumers pull with
//! long-poll, ack, and record delivery minus publish start.

use super::ingest::healthz_baseline;
use super::percentile;
use clap::Args;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

#[derive(Debug, Args)]
pub struct BrokerBench {
    /// Address of the broker (the `--http` address).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub http: String,
    /// Message data size in bytes.
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Messages published but not yet delivered, at most.
    #[arg(long = "in-flight", default_value_t = 100)]
    pub in_flight: u64,
    /// Publishing threads (each has one publish outstanding).
    #[arg(long, default_value_t = 8)]
    pub publishers: usize,
    /// Consuming threads (each pulls up to 100 at a time).
    #[arg(long, default_value_t = 4)]
    pub consumers: usize,
    /// How long to publish.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
}

fn now_micros() -> u64 {
    crate::broker::unix_nanos(SystemTime::now()) / 1_000
}

pub fn run(a: BrokerBench, auth: &super::Auth) -> anyhow::Result<()> {
    let c = auth.client(&a.http).with_service("bench");
    let agent = auth.agent(ureq::AgentBuilder::new());
    let baseline = healthz_baseline(&agent, &format!("http://{}", a.http));
    let name = format!("bench.{}", now_micros());
    let sub = format!("{name}.q");
    c.declare_topic(&name)?;
    c.declare_subscription(&sub, &name, 60_000, 5)?;
    let published = Arc::new(AtomicU64::new(0));
    let delivered = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let latencies: Arc<Mutex<Vec<u64>>> = Arc::default();
    let pad = "x".repeat(a.size.saturating_sub(40));
    let started = Instant::now();
    let publishers: Vec<_> = (0..a.publishers.max(1))
        .map(|_| {
            let (c, published, delivered, stop) = (
                c.clone(),
                published.clone(),
                delivered.clone(),
                stop.clone(),
            );
            let (pad, window, name) = (pad.clone(), a.in_flight.max(1), name.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if published.load(Ordering::Relaxed)
                        >= delivered.load(Ordering::Relaxed) + window
                    {
                        std::thread::sleep(Duration::from_micros(200));
                        continue;
                    }
                    published.fetch_add(1, Ordering::Relaxed);
                    let body = serde_json::json!({ "t": now_micros(), "pad": pad });
                    if c.publish_json(&name, &body, None).is_err() {
                        published.fetch_sub(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    let consumers: Vec<_> = (0..a.consumers.max(1))
        .map(|_| {
            let (c, sub, delivered, stop, latencies) = (
                c.clone(),
                sub.clone(),
                delivered.clone(),
                stop.clone(),
                latencies.clone(),
            );
            let published = published.clone();
            std::thread::spawn(move || loop {
                let done = stop.load(Ordering::Relaxed)
                    && delivered.load(Ordering::Relaxed) >= published.load(Ordering::Relaxed);
                if done {
                    return;
                }
                let Ok(batch) = c.pull(&sub, 100, Duration::from_millis(200)) else {
                    continue;
                };
                let now = now_micros();
                let leases: Vec<String> = batch.iter().map(|d| d.lease_id.clone()).collect();
                let mut mine: Vec<u64> = batch
                    .iter()
                    .filter_map(|d| d.event["data"]["t"].as_u64())
                    .map(|t| now.saturating_sub(t))
                    .collect();
                if !leases.is_empty() {
                    let _ = c.ack(&sub, &leases);
                }
                delivered.fetch_add(batch.len() as u64, Ordering::Relaxed);
                latencies.lock().unwrap().append(&mut mine);
            })
        })
        .collect();
    std::thread::sleep(a.duration);
    stop.store(true, Ordering::Relaxed);
    for p in publishers {
        let _ = p.join();
    }
    for c in consumers {
        let _ = c.join();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut l = std::mem::take(&mut *latencies.lock().unwrap());
    l.sort_unstable();
    println!(
        "broker: {} B messages, {} in flight, {} publishers, {} consumers, {:.1} s; baseline /healthz p50 {} us",
        a.size, a.in_flight, a.publishers, a.consumers, elapsed, baseline
    );
    println!(
        "  delivered {} of {} published: {:.0} msg/s; publish-to-deliver p50 {} us, p99 {} us",
        delivered.load(Ordering::Relaxed),
        published.load(Ordering::Relaxed),
        delivered.load(Ordering::Relaxed) as f64 / elapsed,
        percentile(&l, 0.5),
        percentile(&l, 0.99)
    );
    Ok(())
}
