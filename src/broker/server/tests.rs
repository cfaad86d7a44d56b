//! The router over a real SQLite file, without HTTP (spans go nowhere).

use super::clock::Clock;
use super::*;
use serde_json::json;

fn open(dir: &std::path::Path) -> Broker {
    open_with(dir, Clock::system())
}

/// A broker on `dir` whose router runs on `clock`.
fn open_with(dir: &std::path::Path, clock: Clock) -> Broker {
    let config = BrokerConfig {
        path: dir.join("t.db-broker"),
        synchronous: "NORMAL".into(),
        max_message_bytes: 1024,
        queue_depth: 64,
        max_waiters: 2,
        max_waiters_per_destination: 2,
        allow_push_to_self: false,
    };
    Broker::open_with_clock(config, traced::Tracer::off(), clock).unwrap()
}

/// Polls a future once: a broker call has then sent its command to the router (the router
/// applies commands in the order they were sent).
fn sent<F: std::future::Future + Unpin>(f: &mut F) -> bool {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    std::pin::Pin::new(f).poll(&mut cx).is_pending()
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
    let clock = Clock::manual();
    let (b, d) = one_leased(dir.path(), &clock, "s", 60_000).await;
    b.shutdown();
    let b = open_with(dir.path(), clock);
    assert_eq!(
        counts(&b).await,
        vec![("o".into(), 0, 0, 0), ("s".into(), 0, 1, 0)]
    );
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
    assert_eq!(
        counts(&b).await,
        vec![("o".into(), 0, 0, 0), ("s".into(), 0, 0, 0)]
    );
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
        Box::pin(async move {
            b.pull("s".into(), 1, Duration::from_secs(30), Caller::default())
                .await
        })
    };
    let (mut w1, mut w2) = (wait(&b), wait(&b));
    assert!(sent(&mut w1) && sent(&mut w2), "nothing to deliver yet");
    let third = b
        .pull("s".into(), 1, Duration::from_secs(30), Caller::default())
        .await;
    assert!(matches!(third, Err(BrokerError::TooManyWaiters)));
    b.drain();
    assert!(w1.await.unwrap().is_empty());
    assert!(w2.await.unwrap().is_empty());
    let quick = b
        .pull("s".into(), 1, Duration::from_secs(30), Caller::default())
        .await;
    assert!(quick.unwrap().is_empty(), "no waiting once draining");
    b.shutdown();
}

/// Idle consumers crowding one subscription fill only its share of the waiters: a pull on
/// another subscription still waits and is answered by its publish.
#[tokio::test]
async fn one_subscription_cannot_take_every_waiter() {
    let dir = tempfile::tempdir().unwrap();
    let config = BrokerConfig {
        path: dir.path().join("t.db-broker"),
        synchronous: "NORMAL".into(),
        max_message_bytes: 1024,
        queue_depth: 64,
        max_waiters: 8,
        max_waiters_per_destination: 2,
        allow_push_to_self: false,
    };
    let b = Broker::open_with_clock(config, traced::Tracer::off(), Clock::system()).unwrap();
    b.declare_topic("t".into()).await.unwrap();
    for s in ["busy", "other"] {
        b.declare_subscription(spec(s, "t", 60_000, 3))
            .await
            .unwrap();
    }
    let wait = |sub: &str| {
        let (b, sub) = (b.clone(), sub.to_string());
        Box::pin(async move {
            b.pull(sub, 1, Duration::from_secs(30), Caller::default())
                .await
        })
    };
    let (mut w1, mut w2) = (wait("busy"), wait("busy"));
    assert!(sent(&mut w1) && sent(&mut w2), "nothing to deliver yet");
    assert!(matches!(
        wait("busy").await,
        Err(BrokerError::TooManyWaiters)
    ));
    let mut other = wait("other");
    assert!(sent(&mut other), "the other subscription's pull waits");
    b.publish("t".into(), event(7), Caller::default())
        .await
        .unwrap();
    let got = other.await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].event["data"]["n"], 7);
    b.drain();
    let _ = (w1.await, w2.await);
    b.shutdown();
}

/// A waiting pull is answered when a message of its subscription comes due again (a lease
/// ran out, while publishes to another topic go on; a lease from before a restart ran out),
/// not at the end of its wait.
#[tokio::test]
async fn a_waiting_pull_wakes_when_a_lease_or_a_delay_runs_out() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual();
    let (b, _) = one_leased(dir.path(), &clock, "s", 2_000).await;
    let lease = Duration::from_millis(2_000);
    let noise = async {
        for n in 0..20 {
            b.publish("other".into(), event(n), Caller::default())
                .await
                .unwrap();
        }
    };
    let (_, ()) = tokio::join!(
        expect_redelivery(&b, &clock, "s", lease, 2, "the lease"),
        noise
    );
    b.shutdown();

    // A lease still held at a restart: the new router learns of it from the file.
    let b = open_with(dir.path(), clock.clone());
    expect_redelivery(&b, &clock, "s", lease, 3, "a lease from before the restart").await;
    b.shutdown();
}

/// A nack with a delay while no pull waits: the pull that waits afterwards is answered when
/// the delay passes, though the lease it ended had a minute to run.
#[tokio::test]
async fn a_waiting_pull_wakes_when_a_nack_delay_passes() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual();
    let (b, first) = one_leased(dir.path(), &clock, "n", 60_000).await;
    nack(&b, "n", first.lease_id, 300).await;
    let delay = Duration::from_millis(300);
    expect_redelivery(&b, &clock, "n", delay, 2, "the nack's delay").await;
    b.shutdown();
}

/// A lease runs out when the clock reaches its visibility timeout, not a millisecond before.
#[tokio::test]
async fn a_lease_expires_exactly_when_the_clock_passes_the_visibility_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual();
    let (b, first) = one_leased(dir.path(), &clock, "s", 1_000).await;
    let lease = Duration::from_millis(1_000);
    expect_due_after(&b, &clock, "s", lease, "the lease").await;
    let late = b
        .settle(
            "s".into(),
            vec![first.lease_id],
            Settle::Ack,
            Caller::default(),
        )
        .await
        .unwrap();
    assert!(
        late.settled.is_empty(),
        "the expired lease no longer settles"
    );
    b.shutdown();
}

/// A nack with `delay_ms` makes the message deliverable once the delay passed, not before.
#[tokio::test]
async fn a_nacked_message_is_deliverable_only_after_its_delay() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual();
    let (b, first) = one_leased(dir.path(), &clock, "n", 60_000).await;
    nack(&b, "n", first.lease_id, 500).await;
    let delay = Duration::from_millis(500);
    expect_due_after(&b, &clock, "n", delay, "the nack's delay").await;
    b.shutdown();
}

async fn nack(b: &Broker, sub: &str, lease_id: String, delay_ms: u64) {
    let nack = Settle::Nack { delay_ms };
    let settled = b
        .settle(sub.into(), vec![lease_id], nack, Caller::default())
        .await
        .unwrap();
    assert_eq!(settled.settled.len(), 1);
}

/// The one message of `sub` (leased or nacked once) stays undeliverable while the clock moves
/// by `by` less a millisecond, and is delivered again (attempt 2) at `by`.
async fn expect_due_after(b: &Broker, clock: &Clock, sub: &str, by: Duration, what: &str) {
    clock.advance(by - Duration::from_millis(1));
    assert!(
        pull_now(b, sub).await.is_empty(),
        "1 ms before {what} runs out"
    );
    let held = counts(b).await.into_iter().find(|c| c.0 == sub);
    let (_, ready, leased, _) = held.expect("the subscription");
    assert_eq!(ready + leased, 1, "still held before {what} runs out");
    clock.advance(Duration::from_millis(1));
    let again = pull_now(b, sub).await;
    assert_eq!(again.len(), 1, "deliverable when {what} ran out");
    assert_eq!(again[0].attempt, 2);
}

/// A pull that does not wait.
async fn pull_now(b: &Broker, sub: &str) -> Vec<Delivery> {
    b.pull(sub.into(), 5, Duration::ZERO, Caller::default())
        .await
        .unwrap()
}

/// A broker on `dir` and `clock` with topics "t" and "other", subscription `sub` of "t"
/// (leases of `lease_ms`, 3 attempts), one event published and its first delivery leased.
async fn one_leased(
    dir: &std::path::Path,
    clock: &Clock,
    sub: &str,
    lease_ms: u64,
) -> (Broker, Delivery) {
    let b = open_with(dir, clock.clone());
    b.declare_topic("t".into()).await.unwrap();
    b.declare_topic("other".into()).await.unwrap();
    b.declare_subscription(spec(sub, "t", lease_ms, 3))
        .await
        .unwrap();
    b.declare_subscription(spec("o", "other", 60_000, 3))
        .await
        .unwrap();
    b.publish("t".into(), event(1), Caller::default())
        .await
        .unwrap();
    let mut d = pull_now(&b, sub).await;
    assert_eq!(d.len(), 1);
    (b, d.remove(0))
}

/// A pull on `sub` that waits (its wait ends only if the clock moves a minute) gets one
/// message at `attempt` once the clock moves by `by` (when `what` runs out).
async fn expect_redelivery(
    b: &Broker,
    clock: &Clock,
    sub: &str,
    by: Duration,
    attempt: u32,
    what: &str,
) {
    let wait = Duration::from_secs(60);
    let mut pull = Box::pin(b.pull(sub.into(), 1, wait, Caller::default()));
    assert!(sent(&mut pull));
    // Answered after the pull was applied: the pull waits, nothing of `sub` is due yet.
    b.publish("other".into(), event(0), Caller::default())
        .await
        .unwrap();
    clock.advance(by);
    // The bound only turns a router that never wakes the pull into a failure, not a hang.
    let d = tokio::time::timeout(Duration::from_secs(60), pull)
        .await
        .expect("the waiting pull was answered")
        .unwrap();
    assert_eq!(d.len(), 1, "redelivered after {what}");
    assert_eq!(d[0].attempt, attempt, "after {what}");
}

/// The typed read of one destination: a topic's subscriptions with their counts, push and
/// filter; a stream's offsets and groups with their lag; nothing declared by another name.
#[tokio::test]
async fn a_destination_reads_as_its_queues_or_its_stream() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual();
    let (b, _) = one_leased(dir.path(), &clock, "s", 60_000).await;
    let mut filtered = spec("f", "t", 60_000, 3);
    filtered.filter = Some(Filter {
        kind: Some("nothing.matches".into()),
        subject_prefix: None,
    });
    b.declare_subscription(filtered).await.unwrap();
    b.publish("t".into(), event(2), Caller::default())
        .await
        .unwrap();
    let topic = b.destination("t".into()).await.unwrap();
    assert!(topic.declared && topic.stream.is_none());
    let queues: Vec<_> = topic
        .subscriptions
        .iter()
        .map(|s| (s.spec.name.as_str(), s.ready, s.leased, s.dead))
        .collect();
    assert_eq!(queues, vec![("f", 0, 0, 0), ("s", 1, 1, 0)]);
    assert!(topic.subscriptions[0].spec.filter.is_some());

    let stream = StreamSpec {
        name: "log".into(),
        ..StreamSpec::default()
    };
    b.ask(|reply| Command::DeclareStream {
        spec: stream,
        reply,
    })
    .await
    .unwrap();
    for n in 0..3 {
        b.append("log".into(), event(n), Caller::default())
            .await
            .unwrap();
    }
    let log = b.destination("log".into()).await.unwrap();
    let s = log.stream.expect("the stream");
    assert!(log.declared && log.subscriptions.is_empty());
    assert_eq!((s.first_offset, s.next_offset), (0, 3));
    assert!(s.groups.is_empty());

    let none = b.destination("nothing".into()).await.unwrap();
    assert!(!none.declared && none.subscriptions.is_empty() && none.stream.is_none());
    b.shutdown();
}
