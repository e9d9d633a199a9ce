#!/usr/bin/env bash
# `make run`: the embedded default. Migrates, seeds the demo, then runs the web server and a Celery
# worker with embedded beat in the foreground. Ctrl-C stops all of it. Running it again reuses the data.
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
  echo "Stopping web server and worker..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "Stopped."
}
trap cleanup INT TERM EXIT

.venv/bin/celery -A stamm_site worker --beat --loglevel INFO --concurrency 2 \
  --scheduler django_celery_beat.schedulers:DatabaseScheduler --pidfile= &
pids+=($!)
$PY manage.py runserver --noreload "$HOST:$PORT" &
pids+=($!)
essential=("${pids[@]}")

# Batch 91 streams in live through the ingest path, one row every STAMM_REPLAY_INTERVAL (STAMM's Node-RED
# default is 20 s); resumable, so a second `make run` continues where the first stopped.
if [[ -f "$DATA_DIR/batch_91.csv" ]]; then
  $PY manage.py tsdb_replay "$DATA_DIR/batch_91.csv" --project penicillin --device R1 --batch batch_91 \
    --interval "${STAMM_REPLAY_INTERVAL:-20s}" --no-progress > "$VAR_DIR/replay.log" 2>&1 &
  pids+=($!)
fi

cat <<MSG

  STAMM is running at http://$HOST:$PORT/
  Sign in with a demo user; the credentials are in $VAR_DIR/demo-credentials.txt
  API documentation: http://$HOST:$PORT/api/docs/   Admin: http://$HOST:$PORT/admin/
  Batch 91 is replaying live (log: $VAR_DIR/replay.log); predictions appear as rows arrive.
  Press Ctrl-C to stop.

MSG
wait -n "${essential[@]}"
