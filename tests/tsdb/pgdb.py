"""A throwaway PostgreSQL database registered as an extra Django connection alias.

Used by the SQL-backend tests (to run the contract on PostgreSQL even when the test run's default
database is SQLite) and by ``benchmarks/query.py``. The database is created from the server's
maintenance database, given the tsdb tables (``SQLBackend.ensure_collections``), and dropped on exit.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from django.db import connections

from apps.tsdb.backends.sql import SQLBackend
from stamm_site.settings.env import database_from_url

SERVER_URL = os.environ.get("STAMM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@contextmanager
def throwaway_postgres(prefix: str = "stamm_tsdb", *, server_url: str = SERVER_URL) -> Iterator[str]:
    """Yield the alias of a fresh, migrated PostgreSQL database; drop it afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    alias = name
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = server_url.rpartition("/")
    config = database_from_url(f"{base}/{name}")
    config["CONN_MAX_AGE"] = 0
    connections.settings[alias] = connections.configure_settings({"default": {}, alias: config})[alias]
    try:
        SQLBackend({"DATABASE": alias}).ensure_collections()
        yield alias
    finally:
        try:
            connections[alias].close()
        finally:
            del connections.settings[alias]
            try:
                delattr(connections._connections, alias)
            except AttributeError:
                pass
            with psycopg.connect(server_url, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
