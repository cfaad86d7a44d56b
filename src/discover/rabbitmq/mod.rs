//! RabbitMQ through its management HTTP API (`rabbitmq=http://USER:PASS@HOST:15672[/VHOST]`):
//! one poll reads exchanges, queues, bindings, consumers, connections and channels (of one
//! vhost when the URL names one, of all otherwise) and maps them to a snapshot (`map`).
//!
//! - `api`: the answers' JSON shapes.
//! - `client`: the HTTP client with its timeouts and size cap.
//! - `map`: answers -> snapshot; `infer`: publishers from counters where the broker keeps no
//!   per-exchange publish statistics.

pub mod api;
pub mod client;
pub mod infer;
pub mod map;
#[cfg(test)]
mod tests;

use super::{DiscoverError, Source};
use crate::model::BrokerSnapshot;
use api::{Answers, Channel, Overview};
use client::{Client, Limits};

/// Channels whose per-exchange publishes are read one by one (detailed rates mode) per poll at
/// most; the others count only toward the inference.
const MAX_CHANNEL_DETAILS: usize = 200;

pub struct Rabbitmq {
    label: String,
    client: Client,
    /// `detailed` when the broker keeps per-exchange publish statistics (read once).
    rates_mode: Option<String>,
    publishers: infer::Publishers,
}

impl Rabbitmq {
    pub fn new(url: &str, limits: Limits) -> Result<Rabbitmq, String> {
        let client = Client::new(url, limits)?;
        let label = match &client.vhost {
            Some(v) => format!(
                "rabbitmq {}/{}",
                client.address(),
                crate::percent::encode(v)
            ),
            None => format!("rabbitmq {}", client.address()),
        };
        Ok(Rabbitmq {
            label,
            client,
            rates_mode: None,
            publishers: infer::Publishers::default(),
        })
    }

    /// Every answer one poll needs.
    pub fn read(&mut self) -> Result<Answers, DiscoverError> {
        let c = &self.client;
        let mut answers = Answers {
            exchanges: c.list("exchanges", true)?,
            queues: c.list("queues", true)?,
            bindings: c.list("bindings", true)?,
            consumers: c.list("consumers", true)?,
            connections: c.list("connections", false)?,
            channels: c.list("channels", false)?,
        };
        if let Some(v) = &c.vhost {
            answers.connections.retain(|x| &x.vhost == v);
            answers.channels.retain(|x| &x.vhost == v);
        }
        if self.rates_mode.is_none() {
            let o: Overview = c.get("/api/overview")?;
            self.rates_mode = Some(o.rates_mode);
        }
        if self.rates_mode.as_deref() == Some("detailed") {
            self.read_publishes(&mut answers.channels)?;
        }
        Ok(answers)
    }

    /// Fills the per-exchange publishes of the channels that published.
    fn read_publishes(&self, channels: &mut [Channel]) -> Result<(), DiscoverError> {
        let publishing = channels
            .iter_mut()
            .filter(|ch| {
                ch.message_stats
                    .as_ref()
                    .and_then(|s| s.publish)
                    .unwrap_or(0)
                    > 0
            })
            .take(MAX_CHANNEL_DETAILS);
        for ch in publishing {
            let path = format!("/api/channels/{}", crate::percent::encode(&ch.name));
            // A channel closed since the listing is gone: nothing to read.
            match self.client.get::<Channel>(&path) {
                Ok(detail) => ch.publishes = detail.publishes,
                Err(DiscoverError::Status(404)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl Source for Rabbitmq {
    fn label(&self) -> &str {
        &self.label
    }

    fn poll(&mut self) -> Result<BrokerSnapshot, DiscoverError> {
        let answers = self.read()?;
        let now = crate::model::window::now_unix_nanos();
        Ok(map::snapshot(
            &self.label,
            now,
            &answers,
            &mut self.publishers,
        ))
    }
}
