//! `/api/topology` templates built ahead: the windows clients asked in the last minutes are
//! built again on a thread of their own as soon as the store's generation changes (a broker's
//! poll, spans, retention) and at each minute's turn, so that the next request meets a ready
//! template ([`answers::kept_or_built`]) instead of building afresh. A request that comes
//! while such a build for its generation runs waits for it rather than building a second.
//!
//! Bounded: one build at a time, the windows of at most [`KEPT_ASKS`] recent asks, a rest of
//! [`REST_FACTOR`] times the last build's time (at least [`REST_LEAST`]) between two builds
//! (under a steady stream of commits, builds are coalesced, never one per commit), a window
//! built ahead at most once per request for it (commits faster than requests make no builds
//! that nobody asks for), none for a window whose template is too large to keep, and no
//! thread at all once no client asked for [`RECENT`].

use super::answers::{self, How};
use crate::model::window::{self, now_unix_nanos};
use crate::model::TimeWindow;
use crate::store::{interface, Storage, Store, StoreError};
use crate::topology::declared::Declared;
use crate::topology::json::Template;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// Asks remembered, the most recent first.
const KEPT_ASKS: usize = 4;
/// An ask is remembered this long after it was last made.
const RECENT: Duration = Duration::from_secs(120);
/// Window parameters longer than this (not RFC 3339 times) are not remembered.
const LONGEST_PARAM: usize = 64;
/// The rest between two builds ahead: this many times the last build's time...
const REST_FACTOR: u32 = 4;
/// ...and at least this long.
const REST_LEAST: Duration = Duration::from_millis(250);

/// The topology answer for `window` as built afresh (read, built, compared with the
/// `--declared` documents, written).
pub fn build(
    s: &dyn Storage,
    declared: &Declared,
    window: TimeWindow,
) -> Result<Template, StoreError> {
    let mut topo = crate::topology::build(s.topology(window)?, window);
    declared.apply(&mut topo);
    Template::of(&topo).map_err(|e| StoreError::Backend(format!("topology JSON: {e}")))
}

/// The builder ahead of one server (a cheap handle).
#[derive(Clone)]
pub struct Ahead(Arc<Inner>);

struct Inner {
    store: Store,
    declared: Arc<Declared>,
    // A std Mutex: held to update a list of at most four asks, never across an await.
    asks: Mutex<Asks>,
}

#[derive(Default)]
struct Asks {
    list: Vec<Ask>,
    /// Asks whose template was too large to keep ([`answers::template`] never finds it):
    /// not built ahead (nothing would use the build) while they are recent.
    unkept: Vec<(Option<String>, Option<String>, Instant)>,
    /// Whether the builder's thread runs.
    running: bool,
}

struct Ask {
    /// `since` and `until` as the client gave them.
    since: Option<String>,
    until: Option<String>,
    /// When last asked.
    at: Instant,
    /// Asked again since the builder last built it: a window is built ahead at most once per
    /// request for it, so that under a stream of commits (each a new generation) builds
    /// nobody asks for are not made one after the other.
    again: bool,
}

impl Ahead {
    pub fn new(store: Store, declared: Arc<Declared>) -> Ahead {
        Ahead(Arc::new(Inner {
            store,
            declared,
            asks: Mutex::new(Asks::default()),
        }))
    }

    /// Remembers a window a client asked for (its parameters as given: a window ending now
    /// is one again at each build), starting the builder's thread when it is not running.
    pub fn asked(&self, since: Option<&str>, until: Option<&str>) {
        let long = |p: Option<&str>| p.is_some_and(|p| p.len() > LONGEST_PARAM);
        if long(since) || long(until) || self.0.store.generation().is_none() {
            return;
        }
        let Ok(mut asks) = self.0.asks.lock() else {
            return;
        };
        let (since, until) = (since.map(str::to_string), until.map(str::to_string));
        asks.unkept.retain(|(_, _, at)| at.elapsed() < RECENT);
        if asks
            .unkept
            .iter()
            .any(|(s, u, _)| *s == since && *u == until)
        {
            return;
        }
        asks.list
            .retain(|a| !(a.since == since && a.until == until));
        asks.list.insert(
            0,
            Ask {
                since,
                until,
                at: Instant::now(),
                again: true,
            },
        );
        asks.list.truncate(KEPT_ASKS);
        if !asks.running {
            let weak = Arc::downgrade(&self.0);
            let started = std::thread::Builder::new()
                .name("topology-ahead".into())
                .spawn(move || run(weak));
            asks.running = started.is_ok();
        }
    }
}

/// The windows asked recently, and again since the builder last built them, as they are now
/// (with the ask's parameters); `None` (and the thread marked stopped) when none was asked
/// for [`RECENT`].
type Taken = (TimeWindow, Option<String>, Option<String>);

fn recent(inner: &Inner, now: u64) -> Option<Vec<Taken>> {
    let mut asks = inner.asks.lock().ok()?;
    asks.list.retain(|a| a.at.elapsed() < RECENT);
    if asks.list.is_empty() {
        asks.running = false;
        return None;
    }
    let windows = asks
        .list
        .iter()
        .filter(|a| a.again)
        .filter_map(|a| {
            let w = window::parse_window(a.since.as_deref(), a.until.as_deref(), now).ok()?;
            Some((w, a.since.clone(), a.until.clone()))
        })
        .collect();
    Some(windows)
}

/// Marks the builder stopped when its thread ends, however it ends (a build that panicked
/// included), so that the next ask starts another.
struct Running(Weak<Inner>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(inner) = self.0.upgrade() {
            if let Ok(mut asks) = inner.asks.lock() {
                asks.running = false;
            }
        }
    }
}

/// The builder's thread: builds what is missing, then waits for a new generation or the next
/// minute's turn, and rests between builds; ends when its server is gone or nobody asked.
fn run(weak: Weak<Inner>) {
    let _running = Running(weak.clone());
    let mut seen = interface::generations_replaced();
    let mut rest_until = Instant::now();
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let Some(windows) = recent(&inner, now_unix_nanos()) else {
            return;
        };
        for (window, since, until) in windows {
            let (first, last) = window.minutes();
            let key = |generation| (first, last, generation);
            let Some(generation) = inner.store.generation() else {
                return;
            };
            if answers::template(key(generation)).is_some() {
                continue;
            }
            let now = Instant::now();
            if rest_until > now {
                std::thread::sleep(rest_until - now);
            }
            // The generation is read before the data (a commit may have come in the rest).
            let Some(generation) = inner.store.generation() else {
                continue;
            };
            let key = key(generation);
            let started = Instant::now();
            let built =
                answers::kept_or_built(key, || build(&*inner.store, &inner.declared, window));
            match built {
                Ok((_, How::Built)) => {
                    answers::COUNTS.built_ahead.fetch_add(1, Ordering::Relaxed);
                    let kept = answers::template(key).is_some();
                    if let Ok(mut asks) = inner.asks.lock() {
                        let this = |a: &Ask| a.since == since && a.until == until;
                        if kept {
                            // Built once ahead: again only after the next request for it.
                            asks.list.iter_mut().filter(|a| this(a)).for_each(|a| {
                                a.again = false;
                            });
                        } else {
                            // Too large to keep: no request would meet it.
                            asks.list.retain(|a| !this(a));
                            asks.unkept.push((since, until, Instant::now()));
                            asks.unkept.truncate(KEPT_ASKS);
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "topology built ahead failed"),
            }
            let rest = (started.elapsed() * REST_FACTOR).max(REST_LEAST);
            rest_until = Instant::now() + rest;
        }
        drop(inner);
        // Until the next minute's turn (a window ending now covers other minutes then), from
        // the time after the builds and rests above.
        let into_minute = now_unix_nanos() % 60_000_000_000;
        let to_turn = Duration::from_nanos(60_000_000_000 - into_minute) + Duration::from_millis(5);
        seen = interface::wait_generation_replaced(seen, to_turn);
    }
}
