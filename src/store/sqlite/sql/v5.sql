-- Schema v5: the partitions that spans name (Kafka's `messaging.destination.partition.id`,
-- legacy `messaging.kafka.partition`): per minute, destination, partition and service, the
-- messages the service published to it and consumed from it. Keyed by destination first:
-- a topic's page reads its partitions over a window.
CREATE TABLE partition_minutes (
    destination TEXT NOT NULL,
    minute INTEGER NOT NULL,
    partition_id INTEGER NOT NULL,
    service TEXT NOT NULL,
    published INTEGER NOT NULL,
    consumed INTEGER NOT NULL,
    PRIMARY KEY (destination, minute, partition_id, service)
) WITHOUT ROWID;

-- Retention deletes by minute.
CREATE INDEX partition_minutes_by_minute ON partition_minutes(minute);
