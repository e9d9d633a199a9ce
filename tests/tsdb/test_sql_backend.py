"""The backend contract on the SQL backend: SQLite (default) and PostgreSQL (a throwaway database).

The default database of the test run may itself be PostgreSQL (CI's second pass sets DATABASE_URL), so
``TestSQLBackendDefaultDatabase`` covers whichever engine that is; ``TestSQLBackendPostgres`` always
targets PostgreSQL through pytest-django's test database when DATABASE_URL points there, and is skipped
(locally) or failed (CI) when no PostgreSQL server answers.
"""
from __future__ import annotations

import pytest
from django.db import connection

from apps.tsdb.backends.sql import SQLBackend
from tests.services import postgres_available, require

from .contract import BackendContract


@pytest.fixture
def backend(transactional_db):
    backend = SQLBackend({})
    backend.ensure_collections()
    return backend


@pytest.mark.django_db(transaction=True)
class TestSQLBackendDefaultDatabase(BackendContract):
    """Runs on whichever database the test run uses (SQLite locally, PostgreSQL in CI's second pass)."""

    def test_engine_is_the_django_database(self, backend):
        assert backend.connection.vendor == connection.vendor
