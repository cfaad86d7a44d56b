//! A `nats-server` of a test's own (Debian's binary): JetStream on a temporary directory,
//! monitoring on its own port, both on free loopback ports; killed on drop.

use super::wait_until;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const NATS_SERVER: &str = "/usr/sbin/nats-server";

pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// A `nats-server` of this test's own; dropping it kills the process.
pub struct NatsServer {
    child: Child,
    _dir: tempfile::TempDir,
    pub port: u16,
    pub monitor: u16,
}

impl NatsServer {
    pub fn start(extra: &[&str]) -> NatsServer {
        NatsServer::start_with(true, extra)
    }

    pub fn start_with(jetstream: bool, extra: &[&str]) -> NatsServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let (port, monitor) = (free_port(), free_port());
        let store = dir.path().to_string_lossy().to_string();
        let (p, m) = (port.to_string(), monitor.to_string());
        let mut args = vec!["-p", &p, "-m", &m, "-a", "127.0.0.1"];
        if jetstream {
            args.extend_from_slice(&["-js", "-sd", &store]);
        }
        args.extend_from_slice(extra);
        let child = Command::new(NATS_SERVER)
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server runs");
        let server = NatsServer {
            child,
            _dir: dir,
            port,
            monitor,
        };
        let health = match jetstream {
            true => format!("http://127.0.0.1:{monitor}/healthz?js-enabled-only=true"),
            false => format!("http://127.0.0.1:{monitor}/healthz"),
        };
        wait_until("nats-server answers", Duration::from_secs(20), || {
            ureq::get(&health)
                .timeout(Duration::from_secs(2))
                .call()
                .map(|_| ())
                .map_err(|e| e.to_string())
        });
        server
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn monitor_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.monitor)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
