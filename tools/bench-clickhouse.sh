#!/usr/bin/env bash
# Ingest and query figures of `serve --clickhouse` (1 and 2 collectors on one ClickHouse)
# against `serve --db` (SQLite), with the same generator, in one run.
#
#   tools/bench-clickhouse.sh BINARY [SPANS] [RATE] [QUERY_SPANS]
#
# Starts its own clickhouse-server (Debian's package, /usr/sbin/clickhouse-server) on free
# loopback ports with a config written here and its data under a temporary directory, which
# is removed at the end, as src/store/clickhouse/testing.rs does for the tests. Then:
#
# 1. ingest: for SQLite, one ClickHouse collector, two ClickHouse collectors (each on a fresh
#    database): `bench ingest --max-spans SPANS --rate RATE` (RATE 0: as fast as answered),
#    the collectors' and clickhouse-server's CPU time (utime+stime), request p99, the load
#    average, and the bytes on disk per span (`system.parts` of the database's active parts;
#    the SQLite file with its WAL);
# 2. query (QUERY_SPANS > 0): QUERY_SPANS spans into SQLite and into one ClickHouse
#    collector, then `bench query` (topology of the last hour, trace by id); with
#    BENCH_DOUBLINGS=N, the ClickHouse database's spans (new trace ids) and minute rows are then
#    doubled N times inside ClickHouse and `bench query` runs again (1.25M ingested, 3
#    doublings: 10M spans, without ingesting 10M on a machine other builds load).
# BENCH_DURATION bounds each ingest run (default 3600s); BENCH_CONNECTIONS (4) and
# BENCH_REQUESTS (200) set `bench ingest --connections` and `bench query --requests`;
# BENCH_SETUPS picks the ingest runs (default "sqlite ch1 ch2").
#
# Every process is stopped by the pid this script started it with.
set -euo pipefail

bin=$(realpath "${1:?usage: tools/bench-clickhouse.sh BINARY [SPANS] [RATE] [QUERY_SPANS]}")
spans=${2:-2000000}
rate=${3:-0}
query_spans=${4:-0}
connections=${BENCH_CONNECTIONS:-4}
requests=${BENCH_REQUESTS:-200}
source "$(dirname "$(realpath "$0")")/clickhouse/server.sh"
clickhouse_work switchyard-bench-ch

# --- clickhouse-server -------------------------------------------------------------------
clickhouse_start
echo "clickhouse-server $(ch 'SELECT version()') pid $ch_pid on 127.0.0.1:$ch_http; $(nproc) cores shared by everything below"

# --- collectors --------------------------------------------------------------------------
# start_collector NAME STORE_ARGS...: sets c_pid, c_http, c_otlp.
start_collector() {
    local name=$1
    shift
    local http otlp grpc pid
    http=$(free_port)
    otlp=$(free_port)
    grpc=$(free_port)
    # With --clickhouse, --db is the embedded broker's file only.
    local broker=()
    [[ " $* " == *" --db "* ]] || broker=(--db "$work/$name-broker.db")
    "$bin" serve "${broker[@]}" --http "127.0.0.1:$http" \
        --otlp-http "127.0.0.1:$otlp" --otlp-grpc "127.0.0.1:$grpc" "$@" \
        >"$work/$name.log" 2>&1 &
    pid=$!
    pids+=("$pid")
    for _ in $(seq 600); do
        curl -sf "http://127.0.0.1:$http/healthz" >/dev/null && break
        kill -0 "$pid" 2>/dev/null || { tail -5 "$work/$name.log" >&2; exit 1; }
        sleep 0.1
    done
    c_pid=$pid c_http=$http c_otlp=$otlp
}

stop() {
    kill "$1" 2>/dev/null || true
    for _ in $(seq 300); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
    kill -9 "$1" 2>/dev/null || true
}

# What each kind of statement cost ClickHouse during one run (system.query_log since the
# run's start, by the statement's first words): count, CPU (user + system time of its
# threads) and rows and bytes read, per span. Merges in the background are not statements:
# the store's total CPU above minus these is what they and the rest took.
ch_statements() {
    local since=$1 db=$2 spans
    ch "SYSTEM FLUSH LOGS" >/dev/null || true
    spans=$(ch "SELECT greatest(count(), 1) FROM $db.spans")
    echo "  statements since the run's start (kind; count; CPU ms; CPU us, rows read, bytes read per span)"
    ch "SELECT substring(replaceRegexpAll(query, '[[:space:]]+', ' '), 1, 60) AS kind, count() AS n,
            round(sum(ProfileEvents.Values[indexOf(ProfileEvents.Names, 'UserTimeMicroseconds')]
                + ProfileEvents.Values[indexOf(ProfileEvents.Names, 'SystemTimeMicroseconds')]) / 1000) AS cpu_ms,
            round(cpu_ms * 1000 / $spans, 2) AS cpu_us_per_span,
            round(sum(read_rows) / $spans, 2) AS rows_per_span,
            round(sum(read_bytes) / $spans, 1) AS bytes_per_span
        FROM system.query_log WHERE type = 2 AND event_time >= toDateTime($since)
            AND query NOT LIKE '%system.%'
        GROUP BY kind ORDER BY cpu_ms DESC LIMIT 14 FORMAT TSV" | sed 's/^/    /'
}

# The parts each table got during one run (system.part_log): written by inserts, and merged
# in the background (rows the merges wrote and uncompressed bytes they read, per span; their
# time; 18.16 reports the bytes in both `read_rows` and `read_bytes`). Merges are most of what
# clickhouse-server's CPU spends beyond the statements. A table renamed by a migration is
# logged under its name at creation (`spans_v6`).
ch_parts() {
    local since=$1 db=$2 spans
    spans=$(ch "SELECT greatest(count(), 1) FROM $db.spans")
    echo "  parts since the run's start (table; parts inserted; merges; rows merges wrote, bytes they read per span; merges' ms)"
    ch "SELECT table, countIf(event_type = 'NEW_PART') AS inserted, countIf(event_type = 'MERGE_PARTS') AS merges,
            round(sumIf(rows, event_type = 'MERGE_PARTS') / $spans, 2),
            round(sumIf(read_bytes, event_type = 'MERGE_PARTS') / $spans, 1),
            sumIf(duration_ms, event_type = 'MERGE_PARTS')
        FROM system.part_log WHERE database = '$db' AND event_time >= toDateTime($since)
        GROUP BY table ORDER BY inserted DESC FORMAT TSV" | sed 's/^/    /'
}

# The inserts a collector's log says failed (their requests were answered with an error and
# sent again by the generator), and the first such message.
collector_errors() {
    local log=$1 n
    n=$(grep -c "insert failed" "$log" || true)
    echo "  failed groups          $n$( [[ $n -gt 0 ]] && echo " (first: $(grep -m1 "insert failed" "$log" | cut -c1-300))")"
}

ch_bytes_per_span() {
    local db=$1 bytes rows
    bytes=$(ch "SELECT sum(bytes_on_disk) FROM system.parts WHERE active AND database = '$db'")
    rows=$(ch "SELECT count() FROM (SELECT trace_id, span_id FROM $db.spans GROUP BY trace_id, span_id)")
    echo "  on disk                $bytes bytes, $rows spans: $(awk -v b="$bytes" -v r="$rows" 'BEGIN { printf "%.1f", b / r }') bytes/span (all tables; spans alone $(ch "SELECT round(sum(bytes_on_disk) / $rows, 1) FROM system.parts WHERE active AND database = '$db' AND table = 'spans'"))"
    echo "    by table, bytes/span (active parts): $(ch "SELECT arrayStringConcat(groupArray(concat(table, ' ', toString(b), ' (', toString(p), ' parts)')), ', ') FROM (SELECT table, round(sum(bytes_on_disk) / $rows, 1) AS b, count() AS p FROM system.parts WHERE active AND database = '$db' GROUP BY table ORDER BY b DESC)")"
}

# The same after every table of the database is merged to one part per partition
# (OPTIMIZE ... FINAL): what the background merges bring it to.
ch_bytes_merged() {
    local db=$1 t
    for t in $(ch "SELECT DISTINCT table FROM system.parts WHERE active AND database = '$db'"); do
        ch "OPTIMIZE TABLE $db.$t FINAL" >/dev/null || true
    done
    echo "  after OPTIMIZE FINAL:"
    ch_bytes_per_span "$db"
    ch_bytes_by_column "$db"
}

# Where a span's bytes go: the columns taking the most, compressed bytes per span.
ch_bytes_by_column() {
    local db=$1 rows
    rows=$(ch "SELECT count() FROM (SELECT trace_id, span_id FROM $db.spans GROUP BY trace_id, span_id)")
    echo "    by column, bytes/span (compressed; the 16 largest): $(ch "SELECT arrayStringConcat(groupArray(concat(table, '.', name, ' ', toString(b))), ', ') FROM (SELECT table, name, round(data_compressed_bytes / $rows, 2) AS b FROM system.columns WHERE database = '$db' ORDER BY b DESC LIMIT 16)")"
}

sqlite_bytes_per_span() {
    local file=$1 n=$2 bytes
    bytes=$(du -cb "$file" "$file-wal" 2>/dev/null | tail -1 | cut -f1)
    echo "  on disk                $bytes bytes: $(awk -v b="$bytes" -v r="$n" 'BEGIN { printf "%.1f", b / r }') bytes/span (file and WAL)"
}

ingest() {
    "$bin" bench ingest --max-spans "$1" --rate "$rate" --connections "$connections" \
        --duration "${BENCH_DURATION:-3600s}" "${@:2}"
}

n=0
for setup in ${BENCH_SETUPS:-sqlite ch1 ch2}; do
    n=$((n + 1))
    echo
    echo "== ingest: $setup, $spans spans"
    since=$(ch "SELECT toUInt32(now())")
    case $setup in
    sqlite)
        start_collector "s$n" --db "$work/s$n.db"
        pid=$c_pid http=$c_http otlp=$c_otlp
        ingest "$spans" --target "http://127.0.0.1:$otlp" --api "http://127.0.0.1:$http" \
            --server-pid "$pid"
        stop "$pid"
        sqlite_bytes_per_span "$work/s$n.db" "$spans"
        ;;
    ch1)
        url="http://127.0.0.1:$ch_http/bench$n"
        start_collector "c$n" --clickhouse "$url"
        pid=$c_pid http=$c_http otlp=$c_otlp
        ingest "$spans" --target "http://127.0.0.1:$otlp" --api "http://127.0.0.1:$http" \
            --server-pid "$pid" --store-pid "$ch_pid"
        stop "$pid"
        collector_errors "$work/c$n.log"
        ch_bytes_per_span "bench$n"
        ch_statements "$since" "bench$n"
        ch_parts "$since" "bench$n"
        ch_bytes_merged "bench$n"
        ;;
    ch2)
        url="http://127.0.0.1:$ch_http/bench$n"
        start_collector "c${n}a" --clickhouse "$url"
        pid1=$c_pid http1=$c_http otlp1=$c_otlp
        start_collector "c${n}b" --clickhouse "$url"
        pid2=$c_pid otlp2=$c_otlp
        ingest "$spans" --target "http://127.0.0.1:$otlp1" --target "http://127.0.0.1:$otlp2" \
            --api "http://127.0.0.1:$http1" --server-pid "$pid1" --server-pid "$pid2" \
            --store-pid "$ch_pid"
        stop "$pid1"
        stop "$pid2"
        collector_errors "$work/c${n}a.log"
        collector_errors "$work/c${n}b.log"
        ch_bytes_per_span "bench$n"
        ch_statements "$since" "bench$n"
        ch_parts "$since" "bench$n"
        ch_bytes_merged "bench$n"
        ;;
    esac
    ch "DROP DATABASE IF EXISTS bench$n" >/dev/null || true
    rm -f "$work/s$n.db" "$work/s$n.db-wal" "$work/s$n.db-shm"
done

# ClickHouse only: doubles the database's spans (new trace ids) and minute rows ROUNDS times
# inside ClickHouse, as if ROUNDS doublings of the same traffic had been ingested.
double() {
    local db=$1 rounds=$2 cols expr
    cols=$(ch "SELECT arrayStringConcat(groupArray(name), ',') FROM (SELECT name FROM system.columns WHERE database = '$db' AND table = 'spans')")
    for r in $(seq "$rounds"); do
        expr=${cols/trace_id,/toFixedString(concat(reinterpretAsString(cityHash64(trace_id, $r)), reinterpretAsString(cityHash64($r, trace_id))), 16),}
        ch "INSERT INTO $db.spans ($cols) SELECT $expr FROM $db.spans" >/dev/null
        for t in edge_minutes edge_sums service_minutes; do
            # `edge_sums`: the minute rows from schema version 7 on.
            [[ $(ch "SELECT count() FROM system.tables WHERE database = '$db' AND name = '$t'") == 1 ]] || continue
            ch "INSERT INTO $db.$t SELECT * FROM $db.$t" >/dev/null
        done
    done
    ch "OPTIMIZE TABLE $db.spans" >/dev/null || true
}

if [[ $query_spans -gt 0 ]]; then
    rounds=${BENCH_DOUBLINGS:-0}
    for setup in sqlite ch1; do
        echo
        echo "== query: $setup, $query_spans spans ingested"
        if [[ $setup == sqlite ]]; then
            start_collector q-sqlite --db "$work/q.db"
            store=()
        else
            start_collector q-ch --clickhouse "http://127.0.0.1:$ch_http/query"
            store=(--store-pid "$ch_pid")
        fi
        pid=$c_pid http=$c_http otlp=$c_otlp
        ingest "$query_spans" --target "http://127.0.0.1:$otlp" --api "http://127.0.0.1:$http" \
            --server-pid "$pid" "${store[@]}"
        if [[ $setup == sqlite ]]; then
            sqlite_bytes_per_span "$work/q.db" "$query_spans"
        else
            ch_bytes_per_span query
        fi
        "$bin" bench query --api "http://127.0.0.1:$http" --requests "$requests"
        if [[ $setup == ch1 && $rounds -gt 0 ]]; then
            double query "$rounds"
            echo
            echo "== query: ch1 after $rounds doublings inside ClickHouse"
            ch_bytes_per_span query
            "$bin" bench query --api "http://127.0.0.1:$http" --requests "$requests"
        fi
        stop "$pid"
        rm -f "$work/q.db" "$work/q.db-wal" "$work/q.db-shm"
    done
fi
