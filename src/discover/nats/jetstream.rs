//! `--discover nats=nats://HOST:4222`: JetStream's own API over the client protocol. One
//! connection per source, made on the first poll and again after any failure; each poll lists
//! the streams and each stream's consumers a page at a time (the server pages them), within
//! [`Limits`]. The source runs on the runner's plain thread, so it owns a current-thread tokio
//! runtime and drives the client only while it polls.

use super::api::{self, ConsumerInfo, ConsumerPage, StreamInfo, StreamPage};
use super::{millis, names, now_unix_nanos, Assembly, Endpoint, Limits};
use crate::discover::{DiscoverError, Source, Spec};
use crate::model::BrokerSnapshot;
use async_nats::{ConnectErrorKind, ConnectOptions, RequestErrorKind};
use serde::de::DeserializeOwned;
use std::future::Future;

/// How the connection introduces itself to the server (its `/connz` shows it).
const CONNECTION_NAME: &str = "switchyard discovery";

pub struct JetStreamSource {
    label: String,
    endpoint: Endpoint,
    limits: Limits,
    runtime: tokio::runtime::Runtime,
    client: Option<async_nats::Client>,
}

impl JetStreamSource {
    pub fn new(spec: &Spec, limits: Limits) -> Result<JetStreamSource, DiscoverError> {
        let endpoint = Endpoint::parse(&spec.url, 4222)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| DiscoverError::Unreachable(format!("no runtime for the client: {e}")))?;
        Ok(JetStreamSource {
            label: format!("nats {}", endpoint.host_port()),
            endpoint,
            limits,
            runtime,
            client: None,
        })
    }
}

impl Source for JetStreamSource {
    fn label(&self) -> &str {
        &self.label
    }

    fn poll(&mut self) -> Result<BrokerSnapshot, DiscoverError> {
        let client = match self.client.take() {
            Some(c) if c.connection_state() == async_nats::connection::State::Connected => c,
            _ => self
                .runtime
                .block_on(connect(&self.endpoint, self.limits))?,
        };
        let taken = now_unix_nanos();
        // The timer is made inside the runtime: outside, it has no clock to run on.
        let budget = self.limits.poll_budget;
        let reading = async { tokio::time::timeout(budget, read_all(&client, self.limits)).await };
        let read = self
            .runtime
            .block_on(reading)
            .map_err(|_| DiscoverError::Timeout(millis(budget)))??;
        // Keep the connection only after a poll that worked.
        self.client = Some(client);
        let revealed = names::revealed(&read.server_id);
        Ok(snapshot(
            &self.label,
            taken,
            &read.streams,
            &read.consumers,
            &revealed,
        ))
    }
}

/// Everything one poll read from the server.
struct Read {
    server_id: String,
    streams: Vec<StreamInfo>,
    consumers: Vec<ConsumerInfo>,
}

/// Streams and consumers as destinations, services and flows.
pub fn snapshot(
    label: &str,
    taken_unix_nanos: u64,
    streams: &[StreamInfo],
    consumers: &[ConsumerInfo],
    revealed: &names::Revealed,
) -> BrokerSnapshot {
    let mut out = Assembly::default();
    for s in streams {
        out.destination(api::stream_destination(s));
    }
    for c in consumers {
        let service = api::consumer_service(c, revealed);
        out.service(&service);
        out.flow(api::consumer_flow(c, &service));
    }
    out.finish(label, taken_unix_nanos)
}

async fn connect(endpoint: &Endpoint, limits: Limits) -> Result<async_nats::Client, DiscoverError> {
    let options = match (&endpoint.user, &endpoint.password) {
        (Some(user), Some(pass)) => {
            ConnectOptions::with_user_and_password(user.clone(), pass.clone())
        }
        (Some(token), None) => ConnectOptions::with_token(token.clone()),
        _ => ConnectOptions::new(),
    };
    let options = options
        .name(CONNECTION_NAME)
        .connection_timeout(limits.timeout)
        .request_timeout(Some(limits.timeout))
        .max_reconnects(Some(1));
    // The address without credentials: they travel in the options only.
    let address = format!("{}://{}", endpoint.scheme, endpoint.host_port());
    let connecting = options.connect(address);
    match bounded(limits, connecting).await? {
        Ok(client) => Ok(client),
        Err(e) => Err(match e.kind() {
            ConnectErrorKind::TimedOut => DiscoverError::Timeout(limits.timeout_millis()),
            ConnectErrorKind::Authentication | ConnectErrorKind::AuthorizationViolation => {
                DiscoverError::Unreachable("the server refused the credentials".to_string())
            }
            ConnectErrorKind::Dns => DiscoverError::Unreachable("unknown host".to_string()),
            ConnectErrorKind::Tls => DiscoverError::Unreachable("TLS failed".to_string()),
            ConnectErrorKind::ServerParse => {
                DiscoverError::BadAnswer("not a NATS server address".to_string())
            }
            ConnectErrorKind::Io | ConnectErrorKind::MaxReconnects => {
                DiscoverError::Unreachable("connection failed".to_string())
            }
        }),
    }
}

async fn read_all(client: &async_nats::Client, limits: Limits) -> Result<Read, DiscoverError> {
    let streams = list(
        client,
        limits,
        "$JS.API.STREAM.LIST",
        limits.max_streams,
        |p: StreamPage| (p.error, p.total, p.streams),
    )
    .await?;
    let mut consumers = Vec::new();
    for s in &streams {
        let budget = limits.max_consumers.saturating_sub(consumers.len());
        if budget == 0 {
            tracing::warn!(
                max = limits.max_consumers,
                "nats: consumers beyond the limit left out"
            );
            break;
        }
        if !api::is_token(&s.config.name) {
            continue;
        }
        let subject = format!("$JS.API.CONSUMER.LIST.{}", s.config.name);
        let page = |p: ConsumerPage| (p.error, p.total, p.consumers);
        consumers.extend(list(client, limits, &subject, budget, page).await?);
    }
    Ok(Read {
        server_id: client.server_info().server_id,
        streams,
        consumers,
    })
}

/// Reads a paged JetStream listing up to `max` items.
async fn list<P: DeserializeOwned, T>(
    client: &async_nats::Client,
    limits: Limits,
    subject: &str,
    max: usize,
    parts: impl Fn(P) -> (Option<api::ApiError>, u64, Option<Vec<T>>),
) -> Result<Vec<T>, DiscoverError> {
    let mut items = Vec::new();
    loop {
        let body = serde_json::json!({ "offset": items.len() }).to_string();
        let answer = bounded(limits, client.request(subject.to_string(), body.into()))
            .await?
            .map_err(|e| match e.kind() {
                RequestErrorKind::TimedOut => DiscoverError::Timeout(limits.timeout_millis()),
                RequestErrorKind::NoResponders => DiscoverError::BadAnswer(
                    "JetStream is not enabled for this connection's account".to_string(),
                ),
                _ => DiscoverError::Unreachable("the request failed".to_string()),
            })?;
        let page: P = serde_json::from_slice(&answer.payload)
            .map_err(|e| DiscoverError::BadAnswer(format!("{subject}: {e}")))?;
        let (error, total, page) = parts(page);
        if let Some(e) = error {
            if e.code == 404 {
                // Deleted since it was listed: nothing left to list.
                return Ok(items);
            }
            return Err(DiscoverError::BadAnswer(format!(
                "{subject}: {} ({})",
                e.description, e.code
            )));
        }
        let page = page.unwrap_or_default();
        let room = max.saturating_sub(items.len());
        let got = page.len();
        items.extend(page.into_iter().take(room));
        if got == 0 || items.len() as u64 >= total {
            return Ok(items);
        }
        if items.len() >= max {
            tracing::warn!(
                subject,
                max,
                total,
                "nats: listing beyond the limit left out"
            );
            return Ok(items);
        }
    }
}

/// `work`, or a timeout error after [`Limits::timeout`].
async fn bounded<T>(limits: Limits, work: impl Future<Output = T>) -> Result<T, DiscoverError> {
    tokio::time::timeout(limits.timeout, work)
        .await
        .map_err(|_| DiscoverError::Timeout(limits.timeout_millis()))
}
