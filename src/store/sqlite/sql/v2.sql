-- Schema version 2: the search index of each block (see postings.rs).

-- Per block and search term, the block's traces that carry a span matching it. Terms: ''
-- (the block's trace table), 's:' || service, 'd:' || destination, 'o:' || operation (span
-- name), 'e' (spans with status error), 'e:' || service (its spans with status error).
CREATE TABLE block_postings (
    block_id INTEGER NOT NULL,
    term TEXT NOT NULL,
    entries BLOB NOT NULL,
    PRIMARY KEY (block_id, term)
) WITHOUT ROWID;

-- Per block, a Bloom filter of its attribute key=value pairs.
CREATE TABLE block_blooms (
    block_id INTEGER PRIMARY KEY,
    bloom BLOB NOT NULL
);

-- Blocks by time, covering what search walks (id, both ends of the block's span starts)
-- without reading the block rows themselves; also serves retention and span counts.
CREATE INDEX blocks_by_range ON blocks(max_start_unix_nanos, min_start_unix_nanos, span_count);
DROP INDEX blocks_by_end;

-- The index goes with its block.
CREATE TRIGGER blocks_index_gone AFTER DELETE ON blocks BEGIN
    DELETE FROM block_postings WHERE block_id = old.id;
    DELETE FROM block_blooms WHERE block_id = old.id;
END;

-- Blocks written before this version have no index: search decodes them (within its bound)
-- until retention deletes them. Block ids are never reused, so every block from this id on
-- has one. New blocks no longer get block_terms rows; retention still sweeps the old ones.
INSERT OR REPLACE INTO meta (key, value)
    SELECT 'postings_from', COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'blocks'), 0) + 1;
