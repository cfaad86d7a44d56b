-- Schema version 3: what brokers report of themselves (discovery, see src/discover/).

-- The newest snapshot of each broker in each minute (a poll replaces the minute's earlier
-- one), as JSON (model::BrokerSnapshot). The topology of a window merges each broker's newest
-- snapshot in it.
CREATE TABLE broker_snapshots (
    broker TEXT NOT NULL,
    minute INTEGER NOT NULL,
    taken_unix_nanos INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (broker, minute)
) WITHOUT ROWID;

-- Each destination's and flow's figures per minute (the newest poll of the minute), as
-- JSON (model::Figures), so a destination's page reads its history without the snapshots.
-- `node` is a node id, or `from>to>kind` for a flow.
CREATE TABLE broker_figures (
    node TEXT NOT NULL,
    minute INTEGER NOT NULL,
    broker TEXT NOT NULL,
    figures TEXT NOT NULL,
    PRIMARY KEY (node, minute, broker)
) WITHOUT ROWID;

CREATE INDEX broker_figures_by_minute ON broker_figures(minute);
