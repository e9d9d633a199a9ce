#!/usr/bin/env bash
# `make run`: the embedded default. Migrates, seeds the demo, then runs the web server, a Celery worker
# with embedded beat and the connectors process (MQTT / OPC UA sources) in the foreground. Ctrl-C stops all
# of it. Running it again reuses the data. The worker is supervised: if it exits (it should not, even when a
# Redis broker restarts; see docs/orchestrator.md) it is started again after STAMM_WORKER_RESTART_DELAY
# seconds (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
export DJANGO_SETTINGS_MODULE=stamm_site.settings.local
PY=.venv/bin/python
HOST="${STAMM_HOST:-127.0.0.1}"
PORT="${STAMM_PORT:-8000}"
DATA_DIR="${STAMM_DEMO_DATA:-../shared/data/indpensim}"
VAR_DIR="${STAMM_VAR_DIR:-var}"
mkdir -p "$VAR_DIR"
# The orchestrator reaches models only through the registry REST API: this same server by default.
export STAMM_REGISTRY_URL="${STAMM_REGISTRY_URL:-http://$HOST:$PORT}"

$PY manage.py migrate --noinput
$PY manage.py collectstatic --noinput --verbosity 0
$PY manage.py demo_seed --data-dir "$DATA_DIR"

pids=()
cleanup() {
  trap - INT TERM EXIT
  echo
  echo "Stopping web server, worker and connectors..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "Stopped."
}
# Ctrl-C (INT) and TERM are how a person stops `make run`: stop the children and exit 0, so make reports no
# error. Any other end (a child that died, an error above) keeps its own status through the EXIT trap.
stop() {
  cleanup
  exit 0
}
trap stop INT TERM
trap cleanup EXIT

# supervise NAME COMMAND...: run COMMAND in the background, in a process group of its own, and again
# whenever it exits, until stopped. On stop (TERM, which the cleanup above sends) the command gets TERM
# and shuts down its own children; once it is gone, whatever is left of its group (the pool processes and
# embedded beat of a worker that died hard) gets TERM too, so nothing is left behind.
supervise() {
  local name=$1
  shift
  (
    child=""
    stop_group() {
      [[ -n "$child" ]] || return 0
      kill -TERM "$child" 2>/dev/null || true
      wait "$child" 2>/dev/null || true
      kill -TERM -- "-$child" 2>/dev/null || true
    }
    trap 'stop_group; exit 0' TERM INT
    while true; do
      setsid "$@" &
      child=$!
      status=0
      wait "$child" || status=$?
      stop_group
      echo "[run-local] $name exited (status $status); starting it again in ${STAMM_WORKER_RESTART_DELAY:-2} s" >&2
      sleep "${STAMM_WORKER_RESTART_DELAY:-2}"
    done
  ) &
  pids+=($!)
}

supervise worker .venv/bin/celery -A stamm_site worker --beat --loglevel INFO --concurrency 2 \
  --scheduler django_celery_beat.schedulers:DatabaseScheduler --pidfile=
$PY manage.py runserver --noreload "$HOST:$PORT" &
pids+=($!)
# Plant connectivity: reads every enabled data source (none until you add one) and applies changes live.
$PY manage.py connectors_run &
pids+=($!)
essential=("${pids[@]}")

# Batch 91 streams in live through the ingest path. A fresh demo first writes its first
# STAMM_REPLAY_BACKFILL rows (default 320: 64 h of process, production under way, six lab samples and the bias
# updates they caused, the validity change at the batch's start) at the process's own spacing ending now, then
# goes on live, one row every STAMM_REPLAY_INTERVAL (STAMM's Node-RED default is 20 s). 320 puts the lab
# sample of hour 60 exactly one lab delay (4 h, the demo model's bias update) before now, so the first live
# rows are the first its bias update applies to: a newcomer sees the estimate step towards the lab in the
# first minute. Resumable: a second `make run` continues where the first stopped.
if [[ -f "$DATA_DIR/batch_91.csv" ]]; then
  $PY manage.py tsdb_replay "$DATA_DIR/batch_91.csv" --project penicillin --device R1 --batch batch_91 \
    --backfill "${STAMM_REPLAY_BACKFILL:-320}" --interval "${STAMM_REPLAY_INTERVAL:-20s}" --no-progress \
    > "$VAR_DIR/replay.log" 2>&1 &
  pids+=($!)
fi

cat <<MSG

  STAMM is running at http://$HOST:$PORT/
  Sign in with a demo user; the credentials are in $VAR_DIR/demo-credentials.txt
  API documentation: http://$HOST:$PORT/api/docs/   Admin: http://$HOST:$PORT/admin/
  Plant connectivity (MQTT / OPC UA sources, estimates published back): http://$HOST:$PORT/connectors/
  Batch 91 is replaying live from hour 66 (log: $VAR_DIR/replay.log); estimates move as rows arrive.
  Press Ctrl-C to stop.

MSG
wait -n "${essential[@]}"
