#!/usr/bin/env bash
# Read latency of `serve --clickhouse` at a large span count, two binaries compared in one run
# on data of the same shape (issue 19's floors: topology of 1 h, trace by id, at 10,000,000 spans).
#
#   tools/bench-clickhouse-reads.sh BASE_BINARY NEW_BINARY [SPANS] [DOUBLINGS] [REQUESTS] [ROUNDS]
#
# Starts its own clickhouse-server (Debian's package) on free loopback ports, data under a
# temporary directory removed at the end (as tools/bench-clickhouse.sh). Each binary ingests
# SPANS spans (`bench ingest`, default 312,500) into its own database (`base`, `new`: rows keep
# the form of the version that wrote them); the spans (new trace ids) and minute rows are
# doubled DOUBLINGS times inside ClickHouse (default 5: 10,000,000 spans; their search index
# rows, `trace_terms` or `trace_postings` from schema version 8 on; the minute rows in
# `edge_minutes`, or `edge_sums` from schema version 7 on). `spans` gets one OPTIMIZE (not
# FINAL); then the script waits until ClickHouse runs no merge of the database (10 checks a
# second apart), as background merges would leave it in a steady state, and prints the minute
# tables' rows and parts. One `serve
# --clickhouse` of each binary then opens its database, and ROUNDS rounds (default 3) alternate
# them: REQUESTS requests (default 100) per endpoint, timed by curl. Per endpoint and binary:
# p50 and p99 of the wall time, clickhouse-server's CPU time per request (utime + stime of its
# /proc/PID/stat around the requests; includes background merges), and the statements' CPU,
# rows and bytes read per request (system.query_log: ProfileEvents' user and system time,
# `read_rows`, `read_bytes`), which load does not change.
#
# Every process is stopped by the pid this script started it with.
set -euo pipefail

base_bin=$(realpath "${1:?usage: tools/bench-clickhouse-reads.sh BASE_BINARY NEW_BINARY [SPANS] [DOUBLINGS] [REQUESTS] [ROUNDS]}")
new_bin=$(realpath "${2:?usage: tools/bench-clickhouse-reads.sh BASE_BINARY NEW_BINARY [SPANS] [DOUBLINGS] [REQUESTS] [ROUNDS]}")
spans=${3:-312500}
doublings=${4:-5}
requests=${5:-100}
rounds=${6:-3}
source "$(dirname "$(realpath "$0")")/clickhouse/server.sh"
clickhouse_work switchyard-bench-reads
clickhouse_start
echo "clickhouse-server $(ch 'SELECT version()') pid $ch_pid; $(nproc) cores shared by everything below; load $(cut -d' ' -f1-3 /proc/loadavg)"

# start_serve NAME BINARY DATABASE: sets s_pid, s_http.
start_serve() {
    local http otlp grpc
    http=$(free_port)
    otlp=$(free_port)
    grpc=$(free_port)
    "$2" serve --db "$work/$1-broker.db" --http "127.0.0.1:$http" --otlp-http "127.0.0.1:$otlp" \
        --otlp-grpc "127.0.0.1:$grpc" --clickhouse "http://127.0.0.1:$ch_http/$3" \
        >"$work/$1.log" 2>&1 &
    s_pid=$!
    pids+=("$s_pid")
    # A migration that indexes 10M spans takes a while.
    for _ in $(seq 36000); do
        curl -sf "http://127.0.0.1:$http/healthz" >/dev/null && break
        kill -0 "$s_pid" 2>/dev/null || { tail -5 "$work/$1.log" >&2; exit 1; }
        sleep 0.1
    done
    s_http=$http s_otlp=$otlp
}

# --- load: each binary ingests into its own database, ClickHouse doubles -----------------
# (Each binary writes its own minute rows: rows written by an older version keep their old
# form after a migration, so a copy of BASE's database would not show NEW's topology read.)
# load NAME BINARY
load() {
    start_serve "load-$1" "$2" "$1"
    local load_pid=$s_pid cols expr r t
    "$2" bench ingest --max-spans "$spans" --rate 0 --connections 4 --duration 3600s \
        --target "http://127.0.0.1:$s_otlp" --api "http://127.0.0.1:$s_http" --server-pid "$load_pid" \
        --store-pid "$ch_pid" | tail -3
    kill "$load_pid"
    wait "$load_pid" 2>/dev/null || true
    cols=$(ch "SELECT arrayStringConcat(groupArray(name), ',') FROM (SELECT name FROM system.columns WHERE database = '$1' AND table = 'spans')")
    for r in $(seq "$doublings"); do
        expr=${cols/trace_id,/toFixedString(concat(reinterpretAsString(cityHash64(trace_id, $r)), reinterpretAsString(cityHash64($r, trace_id))), 16),}
        ch "INSERT INTO $1.spans ($cols) SELECT $expr FROM $1.spans"
        # The search index's rows of the new traces, with the same ids: `trace_postings`
        # (schema version 8) or `trace_terms` (versions 5-7).
        for t in trace_terms trace_postings; do
            [[ $(ch "SELECT count() FROM system.tables WHERE database = '$1' AND name = '$t'") == 1 ]] || continue
            local tcols texpr
            tcols=$(ch "SELECT arrayStringConcat(groupArray(name), ',') FROM (SELECT name FROM system.columns WHERE database = '$1' AND table = '$t')")
            texpr=${tcols/trace_id/toFixedString(concat(reinterpretAsString(cityHash64(trace_id, $r)), reinterpretAsString(cityHash64($r, trace_id))), 16)}
            ch "INSERT INTO $1.$t ($tcols) SELECT $texpr FROM $1.$t"
        done
        # The minute rows as more writer groups would have left them: `edge_sums` (schema
        # version 7, folded by background merges) where it exists, `edge_minutes` before.
        for t in edge_minutes edge_sums service_minutes; do
            [[ $(ch "SELECT count() FROM system.tables WHERE database = '$1' AND name = '$t'") == 1 ]] || continue
            ch "INSERT INTO $1.$t SELECT * FROM $1.$t"
        done
    done
    echo "$1: OPTIMIZE TABLE spans (one merge, not FINAL), then background merges let run"
    ch "OPTIMIZE TABLE $1.spans" || true
    settle "$1"
    echo "$1: spans $(ch "SELECT count() FROM $1.spans"); parts of spans: $(ch "SELECT count() FROM system.parts WHERE active AND database = '$1' AND table = 'spans'"); load $(cut -d' ' -f1-3 /proc/loadavg)"
    for t in edge_minutes edge_sums; do
        echo "$1: $t rows $(ch "SELECT sum(rows) FROM system.parts WHERE active AND database = '$1' AND table = '$t'") in $(ch "SELECT count() FROM system.parts WHERE active AND database = '$1' AND table = '$t'") parts"
    done
}

# settle DATABASE: waits until ClickHouse runs no merge of the database, seen so on 10
# checks a second apart (its background pool picks the next merge within seconds), as a
# steady state's merges would leave it; no OPTIMIZE FINAL. At most 30 minutes.
settle() {
    local quiet=0 t0=$SECONDS
    while ((quiet < 10 && SECONDS - t0 < 1800)); do
        if [[ $(ch "SELECT count() FROM system.merges WHERE database = '$1'") == 0 ]]; then
            quiet=$((quiet + 1))
        else
            quiet=0
        fi
        sleep 1
    done
    echo "$1: background merges done after $((SECONDS - t0)) s"
}
load base "$base_bin"
load new "$new_bin"
n=$(ch "SELECT count() FROM base.spans")

t0=$(date +%s)
start_serve base "$base_bin" base
base_http=$s_http
start_serve new "$new_bin" new
new_http=$s_http
echo "serve of NEW_BINARY up (its migration included) after $(($(date +%s) - t0)) s; bytes on disk per span: base $(ch "SELECT round(sum(bytes_on_disk) / $n, 1) FROM system.parts WHERE active AND database = 'base'"), new $(ch "SELECT round(sum(bytes_on_disk) / $n, 1) FROM system.parts WHERE active AND database = 'new'") (its index $(ch "SELECT round(sum(bytes_on_disk) / $n, 1) FROM system.parts WHERE active AND database = 'new' AND table IN ('trace_terms', 'trace_postings')"))"

trace_ids() {
    curl -sf "http://127.0.0.1:$1/api/traces?limit=50" | python3 -c 'import json,sys; print(" ".join(t["trace_id"] for t in json.load(sys.stdin)["traces"]))'
}
read -r -a base_ids <<<"$(trace_ids "$base_http")"
read -r -a new_ids <<<"$(trace_ids "$new_http")"
ids=("${base_ids[@]}")
service=svc-3
operation=$(curl -sf "http://127.0.0.1:$base_http/api/traces/${ids[0]}" | python3 -c 'import json,sys; d=json.load(sys.stdin); s=d.get("spans", d); print(next(x["name"] for x in s if x["service"] == "'$service'") if any(x["service"] == "'$service'" for x in s) else "")' 2>/dev/null || true)
endpoints=("topology:/api/topology" "trace:/api/traces/ID" "search:/api/traces?limit=20"
    "service:/api/traces?limit=20&service=$service" "errors:/api/traces?limit=20&service=$service&status=error"
    "service+op:/api/traces?limit=20&service=$service&operation=${operation// /%20}")

# measure NAME HTTP: one round of every endpoint; appends "name endpoint wall_us" lines and
# "cpu name endpoint ticks from to" lines (the query_log window) to $work/results.
measure() {
    local who=$1 http=$2 e label path before after from to i url ids
    if [[ $who == base ]]; then ids=("${base_ids[@]}"); else ids=("${new_ids[@]}"); fi
    for e in "${endpoints[@]}"; do
        label=${e%%:*}
        path=${e#*:}
        # A second of its own in query_log for each endpoint's requests.
        sleep 1.1
        from=$(date +%s)
        before=$(cpu_ticks "$ch_pid")
        for i in $(seq "$requests"); do
            url="http://127.0.0.1:$http${path/ID/${ids[$((i % ${#ids[@]}))]}}"
            curl -sf -o /dev/null -w "$who $label %{time_total}\n" "$url" >>"$work/results" || echo "$who $label fail" >>"$work/results"
        done
        after=$(cpu_ticks "$ch_pid")
        to=$(date +%s)
        echo "cpu $who $label $((after - before)) $from $to" >>"$work/results"
    done
}

for r in $(seq "$rounds"); do
    measure base "$base_http"
    measure new "$new_http"
done
echo "load after the rounds: $(cut -d' ' -f1-3 /proc/loadavg)"
# query_log is written once a second: wait until it holds the last request.
last=$(date +%s)
for _ in $(seq 600); do
    [[ $(ch "SELECT count() FROM system.query_log WHERE event_time >= toDateTime($last)") -gt 0 ]] && break
    ch "SELECT 1" >/dev/null
    sleep 0.1
done
ch "SELECT toUInt32(event_time) AS t, read_rows, read_bytes,
    ProfileEvents.Values[indexOf(ProfileEvents.Names, 'UserTimeMicroseconds')]
    + ProfileEvents.Values[indexOf(ProfileEvents.Names, 'SystemTimeMicroseconds')] AS cpu_us
    FROM system.query_log
    WHERE type = 2 AND query NOT LIKE '%system.%' AND query NOT LIKE 'SELECT 1%'
    AND (positionCaseInsensitive(query, 'FROM') > 0)
    FORMAT TSV" >"$work/query_log"
python3 - "$work/results" "$work/query_log" "$requests" <<'EOF'
import sys, collections
results, qlog, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
wall = collections.defaultdict(list)
cpu = collections.defaultdict(int)
windows = []
fails = collections.Counter()
for line in open(results):
    p = line.split()
    if p[0] == "cpu":
        cpu[(p[1], p[2])] += int(p[3])
        windows.append((p[1], p[2], int(p[4]), int(p[5])))
    elif p[2] == "fail":
        fails[(p[0], p[1])] += 1
    else:
        wall[(p[0], p[1])].append(float(p[2]) * 1000)
log = [tuple(int(x) for x in l.split("\t")) for l in open(qlog) if l.strip()]
reads = collections.defaultdict(lambda: [0, 0, 0])
for who, label, a, b in windows:
    for t, rows, byts, cpu_us in log:
        if a <= t <= b:
            reads[(who, label)][0] += rows
            reads[(who, label)][1] += byts
            reads[(who, label)][2] += cpu_us
def pct(v, q):
    v = sorted(v)
    return v[min(len(v) - 1, int(q * len(v)))] if v else float("nan")
labels = []
for (who, label) in wall:
    if label not in labels:
        labels.append(label)
print("CH CPU: clickhouse-server's utime + stime around the requests (background merges included);")
print("query CPU: the requests' statements' own (query_log ProfileEvents, user + system), which load does not change")
print(f"{'endpoint':<11} {'binary':<5} {'p50 ms':>8} {'p99 ms':>8} {'CH CPU ms/req':>13} {'query CPU ms/req':>16} {'rows/req':>11} {'MB/req':>8}  fails")
for label in labels:
    row = {}
    for who in ("base", "new"):
        w = wall[(who, label)]
        k = len(w) + fails[(who, label)]
        c = cpu[(who, label)] * 10 / max(k, 1)
        rr = reads[(who, label)]
        q = rr[2] / 1000 / max(k, 1)
        row[who] = (pct(w, .5), pct(w, .99), c, rr[0] / max(k, 1), rr[1] / max(k, 1) / 1e6, q)
        print(f"{label:<11} {who:<5} {row[who][0]:>8.1f} {row[who][1]:>8.1f} {c:>13.2f} {q:>16.2f} {rr[0]/max(k,1):>11.0f} {rr[1]/max(k,1)/1e6:>8.2f}  {fails[(who, label)]}")
    b, nw = row["base"], row["new"]
    ratio = lambda x, y: f"{y / x:.3f}" if x else "-"
    print(f"{'':<11} new/base p50 {ratio(b[0], nw[0])} p99 {ratio(b[1], nw[1])} CPU {ratio(b[2], nw[2])} query CPU {ratio(b[5], nw[5])} rows {ratio(b[3], nw[3])} bytes {ratio(b[4], nw[4])}")
EOF
