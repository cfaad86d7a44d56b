//! `switchyard serve --demo`: a simulated shop whose services talk over the embedded broker,
//! in-process (through [`Link`]s), so its topology and event traces come from the broker's own
//! spans, traced by construction. A newcomer sees a live topology within seconds.
//!
//! The shop (every name below is a destination in the topology):
//! - identity publishes `user.events`, broadcast to shipping and reporting;
//! - payments publishes `payment.processed`, broadcast to wallet and reporting, and also
//!   `audit.legacy`, a dead-end topic nobody subscribes to;
//! - wallet asks identity for 2FA status by request/reply (`identity.2fa`, reply on
//!   `identity.2fa.reply`); cart asks catalog for prices (`catalog.prices`, `catalog.prices.reply`);
//! - checkout queues `fulfilment.tasks`, a work queue (subscription `fulfilment.workers`)
//!   drained by two fulfilment instances;
//!   some tasks always fail and go to the dead-letter queue after three attempts;
//! - checkout appends to the `order.history` stream; reporting reads it as a consumer group and
//!   replays it from the start now and then;
//! - marketing subscribes to `promotions`, which nobody publishes to (an idle subscriber: an
//!   empty pull leaves no span, but the broker's own state, reported to the topology, shows
//!   marketing pulling from it).

use crate::broker::link::Link;
use crate::broker::{Broker, BrokerError, Delivery, ReadFrom, Settle};
use serde_json::json;
use std::time::Duration;

/// The subscriptions: (name, topic, max attempts).
const SUBSCRIPTIONS: &[(&str, &str, u32)] = &[
    ("shipping.user-events", "user.events", 5),
    ("reporting.user-events", "user.events", 5),
    ("wallet.payment-processed", "payment.processed", 5),
    ("reporting.payment-processed", "payment.processed", 5),
    ("identity.2fa-requests", "identity.2fa", 5),
    ("catalog.price-requests", "catalog.prices", 5),
    ("fulfilment.workers", "fulfilment.tasks", 3),
    ("marketing.promotions", "promotions", 5),
];
const TOPICS: &[&str] = &[
    "user.events",
    "payment.processed",
    "audit.legacy",
    "identity.2fa",
    "identity.2fa.reply",
    "catalog.prices",
    "catalog.prices.reply",
    "fulfilment.tasks",
    "promotions",
];
const STREAM: &str = "order.history";
const PULL_WAIT: Duration = Duration::from_millis(500);

/// Declares the shop's destinations, then runs its services until the process stops.
pub async fn run(broker: Broker) {
    if let Err(e) = declare(&broker).await {
        tracing::warn!(error = %e, "the demo shop could not declare its destinations");
        return;
    }
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(identity_publisher(Link::new(&broker, "identity")));
    tasks.spawn(payments(Link::new(&broker, "payments")));
    tasks.spawn(checkout(Link::new(&broker, "checkout")));
    tasks.spawn(cart(Link::new(&broker, "cart")));
    for (service, sub) in [
        ("shipping", "shipping.user-events"),
        ("reporting", "reporting.user-events"),
        ("reporting", "reporting.payment-processed"),
        ("marketing", "marketing.promotions"),
    ] {
        tasks.spawn(consume(Link::new(&broker, service), sub));
    }
    tasks.spawn(wallet(Link::new(&broker, "wallet")));
    tasks.spawn(responder(
        Link::new(&broker, "identity"),
        "identity.2fa-requests",
    ));
    tasks.spawn(responder(
        Link::new(&broker, "catalog"),
        "catalog.price-requests",
    ));
    for instance in ["fulfilment@fulfilment-1", "fulfilment@fulfilment-2"] {
        tasks.spawn(consume(Link::new(&broker, instance), "fulfilment.workers"));
    }
    tasks.spawn(reporting_stream(Link::new(&broker, "reporting")));
    while tasks.join_next().await.is_some() {}
}

async fn declare(broker: &Broker) -> Result<(), BrokerError> {
    let admin = Link::new(broker, "demo");
    for topic in TOPICS {
        admin.declare_topic(topic).await?;
    }
    for (name, topic, attempts) in SUBSCRIPTIONS {
        admin.declare_subscription(name, topic, *attempts).await?;
    }
    admin.declare_stream(STREAM).await?;
    Ok(())
}

/// A small xorshift generator: the demo needs variety, not quality.
struct Dice(u64);

impl Dice {
    fn new() -> Dice {
        Dice(crate::model::window::now_unix_nanos() | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    /// A pause of `ms` milliseconds, give or take half.
    fn pause(&mut self, ms: u64) -> Duration {
        Duration::from_millis(ms / 2 + self.next() % ms.max(1))
    }
}

/// Logs a failed broker call (at debug: a busy broker refuses with 503) and backs off.
async fn warn(what: &str, e: BrokerError) {
    tracing::debug!(error = %e, "demo: {what} failed");
    tokio::time::sleep(Duration::from_millis(500)).await;
}

async fn identity_publisher(link: Link) {
    let mut dice = Dice::new();
    loop {
        tokio::time::sleep(dice.pause(700)).await;
        let kind = if dice.chance(70) {
            "user.signed_in"
        } else {
            "user.registered"
        };
        let data = json!({"user": dice.next() % 10_000});
        if let Err(e) = link
            .publish("user.events", link.event(kind, &data, &[]), None)
            .await
        {
            warn("publish user.events", e).await;
        }
    }
}

async fn payments(link: Link) {
    let mut dice = Dice::new();
    loop {
        tokio::time::sleep(dice.pause(900)).await;
        let data = json!({"payment": dice.next() % 100_000, "cents": dice.next() % 20_000});
        let event = link.event("payment.processed", &data, &[]);
        match link.publish("payment.processed", event, None).await {
            Ok(p) if dice.chance(30) => {
                let audit = link.event("payment.audited", &data, &[]);
                let _ = link
                    .publish("audit.legacy", audit, Some(&p.traceparent))
                    .await;
            }
            Ok(_) => {}
            Err(e) => warn("publish payment.processed", e).await,
        }
    }
}

/// Checkout: queues a fulfilment task per order (some of them poisoned) and records the order
/// in the `order.history` stream.
async fn checkout(link: Link) {
    let mut dice = Dice::new();
    loop {
        tokio::time::sleep(dice.pause(800)).await;
        let order = dice.next() % 100_000;
        let poison = dice.chance(8);
        let data = json!({"order": order, "poison": poison});
        let task = link.event("fulfilment.requested", &data, &[]);
        let published = match link.publish("fulfilment.tasks", task, None).await {
            Ok(p) => p,
            Err(e) => {
                warn("publish fulfilment.tasks", e).await;
                continue;
            }
        };
        let history = link.event("order.placed", &data, &[]);
        if let Err(e) = link
            .append(STREAM, history, Some(&published.traceparent))
            .await
        {
            warn("append order.history", e).await;
        }
    }
}

/// Cart: asks catalog for prices, by request/reply.
async fn cart(link: Link) {
    let mut dice = Dice::new();
    loop {
        tokio::time::sleep(dice.pause(1_000)).await;
        let data = json!({"sku": format!("sku-{}", dice.next() % 500)});
        let event = link.event("catalog.price_requested", &data, &[]);
        let timeout = Duration::from_secs(5);
        if let Err(e) = link
            .request(
                "catalog.prices",
                "catalog.prices.reply",
                event,
                None,
                timeout,
            )
            .await
        {
            warn("request catalog.prices", e).await;
        }
    }
}

/// Wallet: on each processed payment, asks identity for the user's 2FA status.
async fn wallet(link: Link) {
    let sub = "wallet.payment-processed";
    loop {
        let deliveries = match link.pull(sub, 10, PULL_WAIT).await {
            Ok(d) => d,
            Err(e) => {
                warn("pull", e).await;
                continue;
            }
        };
        for d in deliveries {
            let ask = link.event("identity.2fa_requested", &json!({"user": 7}), &[]);
            let timeout = Duration::from_secs(5);
            let answer = link
                .request(
                    "identity.2fa",
                    "identity.2fa.reply",
                    ask,
                    Some(&d.traceparent),
                    timeout,
                )
                .await;
            let action = match answer {
                Ok(_) => Settle::Ack,
                Err(_) => Settle::Nack { delay_ms: 1_000 },
            };
            let _ = link.settle(sub, &d, action).await;
        }
    }
}

/// A request/reply responder: answers each request on its subscription.
async fn responder(link: Link, sub: &'static str) {
    loop {
        let deliveries = match link.pull(sub, 10, PULL_WAIT).await {
            Ok(d) => d,
            Err(e) => {
                warn("pull", e).await;
                continue;
            }
        };
        for d in deliveries {
            tokio::time::sleep(Duration::from_millis(3)).await;
            let answer = json!({"ok": true});
            let _ = link.reply(&d, "switchyard.reply", &answer).await;
            let _ = link.settle(sub, &d, Settle::Ack).await;
        }
    }
}

/// A consumer: processes each delivery, fails some (nack, retried after a delay) and always
/// fails poisoned ones (they end in the dead-letter queue).
async fn consume(link: Link, sub: &'static str) {
    let mut dice = Dice::new();
    loop {
        let deliveries = match link.pull(sub, 5, PULL_WAIT).await {
            Ok(d) => d,
            Err(e) => {
                warn("pull", e).await;
                continue;
            }
        };
        for d in deliveries {
            tokio::time::sleep(dice.pause(20)).await;
            let action = if fails(&d, &mut dice) {
                Settle::Nack { delay_ms: 300 }
            } else {
                Settle::Ack
            };
            let _ = link.settle(sub, &d, action).await;
        }
    }
}

fn fails(d: &Delivery, dice: &mut Dice) -> bool {
    let poison = d.event["data"]["poison"].as_bool().unwrap_or(false);
    poison || dice.chance(3)
}

/// Reporting: reads `order.history` as a consumer group, and every minute replays it from the
/// start (a catch-up report).
async fn reporting_stream(link: Link) {
    let mut dice = Dice::new();
    let mut reads = 0u64;
    loop {
        tokio::time::sleep(dice.pause(1_500)).await;
        reads += 1;
        if reads.is_multiple_of(40) {
            let _ = link.read(STREAM, ReadFrom::Earliest, None, 100).await;
            continue;
        }
        match link
            .read(STREAM, ReadFrom::Committed, Some("reporting"), 100)
            .await
        {
            Ok(batch) if !batch.events.is_empty() => {
                let _ = link.commit(STREAM, "reporting", batch.next_offset).await;
            }
            Ok(_) => {}
            Err(e) => warn("read order.history", e).await,
        }
    }
}
