#!/usr/bin/env bash
# Start Debian's InfluxDB 1.x (influxd) on 127.0.0.1 with data of its own, for tests, CI and benchmarks.
#
#   scripts/influxdb-start.sh [DIR]        # DIR defaults to $INFLUXDB_DIR or var/influxdb
#   scripts/influxdb-start.sh --stop [DIR] # stop the influxd this script started in DIR
#
# No systemd: influxd runs in the background with a generated config whose meta, data and wal
# directories, log file and pid file all live under DIR. Idempotent: if /ping already answers on the
# port, nothing is started. Waits up to INFLUXDB_START_TIMEOUT seconds (30) for /ping to answer.
# Environment: INFLUXDB_PORT (8086), INFLUXDB_BIND (127.0.0.1), INFLUXD (path to influxd).
set -euo pipefail

stop=false
if [[ "${1:-}" == "--stop" ]]; then
    stop=true
    shift
fi

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${1:-${INFLUXDB_DIR:-$repo_root/var/influxdb}}"
port="${INFLUXDB_PORT:-8086}"
bind="${INFLUXDB_BIND:-127.0.0.1}"
timeout="${INFLUXDB_START_TIMEOUT:-30}"
influxd="${INFLUXD:-$(command -v influxd || true)}"
url="http://$bind:$port"

mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
pidfile="$dir/influxd.pid"
logfile="$dir/influxd.log"
conf="$dir/influxd.conf"

ping_ok() {
    # /ping answers 204 on every InfluxDB generation.
    [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url/ping" 2>/dev/null || true)" == "204" ]]
}

if $stop; then
    if [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        pid="$(cat "$pidfile")"
        kill "$pid"
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        rm -f "$pidfile"
        echo "influxd (pid $pid) stopped"
    else
        echo "no influxd started from $dir is running"
    fi
    exit 0
fi

if ping_ok; then
    echo "InfluxDB already answers at $url"
    exit 0
fi

if [[ -z "$influxd" || ! -x "$influxd" ]]; then
    echo "influxd not found: install Debian's influxdb package (apt-get install influxdb) or set INFLUXD" >&2
    exit 1
fi

if [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "influxd (pid $(cat "$pidfile")) is running from $dir but does not answer on $url yet; waiting"
else
    mkdir -p "$dir/meta" "$dir/data" "$dir/wal"
    # Every listener on loopback; no reporting, no _internal monitor database, quiet HTTP log.
    # max-body-size 0: no limit, so the ingest benchmark can compare large requests fairly.
    cat >"$conf" <<EOF
reporting-enabled = false
bind-address = "127.0.0.1:$((port + 2))"

[meta]
  dir = "$dir/meta"
  retention-autocreate = true
  logging-enabled = false

[data]
  dir = "$dir/data"
  wal-dir = "$dir/wal"
  wal-fsync-delay = "0s"
  query-log-enabled = false
  index-version = "inmem"

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = "$bind:$port"
  auth-enabled = false
  log-enabled = false
  pprof-enabled = false
  max-body-size = 0

[logging]
  level = "warn"
  suppress-logo = true
EOF
    nohup "$influxd" -config "$conf" >>"$logfile" 2>&1 </dev/null &
    echo $! >"$pidfile"
    echo "influxd started (pid $(cat "$pidfile")), data in $dir, log $logfile"
fi

deadline=$((SECONDS + timeout))
until ping_ok; do
    if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        echo "influxd exited; last log lines:" >&2
        tail -n 20 "$logfile" >&2 || true
        exit 1
    fi
    if ((SECONDS >= deadline)); then
        echo "InfluxDB did not answer $url/ping within ${timeout}s; log: $logfile" >&2
        tail -n 20 "$logfile" >&2 || true
        exit 1
    fi
    sleep 0.3
done
echo "InfluxDB answers at $url"
