//! Streams inside the router: an append-only log per stream (events are never popped), reads
//! from earliest, latest, an offset, a time or a consumer group's committed offset, offset
//! commits, and retention by age. Each read event is a receive span (child of its publish
//! span, with the consumer group), so replays show in the traces and the topology.

use super::catalogue::stored_event;
use super::event::Event;
use super::router::State;
use super::stream_db::{self, StreamRow};
use super::traced::{self, BrokerSpan, Op, UNKNOWN_SERVICE};
use super::*;
use opentelemetry::trace::SpanKind;
use opentelemetry::KeyValue;
use rusqlite::Connection;

/// Rows read per query (bounds the memory of one read, with the byte budget).
const READ_CHUNK: usize = 16;
const MAX_READ_BYTES: usize = 8 * 1024 * 1024;
/// Events deleted per stream and sweep at most.
const EXPIRE_STEP: usize = 1_000;
/// Steps of [`EXPIRE_STEP`] events a size-bounded stream may be trimmed by per pass.
const TRIM_STEPS: usize = 10;

impl State {
    pub(super) fn stream(&self, name: &str) -> Result<&StreamRow, BrokerError> {
        self.catalogue
            .streams
            .get(name)
            .ok_or_else(|| BrokerError::NotFound(format!("no stream {name:?}")))
    }

    pub(super) fn declare_stream(
        &mut self,
        conn: &mut Connection,
        spec: StreamSpec,
    ) -> Result<Declared, BrokerError> {
        super::catalogue::validate_name(&spec.name)?;
        if spec.max_age_ms.is_some_and(|a| a > MAX_STREAM_AGE_MS)
            || spec.max_bytes.is_some_and(|b| b > MAX_STREAM_BYTES)
        {
            return Err(BrokerError::BadRequest(format!(
                "max_age_ms must be at most {MAX_STREAM_AGE_MS} (100 years) and max_bytes at most {MAX_STREAM_BYTES}"
            )));
        }
        if let Some(existing) = self.catalogue.streams.get(&spec.name) {
            return if existing.spec == spec {
                Ok(Declared { created: false })
            } else {
                Err(BrokerError::Conflict(format!(
                    "stream {:?} exists with other settings: {}",
                    spec.name,
                    serde_json::to_string(&existing.spec).unwrap_or_default()
                )))
            };
        }
        self.name_free(&spec.name)?;
        let tx = conn.transaction()?;
        let id = stream_db::insert_stream(&tx, &spec, unix_nanos(self.clock.now()))?;
        tx.commit()?;
        self.catalogue.streams.insert(
            spec.name.clone(),
            StreamRow {
                id,
                spec,
                next_offset: 0,
                bytes: 0,
            },
        );
        Ok(Declared { created: true })
    }

    pub(super) fn streams(&self, conn: &Connection) -> Result<Vec<StreamInfo>, BrokerError> {
        let mut out = Vec::new();
        for s in self.catalogue.streams.values() {
            out.push(self.stream_info(conn, s)?);
        }
        out.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
        Ok(out)
    }

    /// A stream's readable offsets and its groups with their lag.
    pub(super) fn stream_info(
        &self,
        conn: &Connection,
        s: &StreamRow,
    ) -> Result<StreamInfo, BrokerError> {
        let first = stream_db::first_offset(conn, s.id)?.unwrap_or(s.next_offset);
        let groups = stream_db::groups(conn, s.id)?
            .into_iter()
            .map(|(name, committed)| GroupInfo {
                name,
                committed,
                lag: s.next_offset.saturating_sub(committed.max(first)),
            })
            .collect();
        Ok(StreamInfo {
            spec: s.spec.clone(),
            first_offset: first,
            next_offset: s.next_offset,
            groups,
        })
    }

    pub(super) fn stream_publish(
        &mut self,
        tx: &Connection,
        name: &str,
        event: &Event,
        caller: &Caller,
        started: SystemTime,
        spans: &mut Vec<BrokerSpan>,
    ) -> Result<Published, BrokerError> {
        let (id, offset) = {
            let s = self.stream(name)?;
            (s.id, s.next_offset)
        };
        let (span, trace) = self.publish_span(name, event, caller, started);
        let traceparent = traced::traceparent(&span);
        spans.push(span);
        let attributes = serde_json::Value::Object(event.attributes.clone()).to_string();
        stream_db::append(
            tx,
            &stream_db::Append {
                stream_id: id,
                offset,
                event_id: event.id(),
                attributes: &attributes,
                data: event.data.as_deref(),
                data_is_json: event.data_is_json,
                traceparent: &traceparent,
                tracestate: trace.tracestate.as_deref(),
                published_unix_nanos: unix_nanos(self.clock.now()),
            },
        )?;
        // Ahead of the disk if the commit fails: offsets may skip, never repeat.
        if let Some(s) = self.catalogue.streams.get_mut(name) {
            s.next_offset = offset + 1;
            s.bytes += stream_db::event_bytes(&attributes, event.data.as_deref());
        }
        Ok(Published {
            id: event.id().to_string(),
            topic: name.to_string(),
            subscriptions: 0,
            offset: Some(offset),
            traceparent,
        })
    }

    /// The offset a read starts at.
    pub(super) fn resolve(
        &self,
        conn: &Connection,
        name: &str,
        from: ReadFrom,
        group: Option<&str>,
    ) -> Result<u64, BrokerError> {
        let s = self.stream(name)?;
        Ok(match from {
            ReadFrom::Earliest => 0,
            ReadFrom::Latest => s.next_offset,
            ReadFrom::Offset(n) => n,
            ReadFrom::Time(t) => stream_db::offset_at(conn, s.id, t)?.unwrap_or(s.next_offset),
            ReadFrom::Committed => match group {
                Some(g) => stream_db::committed(conn, s.id, g)?.unwrap_or(0),
                None => {
                    return Err(BrokerError::BadRequest(
                        "from=committed needs a group".into(),
                    ))
                }
            },
        })
    }

    /// The offset below which a read's events are read again (a replay): a group's committed
    /// offset; for a read without a group from the earliest event or from a time, the end of
    /// the stream (its history); 0 for a read from the end or from an offset the reader keeps
    /// itself.
    pub(super) fn replay_below(
        &self,
        conn: &Connection,
        name: &str,
        from: ReadFrom,
        group: Option<&str>,
    ) -> Result<u64, BrokerError> {
        let s = self.stream(name)?;
        Ok(match (group, from) {
            (Some(g), _) => stream_db::committed(conn, s.id, g)?.unwrap_or(0),
            (None, ReadFrom::Earliest | ReadFrom::Time(_)) => s.next_offset,
            (None, _) => 0,
        })
    }

    /// Reads up to `max` events from `offset` on, one receive span each; those below
    /// `replay_below` are marked as replays.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn read_stream(
        &self,
        conn: &Connection,
        name: &str,
        offset: u64,
        max: usize,
        group: Option<&str>,
        replay_below: u64,
        caller: &Caller,
        spans: &mut Vec<BrokerSpan>,
    ) -> Result<StreamBatch, BrokerError> {
        let s = self.stream(name)?;
        let service = caller.service.as_deref().unwrap_or(UNKNOWN_SERVICE);
        let now = self.clock.now();
        let mut out = StreamBatch {
            events: Vec::new(),
            next_offset: offset,
        };
        let mut bytes = 0;
        while out.events.len() < max && bytes < MAX_READ_BYTES && out.next_offset < s.next_offset {
            let want = (max - out.events.len()).min(READ_CHUNK);
            let rows = stream_db::read(conn, s.id, out.next_offset, want)?;
            if rows.is_empty() {
                break;
            }
            for row in rows {
                bytes += row.attributes.len() + row.data.as_ref().map_or(0, Vec::len);
                let span = self.tracer.start(Op {
                    operation_type: "receive",
                    operation_name: "receive",
                    kind: SpanKind::Consumer,
                    service,
                    destination: name,
                    subscription: None,
                    group,
                    message_id: &row.event_id,
                    parent: traced::parse_traceparent(&row.traceparent, row.tracestate.as_deref()),
                    start: now,
                    extra: if row.offset < replay_below {
                        vec![
                            KeyValue::new("messaging.switchyard.offset", row.offset as i64),
                            KeyValue::new(crate::model::messaging::REPLAY, true),
                        ]
                    } else {
                        vec![KeyValue::new(
                            "messaging.switchyard.offset",
                            row.offset as i64,
                        )]
                    },
                });
                out.next_offset = row.offset + 1;
                out.events.push(StreamEvent {
                    offset: row.offset,
                    event: stored_event(&row.attributes, row.data, row.data_is_json)
                        .to_structured(),
                    published_unix_nanos: row.published_unix_nanos,
                    traceparent: traced::traceparent(&span),
                    tracestate: row.tracestate,
                });
                spans.push(span);
                if bytes >= MAX_READ_BYTES {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Commits a group's offset (the next offset it will read): at most the stream's end.
    pub(super) fn commit(
        &self,
        tx: &Connection,
        name: &str,
        group: &str,
        offset: u64,
        caller: &Caller,
        spans: &mut Vec<BrokerSpan>,
    ) -> Result<GroupInfo, BrokerError> {
        super::catalogue::validate_name(group)?;
        let s = self.stream(name)?;
        if offset > s.next_offset {
            return Err(BrokerError::BadRequest(format!(
                "offset {offset} is past the end of {name:?} ({})",
                s.next_offset
            )));
        }
        let now = self.clock.now();
        stream_db::commit(tx, s.id, group, offset, unix_nanos(now))?;
        spans.push(self.tracer.start(Op {
            operation_type: "settle",
            operation_name: "commit",
            kind: SpanKind::Client,
            service: caller.service.as_deref().unwrap_or(UNKNOWN_SERVICE),
            destination: name,
            subscription: None,
            group: Some(group),
            message_id: "",
            parent: traced::parent_of(&caller.trace),
            start: now,
            extra: vec![KeyValue::new("messaging.switchyard.offset", offset as i64)],
        }));
        let first = stream_db::first_offset(tx, s.id)?.unwrap_or(s.next_offset);
        Ok(GroupInfo {
            name: group.to_string(),
            committed: offset,
            lag: s.next_offset.saturating_sub(offset.max(first)),
        })
    }

    /// Deletes events older than their stream's `max_age_ms`, then the oldest while it holds
    /// more than `max_bytes`, a few steps per stream (blocking).
    pub(super) fn expire_streams(&mut self, conn: &mut Connection) -> Result<(), BrokerError> {
        let now = unix_nanos(self.clock.now());
        let tx = conn.transaction()?;
        for s in self.catalogue.streams.values_mut() {
            if let Some(age) = s.spec.max_age_ms {
                let before = now.saturating_sub(age.saturating_mul(1_000_000));
                let freed = stream_db::expire(&tx, s.id, before, EXPIRE_STEP)?;
                s.bytes = s.bytes.saturating_sub(freed);
            }
            if let Some(max) = s.spec.max_bytes {
                for _ in 0..TRIM_STEPS {
                    if s.bytes <= max {
                        break;
                    }
                    let freed = stream_db::trim(&tx, s.id, s.bytes - max, EXPIRE_STEP)?;
                    if freed == 0 {
                        // Nothing left to delete: the running count was ahead of the disk.
                        s.bytes = 0;
                        break;
                    }
                    s.bytes = s.bytes.saturating_sub(freed);
                }
            }
        }
        tx.commit()?;
        Ok(())
    }
}
