"""Notification state: who wants to hear about what (subscriptions), what happened (events: the outbox the
receivers write), and every delivery with each of its attempts.

The rules (fan-out, digest, retries, signatures) live in ``services.py`` and ``channels.py``.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from apps.common.models import TimeStampedModel


class EventKind(models.TextChoices):
    ALERT_OPENED = "alert_opened", "drift alert opened"
    ALERT_ACKNOWLEDGED = "alert_acknowledged", "drift alert acknowledged"
    ALERT_RESOLVED = "alert_resolved", "drift alert resolved"
    PIPELINE_FAILING = "pipeline_failing", "pipeline failing"
    VALIDITY_BAD = "validity_bad", "estimate validity Bad"


class Channel(models.TextChoices):
    EMAIL = "email", "e-mail"
    WEBHOOK = "webhook"


class Subscription(TimeStampedModel):
    """One user's wish to hear about some events of one deployment (or of every deployment) on one channel.

    A webhook subscription carries its own secret: every request it receives is signed with it (HMAC-SHA256
    over the timestamp and the body; ``channels.webhook_signature``).
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="notification_subscriptions")
    deployment = models.ForeignKey(
        "orchestrator.Deployment", null=True, blank=True, on_delete=models.CASCADE, related_name="+",
        help_text="Empty: every deployment.",
    )
    events = models.JSONField(default=list, help_text="Event kinds to hear about (EventKind values).")
    channel = models.CharField(max_length=16, choices=Channel.choices, default=Channel.EMAIL)
    url = models.URLField(max_length=500, blank=True, help_text="Webhook address (http or https).")
    secret = models.CharField(max_length=128, blank=True, editable=False, help_text="Webhook signing secret.")
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["user", "id"]

    def __str__(self) -> str:
        where = self.deployment.name if self.deployment_id else "every deployment"
        return f"{self.user} · {self.channel} · {where}"


class Event(models.Model):
    """Something worth telling (the outbox): written by the receivers of the lower apps' signals, read by
    the fan-out. ``key`` names the occurrence for repeat suppression (e.g. validity Bad per batch)."""

    kind = models.CharField(max_length=32, choices=EventKind.choices)
    deployment = models.ForeignKey("orchestrator.Deployment", null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    subject = models.CharField(max_length=300)
    body = models.TextField()
    facts = models.JSONField(default=dict, blank=True)
    key = models.CharField(max_length=200, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.subject


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"
    SENT = "sent"
    RETRYING = "retrying"
    FAILED = "failed", "failed (gave up)"
    HELD = "held", "held for a digest"


class Delivery(models.Model):
    """One message to one subscription: an event's, or a digest of held events (``event`` empty)."""

    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="deliveries")
    event = models.ForeignKey(Event, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries")
    digest = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="held",
                               help_text="The digest this held delivery went out in.")
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "deliveries"
        indexes = [models.Index(fields=["subscription", "created_at"], name="notif_delivery_sub_idx")]

    def __str__(self) -> str:
        what = self.event.subject if self.event_id else "digest"
        return f"{what} → {self.subscription} ({self.status})"

    @property
    def is_digest(self) -> bool:
        return self.event_id is None


class DeliveryAttempt(models.Model):
    """One try of a delivery: when, how it went (HTTP status for webhooks), how long it took."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    at = models.DateTimeField()
    ok = models.BooleanField()
    status_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    duration_ms = models.FloatField(default=0.0)

    class Meta:
        ordering = ["delivery", "number"]

    def __str__(self) -> str:
        return f"attempt {self.number} of delivery {self.delivery_id}: {'ok' if self.ok else self.error[:60]}"
