#!/usr/bin/env bash
# A/B ingest throughput of two builds, measured in one run.
#
#   tools/bench-ab.sh BASE_BINARY NEW_BINARY [ROUNDS] [MAX_SPANS]
#
# Each round starts the base server, then the new one (each on fixed loopback ports, from
# BENCH_AB_PORT (27180) to two above, with a fresh temporary database), and runs the same
# client against each: `bench ingest` of
# NEW_BINARY, so the load is identical. Rounds alternate base/new so that load from other
# processes on the machine falls on both alike. For every run it records the acknowledged
# spans per second (from the client) and the server's CPU seconds (utime + stime from
# /proc/PID/stat around the run), then prints each build's mean and range and the ratios
# new/base of the means. Servers are stopped by the pid this script started them with; one
# left over from an interrupted run is found in the work directory's pid file and stopped.
set -euo pipefail

base=${1:?usage: tools/bench-ab.sh BASE_BINARY NEW_BINARY [ROUNDS] [MAX_SPANS]}
new=${2:?usage: tools/bench-ab.sh BASE_BINARY NEW_BINARY [ROUNDS] [MAX_SPANS]}
rounds=${3:-4}
max_spans=${4:-500000}
work=${BENCH_AB_DIR:-${TMPDIR:-/tmp}/switchyard-bench-ab}
port=${BENCH_AB_PORT:-27180}
http=127.0.0.1:$port
otlp=127.0.0.1:$((port + 1))
grpc=127.0.0.1:$((port + 2))
mkdir -p "$work"

stop_server() {
    local pidfile=$work/server.pid
    if [[ -f $pidfile ]]; then
        local pid
        pid=$(cat "$pidfile")
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null || true
        fi
        rm -f "$pidfile"
    fi
}
trap stop_server EXIT
stop_server

# utime + stime of a process, in clock ticks.
cpu_ticks() {
    local rest
    rest=$(sed 's/.*) //' "/proc/$1/stat")
    awk '{print $12 + $13}' <<<"$rest"
}

run_one() {
    local label=$1 binary=$2 db
    db=$(mktemp -d "$work/db.XXXXXX")
    "$binary" serve --db "$db/switchyard.db" --http "$http" --otlp-http "$otlp" \
        --otlp-grpc "$grpc" >"$work/$label.log" 2>&1 &
    local pid=$!
    echo "$pid" >"$work/server.pid"
    for _ in $(seq 300); do
        # Ours, not another server on the same ports: still running once it answers.
        kill -0 "$pid" 2>/dev/null || { tail -3 "$work/$label.log" >&2; exit 1; }
        curl -sf "http://$http/healthz" >/dev/null 2>&1 && break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null || { tail -3 "$work/$label.log" >&2; exit 1; }
    local before after out
    before=$(cpu_ticks "$pid")
    out=$("$new" bench ingest --target "http://$otlp" --api "http://$http" \
        --duration 120s --max-spans "$max_spans" --server-pid "$pid")
    after=$(cpu_ticks "$pid")
    stop_server
    rm -rf "$db"
    local rate cpu
    rate=$(grep -o '([0-9]* spans/s)' <<<"$out" | tr -dc 0-9)
    cpu=$(awk -v a="$after" -v b="$before" 'BEGIN {printf "%.2f", (a - b) / 100}')
    local acked
    acked=$(awk '/acknowledged spans/ {print $3}' <<<"$out")
    echo "$label $rate $cpu $acked" | tee -a "$work/results"
}

: >"$work/results"
echo "build spans/s server_cpu_s spans_acked"
for round in $(seq "$rounds"); do
    run_one base "$base"
    run_one new "$new"
done

awk '
    { rate[$1] += $2; cpu[$1] += $3; acked[$1] += $4; n[$1]++
      if (!($1 in lo) || $2 < lo[$1]) lo[$1] = $2
      if (!($1 in hi) || $2 > hi[$1]) hi[$1] = $2 }
    END {
        for (b in n) printf "%s: mean %.0f spans/s (range %d-%d), %.0f spans per server CPU-second, %d runs\n",
            b, rate[b] / n[b], lo[b], hi[b], acked[b] / cpu[b], n[b]
        printf "ratio new/base: %.3fx spans/s, %.3fx spans per server CPU-second\n",
            (rate["new"] / n["new"]) / (rate["base"] / n["base"]),
            (acked["new"] / cpu["new"]) / (acked["base"] / cpu["base"])
    }' "$work/results"
