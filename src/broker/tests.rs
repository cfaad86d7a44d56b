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

fn event(n: i64) -> Event {
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

/// A broker with topic `t` and its subscription `s` (3 attempts).
async fn with_subscription(dir: &std::path::Path, visibility_timeout_ms: u64) -> Broker {
    let b = open(dir);
    b.declare_topic("t".into()).await.unwrap();
    b.declare_subscription(spec("s", "t", visibility_timeout_ms, 3))
        .await
        .unwrap();
    b
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
    let b = with_subscription(dir.path(), 1000).await;
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
    let b = with_subscription(dir.path(), 60_000).await;
    b.publish("t".into(), event(1), Caller::default())
        .await
        .unwrap();
    let d = b
        .pull("s".into(), 5, Duration::ZERO, Caller::default())
        .await
        .unwrap();
    assert_eq!(d.len(), 1);
    b.shutdown();
    let b = open(dir.path());
    assert_eq!(counts(&b).await, vec![("s".into(), 0, 1, 0)]);
    let settled = b
        .settle(
            "s".into(),
            vec![d[0].lease_id.clone(), "x".into()],
            Settle::Ack,
            Caller::default(),
        )
        .await
        .unwrap();
    assert_eq!(settled.settled, vec![d[0].lease_id.clone()]);
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
    let b = with_subscription(dir.path(), 60_000).await;
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

/// The `n` of each delivery's event.
fn numbers(batch: &[Delivery]) -> Vec<i64> {
    batch
        .iter()
        .map(|d| d.event["data"]["n"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn a_streaming_consumer_holds_one_batch_at_a_time_and_is_served_again_once_ready() {
    use consumer::Next;
    let dir = tempfile::tempdir().unwrap();
    let b = with_subscription(dir.path(), 60_000).await;
    let unknown = b.consume("nope".into(), 2, Caller::default()).await;
    assert!(matches!(unknown, Err(BrokerError::NotFound(_))));
    let mut c = b.consume("s".into(), 2, Caller::default()).await.unwrap();
    assert!(matches!(
        c.next(Duration::from_millis(20)).await,
        Next::Idle
    ));
    for n in 0..5 {
        b.publish("t".into(), event(n), Caller::default())
            .await
            .unwrap();
    }
    let Next::Batch(first) = c.next(Duration::from_secs(5)).await else {
        panic!("no first batch");
    };
    assert_eq!(numbers(&first), vec![0]);
    // While the consumer holds its batch, router turns lease it nothing more (and mark it
    // starved); the rest stays ready.
    b.publish("t".into(), event(5), Caller::default())
        .await
        .unwrap();
    assert_eq!(counts(&b).await, vec![("s".into(), 5, 1, 0)]);
    // Asking for the next batch says the last one was passed on: the router is nudged and
    // leases up to `max` at once.
    let mut got = numbers(&first);
    while got.len() < 6 {
        match c.next(Duration::from_secs(5)).await {
            Next::Batch(batch) => {
                assert!((1..=2).contains(&batch.len()), "{}", batch.len());
                got.extend(numbers(&batch));
            }
            _ => panic!("the consumer was not served again; got {got:?}"),
        }
    }
    assert_eq!(got, (0..6).collect::<Vec<_>>());
    assert_eq!(counts(&b).await, vec![("s".into(), 0, 6, 0)]);
    // Consumers count against the bound on waiters (2 here).
    let second = b.consume("s".into(), 1, Caller::default()).await.unwrap();
    let third = b.consume("s".into(), 1, Caller::default()).await;
    assert!(matches!(third, Err(BrokerError::TooManyWaiters)));
    // One that went away is forgotten: its place is free again.
    drop(second);
    let mut fourth = None;
    for _ in 0..100 {
        match b.consume("s".into(), 1, Caller::default()).await {
            Ok(c) => {
                fourth = Some(c);
                break;
            }
            Err(BrokerError::TooManyWaiters) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(fourth.is_some(), "a dropped consumer kept its place");
    // Draining ends the streams.
    b.drain();
    assert!(matches!(c.next(Duration::from_secs(5)).await, Next::End));
    b.shutdown();
}
