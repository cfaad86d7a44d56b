-- Schema version 1.
-- spans: one row per span; ids are blobs; attribute maps are JSON text.
CREATE TABLE spans (
    id INTEGER PRIMARY KEY,
    trace_id BLOB NOT NULL,
    -- first 8 bytes of trace_id, and the span ids, as integers (see TraceId::key)
    trace_key INTEGER NOT NULL,
    span_key INTEGER NOT NULL,
    parent_key INTEGER,
    service TEXT NOT NULL,
    service_namespace TEXT,
    service_instance TEXT,
    resource_id INTEGER,
    scope TEXT,
    name TEXT NOT NULL,
    kind INTEGER NOT NULL,
    start_unix_nanos INTEGER NOT NULL,
    end_unix_nanos INTEGER NOT NULL,
    status_code INTEGER NOT NULL,
    status_message TEXT,
    msg_system TEXT,
    msg_destination TEXT,
    msg_operation TEXT,
    msg_consumer_group TEXT,
    msg_message_id TEXT,
    msg_conversation_id TEXT,
    peer TEXT,
    attributes TEXT,
    events TEXT,
    links TEXT,
    -- bit 0: counted as a logical message; bit 1: client call paired with its server span
    flags INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX spans_by_trace ON spans(trace_key, span_key);
CREATE INDEX spans_by_start ON spans(start_unix_nanos);
CREATE INDEX spans_by_service ON spans(service, start_unix_nanos);
CREATE INDEX spans_by_destination ON spans(msg_destination, start_unix_nanos) WHERE msg_destination IS NOT NULL;

-- Resource attribute sets, shared by the spans that carry them.
CREATE TABLE resources (
    id INTEGER PRIMARY KEY,
    attributes TEXT NOT NULL UNIQUE
);

-- Spans waiting for a span they refer to (parent or link) that has not arrived yet.
CREATE TABLE pending_refs (
    ref_trace INTEGER NOT NULL,
    ref_span INTEGER NOT NULL,
    waiting_id INTEGER NOT NULL,
    created_unix_nanos INTEGER NOT NULL,
    PRIMARY KEY (ref_trace, ref_span, waiting_id)
) WITHOUT ROWID;

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

-- Per-minute span counts per service, so idle services still show.
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
