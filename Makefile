# The two commands of the quick start: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test venv lint clean-var

$(STAMP): requirements/base.txt requirements/dev.txt packages/stamm-drift/pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements/dev.txt
	@touch $(STAMP)

venv: $(STAMP)

## Set up, migrate, seed the demo, then run web + worker + beat on the embedded default (Ctrl-C stops all).
# In a terminal the script runs as a job of its own (bash -m gives it the terminal), so Ctrl-C reaches it
# and not make: it stops every process it started and exits 0, and so does make.
run: $(STAMP)
	@if [ -t 0 ]; then bash -mc 'bash scripts/run-local.sh; exit $$?'; else bash scripts/run-local.sh; fi

## Set up the same environment and run the whole suite (two passes in CI: SQLite, then PostgreSQL).
test: $(STAMP)
	@bash scripts/test.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check apps stamm_site tests benchmarks packages

## Forget the embedded default's data (database, broker folder, media, demo credentials).
clean-var:
	rm -rf var
