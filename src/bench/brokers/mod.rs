//! `switchyard bench brokers`: persisted publish-to-deliver throughput and p50/p99 latency of
//! the embedded broker (over HTTP), RabbitMQ (AMQP 0-9-1: durable queue, persistent messages,
//! publisher confirms, consumer acks) and NATS JetStream (file storage, acked publishes,
//! explicit acks), in one run, with the same client concurrency, printed side by side.
//!
//! A cell has a window of N messages in flight (published, not yet delivered): a publisher
//! takes a permit before it publishes and the consumer gives it back on delivery. There are
//! `min(N, 100)` publishers, each with one confirmed publish outstanding, and `min(N, 4)`
//! consumers; the mean number actually in flight is measured and printed.
//!
//! Each broker's share of a cell is run in rounds (`--rounds`), the brokers taking turns
//! round by round, and the rounds' samples are pooled: a spell of noise on the machine (its
//! neighbours, the disk) then falls on every broker alike instead of on whichever one was
//! being measured at the time. Each round starts on a new queue or stream and new connections,
//! warms up (`--warm-up`) before it is measured, and afterwards waits for the messages still in
//! flight, whose latencies are kept (see `Meter::run_for`). Each cell starts once the
//! machine's CPUs are quiet (`--settle`), so that what one cell leaves behind is not measured
//! in the next.

mod clients;
mod meter;
mod settle;

use clap::Args;
use clients::{embedded, jetstream, rabbitmq};
use meter::{Cell, Sample};
use settle::settle;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct BrokersBench {
    /// The embedded broker (a running `switchyard serve`'s `--http` address).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub http: String,
    /// The embedded broker's token (`bench --auth-token`).
    #[arg(skip)]
    pub auth: super::Auth,
    /// RabbitMQ's AMQP URL.
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    pub amqp: String,
    /// NATS server (JetStream enabled).
    #[arg(long, default_value = "127.0.0.1:4222")]
    pub nats: String,
    /// How long each broker is measured in each cell, in all its rounds (each round also
    /// warms up before, and drains after, its measured part).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Rounds per cell: the brokers take turns, each measured for `duration / rounds` a round
    /// (on a new queue or stream), and each broker's rounds are pooled.
    #[arg(long, default_value_t = 5)]
    pub rounds: u32,
    /// How long each round runs before its measured part (`duration / rounds`, which follows
    /// it): each round starts on a new queue or stream, and on new connections. Latencies of
    /// messages published meanwhile are not kept; the rate counts deliveries made after it.
    #[arg(long = "warm-up", default_value = "200ms", value_parser = humantime::parse_duration)]
    pub warm_up: Duration,
    /// Before each cell, wait until this machine's CPUs are quiet (under 10% busy over a
    /// quarter of a second), at most this long: what the previous cell left behind (the
    /// embedded broker's spans being stored, a broker's queues being deleted) does not fall
    /// on the next one. 0 does not wait. Linux only (read from /proc/stat).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub settle: Duration,
    /// Which brokers to measure (comma-separated: embedded, rabbitmq, jetstream).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "embedded,rabbitmq,jetstream"
    )]
    pub brokers: Vec<Broker>,
    /// Message sizes to measure, in bytes (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "100,1024")]
    pub sizes: Vec<usize>,
    /// Numbers of messages in flight to measure (comma-separated).
    #[arg(
        long = "in-flight",
        value_delimiter = ',',
        default_value = "1,100,1000"
    )]
    pub in_flight: Vec<usize>,
}

/// A broker `bench brokers` can measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Broker {
    Embedded,
    Rabbitmq,
    Jetstream,
}

/// The orders in which the brokers (embedded, RabbitMQ, JetStream) take their turns, one
/// round after another.
const ORDERS: [[usize; 3]; 6] = [
    [0, 1, 2],
    [1, 2, 0],
    [2, 0, 1],
    [0, 2, 1],
    [2, 1, 0],
    [1, 0, 2],
];

pub fn run(mut a: BrokersBench, auth: &super::Auth) -> anyhow::Result<()> {
    a.auth = auth.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    anyhow::ensure!(
        a.in_flight.iter().all(|&n| n > 0),
        "--in-flight takes numbers of at least 1"
    );
    anyhow::ensure!(a.rounds > 0, "--rounds takes a number of at least 1");
    let round = a.duration / a.rounds;
    anyhow::ensure!(
        round >= Duration::from_millis(10),
        "--duration / --rounds must leave at least 10 ms a round"
    );
    let mut rows = Vec::new();
    for &size in &a.sizes {
        for &n in &a.in_flight {
            if !a.settle.is_zero() {
                let waited = rt.block_on(settle(a.settle));
                match waited {
                    Some(t) => eprintln!("{size} B, {n} in flight: quiet after {:.1} s", t.as_secs_f64()),
                    None => eprintln!(
                        "{size} B, {n} in flight: not quiet after {} s (or no /proc/stat); measured anyway",
                        a.settle.as_secs_f64()
                    ),
                }
            }
            // Per broker: its pooled rounds, or why it was not measured or failed.
            let start = |b: Broker| match a.brokers.contains(&b) {
                true => Ok(Sample::default()),
                false => Err(anyhow::anyhow!("not measured")),
            };
            let mut pooled = [
                start(Broker::Embedded),
                start(Broker::Rabbitmq),
                start(Broker::Jetstream),
            ];
            for r in 0..a.rounds as usize {
                // The order changes each round, through all six: no broker always follows the
                // same one (and the work it leaves behind, a queue or stream being deleted).
                for k in ORDERS[r % ORDERS.len()] {
                    let total = &mut pooled[k];
                    let Ok(sum) = total else { continue };
                    let measured = match k {
                        0 => rt.block_on(embedded(&a, size, n, round)),
                        1 => rt.block_on(rabbitmq(&a, size, n, round)),
                        _ => rt.block_on(jetstream(&a, size, n, round)),
                    };
                    match measured {
                        Ok(s) => sum.add(s),
                        Err(e) => *total = Err(e),
                    }
                }
            }
            let [e, r, j] = pooled.map(|p| p.map(Sample::cell));
            rows.push((size, n, e, r, j));
        }
    }
    print_table(&a, &rows);
    Ok(())
}

type Row = (
    usize,
    usize,
    anyhow::Result<Cell>,
    anyhow::Result<Cell>,
    anyhow::Result<Cell>,
);

fn print_table(a: &BrokersBench, rows: &[Row]) {
    println!(
        "persisted publish-to-deliver, {} s per broker and cell in {} rounds taken in turn (each measured after {} ms of warm-up), publishers = min(N, 100), consumers = min(N, 4)",
        a.duration.as_secs_f64(),
        a.rounds,
        a.warm_up.as_millis()
    );
    println!("| size | N in flight | embedded msg/s | p50 / p99 ms | mean in flight | RabbitMQ msg/s | p50 / p99 ms | mean in flight | JetStream msg/s | p50 / p99 ms | mean in flight |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let show = |c: &anyhow::Result<Cell>| match c {
        Ok(c) => format!(
            "{:.0} | {:.2} / {:.2} | {:.0}",
            c.rate,
            c.p50_micros as f64 / 1000.0,
            c.p99_micros as f64 / 1000.0,
            c.mean_in_flight
        ),
        Err(e) => format!("error: {e:#} | | "),
    };
    for (size, n, e, r, j) in rows {
        println!(
            "| {size} B | {n} | {} | {} | {} |",
            show(e),
            show(r),
            show(j)
        );
    }
}
