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
    /// The loopback address it listens on (`127.0.0.1`; a cluster's second server `127.0.0.2`).
    pub host: &'static str,
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
        let [http, tcp, interserver] = free_ports(&["127.0.0.1"])?;
        TestServer::try_start_on("127.0.0.1", [http, tcp, interserver], "")
    }

    /// Starts a server listening on `host` with these (HTTP, TCP, interserver) ports and
    /// this `remote_servers` element (empty: none).
    fn try_start_on(
        host: &'static str,
        [http_port, tcp_port, interserver_port]: [u16; 3],
        remote_servers: &str,
    ) -> std::io::Result<TestServer> {
        let dir = tempfile::Builder::new()
            .prefix("switchyard-clickhouse-")
            .tempdir()?
            .keep();
        let ports = Ports {
            host,
            http: http_port,
            tcp: tcp_port,
            interserver: interserver_port,
        };
        write_config(&dir, &ports, remote_servers)?;
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
            host,
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
        let ping = format!("http://{}:{}/ping", self.host, self.http_port);
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
            "http://{}:{}/test_{}_{n}",
            self.host,
            self.http_port,
            std::process::id()
        )
    }

    /// The same URL (database) on this server.
    pub fn url_of(&self, url: &str) -> String {
        let database = url.rsplit('/').next().unwrap_or_default();
        format!("http://{}:{}/{database}", self.host, self.http_port)
    }

    /// Sends one SQL statement to this server in `database`; answers its text.
    pub fn sql(&self, database: &str, statement: &str) -> Result<String, String> {
        let url = format!("http://{}:{}/", self.host, self.http_port);
        ureq::post(&url)
            .query("database", database)
            .send_string(statement)
            .map_err(|e| format!("{statement}: {e}"))
            .and_then(|r| r.into_string().map_err(|e| e.to_string()))
    }
}

/// The cluster of [`TestCluster`] in its servers' `remote_servers`.
pub const CLUSTER: &str = "switchyard_test";

/// A two-shard cluster of two servers, one shard each: one on 127.0.0.1, one on 127.0.0.2,
/// on the same HTTP port (Switchyard reaches every server of a cluster on its URL's port)
/// and TCP ports of their own; both list both in `remote_servers` as [`CLUSTER`].
pub struct TestCluster {
    pub shards: Vec<TestServer>,
}

static SHARED_CLUSTER: OnceLock<TestCluster> = OnceLock::new();

/// The test binary's one cluster, started by the first caller.
pub fn shared_cluster() -> &'static TestCluster {
    SHARED_CLUSTER
        .get_or_init(|| TestCluster::start().expect("start a two-shard clickhouse cluster"))
}

impl TestCluster {
    pub fn start() -> std::io::Result<TestCluster> {
        let mut last = None;
        for _ in 0..3 {
            match TestCluster::try_start() {
                Ok(c) => return Ok(c),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("the cluster did not start")))
    }

    fn try_start() -> std::io::Result<TestCluster> {
        const HOSTS: [&str; 2] = ["127.0.0.1", "127.0.0.2"];
        // Free on both addresses: the HTTP port is shared, the others each server's own.
        let [http, tcp_a, tcp_b, inter_a, inter_b] = free_ports(&HOSTS)?;
        let tcp = [tcp_a, tcp_b];
        let inter = [inter_a, inter_b];
        let shards: String = HOSTS
            .iter()
            .zip(tcp)
            .map(|(h, p)| {
                format!("<shard><replica><host>{h}</host><port>{p}</port></replica></shard>")
            })
            .collect();
        let remote = format!("<remote_servers><{CLUSTER}>{shards}</{CLUSTER}></remote_servers>");
        let mut servers = Vec::new();
        for (i, host) in HOSTS.into_iter().enumerate() {
            servers.push(TestServer::try_start_on(
                host,
                [http, tcp[i], inter[i]],
                &remote,
            )?);
        }
        Ok(TestCluster { shards: servers })
    }

    /// A URL with a database never used before, on the first shard's server.
    pub fn fresh_url(&self) -> String {
        self.shards[0].fresh_url()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // Closing the pipe tells the watchdog to stop the server.
        drop(self.stdin.take());
        let _ = self.watchdog.wait();
    }
}

/// `N` distinct ports free on every one of `hosts` (all bound at once, then released for the
/// servers).
fn free_ports<const N: usize>(hosts: &[&str]) -> std::io::Result<[u16; N]> {
    let mut listeners = Vec::new();
    let mut ports = [0; N];
    let mut found = 0;
    for _ in 0..N * 20 {
        if found == N {
            break;
        }
        let first = TcpListener::bind((hosts[0], 0))?;
        let port = first.local_addr()?.port();
        let others: std::io::Result<Vec<TcpListener>> = hosts[1..]
            .iter()
            .map(|h| TcpListener::bind((*h, port)))
            .collect();
        if let Ok(others) = others {
            ports[found] = port;
            found += 1;
            listeners.push(first);
            listeners.extend(others);
        }
    }
    if found < N {
        return Err(std::io::Error::other("no port free on every test address"));
    }
    Ok(ports)
}

/// Where one server listens.
struct Ports {
    host: &'static str,
    http: u16,
    tcp: u16,
    interserver: u16,
}

fn write_config(dir: &Path, ports: &Ports, remote_servers: &str) -> std::io::Result<()> {
    let d = dir.display();
    let Ports {
        host,
        http,
        tcp,
        interserver,
    } = ports;
    std::fs::write(
        dir.join("config.xml"),
        format!(
            r#"<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><console>1</console></logger>
  <listen_host>{host}</listen_host>
  <http_port>{http}</http_port>
  <tcp_port>{tcp}</tcp_port>
  <interserver_http_port>{interserver}</interserver_http_port>
  <interserver_http_host>{host}</interserver_http_host>
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
  {remote_servers}
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
      <networks><ip>127.0.0.0/8</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
    <writer>
      <password>s3cret:@/pass</password>
      <networks><ip>127.0.0.0/8</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </writer>
  </users>
  <quotas><default></default></quotas>
</yandex>
"#,
    )
}
