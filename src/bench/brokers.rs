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

use super::percentile;
use crate::broker::client::Client;
use clap::Args;
use futures_util::StreamExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::Semaphore;

#[derive(Debug, Args)]
pub struct BrokersBench {
    /// The embedded broker (a running `switchyard serve`'s `--http` address).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub http: String,
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

/// One cell's result.
#[derive(Clone, Copy, Default)]
struct Cell {
    rate: f64,
    p50_micros: u64,
    p99_micros: u64,
    mean_in_flight: f64,
}

/// How long a round waits, after its measured part, for the messages still in flight.
const DRAIN_AT_MOST: Duration = Duration::from_secs(2);

/// The window, counters and samples one round shares between publishers and consumers.
struct Meter {
    window: Semaphore,
    published: AtomicU64,
    delivered: AtomicU64,
    /// Set when the measured part ends: publishers stop.
    closing: AtomicBool,
    /// Set once the messages in flight were delivered (or the drain gave up): consumers stop.
    stop: AtomicBool,
    /// Messages published before this time (µs since the epoch) warm the round up: their
    /// latencies are not kept. Set when the round starts.
    measure_from: AtomicU64,
    latencies: Mutex<Vec<u64>>,
}

/// What a round's measured window saw.
struct Window {
    elapsed: f64,
    mean_in_flight: f64,
    delivered: u64,
}

impl Meter {
    fn new(n: usize) -> Arc<Meter> {
        Arc::new(Meter {
            window: Semaphore::new(n),
            published: AtomicU64::default(),
            delivered: AtomicU64::default(),
            closing: AtomicBool::default(),
            stop: AtomicBool::default(),
            measure_from: AtomicU64::new(u64::MAX),
            latencies: Mutex::default(),
        })
    }

    /// Waits for room in the window; false once the round's measured part is over.
    async fn enter(&self) -> bool {
        loop {
            if self.closing.load(Ordering::Relaxed) {
                return false;
            }
            let permit = tokio::time::timeout(Duration::from_millis(50), self.window.acquire());
            if let Ok(Ok(p)) = permit.await {
                p.forget();
                self.published.fetch_add(1, Ordering::Relaxed);
                return true;
            }
        }
    }

    fn delivered(&self, payload: &[u8]) {
        let t = payload
            .get(..8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
            .unwrap_or(0);
        if t >= self.measure_from.load(Ordering::Relaxed) {
            let micros = now_micros().saturating_sub(t);
            self.latencies.lock().unwrap().push(micros);
        }
        self.delivered.fetch_add(1, Ordering::Relaxed);
        self.window.add_permits(1);
    }

    /// Runs the round: `warm_up` unmeasured (connections, a new queue), then `duration`
    /// measured, sampling the number in flight; then stops the publishers and waits (at most
    /// [`DRAIN_AT_MOST`]) for the messages in flight, whose latencies count: the slowest
    /// messages are the likeliest to be in flight at the end, and dropping them would flatter
    /// the p99 of every round. Deliveries count toward the rate only up to the end of the
    /// measured part.
    async fn run_for(&self, warm_up: Duration, duration: Duration) -> Window {
        let warm_up_micros = u64::try_from(warm_up.as_micros()).unwrap_or(u64::MAX);
        self.measure_from.store(
            now_micros().saturating_add(warm_up_micros),
            Ordering::Relaxed,
        );
        tokio::time::sleep(warm_up).await;
        let before = self.delivered.load(Ordering::Relaxed);
        let started = tokio::time::Instant::now();
        let (mut sum, mut samples) = (0u64, 0u64);
        while started.elapsed() < duration {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let p = self.published.load(Ordering::Relaxed);
            sum += p.saturating_sub(self.delivered.load(Ordering::Relaxed));
            samples += 1;
        }
        let elapsed = started.elapsed().as_secs_f64();
        let delivered = self.delivered.load(Ordering::Relaxed) - before;
        self.closing.store(true, Ordering::Relaxed);
        let draining = tokio::time::Instant::now();
        while self.published.load(Ordering::Relaxed) > self.delivered.load(Ordering::Relaxed)
            && draining.elapsed() < DRAIN_AT_MOST
        {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        self.stop.store(true, Ordering::Relaxed);
        Window {
            elapsed,
            mean_in_flight: sum as f64 / samples.max(1) as f64,
            delivered,
        }
    }

    fn sample(&self, w: Window) -> Sample {
        Sample {
            latencies: std::mem::take(&mut *self.latencies.lock().unwrap()),
            delivered: w.delivered,
            elapsed: w.elapsed,
            in_flight_seconds: w.mean_in_flight * w.elapsed,
        }
    }
}

/// What one round of a broker measured; a broker's rounds of a cell add up.
#[derive(Default)]
struct Sample {
    latencies: Vec<u64>,
    delivered: u64,
    elapsed: f64,
    /// The mean number in flight times the time it was measured over.
    in_flight_seconds: f64,
}

impl Sample {
    fn add(&mut self, round: Sample) {
        self.latencies.extend(round.latencies);
        self.delivered += round.delivered;
        self.elapsed += round.elapsed;
        self.in_flight_seconds += round.in_flight_seconds;
    }

    fn cell(mut self) -> Cell {
        self.latencies.sort_unstable();
        let elapsed = self.elapsed.max(f64::MIN_POSITIVE);
        Cell {
            rate: self.delivered as f64 / elapsed,
            p50_micros: percentile(&self.latencies, 0.5),
            p99_micros: percentile(&self.latencies, 0.99),
            mean_in_flight: self.in_flight_seconds / elapsed,
        }
    }
}

fn now_micros() -> u64 {
    crate::broker::unix_nanos(SystemTime::now()) / 1_000
}

/// A message of `size` bytes whose first 8 are its publish time.
fn payload(size: usize) -> Vec<u8> {
    let mut p = now_micros().to_le_bytes().to_vec();
    p.resize(size.max(8), b'x');
    p
}

fn concurrency(n: usize) -> (usize, usize) {
    (n.min(100), n.min(4))
}

/// Busy share of all CPUs under which the machine counts as quiet (see `--settle`).
const QUIET: f64 = 0.10;
/// The window over which it is measured.
const QUIET_WINDOW: Duration = Duration::from_millis(250);

/// Busy and total time of all CPUs together, from the first line of /proc/stat (user, nice,
/// system, idle, iowait, irq, softirq, steal; idle and iowait are not busy).
fn cpu_times(stat: &str) -> Option<(u64, u64)> {
    let fields = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = fields
        .split_whitespace()
        .take(8)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    let total: u64 = v.iter().sum();
    let idle = v.get(3)? + v.get(4)?;
    Some((total - idle, total))
}

/// The busy share between two readings of [`cpu_times`]; `None` if no time passed.
fn busy_share(before: (u64, u64), after: (u64, u64)) -> Option<f64> {
    let total = after.1.checked_sub(before.1).filter(|&t| t > 0)?;
    let busy = after.0.saturating_sub(before.0);
    Some(busy as f64 / total as f64)
}

/// Waits until the CPUs are quiet over one window, at most `limit`; how long it took, or
/// `None` if they never were (or /proc/stat cannot be read).
async fn settle(limit: Duration) -> Option<Duration> {
    let started = tokio::time::Instant::now();
    let read = || {
        std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| cpu_times(&s))
    };
    let mut before = read()?;
    while started.elapsed() < limit {
        tokio::time::sleep(QUIET_WINDOW).await;
        let after = read()?;
        if busy_share(before, after).is_some_and(|b| b < QUIET) {
            return Some(started.elapsed());
        }
        before = after;
    }
    None
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

pub fn run(a: BrokersBench) -> anyhow::Result<()> {
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

/// The reader threads of a round's consumers, each with the closer of its stream. Dropped
/// before they were joined (a round that failed to start), they are told to end.
struct Readers(Vec<(crate::broker::client::Closer, std::thread::JoinHandle<()>)>);

impl Drop for Readers {
    fn drop(&mut self) {
        for (closer, _) in &self.0 {
            closer.close();
        }
    }
}

async fn embedded(
    a: &BrokersBench,
    size: usize,
    n: usize,
    duration: Duration,
) -> anyhow::Result<Sample> {
    let c = Client::new(&a.http).with_service("bench");
    let name = format!("bench.{}", now_micros());
    let sub = format!("{name}.q");
    let (c2, name2, sub2) = (c.clone(), name.clone(), sub.clone());
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        c2.declare_topic(&name2)?;
        c2.declare_subscription(&sub2, &name2, 60_000, 5)?;
        Ok(())
    })
    .await??;
    let meter = Meter::new(n);
    let (publishers, consumers) = concurrency(n);
    // Each consumer is a streaming pull (deliveries pushed, like AMQP's basic.consume). Its
    // reader counts a message delivered on receipt and hands the lease to the client's
    // `Acker`, which sends acks in batches from its own thread, each batch waiting up to 1 ms
    // for company: as with the other brokers' consumers, the ack is on its way, not
    // confirmed, when the message counts. Consumers start first: should one fail to start, no
    // publisher is running yet, and the readers already started end with their streams
    // (`Readers`).
    let mut ackers = Vec::new();
    let mut readers = Readers(Vec::new());
    for _ in 0..consumers {
        let deliveries = c.consume(&sub, 100)?;
        let acker = Arc::new(c.acker(&sub)?);
        ackers.push(acker.clone());
        let m = meter.clone();
        let closer = deliveries.closer();
        let reader = std::thread::spawn(move || {
            for d in deliveries {
                let Ok(d) = d else { return };
                let t = d.event["data"]["t"].as_u64().unwrap_or(0);
                if m.stop.load(Ordering::Relaxed) || acker.ack(d.lease_id).is_err() {
                    return;
                }
                m.delivered(&t.to_le_bytes());
            }
        });
        readers.0.push((closer, reader));
    }
    // Publishers are tasks, as for the other brokers' clients: their publishes are coalesced
    // into batched requests sent from the runtime's blocking pool, where a hundred publisher
    // threads would each wake up for each of their messages. A lone publisher is a thread
    // calling the blocking client, which sends its own requests: as a task it would wait for
    // a thread of the pool to send each message (about 0.05 ms more at 1 in flight).
    let mut tasks = tokio::task::JoinSet::new();
    let mut threads = Vec::new();
    let body = move || serde_json::json!({ "t": now_micros(), "pad": "x".repeat(size.saturating_sub(40)) });
    if publishers == 1 {
        let (c, m, name, h) = (
            c.clone(),
            meter.clone(),
            name.clone(),
            tokio::runtime::Handle::current(),
        );
        threads.push(std::thread::spawn(move || {
            while h.block_on(m.enter()) {
                if c.publish_json(&name, &body(), None).is_err() {
                    m.window.add_permits(1);
                }
            }
        }));
    } else {
        for _ in 0..publishers {
            let (c, m, name) = (c.clone(), meter.clone(), name.clone());
            tasks.spawn(async move {
                while m.enter().await {
                    if c.publish_json_async(&name, &body(), None).await.is_err() {
                        m.window.add_permits(1);
                    }
                }
            });
        }
    }
    let window = meter.run_for(a.warm_up, duration).await;
    meter.window.add_permits(publishers);
    while tasks.join_next().await.is_some() {}
    tokio::task::spawn_blocking(move || {
        for t in threads {
            let _ = t.join();
        }
        // The readers end with their streams; every ack of the round is sent before the next
        // round starts.
        for (closer, reader) in std::mem::take(&mut readers.0) {
            closer.close();
            let _ = reader.join();
        }
        for a in ackers {
            a.close();
        }
    })
    .await?;
    Ok(meter.sample(window))
}

async fn rabbitmq(
    a: &BrokersBench,
    size: usize,
    n: usize,
    duration: Duration,
) -> anyhow::Result<Sample> {
    use lapin::{options::*, types::FieldTable, BasicProperties, Connection, ConnectionProperties};
    let conn = Connection::connect(&a.amqp, ConnectionProperties::default()).await?;
    let queue = format!("bench.{}", now_micros());
    let admin = conn.create_channel().await?;
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    admin
        .queue_declare(&queue, durable, FieldTable::default())
        .await?;
    let meter = Meter::new(n);
    let (publishers, consumers) = concurrency(n);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..publishers {
        let ch = conn.create_channel().await?;
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
        let (m, queue) = (meter.clone(), queue.clone());
        tasks.spawn(async move {
            while m.enter().await {
                let props = BasicProperties::default().with_delivery_mode(2);
                let sent = ch
                    .basic_publish(
                        "",
                        &queue,
                        BasicPublishOptions::default(),
                        &payload(size),
                        props,
                    )
                    .await;
                let confirmed = match sent {
                    Ok(confirm) => confirm.await.is_ok(),
                    Err(_) => false,
                };
                if !confirmed {
                    m.window.add_permits(1);
                }
            }
        });
    }
    for k in 0..consumers {
        let ch = conn.create_channel().await?;
        ch.basic_qos(n.min(1000) as u16, BasicQosOptions::default())
            .await?;
        let mut deliveries = ch
            .basic_consume(
                &queue,
                &format!("c{k}"),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let m = meter.clone();
        tasks.spawn(async move {
            while !m.stop.load(Ordering::Relaxed) {
                let next =
                    tokio::time::timeout(Duration::from_millis(100), deliveries.next()).await;
                let Ok(Some(Ok(d))) = next else { continue };
                if d.ack(BasicAckOptions::default()).await.is_ok() {
                    m.delivered(&d.data);
                }
            }
        });
    }
    let window = meter.run_for(a.warm_up, duration).await;
    meter.window.add_permits(publishers);
    while tasks.join_next().await.is_some() {}
    let _ = admin
        .queue_delete(&queue, QueueDeleteOptions::default())
        .await;
    let _ = conn.close(200, "bench done").await;
    Ok(meter.sample(window))
}

async fn jetstream(
    a: &BrokersBench,
    size: usize,
    n: usize,
    duration: Duration,
) -> anyhow::Result<Sample> {
    use async_nats::jetstream::{self, consumer, stream};
    let client = async_nats::connect(&a.nats).await?;
    let js = jetstream::new(client);
    let name = format!("bench_{}", now_micros());
    let subject = format!("{name}.m");
    let stream = js
        .create_stream(stream::Config {
            name: name.clone(),
            subjects: vec![subject.clone()],
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await?;
    let pull: consumer::PullConsumer = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some("bench".into()),
            ack_policy: consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await?;
    let meter = Meter::new(n);
    let (publishers, consumers) = concurrency(n);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..publishers {
        let (js, m, subject) = (js.clone(), meter.clone(), subject.clone());
        tasks.spawn(async move {
            while m.enter().await {
                let acked = match js.publish(subject.clone(), payload(size).into()).await {
                    Ok(ack) => ack.await.is_ok(),
                    Err(_) => false,
                };
                if !acked {
                    m.window.add_permits(1);
                }
            }
        });
    }
    for _ in 0..consumers {
        let mut messages = pull.messages().await?;
        let m = meter.clone();
        tasks.spawn(async move {
            while !m.stop.load(Ordering::Relaxed) {
                let next = tokio::time::timeout(Duration::from_millis(100), messages.next()).await;
                let Ok(Some(Ok(msg))) = next else { continue };
                if msg.ack().await.is_ok() {
                    m.delivered(&msg.payload);
                }
            }
        });
    }
    let window = meter.run_for(a.warm_up, duration).await;
    meter.window.add_permits(publishers);
    while tasks.join_next().await.is_some() {}
    let _ = js.delete_stream(&name).await;
    Ok(meter.sample(window))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpus_busy_share_comes_from_proc_stat_without_idle_and_iowait() {
        // user nice system idle iowait irq softirq steal guest guest_nice
        let before = cpu_times("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3\n").unwrap();
        assert_eq!(before, (150, 1000));
        let after = cpu_times("cpu  130 0 60 1550 60 0 0 0 0 0\n").unwrap();
        assert_eq!(after, (190, 1800));
        let share = busy_share(before, after).unwrap();
        assert!((share - 0.05).abs() < 1e-9, "{share}");
        assert_eq!(busy_share(after, after), None);
        assert_eq!(cpu_times("intr 1 2 3\n"), None);
        assert_eq!(cpu_times("cpu  1 2 x 4 5 6 7 8\n"), None);
    }

    fn round(latencies: &[u64], delivered: u64, elapsed: f64, mean: f64) -> Sample {
        Sample {
            latencies: latencies.to_vec(),
            delivered,
            elapsed,
            in_flight_seconds: mean * elapsed,
        }
    }

    #[test]
    fn rounds_pool_their_samples_rates_and_time_in_flight() {
        let mut total = Sample::default();
        // A quiet round and a noisy one: the pooled percentiles see both.
        total.add(round(&[100; 98], 1000, 1.0, 1.0));
        total.add(round(&[100, 100, 5000, 9000], 4000, 3.0, 3.0));
        let c = total.cell();
        // Deliveries over time, not the mean of the rounds' rates (1333).
        assert_eq!(c.rate, 1250.0);
        assert_eq!(c.p50_micros, 100);
        // 102 samples: the 99th percentile is the 101st smallest.
        assert_eq!(c.p99_micros, 5000);
        // Mean in flight weighted by time: (1 * 1 + 3 * 3) / 4.
        assert_eq!(c.mean_in_flight, 2.5);
    }

    #[test]
    fn messages_published_while_a_round_warms_up_are_delivered_but_not_measured() {
        let m = Meter::new(10);
        m.measure_from
            .store(now_micros() - 1_000, Ordering::Relaxed);
        let warming = now_micros() - 2_000;
        m.delivered(&warming.to_le_bytes());
        m.delivered(&now_micros().to_le_bytes());
        assert_eq!(m.latencies.lock().unwrap().len(), 1);
        assert_eq!(m.delivered.load(Ordering::Relaxed), 2);
        // Both gave their place in the window back.
        assert_eq!(m.window.available_permits(), 12);
    }

    /// Paused time: the timers fire in order, however slow the machine.
    fn paused_runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap()
    }

    /// The round's start of measurement, once `run_for` has set it.
    async fn measure_from(m: &Meter) -> u64 {
        loop {
            match m.measure_from.load(Ordering::Relaxed) {
                u64::MAX => tokio::task::yield_now().await,
                from => return from,
            }
        }
    }

    #[test]
    fn a_round_counts_deliveries_and_keeps_latencies_only_after_its_warm_up() {
        let rt = paused_runtime();
        let m = Meter::new(10);
        let feeder = m.clone();
        let (window, m) = rt.block_on(async move {
            let feed = tokio::spawn(async move {
                let from = measure_from(&feeder).await;
                // Published in the warm-up and delivered in it.
                feeder.delivered(&(from - 1).to_le_bytes());
                // Published after the warm-up, delivered in the measured part.
                tokio::time::sleep(Duration::from_millis(500)).await;
                feeder.delivered(&from.to_le_bytes());
            });
            let window = m
                .run_for(Duration::from_millis(400), Duration::from_millis(1200))
                .await;
            feed.await.unwrap();
            (window, m)
        });
        assert_eq!(window.delivered, 1);
        assert_eq!(m.latencies.lock().unwrap().len(), 1);
        assert_eq!(m.delivered.load(Ordering::Relaxed), 2);
        assert!(m.closing.load(Ordering::Relaxed) && m.stop.load(Ordering::Relaxed));
    }

    #[test]
    fn a_round_waits_for_the_messages_in_flight_and_keeps_their_latencies() {
        let rt = paused_runtime();
        let m = Meter::new(10);
        let late = m.clone();
        let (window, m) = rt.block_on(async move {
            // One message published in the measured part and delivered 300 ms after its end.
            assert!(late.enter().await);
            let feed = tokio::spawn(async move {
                let from = measure_from(&late).await;
                tokio::time::sleep(Duration::from_millis(500)).await;
                assert!(!late.stop.load(Ordering::Relaxed));
                late.delivered(&from.to_le_bytes());
            });
            let window = m
                .run_for(Duration::from_millis(100), Duration::from_millis(100))
                .await;
            feed.await.unwrap();
            (window, m)
        });
        // Not in the rate (delivered after the measured part), but its latency is kept.
        assert_eq!(window.delivered, 0);
        assert_eq!(m.latencies.lock().unwrap().len(), 1);
        assert!(m.stop.load(Ordering::Relaxed));
    }

    #[test]
    fn a_cell_with_no_rounds_is_empty_not_a_division_by_zero() {
        let c = Sample::default().cell();
        assert_eq!((c.rate, c.p99_micros, c.mean_in_flight), (0.0, 0, 0.0));
    }
}
