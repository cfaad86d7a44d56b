//! A tansu broker (a Kafka-protocol broker, memory storage) of a test's own, on a free loopback
//! port, run from an empty temporary directory (tansu reads `.env` from its working
//! directory); killed on drop. `tools/kafka/tansu.sh --if-missing` installs the binary.

use super::nats::free_port;
use super::wait_until;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Where `tools/kafka/tansu.sh` links the binary.
pub fn tansu_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/kafka/.venv/bin/tansu")
}

/// A tansu broker of this test's own; dropping it kills the process.
pub struct Tansu {
    child: Child,
    _dir: tempfile::TempDir,
    pub port: u16,
}

impl Tansu {
    pub fn start() -> Tansu {
        Tansu::start_on(free_port())
    }

    /// A broker on this port (another broker's, once that one is gone: a restart).
    pub fn start_on(port: u16) -> Tansu {
        Tansu::start_with(port, port, &[])
    }

    /// A broker listening on `port` that advertises `advertised` (a [`Front`]'s port) in its
    /// metadata, with extra `broker` flags (e.g. `--authentication`).
    pub fn start_with(port: u16, advertised: u16, extra: &[&str]) -> Tansu {
        let bin = tansu_binary();
        assert!(
            bin.exists(),
            "no tansu at {}: run tools/kafka/tansu.sh --if-missing",
            bin.display()
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("tcp://127.0.0.1:{port}");
        let shown = format!("tcp://127.0.0.1:{advertised}");
        let child = Command::new(&bin)
            .current_dir(dir.path())
            .args(["broker", "--listener-url", &url])
            .args(["--advertised-listener-url", &shown])
            .args(["--storage-engine", "memory://tansu/"])
            .args(extra)
            // Its own traces would go wherever the environment points OTLP: nowhere.
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tansu runs");
        let broker = Tansu {
            child,
            _dir: dir,
            port,
        };
        wait_until("tansu answers ApiVersions", Duration::from_secs(30), || {
            api_versions(port)
        });
        broker
    }

    /// The bootstrap address, `127.0.0.1:PORT`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// One ApiVersions v0 request; Ok once the broker answers it with no error.
pub fn api_versions(port: u16) -> Result<(), String> {
    let mut s = TcpStream::connect_timeout(
        &format!("127.0.0.1:{port}").parse().expect("address"),
        Duration::from_secs(1),
    )
    .map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    // size, api key 18, version 0, correlation id 7, client id "t".
    let body: &[u8] = &[0, 18, 0, 0, 0, 0, 0, 7, 0, 1, b't'];
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(body);
    s.write_all(&frame).map_err(|e| e.to_string())?;
    let mut head = [0u8; 10];
    s.read_exact(&mut head).map_err(|e| e.to_string())?;
    let (correlation, error) = (&head[4..8], &head[8..10]);
    if correlation != [0, 0, 0, 7] || error != [0, 0] {
        return Err(format!("unexpected answer {head:?}"));
    }
    Ok(())
}

/// `tools/kafka/sasl_proxy.py` in front of a broker: TLS (OpenSSL, with `tls`'s certificate
/// and key files) and/or SASL/SCRAM (scramp's server side, for one user), then every request
/// forwarded to the broker; killed on drop.
pub struct Front {
    child: Child,
    pub port: u16,
}

/// One SCRAM user a [`Front`] knows.
pub struct ScramUser<'a> {
    pub user: &'a str,
    pub password: &'a str,
    pub mechanism: &'a str,
}

impl Front {
    pub fn start(
        upstream: u16,
        port: u16,
        tls: Option<(&std::path::Path, &std::path::Path)>,
        sasl: Option<ScramUser<'_>>,
    ) -> Front {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/kafka");
        let python = root.join(".venv/bin/python");
        let mut cmd = Command::new(&python);
        cmd.arg(root.join("sasl_proxy.py"))
            .args(["--listen", &port.to_string()])
            .args(["--upstream", &upstream.to_string()]);
        if let Some((cert, key)) = tls {
            cmd.arg("--cert").arg(cert).arg("--key").arg(key);
        }
        if let Some(u) = sasl {
            cmd.args(["--user", u.user, "--password", u.password])
                .args(["--mechanism", u.mechanism]);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("tools/kafka/sasl_proxy.py runs (tools/kafka/tansu.sh installs scramp)");
        // It prints "ready" once it listens.
        let mut line = String::new();
        let out = child.stdout.take().expect("stdout");
        std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line)
            .expect("read the proxy's first line");
        assert_eq!(line.trim(), "ready", "sasl_proxy.py did not start");
        Front { child, port }
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates `topics` (3 partitions each) and commits, outside any generation (a group with no
/// members), offset `offset` on every partition of each `(group, topic)`: over the protocol
/// itself, as a client library would (CreateTopics v2, OffsetCommit v2).
pub fn commit_offsets(port: u16, topics: &[&str], commits: &[(&str, &str)], offset: i64) {
    use switchyard::discover::kafka::wire::{Conn, Writer};
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let mut c = Conn::new(stream, "test", 1 << 20);
    c.set_timeout(Duration::from_secs(10)).expect("timeout");
    let mut w = Writer::default();
    w.len(Some(topics.len()));
    for t in topics {
        w.string(t).i32(3).i16(1).len(Some(0)).len(Some(0));
    }
    w.i32(10_000).bool(false);
    c.call(19, 2, &w).expect("create topics");
    for (group, topic) in commits {
        let mut w = Writer::default();
        w.string(group).i32(-1).string("").i64(-1);
        w.len(Some(1)).string(topic).len(Some(3));
        for p in 0..3 {
            w.i32(p).i64(offset).i16(-1);
        }
        c.call(8, 2, &w).expect("offset commit");
    }
}
