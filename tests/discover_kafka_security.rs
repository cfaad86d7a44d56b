//! Kafka discovery over TLS and SASL (`ssl://`, `sasl_plaintext://`, `sasl_ssl://`): against
//! tansu's own SCRAM server (tansu 0.6.0 with `--authentication`: it runs the whole exchange,
//! but on memory storage no user can be created, so it can only refuse), and through
//! tools/kafka/sasl_proxy.py in front of tansu (TLS by OpenSSL, SCRAM by scramp's server side),
//! where the credentials are accepted and the cluster is discovered. The password never shows:
//! not in errors, `/brokers`, the API or the server's log.

mod common;

use std::path::Path;
use std::time::Duration;

use common::kafka::{commit_offsets, Front, ScramUser, Tansu};
use common::nats::free_port;
use common::{wait_until, TestEnv};
use switchyard::discover::kafka::{KafkaSource, Limits};
use switchyard::discover::{DiscoverError, Source};

const PASSWORD: &str = "Kf-pw-7Qx2-only-here";
const WRONG: &str = "Kf-wrong-3Zr8-only-here";

fn quick() -> Limits {
    Limits {
        timeout: Duration::from_secs(3),
        poll_budget: Duration::from_secs(10),
        ..Limits::default()
    }
}

/// A tansu whose metadata names a front on another port, with a topic and a group in it
/// (written to tansu directly), and the front.
fn cluster(tls: Option<(&Path, &Path)>, sasl: Option<ScramUser<'_>>) -> (Tansu, Front) {
    let front_port = free_port();
    let broker = Tansu::start_with(free_port(), front_port, &[]);
    commit_offsets(broker.port, &["orders"], &[("billing", "orders")], 0);
    let front = Front::start(broker.port, front_port, tls, sasl);
    (broker, front)
}

fn refused(result: Result<switchyard::model::BrokerSnapshot, DiscoverError>) -> String {
    match result {
        Err(DiscoverError::Refused(e)) => {
            assert!(!e.contains(PASSWORD) && !e.contains(WRONG), "{e}");
            e
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn scram_sha_256_and_512_credentials_are_proved_and_the_cluster_discovered() {
    for mechanism in ["SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let user = ScramUser {
            user: "watcher",
            password: PASSWORD,
            mechanism,
        };
        let (_broker, front) = cluster(None, Some(user));
        let url = |user: &str, pw: &str, m: &str| {
            format!(
                "sasl_plaintext://{user}:{pw}@127.0.0.1:{}?mechanism={m}",
                front.port
            )
        };
        let mut source = KafkaSource::new(&url("watcher", PASSWORD, mechanism), quick()).unwrap();
        assert_eq!(
            source.label(),
            format!("kafka sasl_plaintext://127.0.0.1:{}", front.port)
        );
        let snap = source.poll().expect("a poll through SCRAM");
        assert!(
            snap.destinations.iter().any(|d| d.name == "orders"),
            "{mechanism}: {snap:?}"
        );
        // Groups and their committed offsets too (ListGroups, DescribeGroups, OffsetFetch).
        assert!(
            snap.flows
                .iter()
                .any(|f| f.from == "orders" && f.to == "billing"),
            "{snap:?}"
        );
        // A second poll reuses the authenticated connections.
        source.poll().expect("a second poll");

        let e = refused(
            KafkaSource::new(&url("watcher", WRONG, mechanism), quick())
                .unwrap()
                .poll(),
        );
        assert!(e.contains("SaslAuthenticate error 58"), "{e}");
        refused(
            KafkaSource::new(&url("nobody", PASSWORD, mechanism), quick())
                .unwrap()
                .poll(),
        );
        let other = if mechanism == "SCRAM-SHA-256" {
            "SCRAM-SHA-512"
        } else {
            "SCRAM-SHA-256"
        };
        let e = refused(
            KafkaSource::new(&url("watcher", PASSWORD, other), quick())
                .unwrap()
                .poll(),
        );
        assert!(e.contains(&format!("the broker takes {mechanism}")), "{e}");
        // No credentials at all: the front closes the connection at the first request.
        let plain = format!("127.0.0.1:{}", front.port);
        match KafkaSource::new(&plain, quick()).unwrap().poll() {
            Err(DiscoverError::Unreachable(_) | DiscoverError::BadAnswer(_)) => {}
            other => panic!("expected a failed poll, got {other:?}"),
        }
    }
}

/// tansu's own SASL: the SCRAM exchange runs to its end and the broker refuses the unknown
/// user; PLAIN it does not offer (it closes the connection).
#[test]
fn tansus_own_scram_server_refuses_an_unknown_user() {
    let port = free_port();
    let _broker = Tansu::start_with(port, port, &["--authentication"]);
    for mechanism in ["SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let url =
            format!("sasl_plaintext://watcher:{PASSWORD}@127.0.0.1:{port}?mechanism={mechanism}");
        let e = refused(KafkaSource::new(&url, quick()).unwrap().poll());
        assert!(e.contains(mechanism), "{e}");
    }
    let url = format!("sasl_plaintext://watcher:{PASSWORD}@127.0.0.1:{port}");
    match KafkaSource::new(&url, quick()).unwrap().poll() {
        Err(DiscoverError::Unreachable(e)) => assert!(!e.contains(PASSWORD), "{e}"),
        other => panic!("expected the connection closed, got {other:?}"),
    }
}

/// A CA's certificate and a broker's certificate and key it signed, as PEM files, in a
/// directory whose name holds an '@' (written `%40` in a `?ca=`).
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    const SUB: &'static str = "certs@prod";

    fn write(names: &[&str]) -> Files {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(Self::SUB)).unwrap();
        let files = Files { dir };
        let id = common::tls::identity(names);
        std::fs::write(files.path("ca.pem"), id.ca_pem).unwrap();
        std::fs::write(files.path("cert.pem"), id.cert.pem()).unwrap();
        std::fs::write(files.path("key.pem"), id.key.serialize_pem()).unwrap();
        files
    }
    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(Self::SUB).join(name)
    }
    /// The path as a `?ca=` value: percent-encoded '@' (a raw one ends the credentials).
    fn in_url(&self, name: &str) -> String {
        self.path(name).display().to_string().replace('@', "%40")
    }
}

#[test]
fn tls_with_a_private_ca_discovers_and_an_untrusted_certificate_is_refused() {
    let files = Files::write(&["127.0.0.1"]);
    let (cert, key) = (files.path("cert.pem"), files.path("key.pem"));
    let (_broker, front) = cluster(Some((&cert, &key)), None);
    let ca = files.in_url("ca.pem");
    assert!(ca.contains("%40"), "{ca}");
    let url = format!("ssl://127.0.0.1:{}?ca={ca}", front.port);
    let mut source = KafkaSource::new(&url, quick()).expect("source");
    let snap = source.poll().expect("a poll over TLS");
    assert!(
        snap.destinations.iter().any(|d| d.name == "orders"),
        "{snap:?}"
    );
    // Without the CA the certificate is not trusted.
    let url = format!("ssl://127.0.0.1:{}", front.port);
    match KafkaSource::new(&url, quick()).unwrap().poll() {
        Err(DiscoverError::Unreachable(e)) => {
            assert!(e.contains("tls") && e.contains("UnknownIssuer"), "{e}")
        }
        other => panic!("expected a TLS failure, got {other:?}"),
    }
    // Plain TCP to a TLS listener: an error, not a hang or a panic.
    let plain = format!("127.0.0.1:{}", front.port);
    assert!(KafkaSource::new(&plain, quick()).unwrap().poll().is_err());
    // The same path with a raw '@' is refused with how to write it.
    let raw = format!(
        "ssl://127.0.0.1:{}?ca={}",
        front.port,
        files.path("ca.pem").display()
    );
    let e = KafkaSource::new(&raw, quick()).err().expect("refused");
    assert!(e.contains("%40"), "{e}");
    // A CA file that is not there stops the source before it starts.
    let missing = format!("ssl://127.0.0.1:{}?ca=/nonexistent/ca.pem", front.port);
    let e = KafkaSource::new(&missing, quick()).err().expect("refused");
    assert!(e.contains("/nonexistent/ca.pem"), "{e}");
}

/// `serve --discover kafka=sasl_ssl://...`: one value with the right password, one with a
/// wrong one; the first shows the cluster, the second its refusal, and neither password
/// shows anywhere a user can read.
#[test]
fn sasl_ssl_discovery_in_serve_never_shows_the_password() {
    let files = Files::write(&["127.0.0.1", "localhost"]);
    let (cert, key) = (files.path("cert.pem"), files.path("key.pem"));
    let user = ScramUser {
        user: "watcher",
        password: PASSWORD,
        mechanism: "SCRAM-SHA-512",
    };
    let (_broker, front) = cluster(Some((&cert, &key)), Some(user));
    let ca = files.in_url("ca.pem");
    let value = |pw: &str| {
        format!(
            "kafka=sasl_ssl://watcher:{pw}@127.0.0.1:{}?mechanism=SCRAM-SHA-512&ca={ca}",
            front.port,
        )
    };
    let (good, bad) = (value(PASSWORD), value(WRONG));
    let env = TestEnv::with_args(&[
        "--discover",
        &good,
        "--discover",
        &bad,
        "--discover-interval",
        "1s",
    ]);
    let label = format!("kafka sasl_ssl://127.0.0.1:{}", front.port);
    let brokers = wait_until("both sources polled", Duration::from_secs(60), || {
        let b = env.api().get_json("/api/brokers")["brokers"].clone();
        let ok = b[0]["state"] == "ok" && b[0]["destinations"].as_u64() >= Some(1);
        let failed = b[1]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("refused"));
        if ok && failed {
            Ok(b)
        } else {
            Err(format!("not yet: {b}"))
        }
    });
    assert_eq!(brokers[0]["broker"], label.as_str(), "{brokers}");
    assert_eq!(brokers[1]["broker"], label.as_str(), "{brokers}");
    let api = env.api();
    let page = api.get("/brokers").text();
    assert!(page.contains(&label), "{page}");
    let shown = [
        page,
        api.get("/api/brokers").text(),
        api.get("/api/topology").text(),
        api.get("/api/topology.dot").text(),
        env.log(1),
    ]
    .join("\n");
    assert!(!shown.contains(PASSWORD), "the password shows somewhere");
    assert!(!shown.contains(WRONG), "the wrong password shows somewhere");
}
