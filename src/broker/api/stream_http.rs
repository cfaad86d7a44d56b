//! The streams part of the `/broker/` API (docs/BROKER.md).

use super::http::MAX_CONTROL_BODY;
use super::http::{caller, declared, json_body, parse_wait, publish_to, read_body, Answer};
use crate::broker::server::command;
use crate::broker::*;
use actix_web::{web, HttpRequest, HttpResponse};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/broker/streams", web::get().to(streams))
        .route("/broker/streams/{stream}", web::put().to(declare))
        .route(
            "/broker/streams/{stream}",
            web::delete().to(|p, b| super::http::delete(Deletable::Stream, p, b)),
        )
        .route("/broker/streams/{stream}/events", web::post().to(publish))
        .route("/broker/streams/{stream}/events", web::get().to(read))
        .route(
            "/broker/streams/{stream}/groups/{group}/commit",
            web::post().to(commit),
        );
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamBody {
    max_age_ms: Option<u64>,
    max_bytes: Option<u64>,
}

async fn declare(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Payload,
    broker: web::Data<Broker>,
) -> Answer {
    let b: StreamBody = json_body(&read_body(&req, body, MAX_CONTROL_BODY).await?)?;
    let spec = StreamSpec {
        name: path.into_inner(),
        max_age_ms: b.max_age_ms,
        max_bytes: b.max_bytes,
    };
    Ok(declared(
        broker
            .ask(|reply| Command::DeclareStream { spec, reply })
            .await?,
    ))
}

async fn streams(broker: web::Data<Broker>) -> Answer {
    let streams = broker.ask(|reply| Command::Streams { reply }).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "streams": streams })))
}

async fn publish(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Payload,
    broker: web::Data<Broker>,
) -> Answer {
    publish_to(BatchTarget::Stream(path.into_inner()), &req, body, &broker).await
}

#[derive(serde::Deserialize)]
struct ReadQuery {
    from: Option<String>,
    group: Option<String>,
    max: Option<usize>,
    wait: Option<String>,
}

/// `earliest`, `latest`, `committed`, an offset, or an RFC 3339 time.
pub(super) fn parse_from(text: Option<&str>, group: bool) -> Result<ReadFrom, BrokerError> {
    let Some(t) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(if group {
            ReadFrom::Committed
        } else {
            ReadFrom::Earliest
        });
    };
    match t {
        "earliest" => return Ok(ReadFrom::Earliest),
        "latest" => return Ok(ReadFrom::Latest),
        "committed" => return Ok(ReadFrom::Committed),
        _ => {}
    }
    if let Ok(n) = t.parse::<u64>() {
        return Ok(ReadFrom::Offset(n));
    }
    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
        .map(|d| ReadFrom::Time(d.unix_timestamp_nanos().max(0) as u64))
        .map_err(|_| {
            BrokerError::BadRequest(format!(
                "invalid from {t:?}: use earliest, latest, committed, an offset or an RFC 3339 time"
            ))
        })
}

async fn read(
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<ReadQuery>,
    broker: web::Data<Broker>,
) -> Answer {
    let q = query.into_inner();
    let from = parse_from(q.from.as_deref(), q.group.is_some())?;
    let wait = parse_wait(q.wait.as_deref())?;
    let max = q.max.unwrap_or(100);
    if max == 0 || max > MAX_PULL {
        return Err(BrokerError::BadRequest(format!(
            "max must be 1 to {MAX_PULL}"
        )));
    }
    let stream = path.into_inner();
    let caller = caller(&req);
    let batch = broker
        .ask(|reply| {
            Command::StreamRead(command::StreamRead {
                stream,
                from,
                group: q.group,
                max,
                wait: wait.min(MAX_WAIT),
                caller,
                reply,
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(batch))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CommitBody {
    offset: u64,
}

async fn commit(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Payload,
    broker: web::Data<Broker>,
) -> Answer {
    let b: CommitBody = json_body(&read_body(&req, body, MAX_CONTROL_BODY).await?)?;
    let (stream, group) = path.into_inner();
    let caller = caller(&req);
    let info = broker
        .ask(|reply| {
            Command::Commit(command::GroupCommit {
                stream,
                group,
                offset: b.offset,
                caller,
                reply,
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(info))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_accepts_names_offsets_and_times() {
        assert_eq!(parse_from(None, false).unwrap(), ReadFrom::Earliest);
        assert_eq!(parse_from(None, true).unwrap(), ReadFrom::Committed);
        assert_eq!(parse_from(Some("latest"), true).unwrap(), ReadFrom::Latest);
        assert_eq!(parse_from(Some("42"), false).unwrap(), ReadFrom::Offset(42));
        assert_eq!(
            parse_from(Some("1970-01-01T00:00:01Z"), false).unwrap(),
            ReadFrom::Time(1_000_000_000)
        );
        assert!(parse_from(Some("yesterday"), false).is_err());
    }
}
