//! The streams part of the client: declarations, appends, reads and group commits.

use super::{encode, from_value, Client, ClientError};
use crate::broker::proto::types::{Declared, GroupInfo, Published, StreamBatch, StreamInfo};
use serde_json::{json, Value};
use std::time::Duration;

impl Client {
    /// Appends structured CloudEvents to a stream in one request, at consecutive offsets: all
    /// of them, or none.
    pub fn append_events(
        &self,
        stream: &str,
        events: &[Value],
    ) -> Result<Vec<Published>, ClientError> {
        self.send_batch(
            &format!("/broker/streams/{stream}/events", stream = encode(stream)),
            events,
        )
    }

    /// Declares a stream; `max_age_ms` bounds how long its events are kept.
    pub fn declare_stream(
        &self,
        name: &str,
        max_age_ms: Option<u64>,
    ) -> Result<Declared, ClientError> {
        let body = json!({ "max_age_ms": max_age_ms });
        self.send(
            "PUT",
            &format!("/broker/streams/{name}", name = encode(name)),
            "application/json",
            body.to_string().as_bytes(),
        )
    }

    /// Declares a stream bounded by age and/or size (bytes of events' data and attributes).
    pub fn declare_stream_bounded(
        &self,
        name: &str,
        max_age_ms: Option<u64>,
        max_bytes: Option<u64>,
    ) -> Result<Declared, ClientError> {
        let body = json!({ "max_age_ms": max_age_ms, "max_bytes": max_bytes });
        self.send(
            "PUT",
            &format!("/broker/streams/{name}", name = encode(name)),
            "application/json",
            body.to_string().as_bytes(),
        )
    }

    pub fn streams(&self) -> Result<Vec<StreamInfo>, ClientError> {
        let v: Value = self.get("/broker/streams")?;
        from_value(v["streams"].clone())
    }

    /// Appends a plain JSON event to a stream; the answer has its offset.
    pub fn append_json(&self, stream: &str, data: &Value) -> Result<Published, ClientError> {
        self.send(
            "POST",
            &format!("/broker/streams/{stream}/events", stream = encode(stream)),
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
            wait.as_millis(),
            stream = encode(stream)
        );
        if let Some(g) = group {
            path.push_str(&format!("&group={}", encode(g)));
        }
        self.get(&path)
    }

    /// Commits a group's offset: the next offset it will read.
    pub fn commit(&self, stream: &str, group: &str, offset: u64) -> Result<GroupInfo, ClientError> {
        let body = json!({ "offset": offset });
        self.send(
            "POST",
            &format!(
                "/broker/streams/{stream}/groups/{group}/commit",
                stream = encode(stream),
                group = encode(group)
            ),
            "application/json",
            body.to_string().as_bytes(),
        )
    }
}
