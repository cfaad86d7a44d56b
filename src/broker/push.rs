//! Push delivery (webhooks): a subscription with `push` has a task that pulls one message at a
//! time, POSTs it to the endpoint in CloudEvents structured mode (with the receive span's
//! `traceparent`), acks on 2xx and nacks otherwise with an exponential backoff; after
//! `max_attempts` the message goes to the dead-letter queue as for any subscription. The task
//! waits on the runtime; the blocking HTTP call runs on the blocking pool.

use super::*;

/// Longest backoff between two attempts.
const MAX_BACKOFF_MS: u64 = 60_000;
/// Longest wait of one pull.
const PULL_WAIT: Duration = Duration::from_secs(5);

/// Where a push subscription delivers. Invariant: `url` is `http://...`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Push {
    pub url: String,
    /// The receiving service, for the spans (default: the URL's host and port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// First retry delay; doubled on each attempt (default 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_ms: Option<u64>,
}

impl Push {
    pub fn validate(&self) -> Result<(), BrokerError> {
        let rest = self.url.strip_prefix("http://").unwrap_or("");
        if rest.is_empty() {
            return Err(BrokerError::BadRequest(format!(
                "push url {:?} must be http://host[:port]/path",
                self.url
            )));
        }
        Ok(())
    }

    fn service(&self) -> String {
        self.service.clone().unwrap_or_else(|| {
            let rest = self.url.trim_start_matches("http://");
            rest.split('/').next().unwrap_or(rest).to_string()
        })
    }

    /// The delay before attempt `attempt + 1`.
    pub fn backoff_ms(&self, attempt: u32) -> u64 {
        let base = self.backoff_ms.unwrap_or(1_000);
        base.saturating_mul(1u64 << attempt.saturating_sub(1).min(20))
            .min(MAX_BACKOFF_MS)
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_cap_and_urls_are_checked() {
        let p = Push {
            url: "http://127.0.0.1:9/hook".into(),
            service: None,
            backoff_ms: Some(100),
        };
        assert_eq!(
            (p.backoff_ms(1), p.backoff_ms(2), p.backoff_ms(3)),
            (100, 200, 400)
        );
        assert_eq!(p.backoff_ms(40), MAX_BACKOFF_MS);
        assert_eq!(p.service(), "127.0.0.1:9");
        assert!(p.validate().is_ok());
        let https = Push {
            url: "https://example.com".into(),
            ..p
        };
        assert!(https.validate().is_err());
    }
}
