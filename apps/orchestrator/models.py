"""Orchestrator state."""
from django.db import models


class Heartbeat(models.Model):
    """The last time a named periodic task ran; beat's liveness is the age of ``beat``'s row."""

    name = models.CharField(max_length=64, unique=True)
    last_seen = models.DateTimeField()
    hostname = models.CharField(max_length=255, blank=True)

    def __str__(self) -> str:
        return f"{self.name} @ {self.last_seen:%Y-%m-%d %H:%M:%S}"
