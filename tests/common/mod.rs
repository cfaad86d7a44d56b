//! Shared test harness: a real `switchyard serve` on port 0 with a temporary SQLite file,
//! HTTP helpers, fixtures, synthetic trace builders and topology assertions.
//!
//! Every test file declares `mod common;` and uses only the public contract of the binary:
//! its flags, its one stdout line, and its HTTP and gRPC endpoints.
#![allow(dead_code)]

pub mod browser;
pub mod builder;
pub mod expected;
pub mod fixtures;
pub mod http;
pub mod kafka;
pub mod nats;
pub mod tls;
pub mod topo;
pub mod two_windows;
pub mod ui;

#[allow(unused_imports)]
pub use http::{Events, Http, RawRequest, Reply};

use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Longest wait for the server's `listening` line.
const START_DEADLINE: Duration = Duration::from_secs(30);
/// Longest wait for the process to exit after SIGTERM.
const STOP_DEADLINE: Duration = Duration::from_secs(30);

/// Flags every test server gets. The fixtures were recorded at a fixed date, so retention is
/// set far beyond any test's lifetime: the suite must keep passing in later years.
const BASE_FLAGS: &[&str] = &["--retention", "36500d"];

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_switchyard")
}

/// One running server process and the addresses it announced.
pub struct Server {
    child: Child,
    pub http: SocketAddr,
    pub otlp_http: SocketAddr,
    pub otlp_grpc: SocketAddr,
    pub announced: Value,
}

/// A server on a temporary database. Dropping it kills the process (and prints its log when the
/// test failed).
pub struct TestEnv {
    dir: tempfile::TempDir,
    pub db: PathBuf,
    extra: Vec<String>,
    /// Environment variables set on the server process (e.g. `SWITCHYARD_DISCOVER`).
    envs: Vec<(String, String)>,
    /// The server's executable: this build's, or another's to compare with.
    program: PathBuf,
    server: Option<Server>,
    starts: usize,
    /// The one client of every request to the server; re-aimed at each start's addresses.
    http: Http,
}

impl TestEnv {
    pub fn start() -> TestEnv {
        TestEnv::with_args(&[])
    }

    /// Starts a server with extra `serve` flags (e.g. `["--max-in-flight", "1"]`).
    pub fn with_args(extra: &[&str]) -> TestEnv {
        TestEnv::with_args_and_env(extra, &[])
    }

    /// Starts a server with extra `serve` flags and environment variables.
    pub fn with_args_and_env(extra: &[&str], envs: &[(&str, &str)]) -> TestEnv {
        TestEnv::launched(Path::new(binary()), extra, envs)
    }

    /// Starts another build's server (e.g. a copy of main's, to compare a page with).
    pub fn with_program(program: &Path) -> TestEnv {
        TestEnv::launched(program, &[], &[])
    }

    fn launched(program: &Path, extra: &[&str], envs: &[(&str, &str)]) -> TestEnv {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("switchyard.db");
        let mut env = TestEnv {
            dir,
            db,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            envs: envs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            program: program.to_path_buf(),
            server: None,
            starts: 0,
            http: Http::new("http://127.0.0.1:0"),
        };
        env.launch();
        env
    }

    /// A server holding one recorded set (e.g. [`fixtures::PYTHON_PIKA`]), posted the way its
    /// SDK sent it; with the recording's spans and the window that covers them.
    pub fn with_recording(set: &str) -> (TestEnv, Vec<fixtures::SpanInfo>, fixtures::Window) {
        let env = TestEnv::start();
        let files = fixtures::load(set);
        env.post_fixtures(&files);
        let spans: Vec<fixtures::SpanInfo> = files.into_iter().flat_map(|f| f.spans).collect();
        let window = fixtures::Window::of_spans(&spans);
        (env, spans, window)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn log_path(&self, n: usize) -> PathBuf {
        self.dir.path().join(format!("server-{n}.log"))
    }

    fn launch(&mut self) {
        assert!(self.server.is_none(), "a server is already running");
        self.starts += 1;
        let log = std::fs::File::create(self.log_path(self.starts)).expect("log file");
        let mut child = Command::new(&self.program)
            .arg("serve")
            .arg("--db")
            .arg(&self.db)
            .args(["--http", "127.0.0.1:0", "--otlp-http", "127.0.0.1:0"])
            .args(["--otlp-grpc", "127.0.0.1:0"])
            // A test's own --retention replaces the base one (a flag may be given once).
            .args(if self.extra.iter().any(|a| a == "--retention") {
                &[][..]
            } else {
                BASE_FLAGS
            })
            .args(&self.extra)
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .env_remove("SWITCHYARD_LOG")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn switchyard");
        let line = first_line(child.stdout.take().expect("stdout"));
        let Some(line) = line else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "switchyard printed no listening line within {START_DEADLINE:?}; log:\n{}",
                self.log(self.starts)
            );
        };
        let announced: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line:?}"));
        assert_eq!(announced["event"], "listening", "stdout line: {line}");
        assert_eq!(
            announced["db"].as_str(),
            Some(self.db.to_str().unwrap()),
            "db in {line}"
        );
        let addr = |key: &str| -> SocketAddr {
            announced[key]
                .as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("{key} is not an address in {line}"))
        };
        self.server = Some(Server {
            http: addr("http"),
            otlp_http: addr("otlp_http"),
            otlp_grpc: addr("otlp_grpc"),
            announced: announced.clone(),
            child,
        });
    }

    pub fn server(&self) -> &Server {
        self.server.as_ref().expect("the server is not running")
    }

    pub fn pid(&self) -> u32 {
        self.server().child.id()
    }

    /// The log (stderr) of the `n`-th start, 1-based.
    pub fn log(&self, n: usize) -> String {
        std::fs::read_to_string(self.log_path(n)).unwrap_or_default()
    }

    /// The client for the web server (API, pages, broker).
    pub fn api(&self) -> Http {
        self.http.at(format!("http://{}", self.server().http))
    }

    /// The client for the OTLP/HTTP receiver.
    pub fn otlp(&self) -> Http {
        self.http.at(self.otlp_endpoint())
    }

    /// The embedded broker's own client (the product's), speaking as `service`.
    pub fn broker(&self, service: &str) -> switchyard::broker::client::Client {
        switchyard::broker::client::Client::new(&self.server().http.to_string())
            .with_service(service)
    }

    pub fn api_url(&self, path_and_query: &str) -> String {
        self.api().url(path_and_query)
    }

    pub fn otlp_url(&self, path: &str) -> String {
        self.otlp().url(path)
    }

    /// Base URL of the OTLP/HTTP receiver, as SDK exporters want it.
    pub fn otlp_endpoint(&self) -> String {
        format!("http://{}", self.server().otlp_http)
    }

    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.server().otlp_grpc)
    }

    /// A current-thread runtime and a channel connected to the OTLP/gRPC receiver (use the
    /// channel inside that runtime's `block_on`).
    pub fn grpc_channel(&self) -> (tokio::runtime::Runtime, tonic::transport::Channel) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let url = self.grpc_url();
        let channel = rt.block_on(async move {
            tonic::transport::Endpoint::from_shared(url)
                .expect("endpoint")
                .connect_timeout(Duration::from_secs(5))
                .timeout(Duration::from_secs(30))
                .connect()
                .await
                .expect("connect to the OTLP/gRPC receiver")
        });
        (rt, channel)
    }

    /// `POST` to the OTLP/HTTP receiver with a fixed length body.
    pub fn post_otlp(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        self.otlp().post(path, headers, body)
    }

    /// `POST /v1/traces` with `Content-Type: application/x-protobuf`.
    pub fn post_protobuf(&self, body: &[u8]) -> Reply {
        self.post_otlp(
            "/v1/traces",
            &[("Content-Type", "application/x-protobuf")],
            body,
        )
    }

    /// `POST /v1/traces` with a chunked body (no Content-Length).
    pub fn post_otlp_chunked(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        self.otlp().post_chunked(path, headers, body)
    }

    /// Posts one recorded request the way its SDK sent it (content type, encoding, chunking).
    pub fn post_fixture(&self, f: &fixtures::Fixture) -> Reply {
        let mut headers = vec![("Content-Type", f.content_type.as_str())];
        if !f.content_encoding.is_empty() {
            headers.push(("Content-Encoding", f.content_encoding.as_str()));
        }
        if f.chunked {
            self.post_otlp_chunked("/v1/traces", &headers, &f.body)
        } else {
            self.post_otlp("/v1/traces", &headers, &f.body)
        }
    }

    /// Posts fixtures in the given order; each must be answered 200.
    pub fn post_fixtures<'a>(&self, files: impl IntoIterator<Item = &'a fixtures::Fixture>) {
        for f in files {
            let reply = self.post_fixture(f);
            assert_eq!(reply.status, 200, "{}: {}", f.name(), reply.text());
        }
    }

    pub fn get(&self, path_and_query: &str) -> Reply {
        self.api().get(path_and_query)
    }

    /// `GET` that must answer 200 with JSON.
    pub fn get_json(&self, path_and_query: &str) -> Value {
        self.api().get_json(path_and_query)
    }

    pub fn topology(&self, window: &fixtures::Window) -> Value {
        self.get_json(&format!("/api/topology?{}", window.query()))
    }

    pub fn dot(&self, window: &fixtures::Window) -> String {
        let reply = self.get(&format!("/api/topology.dot?{}", window.query()));
        assert_eq!(reply.status, 200, "{}", reply.text());
        reply.text()
    }

    pub fn spans_in_store(&self) -> i64 {
        self.get_json("/api/stats")["spans_in_store"]
            .as_i64()
            .expect("spans_in_store is an integer")
    }

    /// The spans of one trace (empty when the API answers 404).
    pub fn trace_spans(&self, trace_id_hex: &str) -> Vec<Value> {
        let reply = self.get(&format!("/api/traces/{trace_id_hex}"));
        match reply.status {
            404 => Vec::new(),
            200 => reply.json()["spans"]
                .as_array()
                .cloned()
                .expect("spans array"),
            s => panic!("GET /api/traces/{trace_id_hex}: {s} {}", reply.text()),
        }
    }

    /// Starts a chunked `POST /v1/traces` of `first` and keeps it open until it owns the only
    /// upload slot (the server runs with `--max-uploads 1`). Proof: an empty request, valid
    /// and storing nothing, is then answered 429. Returns the held request and that 429.
    pub fn hold_the_only_slot(
        &self,
        headers: &[(&str, &str)],
        first: &[u8],
    ) -> (RawRequest, Reply) {
        wait_for(
            "a held upload owning the only slot",
            Duration::from_secs(30),
            || {
                let mut held = RawRequest::start(self.server().otlp_http, "/v1/traces", headers);
                held.chunk(first);
                for _ in 0..40 {
                    let probe = self.post_protobuf(&[]);
                    match probe.status {
                        // A probe may win the slot before the held request's head is read; then
                        // the held request is the one refused, and a new one is started.
                        429 if !held.answered_early() => return Some((held, probe)),
                        429 | 200 if held.answered_early() => return None,
                        // Not yet held: the back-off of this condition wait, then probe again.
                        200 => std::thread::sleep(Duration::from_millis(25)),
                        s => panic!(
                            "unexpected answer to an empty request: {s} {}",
                            probe.text()
                        ),
                    }
                }
                None
            },
        )
    }

    /// Sends a request the server holds open (a long-poll) to the web server, and returns once
    /// the server has read all of it: what the test does next happens while it waits.
    pub fn waiting_request(&self, method: &str, path: &str) -> RawRequest {
        let request = RawRequest::send(self.server().http, method, path, &[], b"");
        wait_for(
            &format!("the server to read {method} {path}"),
            Duration::from_secs(20),
            || request.read_by_server().then_some(()),
        );
        request
    }

    /// Sends SIGTERM and waits (bounded) for the process to exit.
    pub fn sigterm(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM)
    }

    pub fn signal(&mut self, signal: i32) -> ExitStatus {
        let mut server = self.server.take().expect("the server is not running");
        let rc = unsafe { libc::kill(server.child.id() as i32, signal) };
        assert_eq!(rc, 0, "kill({signal}) failed");
        wait_with_deadline(&mut server.child, STOP_DEADLINE).unwrap_or_else(|| {
            let _ = server.child.kill();
            let _ = server.child.wait();
            panic!(
                "switchyard did not exit within {STOP_DEADLINE:?} after signal {signal}; log:\n{}",
                self.log(self.starts)
            )
        })
    }

    /// Sends SIGTERM without waiting for the exit; [`TestEnv::wait_exit`] collects it.
    pub fn send_sigterm(&self) {
        let rc = unsafe { libc::kill(self.pid() as i32, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill(SIGTERM) failed");
    }

    pub fn wait_exit(&mut self) -> ExitStatus {
        let mut server = self.server.take().expect("the server is not running");
        wait_with_deadline(&mut server.child, STOP_DEADLINE).unwrap_or_else(|| {
            let _ = server.child.kill();
            let _ = server.child.wait();
            panic!("switchyard did not exit within {STOP_DEADLINE:?}")
        })
    }

    /// kill -9: no chance to clean up.
    pub fn kill9(&mut self) {
        let mut server = self.server.take().expect("the server is not running");
        server.child.kill().expect("SIGKILL");
        server.child.wait().expect("wait after SIGKILL");
    }

    /// Starts the server again on the same database with the same flags.
    pub fn start_again(&mut self) {
        // A fresh pool: the old one's connections went with the old process.
        self.http = Http::new("http://127.0.0.1:0");
        self.launch();
    }

    /// A clean stop (SIGTERM, exit code 0) and a start on the same database.
    pub fn restart(&mut self) {
        let status = self.sigterm();
        assert_eq!(
            status.code(),
            Some(0),
            "exit status after SIGTERM: {status}"
        );
        self.start_again();
    }

    /// Runs `switchyard export --db <this db> ARGS`; returns (exit status, stdout, stderr).
    pub fn export_cli(&self, args: &[&str]) -> (ExitStatus, String, String) {
        let out = Command::new(binary())
            .arg("export")
            .arg("--db")
            .arg(&self.db)
            .args(args)
            .env_remove("SWITCHYARD_LOG")
            .output()
            .expect("run switchyard export");
        (
            out.status,
            String::from_utf8(out.stdout).expect("export prints UTF-8"),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = server.child.kill();
            let _ = server.child.wait();
        }
        if std::thread::panicking() {
            for n in 1..=self.starts {
                let log = self.log(n);
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!(
                    "--- switchyard log, start {n} (last {} lines) ---",
                    tail.len()
                );
                for line in tail.iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
    }
}

/// Reads the first stdout line within the start deadline, then keeps draining stdout so the
/// server never writes to a closed pipe.
fn first_line(stdout: impl Read + Send + 'static) -> Option<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let ok = reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false);
        let _ = tx.send(ok.then(|| line.trim_end().to_string()));
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    });
    rx.recv_timeout(START_DEADLINE).ok().flatten()
}

pub fn wait_with_deadline(child: &mut Child, deadline: Duration) -> Option<ExitStatus> {
    let until = Instant::now() + deadline;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() >= until {
            return None;
        }
        // The back-off between two looks of this condition wait.
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A call to the machine's RabbitMQ management API as its guest user (`PUT`, `DELETE`...).
pub fn rabbit_management(
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> Result<(), String> {
    let request = ureq::request(method, &format!("http://127.0.0.1:15672/api/{path}"))
        .timeout(Duration::from_secs(10))
        .set("Authorization", "Basic Z3Vlc3Q6Z3Vlc3Q=");
    let answer = match body {
        Some(b) => request
            .set("Content-Type", "application/json")
            .send_string(&b.to_string()),
        None => request.call(),
    };
    answer.map(|_| ()).map_err(|e| e.to_string())
}

/// `serve` flags that discover the broker `spec` (`rabbitmq=URL`, `nats=URL`, ...), polled
/// every second.
pub fn discover_flags(spec: &str) -> Vec<String> {
    ["--discover", spec, "--discover-interval", "1s"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// A server started with `flags`.
pub fn with_flags(flags: &[String]) -> TestEnv {
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    TestEnv::with_args(&flags)
}

/// Polls `check` until it returns `Some`, or panics with `what` after `deadline`.
pub fn wait_for<T>(what: &str, deadline: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    wait_until(what, deadline, || check().ok_or("not yet"))
}

/// Polls `check` until it returns `Ok`, or panics after `deadline` with `what` and the last
/// `Err` (what was still missing).
pub fn wait_until<T, E: std::fmt::Debug>(
    what: &str,
    deadline: Duration,
    mut check: impl FnMut() -> Result<T, E>,
) -> T {
    let until = Instant::now() + deadline;
    loop {
        let missing = match check() {
            Ok(v) => return v,
            Err(missing) => missing,
        };
        assert!(
            Instant::now() < until,
            "timed out after {deadline:?} waiting for {what}; last look: {missing:?}"
        );
        // The back-off between two looks of this condition wait.
        std::thread::sleep(Duration::from_millis(50));
    }
}
