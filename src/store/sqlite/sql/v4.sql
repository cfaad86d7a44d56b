-- Schema v4: which broker snapshot is the newest (or oldest) of a window, read without
-- touching the snapshots themselves. `broker_snapshots` is WITHOUT ROWID, so each row is one
-- b-tree key holding its whole JSON document (hundreds of KiB for a large broker, on overflow
-- pages); every seek that compares such a key reads the document in full. With an hour of
-- snapshots each topology read compared dozens of them. This index holds the three small
-- columns those lookups read.
CREATE INDEX broker_snapshots_taken ON broker_snapshots(broker, minute, taken_unix_nanos);
