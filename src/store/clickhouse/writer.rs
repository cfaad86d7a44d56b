//! The ClickHouse store's writer thread: takes every queued write (up to a group limit),
//! analyses its spans with the pairing rules (`accounting`), and inserts the group as one
//! insert per table; every write of the group is answered after ClickHouse answered its
//! inserts (the parts are written), or with the error (503 when ClickHouse is unreachable).
//! A failed group leaves the writer's memory stale: it is rebuilt before the next group.

use super::backlog::{self, ChBacklog, GroupBacklog};
use super::client::{Client, ClientError, External};
use super::index;
use super::rowbinary::{KeyedRows, Rows};
use super::sql::{render, Value};
use crate::accounting::memory::{span_hash, Delivered, Nodes, PendingKeys, RecentFacts, Seen};
use crate::accounting::minutes::{Accumulator, Observed};
use crate::accounting::minutes::{EdgeDelta, EdgeMinuteKey};
use crate::accounting::{pairable, Pairing};
use crate::mailbox::{Receiver, RecvTimeoutError};
use crate::model::window::{now_unix_nanos, unix_minute};
use crate::model::{BrokerSnapshot, NodeKey, SpanId, TraceId};
use crate::store::interface::WriteBatch;
use crate::store::{attributes_json, Prepared, StoreError, WriteOutcome};
use foldhash::{HashMap, HashSet};
use std::time::{Duration, Instant};

#[path = "reconcile.rs"]
mod reconcile;
#[cfg(test)]
pub(super) use reconcile::BY_TRACE;

pub type Reply = tokio::sync::oneshot::Sender<Result<WriteOutcome, StoreError>>;

pub enum Command {
    Write {
        batch: WriteBatch,
        reply: Reply,
    },
    /// Insert everything queued, then stop.
    Shutdown,
}

/// Spans inserted together at most (ClickHouse wants few large inserts).
const GROUP_LIMIT: usize = 16_384;
/// How long a group waits at most for more writes, and how long at most between two of them
/// (see [`gather`]).
const LINGER: Duration = Duration::from_millis(30);
const LINGER_GAP: Duration = Duration::from_millis(10);
const SEEN_CAP: usize = 1 << 19;
const FACTS_CAP: usize = 1 << 17;
const IDLE_TICK: Duration = Duration::from_millis(500);
const RETENTION_EVERY: Duration = Duration::from_secs(60);
/// The reconciliation pass runs at most this often (and at least every half settle delay).
const RECONCILE_EVERY_MAX: Duration = Duration::from_secs(60);
const RECONCILE_EVERY_MIN: Duration = Duration::from_secs(1);

/// What the writer does between groups besides inserting.
#[derive(Clone, Copy, Debug)]
pub struct Upkeep {
    /// Days wholly older than this are dropped (about once a minute).
    pub retention: Option<Duration>,
    /// Past this many bytes on disk, the oldest days are dropped (never the newest).
    pub retention_size: Option<u64>,
    /// A wait the reconciliation pass finds unsettled is settled once it has been for this
    /// long (longer than a group's inserts take: see `reconcile.rs`).
    pub settle: Duration,
}

impl Default for Upkeep {
    fn default() -> Upkeep {
        Upkeep {
            retention: None,
            retention_size: None,
            settle: DEFAULT_SETTLE,
        }
    }
}

/// The default settle delay: well past the time a group's inserts may take (each insert is
/// answered within the client's read timeout, 30 s).
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(120);

pub struct Writer {
    client: Client,
    rx: Receiver<Command>,
    seen: Seen,
    recent: RecentFacts,
    pending: PendingKeys,
    nodes: Nodes,
    delivered: Delivered,
    known_nodes: HashSet<String>,
    acc: Accumulator,
    group: GroupBacklog,
    flag_version: u64,
    /// Set after a failed group: the memory is rebuilt before the next one.
    stale: bool,
    retention: Option<Duration>,
    retention_size: Option<u64>,
    last_retention: Option<Instant>,
    settle: Duration,
    suspects: reconcile::Suspects,
    last_reconcile: Option<Instant>,
    /// Writes in the two groups before (the last first): how many clients were sending.
    last_writes: [usize; 2],
}

impl Writer {
    pub fn new(
        client: Client,
        rx: Receiver<Command>,
        upkeep: Upkeep,
    ) -> Result<Writer, StoreError> {
        let mut w = Writer {
            client,
            rx,
            seen: Seen::new(SEEN_CAP),
            recent: RecentFacts::new(FACTS_CAP),
            pending: PendingKeys::default(),
            nodes: Nodes::default(),
            delivered: Delivered::journaled(FACTS_CAP),
            known_nodes: HashSet::default(),
            acc: Accumulator::default(),
            group: GroupBacklog::default(),
            flag_version: now_unix_nanos(),
            stale: true,
            retention: upkeep.retention,
            retention_size: upkeep.retention_size,
            last_retention: None,
            settle: upkeep.settle,
            suspects: reconcile::Suspects::default(),
            last_reconcile: None,
            last_writes: [0; 2],
        };
        w.reload()?;
        Ok(w)
    }

    /// Starts the memory over (at start, and after a failed group, whose spans may or may
    /// not have landed): what it held is read back from ClickHouse when needed.
    fn reload(&mut self) -> Result<(), ClientError> {
        self.seen = Seen::new(SEEN_CAP);
        self.recent = RecentFacts::new(FACTS_CAP);
        self.pending = PendingKeys::default();
        self.delivered = Delivered::journaled(FACTS_CAP);
        self.known_nodes.clear();
        self.acc.reset();
        self.group.clear();
        self.stale = false;
        Ok(())
    }

    pub fn run(mut self) {
        loop {
            let first = match self.rx.recv_timeout(IDLE_TICK) {
                Ok(cmd) => cmd,
                Err(RecvTimeoutError::Timeout) => {
                    self.maintain();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let [last, before] = self.last_writes;
            let linger = Linger {
                expected: if last > 1 { last + before } else { 0 },
                most: LINGER,
                gap: LINGER_GAP,
            };
            let (group, stop) = gather(&self.rx, first, GROUP_LIMIT, linger);
            self.last_writes = [group.len(), last];
            self.commit(group);
            self.maintain();
            if stop {
                tracing::info!("clickhouse writer stopped after its final insert");
                return;
            }
        }
    }

    /// Spans that start before this time (unix nanoseconds) are past the retention: not
    /// stored (0 without a retention).
    fn expire_before(&self) -> u64 {
        self.retention.map_or(0, |max_age| {
            now_unix_nanos().saturating_sub(crate::model::window::duration_nanos(max_age))
        })
    }

    /// Retention (age, size) at most once a minute, the reconciliation pass about every half settle
    /// delay (between groups or when idle).
    fn maintain(&mut self) {
        let every = (self.settle / 2).clamp(RECONCILE_EVERY_MIN, RECONCILE_EVERY_MAX);
        let now = Instant::now();
        if self
            .last_reconcile
            .is_none_or(|t| now.duration_since(t) >= every)
        {
            self.last_reconcile = Some(now);
            match self.reconcile(now) {
                Ok(0) => {}
                Ok(n) => tracing::info!(waits = n, "clickhouse reconciliation settled waits"),
                Err(e) => tracing::warn!(error = %e, "clickhouse reconciliation pass failed"),
            }
        }
        if self.retention.is_none() && self.retention_size.is_none() {
            return;
        }
        if self
            .last_retention
            .is_some_and(|t| t.elapsed() < RETENTION_EVERY)
        {
            return;
        }
        self.last_retention = Some(Instant::now());
        if self.retention.is_some() {
            match super::retention::drop_before(&self.client, self.expire_before()) {
                Ok(0) => {}
                Ok(n) => tracing::info!(partitions = n, "clickhouse retention dropped old days"),
                Err(e) => tracing::warn!(error = %e, "clickhouse retention pass failed"),
            }
        }
        if let Some(max) = self.retention_size {
            match super::retention::drop_oldest_over(&self.client, max) {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    days = n,
                    "clickhouse retention by size dropped the oldest days"
                ),
                Err(e) => tracing::warn!(error = %e, "clickhouse retention by size failed"),
            }
        }
    }

    fn commit(&mut self, group: Vec<(WriteBatch, Reply)>) {
        if group.is_empty() {
            return;
        }
        let result = if self.stale { self.reload() } else { Ok(()) };
        let result = result.and_then(|()| self.insert_group(&group));
        match result {
            Ok(outcomes) => {
                for ((_, reply), outcome) in group.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "clickhouse insert failed; the group is refused");
                self.stale = true;
                for (_, reply) in group {
                    let _ = reply.send(Err(StoreError::from(clone_error(&e))));
                }
            }
        }
    }

    fn insert_group(
        &mut self,
        group: &[(WriteBatch, Reply)],
    ) -> Result<Vec<WriteOutcome>, ClientError> {
        let Lookup {
            existing,
            waited_for,
            fresh,
        } = self.lookup(group)?;
        // Spans of this group that stored spans wait for, whichever collector stored them.
        self.pending.extend(waited_for);
        // Which services the publishes this group's consumes refer to reached, whichever
        // collector stored those deliveries (also after a restart). A publish first stored by
        // this group has no deliveries anywhere yet: not read.
        let mut publishes = referred_publishes(group);
        publishes.retain(|(t, s)| !fresh.contains(&span_hash(*t, *s)));
        reconcile::recall(&self.client, &mut self.delivered, &publishes, None)?;
        // `spans` and `span_keys32` rows in their tables' order (ClickHouse skips sorting them).
        let mut spans = KeyedRows::default();
        let mut keys = KeyedRows::default();
        let mut resources = Resources::default();
        let mut terms = index::GroupTerms::default();
        let mut brokers = [Rows::default(), Rows::default()];
        let mut outcomes = Vec::with_capacity(group.len());
        self.group.clear();
        let expire_before = self.expire_before();
        for (write, _) in group {
            let mut outcome = WriteOutcome::default();
            match write {
                WriteBatch::Spans(list) => {
                    // Oldest first: a parent (or a publish) before the spans that refer to
                    // it, found in memory instead of looked up in `spans` one by one (SDKs
                    // export a span when it ends, children before their parents).
                    let mut list: Vec<_> = list.iter().collect();
                    list.sort_by_key(|p| p.span.start_unix_nanos);
                    for p in list {
                        let s = &p.span;
                        // Retention would drop it with its day: refused, as the SQLite store
                        // does, and reported as rejected.
                        if s.start_unix_nanos < expire_before {
                            outcome.expired += 1;
                            continue;
                        }
                        let pairable = pairable(s.kind, s.messaging.as_ref().map(|m| m.operation));
                        let hash = span_hash(s.trace_id, s.span_id);
                        if existing.contains(&hash) || !self.seen.insert(hash, pairable) {
                            outcome.duplicates += 1;
                            continue;
                        }
                        let mut pairing = Pairing {
                            backlog: &mut ChBacklog {
                                client: &self.client,
                                group: &mut self.group,
                                flag_version: &mut self.flag_version,
                            },
                            acc: &mut self.acc,
                            recent: &mut self.recent,
                            seen: &self.seen,
                            pending: &mut self.pending,
                            nodes: &mut self.nodes,
                            delivered: &mut self.delivered,
                        };
                        let flags = pairing.analyse(s, p.db_system.as_deref(), &p.marks)?;
                        let marked = crate::store::insert::marked_failed(p, flags);
                        let stored = marked.as_ref().unwrap_or(p);
                        let resource = resources.json(&s.resource);
                        spans.push((s.trace_id.0, s.span_id.0), |rows| {
                            span_row(rows, stored, resource, flags)
                        });
                        // Its names are the stored copy's: only the status may differ.
                        terms.add(s, stored.span.status == crate::model::StatusCode::Error);
                        let second = start_second(s.start_unix_nanos);
                        let key = stored_key(hash);
                        keys.push((second, key), |rows| {
                            rows.date(s.start_unix_nanos).u32(second).u32(key);
                            rows.end_row();
                        });
                        outcome.stored += 1;
                    }
                }
                WriteBatch::BrokerState(snapshot) => {
                    self.nodes.broker_state(snapshot);
                    broker_rows(&mut brokers, snapshot)
                }
            }
            outcomes.push(outcome);
        }
        let [flags, waits, done] = backlog::encode(&self.group);
        let deliveries = reconcile::delivery_rows(&self.delivered.take_journal());
        let (stats, new_nodes, observed) = self.stats_rows();
        let terms = terms.take_rows();
        let spans = spans.into_sorted();
        let keys = keys.into_sorted();
        // The spans and their index first, together: a span counts as stored once its key is
        // (`span_keys32`, and then its row in `spans`), and keys follow both, so a group
        // refused after either landed is sent again whole, stored and indexed again (rows that
        // collapse on merge), never left stored without its index. What follows (keys above all) only once they are. The
        // rest at once, each on a connection of its own (ClickHouse answers an insert when its
        // part is written: the group waits for the slowest, not for the sum).
        insert_all(
            &self.client,
            &[
                (index::TABLE, index::TERM_COLUMNS, &terms),
                ("spans", SPAN_COLUMNS, &spans),
            ],
        )?;
        let inserts: [(&str, &str, &Rows); 12] = [
            (KEY_TABLE, KEY_COLUMNS, &keys),
            ("deliveries", reconcile::DELIVERY_COLUMNS, &deliveries),
            ("span_flags", backlog::FLAG_COLUMNS, &flags),
            ("pending_refs", backlog::WAIT_COLUMNS, &waits),
            ("pending_done", backlog::DONE_COLUMNS, &done),
            ("edge_deltas", EDGE_COLUMNS, &stats[0]),
            ("service_minutes", SERVICE_COLUMNS, &stats[1]),
            ("consumer_instances", INSTANCE_COLUMNS, &stats[2]),
            ("nodes", NODE_COLUMNS, &stats[3]),
            ("partition_minutes", PARTITION_COLUMNS, &stats[4]),
            ("broker_snapshots", SNAPSHOT_COLUMNS, &brokers[0]),
            ("broker_figures", FIGURE_COLUMNS, &brokers[1]),
        ];
        insert_all(&self.client, &inserts)?;
        // Spans found redelivered after they were stored: an error copy of each (reads prefer it).
        backlog::mark_failed(&self.client, &self.group)?;
        self.known_nodes.extend(new_nodes);
        self.group.clear();
        crate::telemetry::METRICS.graph.record(&observed);
        Ok(outcomes)
    }

    /// What ClickHouse knows of the group's new spans (those not in the writer's memory), in
    /// lookups with the spans' keys sent as tables (no SQL literals): those it already holds
    /// (sent before, maybe to another collector or before a restart), read from `span_keys32`
    /// in the seconds the spans start in only, each key found then confirmed in `spans` (a
    /// key is 32 bits: another span's may match); and those that stored spans wait for
    /// (maybe stored through another collector), from `pending_refs`.
    fn lookup(&self, group: &[(WriteBatch, Reply)]) -> Result<Lookup, ClientError> {
        let mut refs = Rows::default();
        // The new spans' keys, and the days of their rows, by the second they start in.
        let mut by_second: std::collections::BTreeMap<u32, KeysAndDays> = Default::default();
        let mut fresh = HashSet::default();
        for (write, _) in group {
            if let WriteBatch::Spans(list) = write {
                for p in list {
                    let s = &p.span;
                    let hash = span_hash(s.trace_id, s.span_id);
                    if self.seen.get(hash).is_some() || !fresh.insert(hash) {
                        continue;
                    }
                    refs.fixed(&s.trace_id.0).fixed(&s.span_id.0);
                    refs.end_row();
                    let (hashes, days) = by_second
                        .entry(start_second(s.start_unix_nanos))
                        .or_default();
                    hashes.push(hash);
                    let day = s.start_unix_nanos / DAY_NANOS;
                    if days.last() != Some(&day) {
                        days.push(day);
                    }
                }
            }
        }
        let mut out = Lookup::default();
        if fresh.is_empty() {
            return Ok(out);
        }
        #[derive(serde::Deserialize)]
        struct Key {
            key: u32,
        }
        let mut matched = HashSet::default();
        // The seconds and their days are written in the query's text, which travels in the
        // URL beside the keys' table, and ClickHouse's HTTP server refuses a request line
        // over 16 KiB (an empty HTTP 400). A group whose spans start in many seconds (a late
        // batch, a replay) asks in several queries of at most LOOKUP_SECONDS seconds each.
        let seconds: Vec<(u32, KeysAndDays)> = by_second.into_iter().collect();
        for chunk in seconds.chunks(LOOKUP_SECONDS) {
            let mut keys = Rows::default();
            let mut days = std::collections::BTreeSet::new();
            for (_, (hashes, of_rows)) in chunk {
                days.extend(of_rows.iter().copied());
                for h in hashes {
                    keys.u32(stored_key(*h));
                    keys.end_row();
                }
            }
            let days = days
                .into_iter()
                .map(|d| Value::Day(d * DAY_NANOS))
                .collect();
            let seconds = chunk.iter().map(|(s, _)| Value::U64((*s).into())).collect();
            let q = render(
                &format!(
                    "SELECT DISTINCT key FROM {KEY_TABLE} WHERE day IN ? AND second IN ?
                     AND key IN keys"
                ),
                &[Value::List(days), Value::List(seconds)],
            )?;
            let table = External {
                name: "keys",
                structure: "key UInt32",
                rows: &keys,
            };
            let found: HashSet<u32> = self
                .client
                .rows_with::<Key>(&q, &[table])?
                .into_iter()
                .map(|k| k.key)
                .collect();
            matched.extend(
                chunk
                    .iter()
                    .flat_map(|(_, (hashes, _))| hashes)
                    .filter(|h| found.contains(&stored_key(**h)))
                    .copied(),
            );
        }
        if !matched.is_empty() {
            out.existing = self.confirm_stored(group, &matched)?;
        }
        #[derive(serde::Deserialize)]
        struct K {
            t: String,
            s: String,
        }
        let table = External {
            name: "refs",
            structure: "t FixedString(16), s FixedString(8)",
            rows: &refs,
        };
        out.waited_for.extend(
            self.client
                .rows_with::<K>(
                    "SELECT DISTINCT hex(ref_trace) AS t, hex(ref_span) AS s FROM pending_refs WHERE (ref_trace, ref_span) IN refs",
                    &[table],
                )?
                .into_iter()
                .filter_map(|k| Some((TraceId::from_hex(&k.t).ok()?, SpanId::from_hex(&k.s).ok()?)))
                .map(|(t, s)| span_hash(t, s)),
        );
        fresh.retain(|h| !out.existing.contains(h));
        out.fresh = fresh;
        Ok(out)
    }

    /// The group's statistics as rows of their tables (edges, services, consumer instances,
    /// nodes, partitions), the ids of the nodes written for the first time, and what the collector's own
    /// metrics take of the group once it is stored.
    fn stats_rows(&mut self) -> ([Rows; 5], Vec<String>, Observed) {
        let mut drained = self.acc.drain();
        let observed = drained.observed();
        let mut out: [Rows; 5] = Default::default();
        let mut new_nodes = Vec::new();
        let now = now_unix_nanos();
        for n in drained.nodes {
            if self.known_nodes.contains(&n.id) {
                continue;
            }
            node_row(&mut out[3], &n, now);
            new_nodes.push(n.id.clone());
        }
        for (k, d) in drained.edges {
            out[0].date(minute_nanos(k.minute));
            edge_fields(&mut out[0], &k, &d);
            out[0].end_row();
        }
        for s in drained.services {
            out[1]
                .date(minute_nanos(s.minute))
                .i64(s.minute)
                .str(&s.service.id)
                .i64(s.spans)
                .i64(s.errors);
            out[1].end_row();
        }
        for i in drained.instances {
            out[2]
                .date(minute_nanos(i.minute))
                .i64(i.minute)
                .str(&i.destination)
                .str(&i.service)
                .str(&i.instance);
            out[2].end_row();
        }
        for p in drained.partitions {
            out[4]
                .date(minute_nanos(p.minute))
                .str(&p.destination.id)
                .i64(p.minute)
                .i64(i64::from(p.partition))
                .str(&p.service.id)
                .i64(p.published)
                .i64(p.consumed);
            out[4].end_row();
        }
        (out, new_nodes, observed)
    }
}

/// How long [`gather`] waits for more writes once it took the queued ones: until the group
/// has `expected` writes, for `most` at most, and no longer than `gap` between two writes.
#[derive(Clone, Copy, Debug)]
struct Linger {
    expected: usize,
    most: Duration,
    gap: Duration,
}

/// A group of writes: the first, everything queued behind it, and those that come within
/// the `linger`. Clients answered together send again together, a few milliseconds apart,
/// and each insert costs ClickHouse a part (its files, later its merges) whatever its size:
/// one group of them costs less than two. So when the group before had several writes, the
/// writer waits for as many as the two groups before had together (clients answered in
/// turns, half in one group and half in the next, come back as one), as long as writes keep
/// coming; a lone client (the group before had one write) never waits. Stops at `limit`
/// spans or at a shutdown (the group is then the last).
fn gather(
    rx: &Receiver<Command>,
    first: Command,
    limit: usize,
    linger: Linger,
) -> (Vec<(WriteBatch, Reply)>, bool) {
    let mut group = Vec::new();
    let mut spans = 0;
    let mut stop = false;
    let mut add = |cmd: Command, group: &mut Vec<(WriteBatch, Reply)>| match cmd {
        Command::Write { batch, reply } => {
            spans += batch.len();
            group.push((batch, reply));
            (spans, false)
        }
        Command::Shutdown => (spans, true),
    };
    let (mut queued, mut last) = add(first, &mut group);
    stop |= last;
    while stop || queued < limit {
        let Ok(cmd) = rx.try_recv() else { break };
        (queued, last) = add(cmd, &mut group);
        stop |= last;
    }
    if stop || linger.expected < 2 {
        return (group, stop);
    }
    let deadline = Instant::now() + linger.most;
    while !stop && queued < limit && group.len() < linger.expected {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .min(linger.gap);
        if left.is_zero() {
            break;
        }
        let Ok(cmd) = rx.recv_timeout(left) else {
            break;
        };
        (queued, last) = add(cmd, &mut group);
        stop |= last;
    }
    (group, stop)
}

impl Writer {
    /// Of the group's spans whose keys were found in `span_keys32` (`matched`, by their
    /// hash), those `spans` holds: a key found is the span's, or another's of the same second
    /// and 32 bits. Rare (about one group in twenty at 70,000 spans a second), so the ids are
    /// taken from the group again here rather than kept for every span.
    fn confirm_stored(
        &self,
        group: &[(WriteBatch, Reply)],
        matched: &HashSet<u64>,
    ) -> Result<HashSet<u64>, ClientError> {
        #[derive(serde::Deserialize)]
        struct K {
            t: String,
            s: String,
        }
        let mut rows = Rows::default();
        let mut days = std::collections::BTreeSet::new();
        for (write, _) in group {
            if let WriteBatch::Spans(list) = write {
                for p in list {
                    let s = &p.span;
                    if matched.contains(&span_hash(s.trace_id, s.span_id)) {
                        rows.fixed(&s.trace_id.0).fixed(&s.span_id.0);
                        rows.end_row();
                        days.insert(s.start_unix_nanos / DAY_NANOS);
                    }
                }
            }
        }
        // The days of the matched spans, in the URL with the query: a handful, or (a replay
        // over many days) none named, every day's index read.
        let q = if days.len() <= 64 {
            let days = days
                .into_iter()
                .map(|d| Value::Day(d * DAY_NANOS))
                .collect();
            render(
                "SELECT DISTINCT hex(trace_id) AS t, hex(span_id) AS s FROM spans
                 WHERE day IN ? AND (trace_id, span_id) IN matched",
                &[Value::List(days)],
            )?
        } else {
            "SELECT DISTINCT hex(trace_id) AS t, hex(span_id) AS s FROM spans
             WHERE (trace_id, span_id) IN matched"
                .to_string()
        };
        let table = External {
            name: "matched",
            structure: "t FixedString(16), s FixedString(8)",
            rows: &rows,
        };
        Ok(self
            .client
            .rows_with::<K>(&q, &[table])?
            .into_iter()
            .filter_map(|k| Some((TraceId::from_hex(&k.t).ok()?, SpanId::from_hex(&k.s).ok()?)))
            .map(|(t, s)| span_hash(t, s))
            .collect())
    }
}

/// A stored span's key in `span_keys32` (schema v8): the high half of its hash (`span_hash`,
/// whose high bits mix every bit of its ids). Half the bytes of version 4's 64-bit key on
/// disk; a key found is confirmed in `spans` ([`Writer::lookup`]).
pub(super) fn stored_key(hash: u64) -> u32 {
    (hash >> 32) as u32
}

/// The table of the stored spans' keys (schema v8; version 4's `span_keys` kept 64 bits).
const KEY_TABLE: &str = "span_keys32";

/// What [`Writer::lookup`] found of a group's spans (by their hash, `span_hash`).
#[derive(Default)]
struct Lookup {
    /// Stored already.
    existing: HashSet<u64>,
    /// Waited for by stored spans.
    waited_for: Vec<u64>,
    /// Neither in the writer's memory nor stored: stored first by this group.
    fresh: HashSet<u64>,
}

const DAY_NANOS: u64 = 86_400_000_000_000;

/// Seconds named in one `span_keys32` lookup: each is about 14 bytes of the URL (a number and a
/// comma, percent-encoded) and may bring a day of about 40 (`toDate('...')`, encoded), so 128
/// of them stay under 7 KiB, well under the 16 KiB request line ClickHouse's HTTP server
/// accepts ([`super::client`] refuses a longer query before sending it).
const LOOKUP_SECONDS: usize = 128;

/// The keys of the spans that start in one second, and the days of their rows.
type KeysAndDays = (Vec<u64>, Vec<u64>);

/// A span's start second, as `span_keys32` orders it.
fn start_second(unix_nanos: u64) -> u32 {
    u32::try_from(unix_nanos / 1_000_000_000).unwrap_or(u32::MAX)
}

/// Inserts every table's rows that has any, each on a thread of its own; the first error.
fn insert_all(client: &Client, inserts: &[(&str, &str, &Rows)]) -> Result<(), ClientError> {
    let todo: Vec<_> = inserts.iter().filter(|(_, _, r)| r.count > 0).collect();
    if let [(table, columns, rows)] = todo[..] {
        return client.insert(table, columns, &rows.buf);
    }
    std::thread::scope(|scope| {
        let running: Vec<_> = todo
            .iter()
            .map(|(table, columns, rows)| {
                scope.spawn(move || client.insert(table, columns, &rows.buf))
            })
            .collect();
        let mut first = Ok(());
        for r in running {
            let done = r
                .join()
                .unwrap_or_else(|_| Err(ClientError::BadAnswer("an insert thread failed".into())));
            if first.is_ok() {
                first = done;
            }
        }
        first
    })
}

/// An edge delta's columns, from `minute` on (as `edge_deltas`, `edge_minutes` before schema
/// version 7, and `pair_minutes` hold them).
/// The latency sketch goes in the two array columns (schema version 6: ClickHouse sums them
/// with `sumMap`); the blob column `latency` stays empty (rows of older versions hold it).
fn edge_fields(rows: &mut Rows, k: &EdgeMinuteKey, d: &EdgeDelta) {
    let buckets = d.latency.buckets();
    rows.i64(k.minute)
        .str(&k.from.0.id)
        .str(&k.to.0.id)
        .u8(k.kind.as_i64() as u8)
        .str(k.via_id())
        .i64(d.count)
        .i64(d.errors)
        .i64(d.latency_sum_micros)
        .bytes(&[])
        .u64(d.first_seen)
        .u64(d.last_seen)
        .i32_array(buckets.iter().map(|b| b.0))
        .i64_array(buckets.iter().map(|b| b.1));
}

/// The publishes the group's consumes refer to (parent, links), to read their deliveries.
fn referred_publishes(group: &[(WriteBatch, Reply)]) -> Vec<(TraceId, SpanId)> {
    let mut out = Vec::new();
    for (write, _) in group {
        let WriteBatch::Spans(list) = write else {
            continue;
        };
        for p in list {
            let s = &p.span;
            if s.messaging.as_ref().map(|m| m.operation) != Some(crate::model::Operation::Consume) {
                continue;
            }
            out.extend(s.parent_span_id.map(|parent| (s.trace_id, parent)));
            out.extend(s.links.iter().take(1_000).map(|l| (l.trace_id, l.span_id)));
        }
    }
    out.sort();
    out.dedup();
    out
}

fn minute_nanos(minute: i64) -> u64 {
    u64::try_from(minute)
        .unwrap_or(0)
        .saturating_mul(60_000_000_000)
}

/// `ClientError` is not `Clone` (it holds text): each reply gets its own copy.
fn clone_error(e: &ClientError) -> ClientError {
    match e {
        ClientError::Unreachable(m) => ClientError::Unreachable(m.clone()),
        ClientError::Unauthorized(s) => ClientError::Unauthorized(*s),
        ClientError::Server { status, message } => ClientError::Server {
            status: *status,
            message: message.clone(),
        },
        ClientError::BadAnswer(m) => ClientError::BadAnswer(m.clone()),
        ClientError::QueryTooLong(n) => ClientError::QueryTooLong(*n),
    }
}

const KEY_COLUMNS: &str = "day, second, key";
pub const SPAN_COLUMNS: &str = "day, trace_id, span_id, parent_span_id, start_unix_nanos, end_unix_nanos, service, service_namespace, service_instance, name, kind, status, status_message, scope, msg_system, msg_destination, msg_operation, msg_consumer_group, msg_message_id, msg_conversation_id, peer, attributes, resource, events, links, link_trace_ids, flags";
const EDGE_COLUMNS: &str = "day, minute, from_node, to_node, kind, via, count, errors, latency_sum_micros, latency, first_seen_unix_nanos, last_seen_unix_nanos, latency_buckets, latency_counts";
const SERVICE_COLUMNS: &str = "day, minute, service, spans, errors";
const INSTANCE_COLUMNS: &str = "day, minute, destination, service, instance";
const PARTITION_COLUMNS: &str =
    "day, destination, minute, partition_id, service, published, consumed";
const NODE_COLUMNS: &str = "id, kind, name, system, namespace, first_seen_unix_nanos";
const SNAPSHOT_COLUMNS: &str = "day, broker, minute, taken_unix_nanos, data";
const FIGURE_COLUMNS: &str = "day, node, minute, broker, taken_unix_nanos, figures";

/// The resources' attributes as JSON, each encoded once per group (the spans of one
/// resource in a request share it).
#[derive(Default)]
struct Resources {
    /// By the address of the shared attributes, which the group's spans keep alive.
    json: HashMap<usize, std::rc::Rc<str>>,
}

impl Resources {
    fn json(&mut self, attrs: &std::sync::Arc<crate::model::Attributes>) -> std::rc::Rc<str> {
        self.json
            .entry(std::sync::Arc::as_ptr(attrs) as usize)
            .or_insert_with(|| attributes_json(attrs).unwrap_or_default().into())
            .clone()
    }
}

fn span_row(rows: &mut Rows, p: &Prepared, resource: std::rc::Rc<str>, flags: u8) {
    let s = &p.span;
    let m = s.messaging.as_ref();
    rows.date(s.start_unix_nanos)
        .fixed(&s.trace_id.0)
        .fixed(&s.span_id.0)
        .fixed(&s.parent_span_id.map_or([0; 8], |p| p.0))
        .u64(s.start_unix_nanos)
        .u64(s.end_unix_nanos)
        .str(&s.service.name)
        .str(opt(s.service.namespace.as_ref()))
        .str(opt(s.service.instance.as_ref()))
        .str(&s.name)
        .u8(s.kind.as_i32() as u8)
        .u8(s.status.as_i32() as u8)
        .str(&s.status_message)
        .str(&s.scope)
        .str(m.map_or("", |m| m.system.as_str()))
        .str(m.map_or("", |m| m.destination.as_str()))
        .str(m.map_or("", |m| m.operation.as_str()))
        .str(opt(m.and_then(|m| m.consumer_group.as_ref())))
        .str(opt(m.and_then(|m| m.message_id.as_ref())))
        .str(opt(m.and_then(|m| m.conversation_id.as_ref())))
        .str(opt(s.peer.as_ref()))
        .str(opt(p.attributes.as_ref()))
        .str(&resource)
        .str(opt(p.events.as_ref()))
        .str(opt(p.links.as_ref()))
        .fixed_array(s.links.iter().map(|l| &l.trace_id.0[..]))
        .u8(flags);
    rows.end_row();
}

fn opt(v: Option<&String>) -> &str {
    v.map_or("", |v| v.as_str())
}

fn node_row(rows: &mut Rows, n: &NodeKey, now: u64) {
    rows.str(&n.id)
        .str(n.kind.as_str())
        .str(&n.name)
        .str(n.system.as_deref().unwrap_or(""))
        .str(n.namespace.as_deref().unwrap_or(""))
        .u64(now);
    rows.end_row();
}

fn broker_rows(out: &mut [Rows; 2], snapshot: &BrokerSnapshot) {
    let minute = unix_minute(snapshot.taken_unix_nanos);
    let taken = snapshot.taken_unix_nanos;
    let data = serde_json::to_string(snapshot).unwrap_or_default();
    out[0]
        .date(taken)
        .str(&snapshot.broker)
        .i64(minute)
        .u64(taken)
        .str(&data);
    out[0].end_row();
    let mut put = |node: String, f: &crate::model::Figures| {
        if f.is_empty() {
            return;
        }
        let json = serde_json::to_string(f).unwrap_or_default();
        out[1]
            .date(taken)
            .str(&node)
            .i64(minute)
            .str(&snapshot.broker)
            .u64(taken)
            .str(&json);
        out[1].end_row();
    };
    for d in &snapshot.destinations {
        put(
            NodeKey::destination(&snapshot.system, &d.name).id,
            &d.figures,
        );
    }
    for flow in &snapshot.flows {
        put(
            crate::store::sqlite::brokers::flow_key(snapshot, flow),
            &flow.figures,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mailbox::bounded;
    use crate::model::testing::span;
    use crate::model::SpanKind;

    /// A write of `n` spans, and the receiver of its answer (kept so the reply stays open).
    fn write(n: u8) -> Command {
        let spans = (1..=n)
            .map(|i| span(1, i, None, "a", SpanKind::Internal))
            .collect();
        let (reply, _) = tokio::sync::oneshot::channel();
        Command::Write {
            batch: WriteBatch::Spans(crate::store::prepare(spans)),
            reply,
        }
    }

    /// Runs `gather` on a thread of its own and waits for its group (long lingers: a group
    /// that came back is one that did not wait them out).
    fn gathered(
        rx: Receiver<Command>,
        first: Command,
        limit: usize,
        expected: usize,
    ) -> (usize, usize, bool) {
        let hour = Duration::from_secs(3_600);
        gathered_within(
            rx,
            first,
            limit,
            Linger {
                expected,
                most: hour,
                gap: hour,
            },
        )
    }

    fn gathered_within(
        rx: Receiver<Command>,
        first: Command,
        limit: usize,
        linger: Linger,
    ) -> (usize, usize, bool) {
        let (done, result) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let (group, stop) = gather(&rx, first, limit, linger);
            let spans = group.iter().map(|(b, _)| b.len()).sum();
            let _ = done.send((group.len(), spans, stop));
        });
        result
            .recv_timeout(Duration::from_secs(120))
            .expect("the group is gathered without waiting its linger out")
    }

    #[test]
    fn a_lone_client_never_waits_and_queued_writes_join_up_to_the_limit() {
        let (tx, rx) = bounded(16);
        assert_eq!(gathered(rx, write(1), 100, 1), (1, 1, false));
        let (tx2, rx) = bounded(16);
        for _ in 0..3 {
            assert!(tx2.try_send(write(2)).is_ok());
        }
        assert_eq!(gathered(rx, write(2), 100, 0), (4, 8, false), "all queued");
        let (tx3, rx) = bounded(16);
        for _ in 0..3 {
            assert!(tx3.try_send(write(2)).is_ok());
        }
        assert_eq!(
            gathered(rx, write(2), 4, 0),
            (2, 4, false),
            "up to the limit"
        );
        drop((tx, tx2, tx3));
    }

    #[test]
    fn a_group_waits_only_while_writes_keep_coming() {
        let (tx, rx) = bounded(16);
        let linger = Linger {
            expected: 10,
            most: Duration::from_secs(3_600),
            gap: Duration::from_millis(1),
        };
        assert_eq!(gathered_within(rx, write(1), 100, linger), (1, 1, false));
        drop(tx);
    }

    #[test]
    fn a_group_waits_for_the_writes_expected() {
        let (tx, rx) = bounded(16);
        let sender = std::thread::spawn(move || {
            for _ in 0..2 {
                assert!(tx.send(write(3)).is_ok());
            }
            tx
        });
        // Three clients sent together before: the two others are waited for.
        assert_eq!(gathered(rx, write(3), 100, 3), (3, 9, false));
        drop(sender.join());
    }

    #[test]
    fn the_limit_or_a_shutdown_ends_the_wait() {
        let (tx, rx) = bounded(16);
        assert!(tx.try_send(write(2)).is_ok());
        assert_eq!(gathered(rx, write(2), 4, 10), (2, 4, false), "the limit");
        let (tx, rx) = bounded(16);
        assert!(tx.try_send(Command::Shutdown).is_ok());
        assert_eq!(gathered(rx, write(1), 100, 10), (1, 1, true), "a shutdown");
        let (tx, rx) = bounded(16);
        drop(tx);
        assert_eq!(
            gathered(rx, write(1), 100, 10),
            (1, 1, false),
            "no sender left"
        );
    }
}
