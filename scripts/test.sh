#!/usr/bin/env bash
# `make test`: the whole suite on SQLite; with CI=true a second pass on PostgreSQL (and every test whose
# service is missing fails instead of skipping).
set -uo pipefail
cd "$(dirname "$0")/.."
PYTEST=.venv/bin/pytest
export DJANGO_ALLOW_ASYNC_UNSAFE=true
# Bytecode is cached: with PYTHONDONTWRITEBYTECODE set (as on some machines) every test process and every
# manage.py, gunicorn and Celery process the suite starts compiled the project and its tests from source
# again (half of a worker's 15-s collection).
unset PYTHONDONTWRITEBYTECODE
mkdir -p test-artifacts

echo "== the stamm-drift package: its own tests without Django, and its wheel =="
# Its own pytest invocation and configuration (packages/stamm-drift/pyproject.toml): pytest-django is not
# loaded and the tests' conftest makes any import of django or the apps fail.
(cd packages/stamm-drift && env -u DJANGO_SETTINGS_MODULE ../../$PYTEST -q)
package=$?
drift_wheel() {  # build the wheel, install it apart, and import it from there rather than from the source
  local dir rc
  dir=$(mktemp -d)
  .venv/bin/python -m pip wheel --quiet --no-deps --no-build-isolation -w "$dir" packages/stamm-drift \
    && .venv/bin/python -m pip install --quiet --no-deps --target "$dir/site" "$dir"/stamm_drift-*.whl \
    && (cd "$dir" && PYTHONPATH="$dir/site" "$OLDPWD/.venv/bin/python" -c "import stamm_drift, stamm_drift.compat, sys
assert stamm_drift.__file__.startswith(sys.argv[1]), stamm_drift.__file__
print('wheel', stamm_drift.__version__, 'imports from', stamm_drift.__file__)" "$dir/site")
  rc=$?
  rm -rf "$dir"
  return $rc
}
drift_wheel
wheel=$?

# Both cores: test files are spread over STAMM_TEST_WORKERS processes (3, at most 4; 0 runs them in this
# process), a file's tests stay together so data a module builds once is built once. Three on two cores,
# because many tests wait on the gunicorn, Celery, browser or broker processes they start (README).
# tests/services.py gives each worker its own Redis databases; pytest-django gives each its own test database.
WORKERS="${STAMM_TEST_WORKERS:-3}"
XDIST=()
if [[ "$WORKERS" != "0" ]]; then XDIST=(-n "$WORKERS" --dist loadfile); fi

# The tests marked `postgres` need a PostgreSQL server of their own (a throwaway database: the end-to-end
# stack on PostgreSQL, the SQL backend's PostgreSQL contract); they run with the PostgreSQL pass, or after
# the SQLite pass when there is none, and skip (fail in CI) without a server.
echo "== pass 1: SQLite (the embedded default) =="
env -u DATABASE_URL $PYTEST "${XDIST[@]}" -m "not postgres" "$@"
status=$?
if [[ "${CI:-}" == "true" || -n "${STAMM_TEST_POSTGRES:-}" ]]; then
  echo "== pass 2: PostgreSQL =="
  DATABASE_URL="${STAMM_TEST_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/test}" \
    $PYTEST "${XDIST[@]}" -m "postgres or not (browser or celery_worker)" "$@"
  second=$?
else
  echo "== the tests that need a PostgreSQL server of their own =="
  env -u DATABASE_URL $PYTEST "${XDIST[@]}" -m "postgres" "$@"
  second=$?
fi
(( status == 0 )) && status=$second
for part in $package $wheel; do
  (( status == 0 )) && status=$part
done
exit $status
