//! The queue operations inside the router's transaction: publish (fan-out), deliver (lease,
//! redelivery, dead-letter) and settle (ack, nack), each with its spans.

use super::catalogue::stored_event;
use super::db::{self, SubRow};
use super::event::Event;
use super::router::State;
use super::traced::{self, BrokerSpan, Op, UNKNOWN_SERVICE};
use super::*;
use opentelemetry::trace::SpanKind;
use opentelemetry::KeyValue;
use rusqlite::Connection;

/// Rows read per query while leasing (bounds the memory of one pull to this many messages
/// plus [`MAX_PULL_BYTES`]).
const DUE_CHUNK: usize = 16;
/// A pull stops leasing once its messages hold this many bytes (it always gets one).
const MAX_PULL_BYTES: usize = 8 * 1024 * 1024;

impl State {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn publish(
        &self,
        tx: &Connection,
        topic: &str,
        event: &Event,
        caller: &Caller,
        started: SystemTime,
        spans: &mut Vec<BrokerSpan>,
    ) -> Result<Published, BrokerError> {
        let Some((topic_id, subs)) = self.catalogue.topics.get(topic) else {
            return Err(BrokerError::NotFound(format!("no topic {topic:?}")));
        };
        let hops = event.hops();
        if hops > MAX_PUSH_HOPS {
            return Err(BrokerError::BadRequest(format!(
                "the message went through {hops} push hops, more than {MAX_PUSH_HOPS} (a push loop?)"
            )));
        }
        let (span, trace) = self.publish_span(topic, event, caller, started);
        let traceparent = traced::traceparent(&span);
        spans.push(span);
        let targets: Vec<i64> = subs
            .iter()
            .filter(|(_, f)| f.as_ref().is_none_or(|f| f.matches(event)))
            .map(|(id, _)| *id)
            .collect();
        if !targets.is_empty() {
            let attributes = serde_json::Value::Object(event.attributes.clone()).to_string();
            db::insert_message(
                tx,
                &db::NewMessage {
                    topic_id: *topic_id,
                    event_id: event.id(),
                    attributes: &attributes,
                    data: event.data.as_deref(),
                    data_is_json: event.data_is_json,
                    traceparent: &traceparent,
                    tracestate: trace.tracestate.as_deref(),
                    published_unix_nanos: unix_nanos(self.clock.now()),
                },
                &targets,
            )?;
        }
        Ok(Published {
            id: event.id().to_string(),
            topic: topic.to_string(),
            subscriptions: targets.len(),
            offset: None,
            traceparent,
        })
    }

    /// The publish span of a topic or stream, and the trace context the message carries on.
    pub(super) fn publish_span(
        &self,
        destination: &str,
        event: &Event,
        caller: &Caller,
        started: SystemTime,
    ) -> (BrokerSpan, TraceContext) {
        // The header wins; else the trace context the event carries (distributed tracing
        // extension).
        let trace = if caller.trace.traceparent.is_some() {
            caller.trace.clone()
        } else {
            TraceContext {
                traceparent: event.str_attr("traceparent").map(str::to_string),
                tracestate: event.str_attr("tracestate").map(str::to_string),
            }
        };
        let service = caller
            .service
            .as_deref()
            .or(event.source())
            .unwrap_or(UNKNOWN_SERVICE);
        let size = event.data.as_ref().map_or(0, Vec::len) as i64;
        let span = self.tracer.start(Op {
            operation_type: "send",
            operation_name: "publish",
            kind: SpanKind::Producer,
            service,
            destination,
            subscription: None,
            group: None,
            message_id: event.id(),
            parent: traced::parent_of(&trace),
            start: started,
            extra: vec![KeyValue::new("messaging.message.body.size", size)],
        });
        (span, trace)
    }

    /// Leases up to `max` due messages; dead-letters those out of attempts on the way.
    pub(super) fn deliver(
        &self,
        tx: &Connection,
        name: &str,
        max: usize,
        caller: &Caller,
        spans: &mut Vec<BrokerSpan>,
    ) -> Result<Vec<Delivery>, BrokerError> {
        let sub = self.sub(name)?;
        let now = self.clock.now();
        let now_nanos = unix_nanos(now);
        let now_ms = now_nanos / 1_000_000;
        let service = caller.service.as_deref().unwrap_or(UNKNOWN_SERVICE);
        let mut out = Vec::new();
        let mut bytes = 0;
        while out.len() < max && bytes < MAX_PULL_BYTES {
            let rows = db::due(tx, sub.id, now_ms, (max - out.len()).min(DUE_CHUNK))?;
            if rows.is_empty() {
                break;
            }
            for row in rows {
                if bytes >= MAX_PULL_BYTES {
                    break;
                }
                if row.lease.is_some() {
                    // The previous lease expired without a settlement.
                    let mut span = self.consumer_op(&row, sub, "expire", now, None);
                    traced::fail(
                        &mut span,
                        "lease_expired",
                        format!(
                            "the lease of attempt {} of {} expired without a settlement",
                            row.attempts, sub.spec.max_attempts
                        ),
                    );
                    spans.push(span);
                }
                if row.attempts >= sub.spec.max_attempts {
                    db::kill(tx, row.id, now_nanos)?;
                    let mut span = self.consumer_op(&row, sub, "dead_letter", now, None);
                    traced::fail(&mut span, "dead_letter", dead_lettered(row.attempts));
                    spans.push(span);
                    continue;
                }
                let attempt = row.attempts + 1;
                let mut extra = vec![KeyValue::new(
                    "messaging.switchyard.attempt",
                    attempt as i64,
                )];
                if attempt > 1 {
                    extra.push(KeyValue::new(crate::model::messaging::REDELIVERED, true));
                }
                let span = self.tracer.start(Op {
                    operation_type: "receive",
                    operation_name: "receive",
                    kind: SpanKind::Consumer,
                    service,
                    destination: &sub.spec.name,
                    subscription: Some(&sub.spec.name),
                    group: None,
                    message_id: &row.event_id,
                    parent: traced::parse_traceparent(&row.traceparent, row.tracestate.as_deref()),
                    start: now,
                    extra,
                });
                let traceparent = traced::traceparent(&span);
                let lease_id = format!("{}.{}", row.id, &traceparent[36..52]);
                let expires_ms = now_ms + sub.spec.visibility_timeout_ms;
                bytes += row.attributes.len() + row.data.as_ref().map_or(0, Vec::len);
                db::lease(tx, row.id, &lease_id, service, &traceparent, expires_ms)?;
                self.note_due(sub.id, expires_ms);
                out.push(Delivery {
                    lease_id,
                    event: stored_event(&row.attributes, row.data, row.data_is_json)
                        .to_structured(),
                    attempt,
                    traceparent,
                    tracestate: row.tracestate,
                    lease_expires_unix_nanos: expires_ms * 1_000_000,
                });
                spans.push(span);
            }
        }
        Ok(out)
    }

    /// A settle-type span of the broker itself (lease expiry, dead-lettering), in the name of
    /// the consumer that held the lease, child of that delivery.
    fn consumer_op(
        &self,
        row: &db::Due,
        sub: &SubRow,
        what: &'static str,
        at: SystemTime,
        parent: Option<&str>,
    ) -> BrokerSpan {
        let parent = parent
            .or(row.lease_traceparent.as_deref())
            .and_then(|tp| traced::parse_traceparent(tp, None))
            .or_else(|| traced::parse_traceparent(&row.traceparent, None));
        self.tracer.start(Op {
            operation_type: "settle",
            operation_name: what,
            kind: SpanKind::Internal,
            service: row.lease_service.as_deref().unwrap_or(UNKNOWN_SERVICE),
            destination: &sub.spec.name,
            subscription: Some(&sub.spec.name),
            group: None,
            message_id: &row.event_id,
            parent,
            start: at,
            extra: vec![KeyValue::new(
                "messaging.switchyard.attempt",
                row.attempts as i64,
            )],
        })
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn settle(
        &self,
        tx: &Connection,
        name: &str,
        lease_ids: &[String],
        action: Settle,
        caller: &Caller,
        started: SystemTime,
        spans: &mut Vec<BrokerSpan>,
    ) -> Result<Settled, BrokerError> {
        let sub = self.sub(name)?;
        if let Settle::Nack { delay_ms } = action {
            if delay_ms > MAX_DELAY_MS {
                return Err(BrokerError::BadRequest(format!(
                    "delay_ms must be at most {MAX_DELAY_MS} (12 hours)"
                )));
            }
        }
        let now = self.clock.now();
        let now_ms = unix_nanos(now) / 1_000_000;
        let service = caller.service.as_deref().unwrap_or(UNKNOWN_SERVICE);
        let mut out = Settled::default();
        for lease_id in lease_ids {
            let row_id = lease_id
                .split('.')
                .next()
                .and_then(|s| s.parse::<i64>().ok());
            let found = match row_id {
                Some(id) => db::find_lease(tx, sub.id, id, lease_id)?,
                None => None,
            };
            let Some(leased) = found else {
                out.unknown.push(lease_id.clone());
                continue;
            };
            let (what, dead) = match action {
                Settle::Ack => {
                    db::remove(tx, leased.id, leased.seq)?;
                    ("ack", false)
                }
                Settle::Nack { .. } if leased.attempts >= sub.spec.max_attempts => {
                    db::kill(tx, leased.id, unix_nanos(now))?;
                    ("nack", true)
                }
                Settle::Nack { delay_ms } => {
                    db::release(tx, leased.id, now_ms + delay_ms)?;
                    self.note_due(sub.id, now_ms + delay_ms);
                    ("nack", false)
                }
                Settle::DeadLetter => {
                    db::kill(tx, leased.id, unix_nanos(now))?;
                    ("dead_letter", false)
                }
            };
            let parent = leased
                .lease_traceparent
                .as_deref()
                .and_then(|tp| traced::parse_traceparent(tp, None));
            let op = |operation_name, start| Op {
                operation_type: "settle",
                operation_name,
                kind: SpanKind::Client,
                service,
                destination: &sub.spec.name,
                subscription: Some(&sub.spec.name),
                group: None,
                message_id: &leased.event_id,
                parent: parent.clone(),
                start,
                extra: vec![KeyValue::new(
                    "messaging.switchyard.attempt",
                    leased.attempts as i64,
                )],
            };
            let mut span = self.tracer.start(op(what, started));
            match action {
                Settle::Nack { .. } => traced::fail(
                    &mut span,
                    "nack",
                    format!(
                        "nacked by the consumer (attempt {} of {})",
                        leased.attempts, sub.spec.max_attempts
                    ),
                ),
                Settle::DeadLetter => traced::fail(
                    &mut span,
                    "dead_letter",
                    "moved to the dead-letter queue by its consumer".to_string(),
                ),
                Settle::Ack => {}
            }
            spans.push(span);
            if dead {
                let mut span = self.tracer.start(op("dead_letter", now));
                traced::fail(&mut span, "dead_letter", dead_lettered(leased.attempts));
                spans.push(span);
            }
            out.settled.push(lease_id.clone());
        }
        Ok(out)
    }
}

/// The description of a dead-lettering after the last attempt failed.
fn dead_lettered(attempts: u32) -> String {
    format!("moved to the dead-letter queue after {attempts} failed attempts")
}
