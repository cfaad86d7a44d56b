//! Request/reply (action/response) inside the router: a request is a topic publish that
//! carries `replyto` (a topic) and `correlationid` (CloudEvents extensions); the requester
//! waits, in memory, until an event with the same `correlationid` is published to `replyto`,
//! or its timeout passes (504). The responder is a plain consumer that publishes its answer
//! with the request's `correlationid` to its `replyto`. The requester's receipt of the reply is
//! a receive span on the reply topic, so the topology shows both directions.

use super::router::{Pending, State};
use super::traced::{self, BrokerSpan, Op, UNKNOWN_SERVICE};
use super::*;
use opentelemetry::trace::SpanKind;
use rusqlite::Connection;
use std::time::Instant;

/// A request as the HTTP layer hands it over.
pub(super) struct Request {
    pub topic: String,
    pub reply_to: String,
    pub event: Event,
    pub caller: Caller,
    pub started: SystemTime,
    pub timeout: Duration,
}

/// A request waiting for its reply.
pub(super) struct Requester {
    reply_to: String,
    deadline: Instant,
    caller: Caller,
    request: Published,
    reply: Reply<Replied>,
}

impl State {
    /// Publishes the request and registers the requester; on error, answers it at once and
    /// returns the error (the caller rolls the savepoint back).
    pub(super) fn request(
        &mut self,
        tx: &Connection,
        req: Request,
        reply: Reply<Replied>,
        spans: &mut Vec<BrokerSpan>,
    ) -> Result<(), BrokerError> {
        let reply_to = req.reply_to.clone();
        let deadline = self.clock.instant() + req.timeout.min(MAX_REPLY_WAIT);
        let caller = req.caller.clone();
        match self.publish_request(tx, req, spans) {
            Ok((id, request)) => {
                let requester = Requester {
                    reply_to,
                    deadline,
                    caller,
                    request,
                    reply,
                };
                self.requests.insert(id, requester);
                Ok(())
            }
            Err(e) => {
                let _ = reply.send(Err(e));
                Err(BrokerError::Closed)
            }
        }
    }

    fn publish_request(
        &mut self,
        tx: &Connection,
        req: Request,
        spans: &mut Vec<BrokerSpan>,
    ) -> Result<(String, Published), BrokerError> {
        if !self.catalogue.topics.contains_key(&req.reply_to) {
            return Err(BrokerError::NotFound(format!(
                "no topic {:?}",
                req.reply_to
            )));
        }
        if self.draining() {
            return Err(BrokerError::Closed);
        }
        if self.requests.len() >= self.max_waiters() {
            return Err(BrokerError::TooManyWaiters);
        }
        let mut event = req.event;
        let id = match event.str_attr("correlationid") {
            Some(id) => id.to_string(),
            None => super::event::generated_id(),
        };
        if self.requests.contains_key(&id) {
            return Err(BrokerError::Conflict(format!(
                "a request with correlationid {id:?} is already waiting"
            )));
        }
        event
            .attributes
            .insert("correlationid".into(), id.clone().into());
        event
            .attributes
            .insert("replyto".into(), req.reply_to.into());
        let published = self.publish(tx, &req.topic, &event, &req.caller, req.started, spans)?;
        Ok((id, published))
    }

    /// The answer to a waiting request, when `event` (just published to `topic`) is its reply.
    pub(super) fn match_reply(
        &mut self,
        topic: &str,
        event: &Event,
        published: &Published,
    ) -> Option<Pending> {
        let id = event.str_attr("correlationid")?;
        if self.requests.get(id)?.reply_to != topic {
            return None;
        }
        let r = self.requests.remove(id)?;
        let span = self.tracer.start(Op {
            operation_type: "receive",
            operation_name: "receive",
            kind: SpanKind::Consumer,
            service: r.caller.service.as_deref().unwrap_or(UNKNOWN_SERVICE),
            destination: topic,
            subscription: None,
            group: None,
            message_id: event.id(),
            parent: traced::parse_traceparent(&published.traceparent, None),
            start: self.clock.now(),
            extra: Vec::new(),
        });
        let replied = Replied {
            request: r.request,
            reply: event.to_structured(),
            traceparent: traced::traceparent(&span),
        };
        Some(Pending::new(r.reply, replied, vec![span]))
    }

    /// Answers requests past their deadline with 504 (all of them with 503 when stopping), and
    /// forgets those whose client went away.
    pub(super) fn expire_requests(&mut self, stopping: bool) {
        let now = self.clock.instant();
        let done: Vec<String> = self
            .requests
            .iter()
            .filter(|(_, r)| stopping || r.deadline <= now || r.reply.is_closed())
            .map(|(id, _)| id.clone())
            .collect();
        for id in done {
            if let Some(r) = self.requests.remove(&id) {
                let error = if stopping {
                    BrokerError::Closed
                } else {
                    BrokerError::Timeout(format!(
                        "no reply on {:?} with correlationid {id:?} in time",
                        r.reply_to
                    ))
                };
                let _ = r.reply.send(Err(error));
            }
        }
    }
}
