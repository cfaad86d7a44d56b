//! One round of `bench brokers` against each broker, through the client a service would use:
//! the crate's `Client` for the embedded broker, lapin for RabbitMQ, async-nats for JetStream.

use super::meter::{concurrency, now_micros, payload, Meter, Sample};
use super::BrokersBench;
use futures_util::StreamExt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// The reader threads of a round's consumers, each with the closer of its stream. Dropped
/// before they were joined (a round that failed to start), they are told to end.
struct Readers(Vec<(crate::broker::client::Closer, std::thread::JoinHandle<()>)>);

impl Drop for Readers {
    fn drop(&mut self) {
        for (closer, _) in &self.0 {
            closer.close();
        }
    }
}

pub(super) async fn embedded(
    a: &BrokersBench,
    size: usize,
    n: usize,
    duration: Duration,
) -> anyhow::Result<Sample> {
    let c = a.auth.client(&a.http).with_service("bench");
    let name = format!("bench.{}", now_micros());
    let sub = format!("{name}.q");
    let (c2, name2, sub2) = (c.clone(), name.clone(), sub.clone());
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        c2.declare_topic(&name2)?;
        c2.declare_subscription(&sub2, &name2, 60_000, 5)?;
        Ok(())
    })
    .await??;
    let meter = Meter::new(n);
    let (publishers, consumers) = concurrency(n);
    // Each consumer is a streaming pull (deliveries pushed, like AMQP's basic.consume). Its
    // reader counts a message delivered on receipt and hands the lease to the client's
    // `Acker`, which sends acks in batches from its own thread, each batch waiting up to 1 ms
    // for company: as with the other brokers' consumers, the ack is on its way, not
    // confirmed, when the message counts. Consumers start first: should one fail to start, no
    // publisher is running yet, and the readers already started end with their streams
    // (`Readers`).
    let mut ackers = Vec::new();
    let mut readers = Readers(Vec::new());
    for _ in 0..consumers {
        let deliveries = c.consume(&sub, 100)?;
        let acker = Arc::new(c.acker(&sub)?);
        ackers.push(acker.clone());
        let m = meter.clone();
        let closer = deliveries.closer();
        let reader = std::thread::spawn(move || {
            for d in deliveries {
                let Ok(d) = d else { return };
                let t = d.event["data"]["t"].as_u64().unwrap_or(0);
                if m.stop.load(Ordering::Relaxed) || acker.ack(d.lease_id).is_err() {
                    return;
                }
                m.delivered(&t.to_le_bytes());
            }
        });
        readers.0.push((closer, reader));
    }
    // Publishers are tasks, as for the other brokers' clients: their publishes are coalesced
    // into batched requests sent from the runtime's blocking pool, where a hundred publisher
    // threads would each wake up for each of their messages. A lone publisher is a thread
    // calling the blocking client, which sends its own requests: as a task it would wait for
    // a thread of the pool to send each message (about 0.05 ms more at 1 in flight).
    let mut tasks = tokio::task::JoinSet::new();
    let mut threads = Vec::new();
    let body = move || serde_json::json!({ "t": now_micros(), "pad": "x".repeat(size.saturating_sub(40)) });
    if publishers == 1 {
        let (c, m, name, h) = (
            c.clone(),
            meter.clone(),
            name.clone(),
            tokio::runtime::Handle::current(),
        );
        threads.push(std::thread::spawn(move || {
            while h.block_on(m.enter()) {
                if c.publish_json(&name, &body(), None).is_err() {
                    m.window.add_permits(1);
                }
            }
        }));
    } else {
        for _ in 0..publishers {
            let (c, m, name) = (c.clone(), meter.clone(), name.clone());
            tasks.spawn(async move {
                while m.enter().await {
                    if c.publish_json_async(&name, &body(), None).await.is_err() {
                        m.window.add_permits(1);
                    }
                }
            });
        }
    }
    let window = meter.run_for(a.warm_up, duration).await;
    meter.window.add_permits(publishers);
    while tasks.join_next().await.is_some() {}
    tokio::task::spawn_blocking(move || {
        for t in threads {
            let _ = t.join();
        }
        // The readers end with their streams; every ack of the round is sent before the next
        // round starts.
        for (closer, reader) in std::mem::take(&mut readers.0) {
            closer.close();
            let _ = reader.join();
        }
        for a in ackers {
            a.close();
        }
    })
    .await?;
    Ok(meter.sample(window))
}

pub(super) async fn rabbitmq(
    a: &BrokersBench,
    size: usize,
    n: usize,
    duration: Duration,
) -> anyhow::Result<Sample> {
    use lapin::{options::*, types::FieldTable, BasicProperties, Connection, ConnectionProperties};
    let conn = Connection::connect(&a.amqp, ConnectionProperties::default()).await?;
    let queue = format!("bench.{}", now_micros());
    let admin = conn.create_channel().await?;
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    admin
        .queue_declare(&queue, durable, FieldTable::default())
        .await?;
    let meter = Meter::new(n);
    let (publishers, consumers) = concurrency(n);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..publishers {
        let ch = conn.create_channel().await?;
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
        let (m, queue) = (meter.clone(), queue.clone());
        tasks.spawn(async move {
            while m.enter().await {
                let props = BasicProperties::default().with_delivery_mode(2);
                let sent = ch
                    .basic_publish(
                        "",
                        &queue,
                        BasicPublishOptions::default(),
                        &payload(size),
                        props,
                    )
                    .await;
                let confirmed = match sent {
                    Ok(confirm) => confirm.await.is_ok(),
                    Err(_) => false,
                };
                if !confirmed {
                    m.window.add_permits(1);
                }
            }
        });
    }
    for k in 0..consumers {
        let ch = conn.create_channel().await?;
        ch.basic_qos(n.min(1000) as u16, BasicQosOptions::default())
            .await?;
        let mut deliveries = ch
            .basic_consume(
                &queue,
                &format!("c{k}"),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let m = meter.clone();
        tasks.spawn(async move {
            while !m.stop.load(Ordering::Relaxed) {
                let next =
                    tokio::time::timeout(Duration::from_millis(100), deliveries.next()).await;
                let Ok(Some(Ok(d))) = next else { continue };
                if d.ack(BasicAckOptions::default()).await.is_ok() {
                    m.delivered(&d.data);
                }
            }
        });
    }
    let window = meter.run_for(a.warm_up, duration).await;
    meter.window.add_permits(publishers);
    while tasks.join_next().await.is_some() {}
    let _ = admin
        .queue_delete(&queue, QueueDeleteOptions::default())
        .await;
    let _ = conn.close(200, "bench done").await;
    Ok(meter.sample(window))
}

pub(super) async fn jetstream(
    a: &BrokersBench,
    size: usize,
    n: usize,
    duration: Duration,
) -> anyhow::Result<Sample> {
    use async_nats::jetstream::{self, consumer, stream};
    let client = async_nats::connect(&a.nats).await?;
    let js = jetstream::new(client);
    let name = format!("bench_{}", now_micros());
    let subject = format!("{name}.m");
    let stream = js
        .create_stream(stream::Config {
            name: name.clone(),
            subjects: vec![subject.clone()],
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await?;
    let pull: consumer::PullConsumer = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some("bench".into()),
            ack_policy: consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await?;
    let meter = Meter::new(n);
    let (publishers, consumers) = concurrency(n);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..publishers {
        let (js, m, subject) = (js.clone(), meter.clone(), subject.clone());
        tasks.spawn(async move {
            while m.enter().await {
                let acked = match js.publish(subject.clone(), payload(size).into()).await {
                    Ok(ack) => ack.await.is_ok(),
                    Err(_) => false,
                };
                if !acked {
                    m.window.add_permits(1);
                }
            }
        });
    }
    for _ in 0..consumers {
        let mut messages = pull.messages().await?;
        let m = meter.clone();
        tasks.spawn(async move {
            while !m.stop.load(Ordering::Relaxed) {
                let next = tokio::time::timeout(Duration::from_millis(100), messages.next()).await;
                let Ok(Some(Ok(msg))) = next else { continue };
                if msg.ack().await.is_ok() {
                    m.delivered(&msg.payload);
                }
            }
        });
    }
    let window = meter.run_for(a.warm_up, duration).await;
    meter.window.add_permits(publishers);
    while tasks.join_next().await.is_some() {}
    let _ = js.delete_stream(&name).await;
    Ok(meter.sample(window))
}
