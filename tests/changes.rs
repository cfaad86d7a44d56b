//! Architecture change notices: a new service, destination or edge is logged, listed on
//! `/changes` and `GET /api/changes` (newest first), and posted as a JSON summary to
//! `--notify-url`, here a real HTTP receiver in the test that records every POST. A failing
//! receiver's posts are retried and counted; a receiver that never answers holds the
//! webhook's thread, never ingest or the watcher. The URL's password and query never show.

mod common;

use common::builder::{self, span, Consumer, Producer, SpanB};
use common::{ui, wait_for, TestEnv};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);
const PASSWORD: &str = "hunter2-pw";
const TOKEN: &str = "s3cret-token";

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Ok,
    Fail,
    /// Reads the request and never answers.
    Hang,
}

/// One POST as the receiver read it.
#[derive(Clone, Debug)]
struct Post {
    target: String,
    authorization: Option<String>,
    body: Value,
}

/// A tiny HTTP/1.1 server on a thread: records each request, answers as its mode says.
struct Receiver {
    addr: SocketAddr,
    posts: Arc<Mutex<Vec<Post>>>,
}

fn read_request(stream: &TcpStream) -> Option<Post> {
    read_post(stream.try_clone().ok()?)
}

fn read_post(from: impl Read) -> Option<Post> {
    let mut r = BufReader::new(from);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let target = line.split_whitespace().nth(1)?.to_string();
    let (mut length, mut authorization) = (0usize, None);
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (name, value) = h.split_once(':')?;
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().ok()?,
            "authorization" => authorization = Some(value.trim().to_string()),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    r.read_exact(&mut body).ok()?;
    Some(Post {
        target,
        authorization,
        body: serde_json::from_slice(&body).ok()?,
    })
}

impl Receiver {
    fn start(mode: Mode) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let posts = Arc::new(Mutex::new(Vec::new()));
        let seen = posts.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let Some(post) = read_request(&stream) else {
                    continue;
                };
                seen.lock().unwrap().push(post);
                match mode {
                    Mode::Ok => {
                        let _ = stream
                            .write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
                    }
                    Mode::Fail => {
                        let _ = stream.write_all(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    }
                    Mode::Hang => held.push(stream),
                }
            }
        });
        Receiver { addr, posts }
    }

    fn url(&self) -> String {
        format!("http://bot:{PASSWORD}@{}/hook?token={TOKEN}", self.addr)
    }

    fn posts(&self) -> Vec<Post> {
        self.posts.lock().unwrap().clone()
    }
}

fn server(receiver: &Receiver) -> TestEnv {
    TestEnv::with_args(&["--notify-url", &receiver.url(), "--changes-interval", "1s"])
}

/// `checkout` publishes to `dest`, consumed by `consumer`, now.
fn flow(dest: &str, consumer: &str) -> Vec<SpanB> {
    let now = builder::now_unix_nanos();
    let p = span("checkout", "publish", Producer)
        .messaging("rabbitmq", dest)
        .at(now);
    let c = p
        .child(consumer, "process", Consumer)
        .messaging("rabbitmq", dest);
    vec![p, c]
}

fn post(env: &TestEnv, spans: &[SpanB]) {
    let refs: Vec<&SpanB> = spans.iter().collect();
    let reply = env.post_protobuf(&builder::protobuf(&refs));
    assert_eq!(reply.status, 200, "{}", reply.text());
}

fn changes(env: &TestEnv) -> Value {
    env.get_json("/api/changes?limit=1000")
}

fn wait_total(env: &TestEnv, n: u64) -> Value {
    wait_for(&format!("{n} notices"), WAIT, || {
        let c = changes(env);
        (c["total"].as_u64() >= Some(n)).then_some(c)
    })
}

fn descriptions(c: &Value) -> Vec<String> {
    c["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["description"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn new_nodes_and_edges_are_logged_listed_and_posted_once() {
    let receiver = Receiver::start(Mode::Ok);
    let env = server(&receiver);
    assert_eq!(changes(&env)["total"], 0);
    post(&env, &flow("orders", "billing"));
    let c = wait_total(&env, 5);
    let mut got = descriptions(&c);
    got.sort();
    assert_eq!(
        got,
        [
            "new destination \"orders\" on rabbitmq",
            "new edge: service \"billing\" consumes from destination \"orders\"",
            "new edge: service \"checkout\" publishes to destination \"orders\"",
            "new service \"billing\"",
            "new service \"checkout\"",
        ]
    );
    let summary = wait_for("the first post", WAIT, || receiver.posts().first().cloned());
    assert_eq!(summary.target, format!("/hook?token={TOKEN}"));
    let basic = format!("Basic {}", base64_of(&format!("bot:{PASSWORD}")));
    assert_eq!(summary.authorization.as_deref(), Some(basic.as_str()));
    assert_eq!(summary.body["event"], "architecture_changed");
    assert_eq!(summary.body["count"], 5);
    let kinds: Vec<&str> = summary.body["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "new_edge").count(),
        2,
        "{kinds:?}"
    );
    assert!(kinds.contains(&"new_destination"), "{kinds:?}");

    // The same flow again and one new consumer with a hostile name, in one request: only the
    // new service and its edge are new, and they are listed first.
    let mut spans = flow("orders", "billing");
    spans.extend(flow("orders", ui::HOSTILE_CONSUMER));
    post(&env, &spans);
    let c = wait_total(&env, 7);
    wait_for("the second post", WAIT, || {
        (receiver.posts().len() >= 2).then_some(())
    });
    let c2 = changes(&env);
    assert_eq!(
        c2["total"], 7,
        "nothing seen within the hour is new again: {c2}"
    );
    let seqs: Vec<u64> = c["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [7, 6, 5, 4, 3, 2, 1], "newest first");
    let newest = descriptions(&c);
    assert!(
        newest[0].contains("consumes from") || newest[1].contains("consumes from"),
        "{newest:?}"
    );
    assert!(
        newest[..2].iter().all(|d| d.contains("\\\"><img")),
        "names are quoted: {newest:?}"
    );
    assert_eq!(receiver.posts()[1].body["count"], 2);
    assert_eq!(changes(&env)["notify"]["sent"], 2);
    assert_eq!(
        c2["notify"]["url"],
        format!("http://{}/hook", receiver.addr)
    );
    assert_eq!(
        env.get_json("/api/changes?limit=1")["changes"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // The page lists them, escaped.
    let page = ui::Page::ok(&env, "/changes");
    page.assert_no_injected_markup("/changes");
    assert_eq!(page.all("tr.change-row").len(), 7);
    let first = ui::text(&page.all("tr.change-row .description")[0]);
    assert!(
        first.contains("<img src=x onerror="),
        "shown as text: {first}"
    );
    assert!(ui::text(&page.one("#notify-status")).contains("2 sent"));

    // Logged, without the URL's secrets anywhere.
    let log = env.log(1);
    assert!(
        log.contains("architecture changed: new service \\\"billing\\\"")
            || log.contains("architecture changed: new service \"billing\""),
        "{log}"
    );
    for body in [log.as_str(), &c2.to_string(), &page.body] {
        assert!(
            !body.contains(PASSWORD) && !body.contains(TOKEN),
            "a secret shows: {body}"
        );
    }
}

#[test]
fn a_failing_receiver_is_retried_counted_and_logged_without_secrets() {
    let receiver = Receiver::start(Mode::Fail);
    let env = server(&receiver);
    post(&env, &flow("orders", "billing"));
    let c = wait_for("a failed post", WAIT, || {
        let c = changes(&env);
        (c["notify"]["failed"] == 1).then_some(c)
    });
    assert_eq!(c["notify"]["attempts_failed"], 3, "{c}");
    assert_eq!(c["notify"]["sent"], 0);
    assert_eq!(receiver.posts().len(), 3, "three tries of one summary");
    assert!(receiver.posts().iter().all(|p| p.body["count"] == 5));
    let log = wait_for("the failure's log line", WAIT, || {
        let log = env.log(1);
        log.contains("--notify-url post failed").then_some(log)
    });
    assert!(log.contains("status 500"), "{log}");
    assert!(!log.contains(PASSWORD) && !log.contains(TOKEN), "{log}");
}

#[test]
fn a_receiver_that_never_answers_holds_neither_ingest_nor_the_watcher() {
    let receiver = Receiver::start(Mode::Hang);
    let env = server(&receiver);
    post(&env, &flow("orders", "billing"));
    // The webhook's thread now waits on a receiver that never answers.
    wait_for("the hanging post", WAIT, || {
        receiver.posts().first().cloned()
    });
    // Meanwhile ingest answers every request and the watcher keeps finding what is new.
    for i in 0..20 {
        post(&env, &flow(&format!("q{i}"), &format!("worker-{i}")));
    }
    let c = wait_total(&env, 5 + 20 * 4);
    assert_eq!(c["notify"]["sent"], 0, "{c}");
    assert_eq!(env.spans_in_store(), 2 + 20 * 2);
}

/// `--notify-url` is repeatable: each receiver gets every summary on its own thread, so one
/// that never answers and one that fails hold up neither the one that works nor ingest.
#[test]
fn several_receivers_each_get_every_summary_with_their_own_retries() {
    let (hang, fail, ok) = (
        Receiver::start(Mode::Hang),
        Receiver::start(Mode::Fail),
        Receiver::start(Mode::Ok),
    );
    let env = TestEnv::with_args(&[
        "--notify-url",
        &hang.url(),
        "--notify-url",
        &fail.url(),
        "--notify-url",
        &ok.url(),
        "--changes-interval",
        "1s",
    ]);
    post(&env, &flow("orders", "billing"));
    wait_for("the hanging post", WAIT, || hang.posts().first().cloned());
    let first = wait_for("the working receiver's first summary", WAIT, || {
        ok.posts().first().cloned()
    });
    assert!(first.body["count"].as_u64() >= Some(1), "{:?}", first.body);
    // The hanging receiver holds its own thread only: later passes still reach the others.
    post(&env, &flow("invoices", "mailer"));
    let c = wait_total(&env, 5 + 4);
    let total = c["total"].as_u64().unwrap();
    let posts = wait_for("every notice at the working receiver", WAIT, || {
        let posts = ok.posts();
        let counted: u64 = posts.iter().filter_map(|p| p.body["count"].as_u64()).sum();
        (counted == total).then_some(posts)
    });
    let n = posts.len() as u64;
    let c = wait_for("the failing receiver's tries", WAIT, || {
        let c = changes(&env);
        (c["notify"]["receivers"][1]["failed"] == n).then_some(c)
    });
    let receivers = c["notify"]["receivers"].as_array().unwrap();
    assert_eq!(receivers.len(), 3, "{c}");
    for (r, addr) in receivers.iter().zip([hang.addr, fail.addr, ok.addr]) {
        assert_eq!(r["url"], format!("http://{addr}/hook"), "{c}");
    }
    assert_eq!(receivers[0]["sent"], 0, "{c}");
    assert_eq!(receivers[1]["attempts_failed"], 3 * n, "{c}");
    assert_eq!(receivers[1]["sent"], 0, "{c}");
    assert_eq!(receivers[2]["sent"], n, "{c}");
    assert_eq!(receivers[2]["failed"], 0, "{c}");
    assert_eq!(
        fail.posts().len() as u64,
        3 * n,
        "three tries of each summary"
    );
    assert_eq!(c["notify"]["sent"], n, "the sum over receivers: {c}");
    assert_eq!(c["notify"]["url"], format!("http://{}/hook", hang.addr));
    assert_eq!(env.spans_in_store(), 4);
    let page = ui::Page::ok(&env, "/changes");
    let lines = page.texts("#notify-status .notify-receiver");
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[2].contains(&format!("{n} sent")), "{lines:?}");
    let html = page.one("#notify-status").html();
    assert!(!html.contains(PASSWORD) && !html.contains(TOKEN), "{html}");
}

fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// A CA made for the test, and a receiver's certificate it signed for `names` (a name or an IP
/// address each): the CA's PEM, the receiver's certificate and key.
fn tls_identity(names: &[&str]) -> (String, rustls::ServerConfig) {
    let id = common::tls::identity(names);
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![id.cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(id.key.serialize_der().into()),
        )
        .unwrap();
    (id.ca_pem, config)
}

/// A real TLS receiver: records each POST it reads over TLS and answers 204; a client that
/// refuses its certificate leaves no post.
fn tls_receiver(config: rustls::ServerConfig) -> Receiver {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let posts = Arc::new(Mutex::new(Vec::new()));
    let seen = posts.clone();
    let config = Arc::new(config);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let Ok(conn) = rustls::ServerConnection::new(config.clone()) else {
                continue;
            };
            let mut tls = rustls::StreamOwned::new(conn, stream);
            let Some(post) = read_post(&mut tls) else {
                continue;
            };
            seen.lock().unwrap().push(post);
            let _ = tls.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    });
    Receiver { addr, posts }
}

fn https_url(receiver: &Receiver, host: &str) -> String {
    format!(
        "https://bot:{PASSWORD}@{host}:{}/hook?token={TOKEN}",
        receiver.addr.port()
    )
}

/// `--notify-url https://...` posts over TLS to a receiver whose certificate a CA in
/// `--notify-ca` signed, with the URL's user and password as basic auth; the URL shown keeps
/// no secret.
#[test]
fn an_https_receiver_gets_the_summary_over_tls() {
    let (ca, config) = tls_identity(&["127.0.0.1", "localhost"]);
    let receiver = tls_receiver(config);
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca).unwrap();
    let url = https_url(&receiver, "127.0.0.1");
    let ca_arg = ca_file.to_str().unwrap();
    let env = TestEnv::with_args(&[
        "--notify-url",
        &url,
        "--notify-ca",
        ca_arg,
        "--changes-interval",
        "1s",
    ]);
    post(&env, &flow("orders", "billing"));
    let got = wait_for("a post over TLS", WAIT, || {
        receiver.posts().first().cloned()
    });
    assert_eq!(got.target, format!("/hook?token={TOKEN}"));
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("bot:{PASSWORD}"));
    assert_eq!(got.authorization, Some(format!("Basic {basic}")));
    assert_eq!(got.body["event"], "architecture_changed");
    assert_eq!(got.body["count"], 5, "{}", got.body);
    let c = wait_for("the post counted", WAIT, || {
        let c = changes(&env);
        (c["notify"]["sent"] == 1).then_some(c)
    });
    assert_eq!(
        c["notify"]["url"],
        format!("https://127.0.0.1:{}/hook", receiver.addr.port())
    );
    assert!(!c.to_string().contains(PASSWORD) && !c.to_string().contains(TOKEN));
}

/// A receiver whose certificate no trusted root signed (no `--notify-ca`), or that names
/// another host, gets nothing: the post fails, is counted, and the log line says why without
/// the URL's user, password or query.
#[test]
fn a_certificate_that_is_not_trusted_or_names_another_host_fails_with_a_clear_log_line() {
    let (ca, config) = tls_identity(&["localhost"]);
    let receiver = tls_receiver(config);
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca).unwrap();
    let cases = [
        (vec![], "UnknownIssuer"),
        (
            vec!["--notify-ca", ca_file.to_str().unwrap()],
            "certificate not valid for name",
        ),
    ];
    for (extra, reason) in cases {
        let url = https_url(&receiver, "127.0.0.1");
        let mut args: Vec<&str> = vec!["--notify-url", &url, "--changes-interval", "1s"];
        args.extend(extra);
        let env = TestEnv::with_args(&args);
        post(&env, &flow("orders", "billing"));
        let c = wait_for("a failed post", WAIT, || {
            let c = changes(&env);
            (c["notify"]["failed"] == 1).then_some(c)
        });
        assert_eq!(c["notify"]["sent"], 0, "{reason}: {c}");
        let log = wait_for("the failure's log line", WAIT, || {
            let log = env.log(1);
            log.contains("--notify-url post failed").then_some(log)
        });
        assert!(
            log.contains("invalid peer certificate") && log.contains(reason),
            "{reason}: {log}"
        );
        assert!(!log.contains(PASSWORD) && !log.contains(TOKEN), "{log}");
    }
    assert!(receiver.posts().is_empty(), "nothing was sent in clear");
}

/// A `--notify-ca` file that cannot be read or holds no certificate stops `serve` before it
/// listens or creates its database, naming the file and not echoing the URL.
#[test]
fn a_bad_notify_ca_file_stops_serve_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("switchyard.db");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let missing = dir.path().join("missing.pem");
    let url = format!("https://bot:{PASSWORD}@127.0.0.1:9/hook");
    for (file, problem) in [(&empty, "no PEM certificate"), (&missing, "missing.pem")] {
        let out = std::process::Command::new(common::binary())
            .arg("serve")
            .arg("--db")
            .arg(&db)
            .args(["--http", "127.0.0.1:0", "--otlp-http", "127.0.0.1:0"])
            .args(["--otlp-grpc", "127.0.0.1:0", "--notify-url", &url])
            .arg("--notify-ca")
            .arg(file)
            .env_remove("SWITCHYARD_LOG")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{problem}: started anyway");
        assert!(out.stdout.is_empty(), "{problem}: listened before refusing");
        assert!(
            stderr.contains("--notify-ca") && stderr.contains(problem),
            "{stderr}"
        );
        assert!(!stderr.contains(PASSWORD), "{stderr}");
        assert!(!db.exists(), "the database was created");
    }
}
