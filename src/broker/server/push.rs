//! Push delivery (webhooks): a subscription with `push` has a task that pulls one message at a
//! time, POSTs it to the endpoint in CloudEvents structured mode (with the receive span's
//! `traceparent`), acks on 2xx and nacks otherwise with an exponential backoff; after
//! `max_attempts` the message goes to the dead-letter queue as for any subscription. The task
//! waits on the runtime; the blocking HTTP call runs on the blocking pool.

use super::*;

/// Longest wait of one pull.
const PULL_WAIT: Duration = Duration::from_secs(5);

/// Starts the push task of a subscription (on the current tokio runtime, if any).
pub fn start(broker: &Broker, spec: &SubscriptionSpec) {
    let (Some(push), Ok(rt)) = (spec.push.clone(), tokio::runtime::Handle::try_current()) else {
        return;
    };
    let broker = broker.clone();
    let sub = spec.name.clone();
    let timeout = Duration::from_millis(spec.visibility_timeout_ms).min(Duration::from_secs(30));
    rt.spawn(async move { run(broker, sub, push, timeout).await });
}

async fn run(broker: Broker, sub: String, push: Push, timeout: Duration) {
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(timeout)
        .timeout(timeout)
        .build();
    let caller = Caller {
        service: Some(push.service()),
        trace: TraceContext::default(),
    };
    while !broker.is_draining() {
        let batch = match broker.pull(sub.clone(), 1, PULL_WAIT, caller.clone()).await {
            Ok(b) => b,
            Err(BrokerError::NotFound(_)) | Err(BrokerError::Closed) => return,
            Err(_) => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        for d in batch {
            let (agent, url) = (agent.clone(), push.url.clone());
            let (body, traceparent) = (d.event.to_string(), d.traceparent.clone());
            let ok = tokio::task::spawn_blocking(move || {
                agent
                    .post(&url)
                    .set("content-type", "application/cloudevents+json")
                    .set("traceparent", &traceparent)
                    .send_string(&body)
                    .is_ok()
            })
            .await
            .unwrap_or(false);
            let action = if ok {
                Settle::Ack
            } else {
                Settle::Nack {
                    delay_ms: push.backoff_ms(d.attempt),
                }
            };
            if let Err(e) = broker
                .settle(sub.clone(), vec![d.lease_id], action, caller.clone())
                .await
            {
                tracing::warn!(subscription = %sub, error = %e, "push settlement failed");
            }
        }
    }
}
