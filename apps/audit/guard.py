"""Database triggers that make the audit tables append-only for every client, not only this code.

The migration installs them (unless ``STAMM_AUDIT_DB_GUARD`` is off: the test settings turn it off because
the test runner empties every table between transactional tests). An UPDATE or DELETE on a guarded table
aborts with "append-only"; on PostgreSQL so does TRUNCATE. Whoever can drop a trigger (the database owner)
can still remove them: protecting the database account is the site's part (docs/governance.md).
"""

from __future__ import annotations

from typing import Any

GUARDED_TABLES = ("audit_auditentry", "audit_signature")
MESSAGE = "the audit trail is append-only"


def _statements(vendor: str, table: str) -> list[str]:
    if vendor == "sqlite":
        return [
            f"CREATE TRIGGER IF NOT EXISTS {table}_no_update BEFORE UPDATE ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END",
            f"CREATE TRIGGER IF NOT EXISTS {table}_no_delete BEFORE DELETE ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END",
        ]
    if vendor == "postgresql":
        return [
            f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}",
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION stamm_audit_append_only()",
            f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}",
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION stamm_audit_append_only()",
        ]
    return []


_PG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION stamm_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '{MESSAGE} (% on %)', TG_OP, TG_TABLE_NAME;
END;
$$ LANGUAGE plpgsql
"""


def guard_install(connection: Any) -> bool:
    """Install the append-only triggers on the audit tables; False on a database without support."""
    vendor = connection.vendor
    statements = ([_PG_FUNCTION] if vendor == "postgresql" else []) + [
        sql for table in GUARDED_TABLES for sql in _statements(vendor, table)
    ]
    if not statements:
        return False
    with connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)
    return True


def guard_remove(connection: Any) -> None:
    """Drop the triggers (the migration's reverse)."""
    with connection.cursor() as cursor:
        for table in GUARDED_TABLES:
            if connection.vendor == "sqlite":
                cursor.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
                cursor.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")
            elif connection.vendor == "postgresql":
                cursor.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
                cursor.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
