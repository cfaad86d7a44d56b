//! Load generators and query benchmarks, run against a live server:
//! `switchyard bench ingest`, `query`, `pages`, `topology` (with `rabbitmq-stand-in`), `broker`
//! and `brokers`. Figures are printed with a
//! baseline measured in the same run (an HTTP round trip to `/healthz`). `brokers` needs the
//! `bench-brokers` cargo feature (its RabbitMQ and NATS clients stay out of the production
//! binary); without it the subcommand says how to build it.

mod broker;
#[cfg(feature = "bench-brokers")]
mod brokers;
mod ingest;
mod pages;
mod query;
mod topology;
mod traces;

use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub what: BenchCommand,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Send realistic messaging traces over OTLP/HTTP protobuf, then check nothing was lost.
    Ingest(ingest::IngestBench),
    /// Time `/api/topology` and `/api/traces/{id}` against the `/healthz` round trip.
    Query(query::QueryBench),
    /// Every HTML page's time over HTTP (map, search, trace, service, destination).
    Pages(pages::PagesBench),
    /// `/api/topology` on one or more servers side by side (p50/p99, CPU per request).
    Topology(topology::TopologyBench),
    /// Answers RabbitMQ's management API for a generated broker (2,000 queues, 2,000
    /// bindings, 500 consumers by default), for `serve --discover` to poll.
    RabbitmqStandIn(topology::StandInBench),
    /// Embedded broker: persisted publish-to-deliver throughput and latency over HTTP.
    Broker(broker::BrokerBench),
    /// The embedded broker, RabbitMQ and NATS JetStream side by side: persisted
    /// publish-to-deliver throughput and p50/p99 for 100 B and 1 KiB with 1, 100, 1000 in flight.
    /// Only in a build with the `bench-brokers` feature.
    Brokers(brokers::BrokersBench),
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.what {
        BenchCommand::Ingest(a) => ingest::run(a),
        BenchCommand::Query(a) => query::run(a),
        BenchCommand::Pages(a) => pages::run(a),
        BenchCommand::Topology(a) => topology::topology(a),
        BenchCommand::RabbitmqStandIn(a) => topology::stand_in(a),
        BenchCommand::Broker(a) => broker::run(a),
        BenchCommand::Brokers(a) => brokers::run(a),
    }
}

/// `bench brokers` in a build without the `bench-brokers` feature: it takes any arguments and
/// says how to build the benchmark.
#[cfg(not(feature = "bench-brokers"))]
mod brokers {
    #[derive(Debug, clap::Args)]
    pub struct BrokersBench {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        args: Vec<String>,
    }

    pub fn run(_: BrokersBench) -> anyhow::Result<()> {
        anyhow::bail!(
            "bench brokers is not in this build (its RabbitMQ and NATS clients are left out of \
             the production binary); build it with `cargo build --release --features bench-brokers`"
        )
    }
}

/// Percentile of sorted microsecond samples.
pub fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let idx = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx]
}

/// Resident set size and CPU seconds (user + system) of a process, from /proc.
pub fn process_usage(pid: u32) -> Option<(u64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = 100.0; // USER_HZ on Linux
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((rss_kib * 1024, (utime + stime) / ticks))
}
