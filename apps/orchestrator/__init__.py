"""Orchestrator: the Celery pipeline, beat schedules, the scheduler heartbeat."""
