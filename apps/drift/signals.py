"""Signals the drift app sends, for the apps above it (training's plans, notifications).

Each is sent with ``alert_id, deployment_id, job_id, severity, state, by`` (``by``: the username of who
acted, empty when the platform did), after the transaction that wrote the change commits, from one place
(``services.alerts._announce``); receivers must be quick (queue work, never run it).

- ``alert_opened``: once per alert, when a drift verdict opens it (not when a verdict updates it);
- ``alert_acknowledged``: someone acknowledged it;
- ``alert_resolved``: resolved by hand, or by the job's next live check finding no drift.
"""

from django.dispatch import Signal

alert_opened = Signal()
alert_acknowledged = Signal()
alert_resolved = Signal()
