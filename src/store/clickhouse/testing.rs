// Also compiled into integration tests (`#[path]` from tests/clickhouse.rs), which use part of it.
#![allow(dead_code)]
//! A real `clickhouse-server` for tests: started on free loopback ports with a config written
//! into a temporary directory, ready once `GET /ping` answers, stopped when the test process
//! ends (or when the handle is dropped). One shared server per test binary ([`shared`]); each
//! check takes a database of its own ([`TestServer::fresh_url`]).

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Where Debian's package installs the server.
pub const SERVER_BINARY: &str = "/usr/sbin/clickhouse-server";

/// How long a server may take to answer its first ping.
const START_DEADLINE: Duration = Duration::from_secs(60);

/// A running server. Its watchdog (a shell reading the test's pipe) stops it and removes its
/// directory when the pipe closes: when this handle is dropped, or when the test process
/// exits without dropping it (a `static`).
pub struct TestServer {
    pub http_port: u16,
    watchdog: Child,
    stdin: Option<ChildStdin>,
    dir: PathBuf,
}

static SHARED: OnceLock<TestServer> = OnceLock::new();
static NEXT_DATABASE: AtomicU64 = AtomicU64::new(0);

/// The test binary's one server, started by the first caller.
pub fn shared() -> &'static TestServer {
    SHARED.get_or_init(|| TestServer::start().expect("start clickhouse-server for the tests"))
}

impl TestServer {
    /// Starts a server on free ports; retries when a port was taken between choosing and binding.
    pub fn start() -> std::io::Result<TestServer> {
        let mut last = None;
        for _ in 0..3 {
            match TestServer::try_start() {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("clickhouse-server did not start")))
    }

    fn try_start() -> std::io::Result<TestServer> {
        let dir = tempfile::Builder::new()
            .prefix("switchyard-clickhouse-")
            .tempdir()?
            .keep();
        let [http_port, tcp_port, interserver_port] = free_ports()?;
        write_config(&dir, http_port, tcp_port, interserver_port)?;
        // The shell is the watchdog: it waits for the pipe to close, then stops the server
        // and removes its files. `exec` is not used so that it outlives the server's start.
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(
                "\"$1\" --config-file=\"$2/config.xml\" >\"$2/server.log\" 2>&1 & pid=$!\n\
                 read _ignored\n\
                 kill $pid 2>/dev/null; wait $pid; rm -rf \"$2\"",
            )
            .arg("sh")
            .arg(SERVER_BINARY)
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let mut server = TestServer {
            http_port,
            stdin: None,
            watchdog,
            dir,
        };
        server.stdin = server.watchdog.stdin.take();
        server.wait_ready()?;
        Ok(server)
    }

    /// Waits until `/ping` answers, the server exits, or the deadline passes.
    fn wait_ready(&mut self) -> std::io::Result<()> {
        let deadline = Instant::now() + START_DEADLINE;
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(2))
            .build();
        let ping = format!("http://127.0.0.1:{}/ping", self.http_port);
        loop {
            if let Ok(r) = agent.get(&ping).call() {
                if r.status() == 200 {
                    return Ok(());
                }
            }
            if let Some(status) = self.watchdog.try_wait()? {
                return Err(std::io::Error::other(format!(
                    "clickhouse-server exited ({status}): {}",
                    self.log_tail()
                )));
            }
            if Instant::now() > deadline {
                return Err(std::io::Error::other(format!(
                    "clickhouse-server did not answer /ping within {START_DEADLINE:?}: {}",
                    self.log_tail()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.join("server.log")) {
            let _ = f.read_to_string(&mut text);
        }
        let start = text.len().saturating_sub(2_000);
        text.get(start..).unwrap_or_default().to_string()
    }

    /// The server's directory (config, data, log), removed when it stops.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The server's URL with a database name never used before in this process.
    pub fn fresh_url(&self) -> String {
        let n = NEXT_DATABASE.fetch_add(1, Ordering::SeqCst);
        format!(
            "http://127.0.0.1:{}/test_{}_{n}",
            self.http_port,
            std::process::id()
        )
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // Closing the pipe tells the watchdog to stop the server.
        drop(self.stdin.take());
        let _ = self.watchdog.wait();
    }
}

/// Three distinct free loopback ports (bound at once, then released for the server).
fn free_ports() -> std::io::Result<[u16; 3]> {
    let listeners = [
        TcpListener::bind("127.0.0.1:0")?,
        TcpListener::bind("127.0.0.1:0")?,
        TcpListener::bind("127.0.0.1:0")?,
    ];
    let mut ports = [0; 3];
    for (p, l) in ports.iter_mut().zip(&listeners) {
        *p = l.local_addr()?.port();
    }
    Ok(ports)
}

fn write_config(dir: &Path, http: u16, tcp: u16, interserver: u16) -> std::io::Result<()> {
    let d = dir.display();
    std::fs::write(
        dir.join("config.xml"),
        format!(
            r#"<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><console>1</console></logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>{http}</http_port>
  <tcp_port>{tcp}</tcp_port>
  <interserver_http_port>{interserver}</interserver_http_port>
  <interserver_http_host>127.0.0.1</interserver_http_host>
  <path>{d}/data/</path>
  <tmp_path>{d}/tmp/</tmp_path>
  <user_files_path>{d}/user_files/</user_files_path>
  <format_schema_path>{d}/format_schemas/</format_schema_path>
  <users_config>users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>67108864</mark_cache_size>
  <uncompressed_cache_size>67108864</uncompressed_cache_size>
  <max_concurrent_queries>64</max_concurrent_queries>
</yandex>
"#
        ),
    )?;
    std::fs::write(
        dir.join("users.xml"),
        r#"<?xml version="1.0"?>
<yandex>
  <profiles><default><max_threads>2</max_threads></default></profiles>
  <users>
    <default>
      <password></password>
      <networks><ip>127.0.0.1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
    <writer>
      <password>s3cret:@/pass</password>
      <networks><ip>127.0.0.1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </writer>
  </users>
  <quotas><default></default></quotas>
</yandex>
"#,
    )
}
