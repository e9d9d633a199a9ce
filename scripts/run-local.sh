#!/usr/bin/env bash
# `make run`: the embedded default. Migrates, seeds the demo, then runs the web server and a Celery
# worker with embedded beat in the foreground. Ctrl-C stops all of it. Running it again reuses the data.
set -euo pipefail
cd "$(dirname "$0")/.."
export DJANGO_SETTINGS_MODULE=stamm_site.settings.local
PY=.venv/bin/python
HOST="${STAMM_HOST:-127.0.0.1}"
PORT="${STAMM_PORT:-8000}"

$PY manage.py migrate --noinput
$PY manage.py collectstatic --noinput --verbosity 0
$PY manage.py demo_seed

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
  --scheduler django_celery_beat.schedulers:DatabaseScheduler \
  --schedule var/celerybeat-schedule --pidfile= &
pids+=($!)
$PY manage.py runserver --noreload "$HOST:$PORT" &
pids+=($!)

cat <<MSG

  STAMM is running at http://$HOST:$PORT/
  Sign in with a demo user; the credentials are in var/demo-credentials.txt
  API documentation: http://$HOST:$PORT/api/docs/   Admin: http://$HOST:$PORT/admin/
  Press Ctrl-C to stop.

MSG
wait -n "${pids[@]}"
