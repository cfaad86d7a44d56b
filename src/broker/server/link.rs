//! An in-process link to the broker: what a Rust service running inside `switchyard serve`
//! (the demo shop) uses instead of HTTP. Each call is one router command, traced exactly as
//! the HTTP API's; the link names its service (and optionally its instance, as
//! `service@instance`) in the spans.

use super::command::Command;
use super::*;
use serde_json::{Map, Value};

/// A broker client inside the process, calling as one service. Cheap to clone.
#[derive(Clone)]
pub struct Link {
    broker: Broker,
    service: String,
}

impl Link {
    /// `service` is `name` or `name@instance` (the instance becomes `service.instance.id`).
    pub fn new(broker: &Broker, service: &str) -> Link {
        Link {
            broker: broker.clone(),
            service: service.to_string(),
        }
    }

    fn caller(&self, parent: Option<&str>) -> Caller {
        Caller {
            service: Some(self.service.clone()),
            trace: TraceContext {
                traceparent: parent.map(str::to_string),
                tracestate: None,
            },
        }
    }

    /// A CloudEvent from this service with JSON `data` and extra attributes.
    pub fn event(&self, kind: &str, data: &Value, extra: &[(&str, &str)]) -> Event {
        let mut attributes = Map::new();
        attributes.insert("specversion".into(), "1.0".into());
        attributes.insert("id".into(), event::generated_id().into());
        let source = self.service.split('@').next().unwrap_or(&self.service);
        attributes.insert("source".into(), format!("/{source}").into());
        attributes.insert("type".into(), kind.into());
        attributes.insert("datacontenttype".into(), "application/json".into());
        for (k, v) in extra {
            attributes.insert((*k).into(), (*v).into());
        }
        Event {
            attributes,
            data: Some(data.to_string().into_bytes()),
            data_is_json: true,
        }
    }

    pub async fn declare_topic(&self, name: &str) -> Result<Declared, BrokerError> {
        self.broker.declare_topic(name.into()).await
    }

    pub async fn declare_subscription(
        &self,
        name: &str,
        topic: &str,
        max_attempts: u32,
    ) -> Result<Declared, BrokerError> {
        let spec = SubscriptionSpec {
            name: name.into(),
            topic: topic.into(),
            visibility_timeout_ms: DEFAULT_VISIBILITY_TIMEOUT_MS,
            max_attempts,
            filter: None,
            push: None,
        };
        self.broker.declare_subscription(spec).await
    }

    pub async fn declare_stream(&self, name: &str) -> Result<Declared, BrokerError> {
        let spec = StreamSpec {
            name: name.into(),
            max_age_ms: Some(3_600_000),
            max_bytes: None,
        };
        self.broker
            .ask(|reply| Command::DeclareStream { spec, reply })
            .await
    }

    /// Publishes to a topic; `parent` is the traceparent to continue (e.g. a delivery's).
    pub async fn publish(
        &self,
        topic: &str,
        event: Event,
        parent: Option<&str>,
    ) -> Result<Published, BrokerError> {
        let caller = self.caller(parent);
        self.broker.publish(topic.into(), event, caller).await
    }

    pub async fn pull(
        &self,
        subscription: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>, BrokerError> {
        let caller = self.caller(None);
        self.broker
            .pull(subscription.into(), max, wait, caller)
            .await
    }

    pub async fn settle(
        &self,
        subscription: &str,
        delivery: &Delivery,
        action: Settle,
    ) -> Result<Settled, BrokerError> {
        let caller = self.caller(Some(&delivery.traceparent));
        let leases = vec![delivery.lease_id.clone()];
        self.broker
            .settle(subscription.into(), leases, action, caller)
            .await
    }

    /// Publishes a request on `topic` and waits for the reply on `reply_to`.
    pub async fn request(
        &self,
        topic: &str,
        reply_to: &str,
        event: Event,
        parent: Option<&str>,
        timeout: Duration,
    ) -> Result<Replied, BrokerError> {
        let caller = self.caller(parent);
        self.broker
            .request(topic.into(), reply_to.into(), event, caller, timeout)
            .await
    }

    /// Answers a request delivery: publishes `data` to its `replyto` with its `correlationid`.
    pub async fn reply(
        &self,
        request: &Delivery,
        kind: &str,
        data: &Value,
    ) -> Result<Published, BrokerError> {
        let attr = |k: &str| request.event.get(k).and_then(Value::as_str).unwrap_or("");
        let (reply_to, correlation) = (attr("replyto").to_string(), attr("correlationid"));
        let event = self.event(kind, data, &[("correlationid", correlation)]);
        self.publish(&reply_to, event, Some(&request.traceparent))
            .await
    }

    pub async fn append(
        &self,
        stream: &str,
        event: Event,
        parent: Option<&str>,
    ) -> Result<Published, BrokerError> {
        self.broker
            .append(stream.into(), event, self.caller(parent))
            .await
    }

    pub async fn read(
        &self,
        stream: &str,
        from: ReadFrom,
        group: Option<&str>,
        max: usize,
    ) -> Result<StreamBatch, BrokerError> {
        let (stream, caller) = (stream.into(), self.caller(None));
        let group = group.map(str::to_string);
        self.broker
            .ask(|reply| {
                Command::StreamRead(command::StreamRead {
                    stream,
                    from,
                    group,
                    max: max.clamp(1, MAX_PULL),
                    wait: Duration::ZERO,
                    caller,
                    reply,
                })
            })
            .await
    }

    pub async fn commit(
        &self,
        stream: &str,
        group: &str,
        offset: u64,
    ) -> Result<GroupInfo, BrokerError> {
        let (stream, group, caller) = (stream.into(), group.into(), self.caller(None));
        self.broker
            .ask(|reply| {
                Command::Commit(command::GroupCommit {
                    stream,
                    group,
                    offset,
                    caller,
                    reply,
                })
            })
            .await
    }
}
