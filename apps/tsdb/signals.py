"""Signals of the time-series store.

``points_committed`` is sent once per successful ingest, after the surrounding transaction commits
(never for a rolled-back write), naming the affected (project, device, batch) groups. The orchestrator
connects to it to schedule detection for exactly those groups.

Keyword arguments sent: ``collection`` (``Collection``), ``groups`` (``frozenset[GroupKey]``),
``points`` (int, points written), ``user`` (the ingesting user or None).
"""

from __future__ import annotations

from django.dispatch import Signal

points_committed = Signal()
