#!/usr/bin/env bash
# A/B one read endpoint of two builds on the same database, measured in one run.
#
#   tools/read-ab.sh BASE_BINARY NEW_BINARY DB PATH_AND_QUERY [ROUNDS] [REQUESTS]
#
# Each round starts the base server on DB, then the new one (the order swapped every other
# round, so load from other processes falls on both alike), on fixed loopback ports from
# READ_AB_PORT (27280) to two above. Against each it sends 3 warm-up requests, then REQUESTS
# requests of PATH_AND_QUERY one after the other (curl, to the last byte), and records the
# server's CPU time over them (utime + stime from /proc/PID/stat). It prints each build's
# server CPU per request, p50 and p99 over every request of its runs, and the ratios
# new/base. Fill DB first (`switchyard bench ingest`) and give fixed `since`/`until` so both
# builds answer the same data. Servers are stopped by the pid this script started them with.
set -euo pipefail

usage="usage: tools/read-ab.sh BASE_BINARY NEW_BINARY DB PATH_AND_QUERY [ROUNDS] [REQUESTS]"
base=${1:?$usage}
new=${2:?$usage}
db=${3:?$usage}
path=${4:?$usage}
rounds=${5:-4}
requests=${6:-100}
work=${READ_AB_DIR:-${TMPDIR:-/tmp}/switchyard-read-ab}
port=${READ_AB_PORT:-27280}
http=127.0.0.1:$port
mkdir -p "$work"
pid=

stop_server() {
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    pid=
}
trap stop_server EXIT

# utime + stime of a process, in clock ticks.
cpu_ticks() {
    local rest
    rest=$(sed 's/.*) //' "/proc/$1/stat")
    awk '{print $12 + $13}' <<<"$rest"
}

run_one() {
    local label=$1 binary=$2
    "$binary" serve --db "$db" --http "$http" --otlp-http "127.0.0.1:$((port + 1))" \
        --otlp-grpc "127.0.0.1:$((port + 2))" >"$work/$label.log" 2>&1 &
    pid=$!
    for _ in $(seq 300); do
        kill -0 "$pid" 2>/dev/null || { tail -3 "$work/$label.log" >&2; exit 1; }
        curl -sf "http://$http/healthz" >/dev/null 2>&1 && break
        sleep 0.1
    done
    for _ in 1 2 3; do curl -sf -o /dev/null "http://$http$path"; done
    local before after
    before=$(cpu_ticks "$pid")
    for _ in $(seq "$requests"); do
        curl -sf -o /dev/null -w '%{time_total}\n' "http://$http$path"
    done >>"$work/$label.times"
    after=$(cpu_ticks "$pid")
    stop_server
    echo "$label $((after - before))" | tee -a "$work/cpu"
}

: >"$work/cpu"
: >"$work/base.times"
: >"$work/new.times"
echo "build server_cpu_ticks_for_${requests}_requests"
for round in $(seq "$rounds"); do
    if ((round % 2)); then
        run_one base "$base"
        run_one new "$new"
    else
        run_one new "$new"
        run_one base "$base"
    fi
done

pct() { sort -n "$1" | awk -v q="$2" '{v[NR] = $1} END {r = int(q * NR); if (r < q * NR) r++; if (r < 1) r = 1; printf "%.2f", v[r] * 1000}'; }
hz=$(getconf CLK_TCK)
for b in base new; do
    cpu=$(awk -v b="$b" -v n="$requests" -v hz="$hz" '$1 == b {t += $2; r++} END {printf "%.2f", t / hz * 1000 / (r * n)}' "$work/cpu")
    echo "$b: server CPU $cpu ms/request, p50 $(pct "$work/$b.times" 0.5) ms, p99 $(pct "$work/$b.times" 0.99) ms"
    eval "${b}_cpu=$cpu ${b}_p50=$(pct "$work/$b.times" 0.5) ${b}_p99=$(pct "$work/$b.times" 0.99)"
done
awk -v c1="$base_cpu" -v c2="$new_cpu" -v a1="$base_p50" -v a2="$new_p50" -v b1="$base_p99" -v b2="$new_p99" \
    'BEGIN {printf "ratio new/base: CPU %.2fx, p50 %.2fx, p99 %.2fx\n", c2 / c1, a2 / a1, b2 / b1}'
