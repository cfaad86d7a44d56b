//! A blocking Rust client of the broker's HTTP API (used by the tests; usable by any Rust
//! service). Each call is one HTTP request; errors keep the server's status and message.

use super::{
    DeadLetter, Declared, Delivery, GroupInfo, Published, Replied, Settled, StreamBatch,
    StreamInfo, SubscriptionInfo, TopicInfo,
};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The broker answered with an error status.
    #[error("{status} {error}: {message}")]
    Status {
        status: u16,
        error: String,
        message: String,
    },
    #[error("transport: {0}")]
    Transport(String),
    #[error("unexpected answer: {0}")]
    Decode(String),
}

impl ClientError {
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A broker client for one `--http` address, calling as one service.
#[derive(Clone)]
pub struct Client {
    base: String,
    service: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    /// `addr`: `127.0.0.1:8080` or `http://127.0.0.1:8080`.
    pub fn new(addr: &str) -> Client {
        let base = if addr.starts_with("http://") {
            addr.trim_end_matches('/').to_string()
        } else {
            format!("http://{addr}")
        };
        Client {
            base,
            service: None,
            agent: ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(5))
                .timeout_read(super::MAX_WAIT + Duration::from_secs(10))
                .build(),
        }
    }

    /// Names the calling service (`Switchyard-Service`) in the broker's spans.
    pub fn with_service(mut self, service: &str) -> Client {
        self.service = Some(service.to_string());
        self
    }

    fn http(&self, method: &str, path: &str) -> ureq::Request {
        let req = self.agent.request(method, &format!("{}{path}", self.base));
        match &self.service {
            Some(s) => req.set(super::traced::SERVICE_HEADER, s),
            None => req,
        }
    }

    fn send<T: DeserializeOwned>(
        &self,
        req: ureq::Request,
        content_type: &str,
        body: &[u8],
    ) -> Result<T, ClientError> {
        let answer = req.set("Content-Type", content_type).send_bytes(body);
        decode(answer)
    }

    pub fn declare_topic(&self, name: &str) -> Result<Declared, ClientError> {
        self.send(
            self.http("PUT", &format!("/broker/topics/{name}")),
            "application/json",
            b"{}",
        )
    }

    pub fn declare_subscription(
        &self,
        name: &str,
        topic: &str,
        visibility_timeout_ms: u64,
        max_attempts: u32,
    ) -> Result<Declared, ClientError> {
        let body = json!({"topic": topic, "visibility_timeout_ms": visibility_timeout_ms, "max_attempts": max_attempts});
        self.send(
            self.http("PUT", &format!("/broker/subscriptions/{name}")),
            "application/json",
            body.to_string().as_bytes(),
        )
    }

    /// Declares a subscription that only queues events matching `filter`.
    pub fn declare_filtered_subscription(
        &self,
        name: &str,
        topic: &str,
        filter: &super::Filter,
    ) -> Result<Declared, ClientError> {
        let body = json!({"topic": topic, "filter": filter});
        self.send(
            self.http("PUT", &format!("/broker/subscriptions/{name}")),
            "application/json",
            body.to_string().as_bytes(),
        )
    }

    pub fn topics(&self) -> Result<Vec<TopicInfo>, ClientError> {
        let v: Value = decode(self.http("GET", "/broker/topics").call())?;
        from_value(v["topics"].clone())
    }

    pub fn subscriptions(&self) -> Result<Vec<SubscriptionInfo>, ClientError> {
        let v: Value = decode(self.http("GET", "/broker/subscriptions").call())?;
        from_value(v["subscriptions"].clone())
    }

    /// Publishes a plain JSON body, optionally continuing a trace.
    pub fn publish_json(
        &self,
        topic: &str,
        data: &Value,
        traceparent: Option<&str>,
    ) -> Result<Published, ClientError> {
        let mut req = self.http("POST", &format!("/broker/topics/{topic}/events"));
        if let Some(tp) = traceparent {
            req = req.set("traceparent", tp);
        }
        self.send(req, "application/json", data.to_string().as_bytes())
    }

    /// Publishes a CloudEvent in structured mode.
    pub fn publish_event(&self, topic: &str, event: &Value) -> Result<Published, ClientError> {
        self.send(
            self.http("POST", &format!("/broker/topics/{topic}/events")),
            "application/cloudevents+json",
            event.to_string().as_bytes(),
        )
    }

    /// Leases up to `max` messages, waiting up to `wait` for the first.
    pub fn pull(
        &self,
        sub: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>, ClientError> {
        let path = format!(
            "/broker/subscriptions/{sub}/pull?max={max}&wait={}ms",
            wait.as_millis()
        );
        let v: Value = self.send(self.http("POST", &path), "application/json", b"")?;
        from_value(v["messages"].clone())
    }

    pub fn ack(&self, sub: &str, lease_ids: &[String]) -> Result<Settled, ClientError> {
        let body = json!({ "lease_ids": lease_ids });
        self.send(
            self.http("POST", &format!("/broker/subscriptions/{sub}/ack")),
            "application/json",
            body.to_string().as_bytes(),
        )
    }

    pub fn nack(
        &self,
        sub: &str,
        lease_ids: &[String],
        delay_ms: u64,
    ) -> Result<Settled, ClientError> {
        let body = json!({ "lease_ids": lease_ids, "delay_ms": delay_ms });
        self.send(
            self.http("POST", &format!("/broker/subscriptions/{sub}/nack")),
            "application/json",
            body.to_string().as_bytes(),
        )
    }

    /// Moves every dead letter back to the subscription's queue; returns how many.
    pub fn redrive(&self, sub: &str) -> Result<u64, ClientError> {
        let path = format!("/broker/subscriptions/{sub}/dead-letters/redrive");
        let v: Value = self.send(self.http("POST", &path), "application/json", b"")?;
        v["redriven"]
            .as_u64()
            .ok_or_else(|| ClientError::Decode(v.to_string()))
    }

    pub fn dead_letters(&self, sub: &str, max: usize) -> Result<Vec<DeadLetter>, ClientError> {
        let path = format!("/broker/subscriptions/{sub}/dead-letters?max={max}");
        let v: Value = decode(self.http("GET", &path).call())?;
        from_value(v["dead_letters"].clone())
    }

    /// Publishes a plain JSON request to `topic` and waits up to `timeout` for the reply
    /// published to `reply_to` with the same `correlationid` (504 after the timeout).
    pub fn request(
        &self,
        topic: &str,
        reply_to: &str,
        data: &Value,
        timeout: Duration,
    ) -> Result<Replied, ClientError> {
        let path = format!(
            "/broker/topics/{topic}/request?reply_to={}&timeout={}ms",
            encode(reply_to),
            timeout.as_millis()
        );
        self.send(
            self.http("POST", &path),
            "application/json",
            data.to_string().as_bytes(),
        )
    }

    /// Answers a request delivery: publishes `data` to its `replyto` with its `correlationid`.
    pub fn reply(&self, request: &Value, data: &Value) -> Result<Published, ClientError> {
        let missing = |what: &str| ClientError::Decode(format!("the request has no {what}"));
        let reply_to = request["replyto"]
            .as_str()
            .ok_or_else(|| missing("replyto"))?;
        let correlation = request["correlationid"]
            .as_str()
            .ok_or_else(|| missing("correlationid"))?;
        let event = json!({
            "specversion": "1.0",
            "id": format!("reply-{correlation}"),
            "source": self.service.as_deref().unwrap_or(super::traced::UNKNOWN_SERVICE),
            "type": format!("{}.reply", request["type"].as_str().unwrap_or("switchyard.message")),
            "correlationid": correlation,
            "data": data,
        });
        self.publish_event(reply_to, &event)
    }

    /// Declares a stream; `max_age_ms` bounds how long its events are kept.
    pub fn declare_stream(
        &self,
        name: &str,
        max_age_ms: Option<u64>,
    ) -> Result<Declared, ClientError> {
        let body = json!({ "max_age_ms": max_age_ms });
        self.send(
            self.http("PUT", &format!("/broker/streams/{name}")),
            "application/json",
            body.to_string().as_bytes(),
        )
    }

    pub fn streams(&self) -> Result<Vec<StreamInfo>, ClientError> {
        let v: Value = decode(self.http("GET", "/broker/streams").call())?;
        from_value(v["streams"].clone())
    }

    /// Appends a plain JSON event to a stream; the answer has its offset.
    pub fn append_json(&self, stream: &str, data: &Value) -> Result<Published, ClientError> {
        self.send(
            self.http("POST", &format!("/broker/streams/{stream}/events")),
            "application/json",
            data.to_string().as_bytes(),
        )
    }

    /// Reads from `from` (`earliest`, `latest`, `committed`, an offset or an RFC 3339 time).
    pub fn read(
        &self,
        stream: &str,
        from: &str,
        group: Option<&str>,
        max: usize,
        wait: Duration,
    ) -> Result<StreamBatch, ClientError> {
        let mut path = format!(
            "/broker/streams/{stream}/events?from={}&max={max}&wait={}ms",
            encode(from),
            wait.as_millis()
        );
        if let Some(g) = group {
            path.push_str(&format!("&group={}", encode(g)));
        }
        decode(self.http("GET", &path).call())
    }

    /// Commits a group's offset: the next offset it will read.
    pub fn commit(&self, stream: &str, group: &str, offset: u64) -> Result<GroupInfo, ClientError> {
        let body = json!({ "offset": offset });
        self.send(
            self.http(
                "POST",
                &format!("/broker/streams/{stream}/groups/{group}/commit"),
            ),
            "application/json",
            body.to_string().as_bytes(),
        )
    }
}

/// Percent-encodes a query value (RFC 3339 times carry `:` and `+`).
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn decode<T: DeserializeOwned>(
    answer: Result<ureq::Response, ureq::Error>,
) -> Result<T, ClientError> {
    match answer {
        Ok(resp) => {
            let text = resp
                .into_string()
                .map_err(|e| ClientError::Transport(e.to_string()))?;
            serde_json::from_str(&text).map_err(|e| ClientError::Decode(format!("{e}: {text}")))
        }
        Err(ureq::Error::Status(status, resp)) => {
            let v: Value = resp
                .into_string()
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or_default();
            Err(ClientError::Status {
                status,
                error: v["error"].as_str().unwrap_or("").to_string(),
                message: v["message"].as_str().unwrap_or("").to_string(),
            })
        }
        Err(e) => Err(ClientError::Transport(e.to_string())),
    }
}

fn from_value<T: DeserializeOwned>(v: Value) -> Result<T, ClientError> {
    serde_json::from_value(v).map_err(|e| ClientError::Decode(e.to_string()))
}
