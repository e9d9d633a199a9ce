"""Health checks owned by the project itself: the database and the Celery broker."""
from __future__ import annotations

import os
from pathlib import Path

from django.db import connection

from .health import CheckResult, register_check


@register_check("database")
def check_database() -> CheckResult:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return CheckResult(ok=True, detail=f"{connection.vendor} reachable")


@register_check("broker")
def check_broker() -> CheckResult:
    """Open a real connection to the broker; for the filesystem transport, check its folder."""
    from stamm_site.celery import app

    url = app.conf.broker_url or ""
    if url.startswith("filesystem://"):
        options = app.conf.broker_transport_options or {}
        folder = Path(options.get("data_folder_in", ""))
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            return CheckResult(ok=False, detail=f"filesystem broker folder {folder} is missing or not writable")
        return CheckResult(ok=True, detail="filesystem broker folder writable")
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=3)
        transport = conn.transport_cls
    return CheckResult(ok=True, detail=f"{transport} broker reachable")

