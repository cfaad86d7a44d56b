//! Load generators and query benchmarks, run against a live server:
//! `switchyard bench ingest`, `query`, `diff`, `metrics`, `pages`, `pathways`, `topology` (with `rabbitmq-stand-in`), `broker`
//! and `brokers`. Figures are printed with a
//! baseline measured in the same run (an HTTP round trip to `/healthz`). `brokers` needs the
//! `bench-brokers` cargo feature (its RabbitMQ and NATS clients stay out of the production
//! binary); without it the subcommand says how to build it.

mod broker;
#[cfg(feature = "bench-brokers")]
mod brokers;
mod diff;
mod ingest;
mod metrics;
mod pages;
mod pathways;
mod query;
mod topology;
mod traces;

use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The token of a server started with `--auth-token`: sent as `Authorization: Bearer`
    /// with every request. Prefer the variable: a flag shows in the process list.
    #[arg(
        long = "auth-token",
        env = "SWITCHYARD_AUTH_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        global = true
    )]
    pub auth_token: Option<crate::guard::Secret>,
    #[command(subcommand)]
    pub what: BenchCommand,
}

/// How the benchmarks reach a server: with its token, when it asks for one.
#[derive(Clone, Debug, Default)]
pub struct Auth(Option<crate::guard::Secret>);

impl Auth {
    /// An HTTP agent sending the token (if any) with every request.
    // ureq's middleware returns its own (large) error type.
    #[allow(clippy::result_large_err)]
    pub fn agent(&self, builder: ureq::AgentBuilder) -> ureq::Agent {
        match &self.0 {
            Some(secret) => {
                let bearer = format!("Bearer {}", secret.expose());
                builder
                    .middleware(move |req: ureq::Request, next: ureq::MiddlewareNext<'_>| {
                        next.handle(req.set("Authorization", &bearer))
                    })
                    .build()
            }
            None => builder.build(),
        }
    }

    /// A broker client sending the token (if any).
    pub fn client(&self, addr: &str) -> crate::broker::client::Client {
        let client = crate::broker::client::Client::new(addr);
        match &self.0 {
            Some(secret) => client.with_auth_token(secret.expose()),
            None => client,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Send realistic messaging traces over OTLP/HTTP protobuf, then check nothing was lost.
    Ingest(ingest::IngestBench),
    /// Time `/api/topology` and `/api/traces/{id}` against the `/healthz` round trip.
    Query(query::QueryBench),
    /// `/metrics` and the Jaeger API against `/api/topology` on the same data, after sending
    /// `--edges` producer -> consumer service pairs.
    Metrics(metrics::MetricsBench),
    /// `/api/topology/diff` of two 1 h windows against `/api/topology` of one, same data.
    Diff(diff::DiffBench),
    /// Every HTML page's time over HTTP (map, search, trace, service, destination).
    Pages(pages::PagesBench),
    /// `/api/pathways` of one service against `/api/topology` on the same data (p50/p99).
    Pathways(pathways::PathwaysBench),
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
    let auth = Auth(args.auth_token);
    if let Some(secret) = &auth.0 {
        secret.validate().map_err(anyhow::Error::msg)?;
    }
    match args.what {
        BenchCommand::Ingest(a) => ingest::run(a, &auth),
        BenchCommand::Query(a) => query::run(a, &auth),
        BenchCommand::Diff(a) => diff::run(a, &auth),
        BenchCommand::Pages(a) => pages::run(a, &auth),
        BenchCommand::Metrics(a) => metrics::run(a),
        BenchCommand::Pathways(a) => pathways::run(a, &auth),
        BenchCommand::Topology(a) => topology::topology(a),
        BenchCommand::RabbitmqStandIn(a) => topology::stand_in(a),
        BenchCommand::Broker(a) => broker::run(a, &auth),
        BenchCommand::Brokers(a) => brokers::run(a, &auth),
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

    pub fn run(_: BrokersBench, _: &super::Auth) -> anyhow::Result<()> {
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

/// CPU time the calling thread has used, in nanoseconds (user + system, exact, unlike
/// `/proc`'s 10 ms ticks): a synchronous HTTP client's own cost per request.
#[cfg(target_os = "linux")]
pub fn thread_cpu_nanos() -> Option<u64> {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec for the call to write into.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    (rc == 0).then(|| t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64)
}

#[cfg(not(target_os = "linux"))]
pub fn thread_cpu_nanos() -> Option<u64> {
    None
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
