//! Declarations and reads of the catalogue of topics and subscriptions (router-owned; each
//! declaration commits in its own transaction before the in-memory copy changes).

use super::command::Deletable;
use super::db::{self, SubRow};
use super::event::Event;
use super::router::{Command, State};
use super::waiters::Waiting;
use super::*;
use rusqlite::Connection;

impl State {
    pub(super) fn admin(&mut self, conn: &mut Connection, cmd: Command) {
        match cmd {
            Command::DeclareTopic { name, reply } => {
                let _ = reply.send(self.declare_topic(conn, name));
            }
            Command::DeclareSubscription { spec, reply } => {
                let _ = reply.send(self.declare_subscription(conn, spec));
            }
            Command::Topics { reply } => {
                let _ = reply.send(Ok(self.topics()));
            }
            Command::Subscriptions { reply } => {
                let _ = reply.send(self.subscriptions(conn));
            }
            Command::Delete { what, name, reply } => {
                let _ = reply.send(match what {
                    Deletable::Topic => self.delete_topic(conn, &name),
                    Deletable::Subscription => self.delete_subscription(conn, &name),
                    Deletable::Stream => self.delete_stream(conn, &name),
                });
            }
            Command::SubscriptionRows { reply } => {
                let rows = self.catalogue.subs.values();
                let _ = reply.send(Ok(rows.map(|s| (s.id, s.spec.clone())).collect()));
            }
            Command::SubscriptionId { name, reply } => {
                let _ = reply.send(self.sub(&name).map(|s| s.id));
            }
            Command::Redrive {
                subscription,
                reply,
            } => {
                let _ = reply.send(self.redrive(conn, &subscription));
            }
            Command::DeclareStream { spec, reply } => {
                let _ = reply.send(self.declare_stream(conn, spec));
            }
            Command::Streams { reply } => {
                let _ = reply.send(self.streams(conn));
            }
            Command::Destination { name, reply } => {
                let _ = reply.send(self.destination(conn, &name));
            }
            Command::Snapshot { reply } => {
                let _ = reply.send(self.snapshot(conn));
            }
            _ => {}
        }
    }

    fn declare_topic(
        &mut self,
        conn: &mut Connection,
        name: String,
    ) -> Result<Declared, BrokerError> {
        validate_name(&name)?;
        if self.catalogue.topics.contains_key(&name) {
            return Ok(Declared { created: false });
        }
        self.name_free(&name)?;
        let tx = conn.transaction()?;
        let id = db::insert_topic(&tx, &name, unix_nanos(self.clock.now()))?;
        tx.commit()?;
        self.catalogue.topics.insert(name, (id, Vec::new()));
        Ok(Declared { created: true })
    }

    fn declare_subscription(
        &mut self,
        conn: &mut Connection,
        spec: SubscriptionSpec,
    ) -> Result<Declared, BrokerError> {
        validate_name(&spec.name)?;
        if spec.max_attempts == 0 || spec.visibility_timeout_ms == 0 {
            return Err(BrokerError::BadRequest(
                "max_attempts and visibility_timeout_ms must be at least 1".into(),
            ));
        }
        if spec.visibility_timeout_ms > MAX_VISIBILITY_TIMEOUT_MS {
            return Err(BrokerError::BadRequest(format!(
                "visibility_timeout_ms must be at most {MAX_VISIBILITY_TIMEOUT_MS} (12 hours)"
            )));
        }
        if let Some(existing) = self.catalogue.subs.get(&spec.name) {
            return if existing.spec == spec {
                Ok(Declared { created: false })
            } else {
                Err(BrokerError::Conflict(format!(
                    "subscription {:?} exists with other settings: {}",
                    spec.name,
                    serde_json::to_string(&existing.spec).unwrap_or_default()
                )))
            };
        }
        self.name_free(&spec.name)?;
        let Some((topic_id, _)) = self.catalogue.topics.get(&spec.topic) else {
            return Err(BrokerError::NotFound(format!("no topic {:?}", spec.topic)));
        };
        let tx = conn.transaction()?;
        let id = db::insert_subscription(&tx, &spec, *topic_id, unix_nanos(self.clock.now()))?;
        tx.commit()?;
        if let Some(t) = self.catalogue.topics.get_mut(&spec.topic) {
            t.1.push((id, spec.filter.clone()));
        }
        self.catalogue
            .subs
            .insert(spec.name.clone(), SubRow { id, spec });
        Ok(Declared { created: true })
    }

    /// Topics, subscriptions and streams share one namespace (all are destinations).
    pub(super) fn name_free(&self, name: &str) -> Result<(), BrokerError> {
        let kind = if self.catalogue.topics.contains_key(name) {
            "topic"
        } else if self.catalogue.subs.contains_key(name) {
            "subscription"
        } else if self.catalogue.streams.contains_key(name) {
            "stream"
        } else {
            return Ok(());
        };
        Err(BrokerError::Conflict(format!(
            "{name:?} is a {kind}: topics, subscriptions and streams share one namespace"
        )))
    }

    fn topics(&self) -> Vec<TopicInfo> {
        let mut out: Vec<TopicInfo> = self
            .catalogue
            .topics
            .keys()
            .map(|name| {
                let mut subscriptions: Vec<String> = self
                    .catalogue
                    .subs
                    .values()
                    .filter(|s| &s.spec.topic == name)
                    .map(|s| s.spec.name.clone())
                    .collect();
                subscriptions.sort();
                TopicInfo {
                    name: name.clone(),
                    subscriptions,
                }
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    fn subscriptions(&self, conn: &Connection) -> Result<Vec<SubscriptionInfo>, BrokerError> {
        self.subscriptions_where(conn, |_| true)
    }

    /// The subscriptions that `pick` keeps, with their queues' counts now, by name.
    fn subscriptions_where(
        &self,
        conn: &Connection,
        pick: impl Fn(&SubscriptionSpec) -> bool,
    ) -> Result<Vec<SubscriptionInfo>, BrokerError> {
        let now_ms = self.clock.unix_ms();
        let mut out = Vec::new();
        for sub in self.catalogue.subs.values().filter(|s| pick(&s.spec)) {
            let (ready, leased, dead) = db::counts(conn, sub.id, now_ms)?;
            out.push(SubscriptionInfo {
                spec: sub.spec.clone(),
                ready,
                leased,
                dead,
            });
        }
        out.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
        Ok(out)
    }

    /// A topic's subscriptions and their queues, or a stream's offsets and groups.
    fn destination(&self, conn: &Connection, name: &str) -> Result<DestinationState, BrokerError> {
        let subscriptions = self.subscriptions_where(conn, |s| s.topic == name)?;
        let stream = match self.catalogue.streams.get(name) {
            Some(s) => Some(self.stream_info(conn, s)?),
            None => None,
        };
        let subscription = self
            .subscriptions_where(conn, |s| s.name == name)?
            .into_iter()
            .next();
        let now_ms = self.clock.unix_ms();
        let consumers = subscriptions
            .iter()
            .chain(&subscription)
            .map(|s| s.spec.name.as_str())
            .chain(stream.as_ref().map(|s| s.spec.name.as_str()))
            .map(|n| (n.to_string(), self.consumers.active(n, now_ms)))
            .collect();
        Ok(DestinationState {
            declared: self.catalogue.topics.contains_key(name) || stream.is_some(),
            subscriptions,
            stream,
            subscription,
            consumers,
        })
    }

    fn redrive(&self, conn: &mut Connection, name: &str) -> Result<u64, BrokerError> {
        let sub = self.sub(name)?.id;
        let tx = conn.transaction()?;
        let now_ms = self.clock.unix_ms();
        let n = db::redrive(&tx, sub, now_ms)?;
        tx.commit()?;
        Ok(n as u64)
    }

    /// Deletes a topic, its subscriptions and their messages in one transaction.
    fn delete_topic(&mut self, conn: &mut Connection, name: &str) -> Result<Deleted, BrokerError> {
        let Some((topic_id, subs)) = self.catalogue.topics.get(name) else {
            return Err(BrokerError::NotFound(format!("no topic {name:?}")));
        };
        let (topic_id, ids): (i64, Vec<i64>) = (*topic_id, subs.iter().map(|s| s.0).collect());
        let tx = conn.transaction()?;
        for id in &ids {
            db::delete_subscription(&tx, *id)?;
        }
        db::delete_topic(&tx, topic_id)?;
        tx.commit()?;
        self.catalogue.topics.remove(name);
        let mut gone: Vec<String> = self
            .catalogue
            .subs
            .values()
            .filter(|s| ids.contains(&s.id))
            .map(|s| s.spec.name.clone())
            .collect();
        gone.sort();
        for sub in &gone {
            self.forget_subscription(sub);
        }
        Ok(Deleted {
            deleted: name.to_string(),
            subscriptions: gone,
        })
    }

    /// Deletes a subscription and its messages (ready, leased, dead); its waiting pulls are
    /// answered 404 and its push task ends.
    fn delete_subscription(
        &mut self,
        conn: &mut Connection,
        name: &str,
    ) -> Result<Deleted, BrokerError> {
        let id = self.sub(name)?.id;
        let tx = conn.transaction()?;
        db::delete_subscription(&tx, id)?;
        tx.commit()?;
        self.forget_subscription(name);
        Ok(Deleted {
            deleted: name.to_string(),
            subscriptions: Vec::new(),
        })
    }

    /// Deletes a stream with its events and groups; its waiting reads are answered 404.
    fn delete_stream(&mut self, conn: &mut Connection, name: &str) -> Result<Deleted, BrokerError> {
        let id = self.stream(name)?.id;
        let tx = conn.transaction()?;
        super::stream_db::delete_stream(&tx, id)?;
        tx.commit()?;
        self.catalogue.streams.remove(name);
        self.consumers.forget(name);
        self.end_waiters(|w| matches!(w, Waiting::Read { stream, .. } if stream == name));
        Ok(Deleted {
            deleted: name.to_string(),
            subscriptions: Vec::new(),
        })
    }

    /// Drops a deleted subscription from the catalogue and answers its waiting pulls.
    fn forget_subscription(&mut self, name: &str) {
        let Some(sub) = self.catalogue.subs.remove(name) else {
            return;
        };
        if let Some(t) = self.catalogue.topics.get_mut(&sub.spec.topic) {
            t.1.retain(|(id, _)| *id != sub.id);
        }
        self.due.borrow_mut().remove(&sub.id);
        self.consumers.forget(name);
        self.end_waiters(
            |w| matches!(w, Waiting::Pull { subscription, .. } if subscription == name),
        );
    }

    pub(super) fn sub(&self, name: &str) -> Result<&SubRow, BrokerError> {
        self.catalogue
            .subs
            .get(name)
            .ok_or_else(|| BrokerError::NotFound(format!("no subscription {name:?}")))
    }
}

/// Names of topics, subscriptions, streams and groups: 1 to 200 of `A-Z a-z 0-9 . _ -`, not
/// only dots (`.` and `..` are path segments that URLs normalise away).
pub(super) fn validate_name(name: &str) -> Result<(), BrokerError> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && !name.bytes().all(|b| b == b'.');
    if ok {
        Ok(())
    } else {
        Err(BrokerError::BadRequest(format!(
            "invalid name {name:?}: 1 to 200 of letters, digits, '.', '_' and '-', not only dots"
        )))
    }
}

pub(super) fn stored_event(attributes: &str, data: Option<Vec<u8>>, data_is_json: bool) -> Event {
    Event {
        attributes: serde_json::from_str(attributes).unwrap_or_default(),
        data,
        data_is_json,
    }
}
