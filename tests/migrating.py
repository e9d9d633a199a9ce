"""Tests that migrate the test database back to check an upgrade: going back unapplies every migration that
depends on the target (other apps' too), so coming forward must apply every app's leaf again, or the tests
after them run on a half-migrated schema."""

from __future__ import annotations

from typing import Any


def migrate_to(targets: list[tuple[str, str]]) -> Any:
    """Migrate back (or forward) to ``targets``; returns the historical apps at that state."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def migrate_to_latest() -> None:
    """Apply every app's migrations to the end (what ``migrate`` does), from a fresh graph."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
