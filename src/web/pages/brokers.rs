//! `GET /brokers`: each `--discover` broker with its last poll, its latency, its counts and its
//! last error; `GET /api/brokers`: the same statuses as JSON. Both read the discovery threads'
//! shared statuses (no store read, no call to a broker).

use super::format;
use crate::discover::Status;
use crate::web::render::{render, PageError};
use crate::web::AppState;
use actix_web::{web, HttpResponse};
use askama::Template;

/// One broker's row, formatted.
pub struct BrokerRow {
    pub broker: String,
    pub kind: String,
    /// `ok`, `failing` or `waiting` (not polled yet).
    pub state: &'static str,
    pub last_poll: String,
    pub last_ok: String,
    pub latency: String,
    pub polls: u64,
    pub errors: u64,
    pub last_error: String,
    pub destinations: usize,
    pub services: usize,
    pub flows: usize,
}

impl BrokerRow {
    fn from_status(s: &Status) -> BrokerRow {
        let when = |t: Option<u64>| t.map(format::time).unwrap_or_else(|| "never".into());
        BrokerRow {
            broker: s.broker.clone(),
            kind: s.kind.clone(),
            state: state_of(s),
            last_poll: when(s.last_poll_unix_nanos),
            last_ok: when(s.last_ok_unix_nanos),
            latency: format::opt_micros(s.last_latency_micros.map(|m| m as f64)),
            polls: s.polls,
            errors: s.errors,
            last_error: s.last_error.clone().unwrap_or_default(),
            destinations: s.destinations,
            services: s.services,
            flows: s.flows,
        }
    }
}

fn state_of(s: &Status) -> &'static str {
    match (s.polls, &s.last_error) {
        (0, _) => "waiting",
        (_, Some(_)) => "failing",
        (_, None) => "ok",
    }
}

#[derive(Template)]
#[template(path = "brokers.html")]
pub struct BrokersPage {
    pub brokers: Vec<BrokerRow>,
    pub interval: String,
}

pub async fn page(state: web::Data<AppState>) -> Result<HttpResponse, PageError> {
    let brokers = state.discovery.statuses();
    render(BrokersPage {
        brokers: brokers.iter().map(BrokerRow::from_status).collect(),
        interval: humantime::format_duration(state.discovery.interval()).to_string(),
    })
    .await
}

#[derive(serde::Serialize)]
struct BrokersJson {
    interval_millis: u64,
    brokers: Vec<StatusJson>,
}

#[derive(serde::Serialize)]
struct StatusJson {
    #[serde(flatten)]
    status: Status,
    state: &'static str,
}

pub async fn api(state: web::Data<AppState>) -> HttpResponse {
    let brokers = state.discovery.statuses();
    HttpResponse::Ok().json(BrokersJson {
        interval_millis: state.discovery.interval().as_millis() as u64,
        brokers: brokers
            .into_iter()
            .map(|status| StatusJson {
                state: state_of(&status),
                status,
            })
            .collect(),
    })
}
