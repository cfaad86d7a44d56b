//! Listings read beside the router: the subscriptions' queue counts, and dead letters. A page
//! of dead letters is read on a blocking thread from a connection of its own (query only; in
//! WAL mode readers and the router's writer never wait for each other), so a listing of
//! megabytes never holds the router; the page is bounded in count and in bytes
//! ([`MAX_PAGE_BYTES`]) and streamed out one dead letter at a time, so its memory is a few
//! messages whatever the page holds. At most [`LISTINGS_AT_ONCE`] are read at once (a
//! dead-letter listing past that gets 429; the subscriptions' listing waits a little).

use super::catalogue::stored_event;
use super::*;
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::{mpsc, oneshot};

/// Bytes of JSON one page of dead letters holds at most (it always holds one, however large).
pub const MAX_PAGE_BYTES: usize = 4 * 1024 * 1024;
/// Listings read at once.
pub const LISTINGS_AT_ONCE: usize = 2;
/// Longest wait of the subscriptions' listing for a slot.
const SLOT_WAIT: Duration = Duration::from_secs(5);
/// Longest wait for a client to take the next part of a page; a client that stalls longer
/// gets a cut answer and its listing slot goes back.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// Where a page of dead letters starts: after the dead letter that died at `dead_unix_nanos`
/// in queue row `id` (dead letters are listed by time of death, then row). Written
/// `<dead_unix_nanos>-<id>`; clients pass back the `next` of the previous page as it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub dead_unix_nanos: u64,
    pub id: i64,
}

impl Cursor {
    pub fn parse(text: &str) -> Result<Cursor, BrokerError> {
        let bad = || {
            BrokerError::BadRequest(format!(
                "invalid cursor {text:?}: pass the `next` of the previous page"
            ))
        };
        let (dead, id) = text.split_once('-').ok_or_else(bad)?;
        let dead_unix_nanos = dead.parse::<u64>().map_err(|_| bad())?;
        let id = id.parse::<i64>().map_err(|_| bad())?;
        if dead_unix_nanos > i64::MAX as u64 || id < 0 {
            return Err(bad());
        }
        Ok(Cursor {
            dead_unix_nanos,
            id,
        })
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.dead_unix_nanos, self.id)
    }
}

/// The listing connections: idle ones kept for the next listing, and the slots.
pub(super) struct Readers {
    path: std::path::PathBuf,
    /// A std Mutex: only held to push or pop a connection, never across an await.
    idle: Mutex<Vec<Connection>>,
    slots: Arc<tokio::sync::Semaphore>,
}

impl Readers {
    pub(super) fn new(path: &std::path::Path) -> Readers {
        Readers {
            path: path.to_path_buf(),
            idle: Mutex::new(Vec::new()),
            slots: Arc::new(tokio::sync::Semaphore::new(LISTINGS_AT_ONCE)),
        }
    }

    fn take(&self) -> rusqlite::Result<Connection> {
        if let Some(conn) = self.idle.lock().ok().and_then(|mut idle| idle.pop()) {
            return Ok(conn);
        }
        let conn = Connection::open(&self.path)?;
        conn.pragma_update(None, "busy_timeout", 5000)?;
        conn.pragma_update(None, "query_only", true)?;
        Ok(conn)
    }

    fn give(&self, conn: Connection) {
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < LISTINGS_AT_ONCE {
                idle.push(conn);
            }
        }
    }
}

/// A page being read: the parts of its JSON answer, in order (an error cuts it).
pub struct Page {
    rx: mpsc::Receiver<Result<Vec<u8>, BrokerError>>,
}

impl Page {
    pub async fn next(&mut self) -> Option<Result<Vec<u8>, BrokerError>> {
        self.rx.recv().await
    }
}

impl Broker {
    /// A page of a subscription's dead letters, oldest first, after `after`: at most `max`
    /// (1 to [`MAX_PULL`]) and about [`MAX_PAGE_BYTES`] of JSON, as
    /// `{"dead_letters": [...], "next": "<cursor>" | null}`; `next` is set when more may follow.
    /// An unknown subscription or a failed first read is an error before any part.
    pub async fn dead_letters(
        &self,
        subscription: String,
        after: Option<Cursor>,
        max: usize,
    ) -> Result<Page, BrokerError> {
        let slot = self
            .readers
            .slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| BrokerError::TooManyListings)?;
        let sub = self
            .ask(|reply| Command::SubscriptionId {
                name: subscription,
                reply,
            })
            .await?;
        let (readers, rt) = (self.readers.clone(), tokio::runtime::Handle::current());
        let (started, first) = oneshot::channel();
        let (tx, rx) = mpsc::channel(1);
        let max = max.clamp(1, MAX_PULL);
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            let conn = match readers.take() {
                Ok(conn) => conn,
                Err(e) => {
                    let _ = started.send(Err(e.into()));
                    return;
                }
            };
            let out = Out { tx, rt };
            if let Err(e) = list(&conn, sub, after, max, started, &out) {
                out.send(Err(e));
            }
            readers.give(conn);
        });
        first.await.map_err(|_| BrokerError::Closed)??;
        Ok(Page { rx })
    }
}

impl Broker {
    /// Every subscription with its queue's counts now, by name: the router hands over the
    /// declarations, and the counts (a scan of each queue) are read beside it.
    pub async fn subscriptions(&self) -> Result<Vec<SubscriptionInfo>, BrokerError> {
        // A quick listing: it waits for a slot (up to SLOT_WAIT) rather than refusing.
        let slot = tokio::time::timeout(SLOT_WAIT, self.readers.slots.clone().acquire_owned())
            .await
            .map_err(|_| BrokerError::TooManyListings)?
            .map_err(|_| BrokerError::Closed)?;
        let rows = self
            .ask(|reply| Command::SubscriptionRows { reply })
            .await?;
        let (readers, now_ms) = (self.readers.clone(), self.clock.unix_ms());
        let counted = tokio::task::spawn_blocking(move || {
            let _slot = slot;
            let conn = readers.take()?;
            let mut out = Vec::with_capacity(rows.len());
            for (id, spec) in rows {
                let (ready, leased, dead) = super::db::counts(&conn, id, now_ms)?;
                out.push(SubscriptionInfo {
                    spec,
                    ready,
                    leased,
                    dead,
                });
            }
            readers.give(conn);
            out.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
            Ok::<_, BrokerError>(out)
        });
        counted.await.map_err(|_| BrokerError::Closed)?
    }
}

/// Where a page's parts go, each within [`SEND_TIMEOUT`].
struct Out {
    tx: mpsc::Sender<Result<Vec<u8>, BrokerError>>,
    rt: tokio::runtime::Handle,
}

impl Out {
    /// False when the client left or stalled: stop reading.
    fn send(&self, part: Result<Vec<u8>, BrokerError>) -> bool {
        let sent = self
            .rt
            .block_on(tokio::time::timeout(SEND_TIMEOUT, self.tx.send(part)));
        matches!(sent, Ok(Ok(())))
    }
}

/// Reads one page (blocking): the keys of up to `max + 1` dead letters first (small rows), then
/// each message by itself, sent as soon as it is serialized.
fn list(
    conn: &Connection,
    sub: i64,
    after: Option<Cursor>,
    max: usize,
    started: oneshot::Sender<Result<(), BrokerError>>,
    out: &Out,
) -> Result<(), BrokerError> {
    let keys = match dead_keys(conn, sub, after, max + 1) {
        Ok(keys) => keys,
        Err(e) => {
            let _ = started.send(Err(e.into()));
            return Ok(());
        }
    };
    if started.send(Ok(())).is_err() {
        return Ok(());
    }
    let more = keys.len() > max;
    let mut part = b"{\"dead_letters\":[".to_vec();
    let (mut bytes, mut listed) = (part.len(), 0usize);
    let mut last: Option<Cursor> = None;
    let mut cut = false;
    for key in keys.iter().take(max) {
        let Some((attributes, data, data_is_json)) = message(conn, key.seq)? else {
            // Redriven and acknowledged since the keys were read.
            last = Some(key.cursor);
            continue;
        };
        let item = serde_json::to_vec(&DeadLetter {
            event: stored_event(&attributes, data, data_is_json).to_structured(),
            attempts: key.attempts,
            dead_unix_nanos: key.cursor.dead_unix_nanos,
        })
        .map_err(|e| BrokerError::Write(e.to_string()))?;
        if listed > 0 && bytes + item.len() + 1 > MAX_PAGE_BYTES {
            cut = true;
            break;
        }
        if listed > 0 {
            part.push(b',');
        }
        bytes += item.len() + 1;
        part.extend_from_slice(&item);
        drop(item);
        listed += 1;
        last = Some(key.cursor);
        if !out.send(Ok(std::mem::take(&mut part))) {
            return Ok(());
        }
    }
    let next = if cut || more { last } else { None };
    let next = serde_json::to_string(&next.map(|c| c.to_string())).unwrap_or_default();
    part.extend_from_slice(format!("],\"next\":{next}}}").as_bytes());
    out.send(Ok(part));
    Ok(())
}

/// A dead letter's queue row.
struct DeadKey {
    cursor: Cursor,
    seq: i64,
    attempts: u32,
}

/// Up to `limit` dead letters of a subscription after `after`, by time of death then row.
fn dead_keys(
    conn: &Connection,
    sub: i64,
    after: Option<Cursor>,
    limit: usize,
) -> rusqlite::Result<Vec<DeadKey>> {
    let (dead, id) = after.map_or((-1, -1), |c| (c.dead_unix_nanos as i64, c.id));
    let mut stmt = conn.prepare_cached(
        "SELECT id, seq, attempts, COALESCE(dead_unix_nanos, 0) AS dead FROM queue
         WHERE sub_id = ?1 AND state = 1 AND (dead > ?2 OR (dead = ?2 AND id > ?3))
         ORDER BY dead, id LIMIT ?4",
    )?;
    let rows = stmt.query_map(params![sub, dead, id, limit as i64], |r| {
        Ok(DeadKey {
            cursor: Cursor {
                dead_unix_nanos: r.get::<_, i64>(3)?.max(0) as u64,
                id: r.get(0)?,
            },
            seq: r.get(1)?,
            attempts: r.get::<_, i64>(2)?.max(0) as u32,
        })
    })?;
    rows.collect()
}

/// A message's attributes, data and whether the data is JSON.
#[allow(clippy::type_complexity)]
fn message(
    conn: &Connection,
    seq: i64,
) -> rusqlite::Result<Option<(String, Option<Vec<u8>>, bool)>> {
    conn.prepare_cached("SELECT attributes, data, data_is_json FROM messages WHERE seq = ?1")?
        .query_row(params![seq], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_read_back_what_they_write_and_refuse_the_rest() {
        let c = Cursor {
            dead_unix_nanos: 1_795_755_099_000_000_000,
            id: 17,
        };
        assert_eq!(Cursor::parse(&c.to_string()).unwrap(), c);
        for bad in [
            "",
            "1",
            "-1-2",
            "1-",
            "x-1",
            "18446744073709551615-1",
            "1--1",
        ] {
            assert!(Cursor::parse(bad).is_err(), "{bad:?}");
        }
    }
}
