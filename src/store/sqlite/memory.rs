//! The writer's memory (`accounting::memory`) rebuilt from the database: at start, and after a
//! rolled-back transaction, from the newest blocks and the pending list.

use super::backlog::{facts_of_record, stored_flags};
use super::block;
use crate::accounting::memory::{span_hash, Delivered, Nodes, PendingKeys, RecentFacts, Seen};
use crate::accounting::pairable;
use crate::accounting::pairing::FLAG_COUNTED;
use crate::model::Operation;
use crate::store::StoreError;
use foldhash::HashSet;
use rusqlite::Connection;
use std::collections::HashMap;

/// Recent spans remembered to drop re-sent ones.
const SEEN_CAP: usize = 1 << 19;
/// Recent produce, consume and client spans whose pairing facts stay in memory.
const FACTS_CAP: usize = 1 << 17;
/// Recent publishes whose consuming services stay in memory (a second delivery counts once).
const DELIVERED_CAP: usize = 1 << 17;

/// What the writer remembers between transactions (rebuilt from the database at start and
/// after a failed transaction).
pub struct Memory {
    pub seen: Seen,
    pub recent: RecentFacts,
    pub pending: PendingKeys,
    pub nodes: Nodes,
    pub delivered: Delivered,
    pub known_nodes: HashSet<String>,
    pub resources: HashMap<String, i64>,
}

impl Memory {
    /// Rebuilds the writer's memory from the newest blocks and the pending list.
    pub fn load(conn: &Connection) -> Result<Memory, StoreError> {
        let mut mem = Memory {
            seen: Seen::new(SEEN_CAP),
            recent: RecentFacts::new(FACTS_CAP),
            pending: PendingKeys::default(),
            nodes: Nodes::default(),
            delivered: Delivered::new(DELIVERED_CAP),
            known_nodes: HashSet::default(),
            resources: HashMap::new(),
        };
        mem.pending = load_pending(conn)?;
        // Newest blocks first, then replayed oldest first so the FIFO order holds.
        let mut blocks: Vec<Vec<u8>> = Vec::new();
        let mut spans = 0usize;
        let mut stmt = conn.prepare("SELECT data, span_count FROM blocks ORDER BY id DESC")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            blocks.push(r.get(0)?);
            spans += r.get::<_, i64>(1)? as usize;
            if spans >= SEEN_CAP {
                break;
            }
        }
        for data in blocks.iter().rev() {
            let Ok(inflated) = block::inflate(data) else {
                continue;
            };
            for rec in block::records(&inflated) {
                let Ok(r) = block::decode(rec) else { continue };
                let pairable = pairable(r.kind, r.messaging.as_ref().map(|m| m.operation));
                mem.seen.insert(span_hash(r.trace_id, r.span_id), pairable);
                if pairable {
                    let mut facts = facts_of_record(&r, &mut mem.nodes);
                    if let Some(f) = stored_flags(conn, r.trace_id, r.span_id)? {
                        facts.flags = f;
                    }
                    remember_delivery(&mut mem, &facts);
                    mem.recent.insert(facts);
                }
            }
        }
        Ok(mem)
    }
}

/// A counted consume replayed after its publish: the service it reached, so that a second
/// delivery of the message after a restart still counts once.
fn remember_delivery(mem: &mut Memory, consume: &crate::accounting::Facts) {
    if consume.operation != Some(Operation::Consume) || consume.flags & FLAG_COUNTED == 0 {
        return;
    }
    let (Some(parent), Some(dest)) = (consume.parent, &consume.destination) else {
        return;
    };
    let published = mem
        .recent
        .get(consume.trace, parent)
        .filter(|p| p.operation == Some(Operation::Produce) && p.destination.is_some());
    if let Some(p) = published {
        let (trace, span) = (p.trace, p.span_id);
        mem.delivered.note_instance(
            (trace, span),
            (&consume.service, consume.instance.as_deref()),
            dest,
        );
    }
}

/// Hashes of the spans that stored spans wait for.
pub fn load_pending(conn: &Connection) -> rusqlite::Result<PendingKeys> {
    let mut keys = PendingKeys::default();
    let mut stmt = conn.prepare("SELECT ref_trace, ref_span FROM pending_refs")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let trace = crate::model::TraceId::from_bytes(&r.get::<_, Vec<u8>>(0)?).ok();
        let span = crate::model::SpanId::from_key(r.get(1)?);
        if let (Some(t), Some(s)) = (trace, span) {
            keys.insert(span_hash(t, s));
        }
    }
    Ok(keys)
}
