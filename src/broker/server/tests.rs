//! The router over a real SQLite file, without HTTP (spans go nowhere).

use super::*;
use serde_json::json;

fn open(dir: &std::path::Path) -> Broker {
    Broker::open(
        BrokerConfig {
            path: dir.join("t.db-broker"),
            synchronous: "NORMAL".into(),
            max_message_bytes: 1024,
            queue_depth: 64,
            max_waiters: 2,
        },
        traced::Tracer::off(),
    )
    .unwrap()
}

pub(super) fn event(n: i64) -> Event {
    event::parse(
        Some("application/json"),
        &[],
        json!({ "n": n }).to_string().as_bytes(),
        None,
    )
    .unwrap()
}

fn spec(name: &str, topic: &str, timeout_ms: u64, attempts: u32) -> SubscriptionSpec {
    SubscriptionSpec {
        name: name.into(),
        topic: topic.into(),
        visibility_timeout_ms: timeout_ms,
        max_attempts: attempts,
        filter: None,
        push: None,
    }
}

async fn counts(b: &Broker) -> Vec<(String, u64, u64, u64)> {
    b.ask(|reply| Command::Subscriptions { reply })
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.spec.name, s.ready, s.leased, s.dead))
        .collect()
}

#[tokio::test]
async fn declarations_are_idempotent_and_conflicts_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let b = open(dir.path());
    assert!(b.declare_topic("t".into()).await.unwrap().created);
    assert!(!b.declare_topic("t".into()).await.unwrap().created);
    let s = spec("s", "t", 1000, 3);
    assert!(b.declare_subscription(s.clone()).await.unwrap().created);
    assert!(!b.declare_subscription(s).await.unwrap().created);
    let err = b.declare_subscription(spec("s", "t", 1000, 4)).await;
    assert!(matches!(err, Err(BrokerError::Conflict(_))));
    let err = b.declare_subscription(spec("u", "nope", 1000, 4)).await;
    assert!(matches!(err, Err(BrokerError::NotFound(_))));
    assert!(matches!(
        b.declare_topic("s".into()).await,
        Err(BrokerError::Conflict(_))
    ));
    assert!(matches!(
        b.declare_subscription(spec("z", "t", 0, 1)).await,
        Err(BrokerError::BadRequest(_))
    ));
    b.shutdown();
}

#[tokio::test]
async fn concurrent_publishes_are_each_answered_and_stored() {
    let dir = tempfile::tempdir().unwrap();
    let b = open(dir.path());
    b.declare_topic("t".into()).await.unwrap();
    b.declare_subscription(spec("s", "t", 1000, 3))
        .await
        .unwrap();
    let publishes = (0..50).map(|n| b.publish("t".into(), event(n), Caller::default()));
    for p in futures_util::future::join_all(publishes).await {
        assert_eq!(p.unwrap().subscriptions, 1);
    }
    assert_eq!(counts(&b).await, vec![("s".into(), 50, 0, 0)]);
    let err = b.publish("nope".into(), event(0), Caller::default()).await;
    assert!(matches!(err, Err(BrokerError::NotFound(_))));
    b.shutdown();
}

#[tokio::test]
async fn leases_and_attempts_survive_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (b, d) = one_leased(dir.path(), "s", 60_000).await;
    b.shutdown();
    let b = open(dir.path());
    assert_eq!(counts(&b).await, vec![("s".into(), 0, 1, 0)]);
    let settled = b
        .settle(
            "s".into(),
            vec![d.lease_id.clone(), "x".into()],
            Settle::Ack,
            Caller::default(),
        )
        .await
        .unwrap();
    assert_eq!(settled.settled, vec![d.lease_id.clone()]);
    assert_eq!(settled.unknown, vec!["x".to_string()]);
    assert_eq!(counts(&b).await, vec![("s".into(), 0, 0, 0)]);
    b.shutdown();
}

#[tokio::test]
async fn message_bytes_in_flight_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let b = open(dir.path());
    // 64 MiB of room: 63 MiB fits, the next 2 MiB do not until the first permit drops.
    let big = b.admit(63 * 1024 * 1024).unwrap();
    assert!(matches!(
        b.admit(2 * 1024 * 1024),
        Err(BrokerError::TooManyBytes)
    ));
    drop(big);
    assert!(b.admit(2 * 1024 * 1024).is_ok());
    b.shutdown();
}

#[tokio::test]
async fn waiting_pulls_are_bounded_and_answered_empty_when_draining() {
    let dir = tempfile::tempdir().unwrap();
    let b = open(dir.path());
    b.declare_topic("t".into()).await.unwrap();
    b.declare_subscription(spec("s", "t", 60_000, 3))
        .await
        .unwrap();
    let wait = |b: &Broker| {
        let b = b.clone();
        tokio::spawn(async move {
            b.pull("s".into(), 1, Duration::from_secs(30), Caller::default())
                .await
        })
    };
    let (w1, w2) = (wait(&b), wait(&b));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let third = b
        .pull("s".into(), 1, Duration::from_secs(30), Caller::default())
        .await;
    assert!(matches!(third, Err(BrokerError::TooManyWaiters)));
    b.drain();
    assert!(w1.await.unwrap().unwrap().is_empty());
    assert!(w2.await.unwrap().unwrap().is_empty());
    let quick = b
        .pull("s".into(), 1, Duration::from_secs(30), Caller::default())
        .await;
    assert!(quick.unwrap().is_empty(), "no waiting once draining");
    b.shutdown();
}

/// A waiting pull is answered when a message of its subscription comes due again (a lease
/// ran out, while publishes to another topic go on; a lease from before a restart ran out),
/// not at the end of its wait.
#[tokio::test]
async fn a_waiting_pull_wakes_when_a_lease_or_a_delay_runs_out() {
    let dir = tempfile::tempdir().unwrap();
    let (b, _) = one_leased(dir.path(), "s", 2_000).await;
    b.declare_topic("other".into()).await.unwrap();
    b.declare_subscription(spec("o", "other", 60_000, 3))
        .await
        .unwrap();
    let noise = async {
        for n in 0..20 {
            b.publish("other".into(), event(n), Caller::default())
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let (_, ()) = tokio::join!(expect_redelivery(&b, "s", 2, "the lease"), noise);
    b.shutdown();

    // A lease still held at a restart: the new router learns of it from the file.
    let b = open(dir.path());
    expect_redelivery(&b, "s", 3, "a lease from before the restart").await;
    b.shutdown();
}

/// A nack with a delay while no pull waits: the pull that waits afterwards is answered when
/// the delay passes, though the lease it ended had a minute to run.
#[tokio::test]
async fn a_waiting_pull_wakes_when_a_nack_delay_passes() {
    let dir = tempfile::tempdir().unwrap();
    let (b, first) = one_leased(dir.path(), "n", 60_000).await;
    b.settle(
        "n".into(),
        vec![first.lease_id],
        Settle::Nack { delay_ms: 300 },
        Caller::default(),
    )
    .await
    .unwrap();
    expect_redelivery(&b, "n", 2, "the nack's delay").await;
    b.shutdown();
}

/// A broker on `dir` with topic "t" and subscription `sub` (leases of `lease_ms`, 3 attempts),
/// one event published and its first delivery leased.
async fn one_leased(dir: &std::path::Path, sub: &str, lease_ms: u64) -> (Broker, Delivery) {
    let b = open(dir);
    b.declare_topic("t".into()).await.unwrap();
    b.declare_subscription(spec(sub, "t", lease_ms, 3))
        .await
        .unwrap();
    b.publish("t".into(), event(1), Caller::default())
        .await
        .unwrap();
    let mut d = b
        .pull(sub.into(), 5, Duration::ZERO, Caller::default())
        .await
        .unwrap();
    assert_eq!(d.len(), 1);
    (b, d.remove(0))
}

/// A pull on `sub` waiting up to 20 s gets one message at `attempt`, well before the end of
/// the wait (when `what` ran out).
async fn expect_redelivery(b: &Broker, sub: &str, attempt: u32, what: &str) {
    let wait = Duration::from_secs(20);
    let started = std::time::Instant::now();
    let d = b
        .pull(sub.into(), 1, wait, Caller::default())
        .await
        .unwrap();
    assert_eq!(d.len(), 1, "redelivered after {what}");
    assert_eq!(d[0].attempt, attempt, "after {what}");
    assert!(started.elapsed() < wait / 2, "answered when {what} ran out");
}
