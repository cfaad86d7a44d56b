//! `switchyard bench topology`: `/api/topology` merged with a large broker's state, timed on
//! one or more servers side by side (each request goes to each server in turn, so a busy
//! machine weighs on all of them alike), with each server's CPU time per request read from
//! /proc. `switchyard bench rabbitmq-stand-in` answers RabbitMQ's management API for a broker
//! of the issue's size (2,000 queues, 2,000 bindings, 500 consumers) generated in-process, so
//! `serve --discover rabbitmq=http://guest:guest@ADDR` discovers it without a real broker.
//!
//! ```sh
//! switchyard bench rabbitmq-stand-in --listen 127.0.0.1:15699 &
//! switchyard serve --db /tmp/bench.db --discover rabbitmq=http://guest:guest@127.0.0.1:15699 &
//! switchyard bench topology --api http://127.0.0.1:8080 --server-pid $!
//! ```

use super::percentile;
use super::process_usage;
use clap::Args;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Args)]
pub struct StandInBench {
    /// Address to answer on.
    #[arg(long, default_value = "127.0.0.1:15699")]
    pub listen: String,
    /// Queues, each bound from one exchange with its own routing key.
    #[arg(long, default_value_t = 2_000)]
    pub queues: usize,
    /// Exchanges the queues are bound from (named `topic-N`, as `bench ingest` names its
    /// topics, so half of the traced topics are reported by the broker and half are not).
    #[arg(long, default_value_t = 20)]
    pub exchanges: usize,
    /// Consumers, one on each of the first queues, on 10 named connections (`svc-N`).
    #[arg(long, default_value_t = 500)]
    pub consumers: usize,
}

/// The management API's answers for the generated broker, by path.
fn answers(a: &StandInBench) -> Vec<(String, Vec<u8>)> {
    let stats = |rate: f64| {
        json!({"publish_in": 1000, "publish_in_details": {"rate": rate},
               "publish_out_details": {"rate": rate}, "publish": 1000,
               "publish_details": {"rate": rate}, "deliver_get_details": {"rate": rate},
               "redeliver_details": {"rate": 0.0}})
    };
    let mut exchanges: Vec<Value> = (0..a.exchanges)
        .map(|x| json!({"name": format!("topic-{x}"), "vhost": "/", "type": "direct", "message_stats": stats(2.5)}))
        .collect();
    exchanges.push(json!({"name": "dlx", "vhost": "/", "type": "fanout"}));
    exchanges.push(json!({"name": "", "vhost": "/", "type": "direct"}));
    let queues: Vec<Value> = (0..a.queues)
        .map(|i| {
            let args = if i % 20 == 0 {
                json!({"x-dead-letter-exchange": "dlx"})
            } else {
                json!({})
            };
            json!({"name": format!("q-{i}"), "vhost": "/", "type": "classic", "arguments": args,
                   "messages_ready": i % 7, "messages_unacknowledged": i % 3,
                   "consumers": u64::from(i < a.consumers), "message_stats": stats(0.5)})
        })
        .collect();
    let bindings: Vec<Value> = (0..a.queues)
        .map(|i| {
            json!({"source": format!("topic-{}", i % a.exchanges.max(1)), "vhost": "/",
                   "destination": format!("q-{i}"), "destination_type": "queue",
                   "routing_key": format!("k{i}")})
        })
        .collect();
    let connection = |c: usize| format!("127.0.0.1:{} -> 127.0.0.1:5672", 40_000 + c);
    let consumers: Vec<Value> = (0..a.consumers.min(a.queues))
        .map(|i| {
            json!({"queue": {"name": format!("q-{i}"), "vhost": "/"}, "consumer_tag": format!("ctag-{i}"),
                   "channel_details": {"name": format!("{} ({})", connection(i % 10), i / 10 + 1),
                                       "connection_name": connection(i % 10), "user": "guest"}})
        })
        .collect();
    let connections: Vec<Value> = (0..10)
        .map(|c| {
            json!({"name": connection(c), "vhost": "/", "user": "guest",
                   "user_provided_name": format!("svc-{c}"),
                   "client_properties": {"connection_name": format!("svc-{c}"), "product": "pika"}})
        })
        .collect();
    let channels: Vec<Value> = (0..a.consumers.min(a.queues))
        .map(|i| {
            json!({"name": format!("{} ({})", connection(i % 10), i / 10 + 1), "vhost": "/",
                   "user": "guest", "connection_details": {"name": connection(i % 10)}})
        })
        .collect();
    let overview = json!({"rates_mode": "basic", "rabbitmq_version": "stand-in"});
    let mut out = Vec::new();
    for (what, v) in [
        ("exchanges", Value::Array(exchanges)),
        ("queues", Value::Array(queues)),
        ("bindings", Value::Array(bindings)),
        ("consumers", Value::Array(consumers)),
        ("connections", Value::Array(connections)),
        ("channels", Value::Array(channels)),
        ("overview", overview),
    ] {
        let body = serde_json::to_vec(&v).unwrap_or_default();
        out.push((format!("/api/{what}"), body));
    }
    out
}

/// Answers one request (the connection is closed after it).
fn answer(stream: TcpStream, answers: &[(String, Vec<u8>)]) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" || header == "\n" {
            break;
        }
    }
    // `/api/queues/%2F` and `/api/queues` answer the same (one vhost).
    let found = answers
        .iter()
        .find(|(p, _)| path == *p || path.starts_with(&format!("{p}/")));
    let mut stream = stream;
    match found {
        Some((_, body)) => {
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )?;
            stream.write_all(body)?;
        }
        None => stream.write_all(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )?,
    }
    stream.flush()
}

pub fn stand_in(a: StandInBench) -> anyhow::Result<()> {
    let answers = Arc::new(answers(&a));
    let listener = TcpListener::bind(&a.listen)?;
    eprintln!(
        "rabbitmq stand-in on {}: {} queues, {} bindings from {} exchanges, {} consumers",
        listener.local_addr()?,
        a.queues,
        a.queues,
        a.exchanges,
        a.consumers.min(a.queues)
    );
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let answers = answers.clone();
        std::thread::spawn(move || {
            let _ = answer(stream, &answers);
        });
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct TopologyBench {
    /// Server base URLs, timed side by side; the first is the baseline of the ratios.
    #[arg(long, required = true)]
    pub api: Vec<String>,
    /// Each server's process id, in the order of `--api`, for its CPU time per request.
    #[arg(long)]
    pub server_pid: Vec<u32>,
    /// Requests per server.
    #[arg(long, default_value_t = 300)]
    pub requests: usize,
    /// The path timed.
    #[arg(long, default_value = "/api/topology")]
    pub path: String,
    /// Wait at most this long for every server's topology to hold this many nodes (the broker
    /// discovered).
    #[arg(long, default_value_t = 0)]
    pub min_nodes: usize,
    /// Ask each round for a window over other minutes (ending now, starting a minute earlier
    /// than the round before): no kept answer or template serves it, so every request builds
    /// the topology afresh, as the first one after a poll, a commit or a minute's turn does.
    #[arg(long)]
    pub afresh: bool,
    /// Ask each server this many times a second (the default window, ending now) for
    /// `--seconds`, as a client refreshing a map does, instead of `--requests` back to back:
    /// with `serve --discover-interval 1s` polls land during the run, and p50/p99 are over
    /// every request, those that met a build included.
    #[arg(long, conflicts_with = "afresh")]
    pub rate: Option<f64>,
    /// How long `--rate` asks.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
}

/// Nodes and edges of one answer, its size and how it was framed (`Content-Length` or
/// chunked).
fn shape(agent: &ureq::Agent, url: &str) -> Option<(usize, usize, usize, String)> {
    let response = agent.get(url).call().ok()?;
    let framing = match response.header("content-length") {
        Some(n) => format!("Content-Length {n}"),
        None => format!(
            "Transfer-Encoding {}",
            response.header("transfer-encoding").unwrap_or("none")
        ),
    };
    let body = read(response)?;
    let v: Value = serde_json::from_slice(&body).ok()?;
    let n = |k: &str| v[k].as_array().map_or(0, Vec::len);
    Some((n("nodes"), n("edges"), body.len(), framing))
}

/// The whole body of an answer, read as any client reads it into memory (one growing buffer).
fn read(response: ureq::Response) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut body = Vec::new();
    response.into_reader().read_to_end(&mut body).ok()?;
    Some(body)
}

pub fn topology(a: TopologyBench) -> anyhow::Result<()> {
    // Timeouts per read and write, not for the whole request: with the latter ureq sets the
    // socket's timeouts again before every read of its 8 KiB buffer, two system calls per
    // 8 KiB (about 500 for one answer), which made this client cost more CPU than the server.
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(5))
        .timeout_read(Duration::from_secs(30))
        .timeout_write(Duration::from_secs(30))
        .build();
    let urls: Vec<String> = a.api.iter().map(|api| format!("{api}{}", a.path)).collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    for url in &urls {
        loop {
            let s = shape(&agent, url);
            if let Some((n, e, bytes, framing)) = s.filter(|s| s.0 >= a.min_nodes) {
                println!("{url}: {n} nodes, {e} edges, {bytes} bytes ({framing})");
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{url} never answered {} nodes",
                a.min_nodes
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    // Warm up each server, then time them in turn.
    for url in &urls {
        for _ in 0..10 {
            let _ = agent.get(url).call().ok().and_then(read);
        }
    }
    // The whole process's CPU, and that of its threads that poll brokers and write the
    // store (busy alike with or without requests).
    let cpu = |i: usize| {
        let pid = *a.server_pid.get(i)?;
        Some((process_usage(pid)?.1, background_cpu(pid)?))
    };
    let requests = match a.rate {
        Some(rate) => {
            anyhow::ensure!(
                rate > 0.0 && rate <= 1000.0,
                "--rate must be above 0 and at most 1000"
            );
            ((rate * a.seconds as f64).ceil() as usize).max(1)
        }
        None => a.requests,
    };
    let before: Vec<Option<(f64, f64)>> = (0..urls.len()).map(cpu).collect();
    let mut samples: Vec<Vec<u64>> = vec![Vec::new(); urls.len()];
    // This process's own CPU time per server (the client reads on this thread only).
    let mut client_nanos = vec![0u64; urls.len()];
    let start = crate::model::window::now_unix_nanos();
    let began = Instant::now();
    for round in 0..requests {
        if let Some(rate) = a.rate {
            // Each round at its time on the fixed schedule (a late round is not made up for).
            let due = began + Duration::from_secs_f64(round as f64 / rate);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        // Every server is asked for the same window in a round.
        let since = start.saturating_sub((3_600 + 60 * (round as u64 + 1)) * 1_000_000_000);
        let query = format!(
            "{}since={}",
            if a.path.contains('?') { '&' } else { '?' },
            crate::model::window::rfc3339(since)
        );
        for (i, url) in urls.iter().enumerate() {
            let url = if a.afresh {
                format!("{url}{query}")
            } else {
                url.clone()
            };
            let (t, cpu) = (Instant::now(), super::thread_cpu_nanos());
            let ok = agent.get(&url).call().ok().and_then(read).is_some();
            let elapsed = t.elapsed().as_micros() as u64;
            if let (Some(before), Some(after)) = (cpu, super::thread_cpu_nanos()) {
                client_nanos[i] += after.saturating_sub(before);
            }
            if ok {
                samples[i].push(elapsed);
            }
        }
    }
    // Per request: the process's CPU, and without its background threads' (answering).
    let cpu_ms: Vec<Option<(f64, f64)>> = (0..urls.len())
        .map(|i| {
            let (b, after) = (before[i]?, cpu(i)?);
            let all = (after.0 - b.0) * 1000.0 / requests as f64;
            Some((all, all - (after.1 - b.1) * 1000.0 / requests as f64))
        })
        .collect();
    for s in &mut samples {
        s.sort_unstable();
    }
    let base = &samples[0];
    let pace = a.rate.map_or(String::new(), |r| {
        format!(" at {r}/s over {:.1} s", began.elapsed().as_secs_f64())
    });
    println!(
        "{requests} requests per server{pace}, in turn; latency request to last byte; CPU = \
         the server's user+system time per request (answering: without its threads that \
         poll brokers and write the store; builds ahead included), client = this process's \
         own (reading the answer)"
    );
    for (i, url) in urls.iter().enumerate() {
        let s = &samples[i];
        let ratio = |q: f64| percentile(s, q) as f64 / percentile(base, q).max(1) as f64;
        println!(
            "  {url:<40} p50 {:>7} us  p99 {:>7} us  max {:>7} us  CPU {}  client {:.2} ms  (p50 {:.2}x, p99 {:.2}x the first)",
            percentile(s, 0.5),
            percentile(s, 0.99),
            s.last().copied().unwrap_or(0),
            cpu_ms[i].map_or("?".to_string(), |(all, answering)| format!(
                "{all:.2} ms (answering {answering:.2} ms)"
            )),
            client_nanos[i] as f64 / 1e6 / requests as f64,
            ratio(0.5),
            ratio(0.99)
        );
        if let Some(how) = answers_made(&agent, &a.api[i]) {
            println!("  {:<40} answers since start: {how}", "");
        }
    }
    Ok(())
}

/// CPU seconds of a server's threads that poll brokers (`discover-N`) and own the store and
/// the embedded broker (`store-*`, `broker-*`): long-lived threads, unlike the blocking
/// pool's, whose time leaves the per-thread figures when they end.
fn background_cpu(pid: u32) -> Option<f64> {
    let mut ticks = 0.0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let Some((head, after)) = stat.rsplit_once(')') else {
            continue;
        };
        let name = head.split_once('(').map_or("", |(_, n)| n);
        if !["discover-", "store-", "broker-"]
            .iter()
            .any(|p| name.starts_with(p))
        {
            continue;
        }
        let fields: Vec<&str> = after.split_whitespace().collect();
        let n = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
        ticks += n(11).unwrap_or(0.0) + n(12).unwrap_or(0.0);
    }
    // USER_HZ on Linux.
    Some(ticks / 100.0)
}

/// How a server made its `/api/topology` answers since it started, from its `/metrics` (a
/// build without those series says nothing).
fn answers_made(agent: &ureq::Agent, api: &str) -> Option<String> {
    let text = agent
        .get(&format!("{api}/metrics"))
        .call()
        .ok()?
        .into_string()
        .ok()?;
    let found: Vec<String> = text
        .lines()
        .filter_map(|l| {
            let rest = l
                .strip_prefix("switchyard_topology_answers_total{from=\"")
                .map(|r| r.replacen("\"}", "", 1))
                .or_else(|| {
                    l.strip_prefix("switchyard_topology_built_ahead_total ")
                        .map(|n| format!("ahead {n}"))
                })?;
            Some(rest)
        })
        .collect();
    (!found.is_empty()).then(|| found.join(", "))
}
