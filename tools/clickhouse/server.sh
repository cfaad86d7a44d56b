# A clickhouse-server of a bench script's own (sourced by tools/bench-clickhouse.sh and
# tools/bench-clickhouse-reads.sh; not run alone).
#
#   source "$(dirname "$0")/clickhouse/server.sh"
#   clickhouse_work PREFIX   # $work: a temporary directory, removed at exit with every pid in $pids
#   clickhouse_start         # Debian's clickhouse-server on free loopback ports, data under $work/ch
#   ch 'SELECT 1'            # one statement over HTTP
#
# Sets `work`, `pids` (append every process started, so that the exit trap stops it by its
# pid), `ch_http`, `ch_pid`. Provides `free_port` (a free loopback port from the OS) and
# `cpu_ticks PID` (utime + stime of /proc/PID/stat, in clock ticks). The server logs queries
# (`system.query_log`, flushed every second) and the parts it writes and merges
# (`system.part_log`) and runs each with at most 2 threads.

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

clickhouse_cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}

# clickhouse_work PREFIX: the temporary directory and the exit trap.
clickhouse_work() {
    work=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
    pids=()
    trap clickhouse_cleanup EXIT
}

ch() { curl -sf "http://127.0.0.1:$ch_http/" --data-binary "$1"; }

# clickhouse_start: writes the config, starts the server and waits (at most 60 s) for /ping.
clickhouse_start() {
    ch_http=$(free_port)
    local tcp inter
    tcp=$(free_port)
    inter=$(free_port)
    mkdir -p "$work/ch"
    cat >"$work/ch/config.xml" <<EOF
<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><console>1</console></logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>$ch_http</http_port>
  <tcp_port>$tcp</tcp_port>
  <interserver_http_port>$inter</interserver_http_port>
  <interserver_http_host>127.0.0.1</interserver_http_host>
  <path>$work/ch/data/</path>
  <tmp_path>$work/ch/tmp/</tmp_path>
  <user_files_path>$work/ch/user_files/</user_files_path>
  <format_schema_path>$work/ch/format_schemas/</format_schema_path>
  <users_config>users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>268435456</mark_cache_size>
  <uncompressed_cache_size>268435456</uncompressed_cache_size>
  <max_concurrent_queries>64</max_concurrent_queries>
  <query_log>
    <database>system</database>
    <table>query_log</table>
    <flush_interval_milliseconds>1000</flush_interval_milliseconds>
  </query_log>
  <part_log>
    <database>system</database>
    <table>part_log</table>
    <flush_interval_milliseconds>1000</flush_interval_milliseconds>
  </part_log>
</yandex>
EOF
    cat >"$work/ch/users.xml" <<EOF
<?xml version="1.0"?>
<yandex>
  <profiles><default><max_threads>2</max_threads><log_queries>1</log_queries></default></profiles>
  <users>
    <default>
      <password></password>
      <networks><ip>127.0.0.1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
  </users>
  <quotas><default></default></quotas>
</yandex>
EOF
    /usr/sbin/clickhouse-server --config-file="$work/ch/config.xml" >"$work/ch/server.log" 2>&1 &
    ch_pid=$!
    pids+=("$ch_pid")
    for _ in $(seq 600); do
        curl -sf "http://127.0.0.1:$ch_http/ping" >/dev/null && return 0
        kill -0 "$ch_pid" 2>/dev/null || { tail -5 "$work/ch/server.log" >&2; return 1; }
        sleep 0.1
    done
    echo "clickhouse-server did not answer on 127.0.0.1:$ch_http within 60 s" >&2
    return 1
}
