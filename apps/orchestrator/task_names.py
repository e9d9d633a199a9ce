"""Names of the orchestrator's Celery tasks, shared by ``tasks.py`` (which defines them) and the services
(which queue them by name, so services never import the task module that imports them)."""

HEARTBEAT = "orchestrator.heartbeat"
PING = "orchestrator.ping"
RUN_GROUPS = "orchestrator.run_groups"
DETECT = "orchestrator.detect"
HEALTH = "orchestrator.health"
BACKFILL = "orchestrator.backfill"
