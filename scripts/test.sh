#!/usr/bin/env bash
# `make test`: the whole suite on SQLite; with CI=true a second pass on PostgreSQL (and every test whose
# service is missing fails instead of skipping).
set -uo pipefail
cd "$(dirname "$0")/.."
PYTEST=.venv/bin/pytest
export DJANGO_ALLOW_ASYNC_UNSAFE=true
mkdir -p test-artifacts

echo "== pass 1: SQLite (the embedded default) =="
env -u DATABASE_URL $PYTEST "$@"
status=$?
if [[ "${CI:-}" == "true" || -n "${STAMM_TEST_POSTGRES:-}" ]]; then
  echo "== pass 2: PostgreSQL =="
  DATABASE_URL="${STAMM_TEST_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/test}" \
    $PYTEST -m "not browser and not celery_worker" "$@"
  second=$?
  (( status == 0 )) && status=$second
fi
exit $status
