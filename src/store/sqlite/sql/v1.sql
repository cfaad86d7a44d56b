-- Schema version 1.

-- Span blocks: the spans of one request as LZ4-compressed records (see block.rs).
-- AUTOINCREMENT: ids are never reused, so the trace index's watermarks stay true after blocks
-- are deleted.
CREATE TABLE blocks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    min_start_unix_nanos INTEGER NOT NULL,
    max_start_unix_nanos INTEGER NOT NULL,
    span_count INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX blocks_by_end ON blocks(max_start_unix_nanos, span_count);

-- Which blocks hold spans of a trace; key = first 8 bytes of the trace id (TraceId::key).
-- Rows of deleted blocks are swept lazily; readers skip blocks that are gone.
CREATE TABLE trace_blocks (
    trace_key INTEGER NOT NULL,
    block_id INTEGER NOT NULL,
    PRIMARY KEY (trace_key, block_id)
) WITHOUT ROWID;

-- Search terms of each block: 's:' || service, 'd:' || destination.
CREATE TABLE block_terms (
    term TEXT NOT NULL,
    block_id INTEGER NOT NULL,
    PRIMARY KEY (term, block_id)
) WITHOUT ROWID;

-- Flags of stored spans that changed after their block was written.
CREATE TABLE span_flags (
    trace_key INTEGER NOT NULL,
    span_key INTEGER NOT NULL,
    flags INTEGER NOT NULL,
    start_unix_nanos INTEGER NOT NULL,
    PRIMARY KEY (trace_key, span_key)
) WITHOUT ROWID;
CREATE INDEX span_flags_by_start ON span_flags(start_unix_nanos);

-- Resource attribute sets, shared by the spans that carry them.
CREATE TABLE resources (
    id INTEGER PRIMARY KEY,
    attributes TEXT NOT NULL UNIQUE
);

-- Spans waiting for a span they refer to (parent or link) that has not arrived yet, with
-- what pairing needs to know of the waiting span.
CREATE TABLE pending_refs (
    ref_trace BLOB NOT NULL,
    ref_span INTEGER NOT NULL,
    trace_id BLOB NOT NULL,
    span_key INTEGER NOT NULL,
    parent_key INTEGER,
    service TEXT NOT NULL,
    namespace TEXT,
    kind INTEGER NOT NULL,
    operation TEXT,
    system TEXT,
    destination TEXT,
    start_unix_nanos INTEGER NOT NULL,
    end_unix_nanos INTEGER NOT NULL,
    error INTEGER NOT NULL,
    peer TEXT,
    flags INTEGER NOT NULL,
    -- when waiting stops: a consume waits for its publish as long as spans are kept; a publish
    -- or server span waits for its parent only minutes (parents that matter come from the
    -- same process or its caller, and clients that send a traceparent but export nothing
    -- would otherwise leave a row per message)
    expires_unix_nanos INTEGER NOT NULL,
    PRIMARY KEY (ref_trace, ref_span, trace_id, span_key)
) WITHOUT ROWID;
CREATE INDEX pending_by_expiry ON pending_refs(expires_unix_nanos);
CREATE INDEX pending_by_start ON pending_refs(start_unix_nanos);

-- Topology nodes ever seen.
CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    system TEXT,
    namespace TEXT,
    first_seen_unix_nanos INTEGER NOT NULL
) WITHOUT ROWID;

-- Per-minute edge statistics; latency is an encoded sketch in microseconds.
CREATE TABLE edge_minutes (
    minute INTEGER NOT NULL,
    from_node TEXT NOT NULL,
    to_node TEXT NOT NULL,
    kind INTEGER NOT NULL,
    via TEXT NOT NULL DEFAULT '',
    count INTEGER NOT NULL,
    errors INTEGER NOT NULL,
    latency_sum_micros INTEGER NOT NULL,
    latency BLOB,
    first_seen_unix_nanos INTEGER NOT NULL,
    last_seen_unix_nanos INTEGER NOT NULL,
    PRIMARY KEY (minute, from_node, to_node, kind, via)
) WITHOUT ROWID;

-- Per-minute span counts per service, so services without edges still show.
CREATE TABLE service_minutes (
    minute INTEGER NOT NULL,
    service TEXT NOT NULL,
    spans INTEGER NOT NULL,
    errors INTEGER NOT NULL,
    PRIMARY KEY (minute, service)
) WITHOUT ROWID;

-- Which instances of a service consumed from a destination in a minute (competing consumers).
CREATE TABLE consumer_instances (
    minute INTEGER NOT NULL,
    destination TEXT NOT NULL,
    service TEXT NOT NULL,
    instance TEXT NOT NULL,
    PRIMARY KEY (minute, destination, service, instance)
) WITHOUT ROWID;

-- Small persistent settings and watermarks.
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
