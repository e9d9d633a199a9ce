"""Plant connectivity: data sources and their mapping rules (in), publications and their delivery log (out).

- ``DataSource``: one connection to an MQTT broker or an OPC UA server, with its credentials sealed
  (``credentials.py``); ``config_version`` grows on every change so the running connector applies it.
- ``MappingRule``: topics / browse paths → STAMM tags, unit, scale (``mapping.py`` is the grammar).
- ``SourceStatus``: what the connectors process last reported per source (connected, messages/s, errors).
- ``SourceError``: the recent errors of a source (malformed payloads, refusals, store failures).
- ``QualitySample``: a reading a source reported Bad or Uncertain, kept as such and never as a value.
- ``Publication``: a deployment's estimates sent to an MQTT topic or an OPC UA node through a data source.
- ``PublicationCursor``: per publication and group, the newest estimate delivered and the dedup flag.
- ``Delivery``: one row per estimate (or Bad status) sent: what went where, with which quality.
"""

from __future__ import annotations

from django.db import models

from apps.common.models import TimeStampedModel

TAG_LENGTH = 128


class SourceKind(models.TextChoices):
    MQTT = "mqtt", "MQTT"
    OPCUA = "opcua", "OPC UA"


class DataSource(TimeStampedModel):
    """A connection to a plant system; the connectors process reads every enabled one with mapping rules."""

    name = models.SlugField(max_length=100, unique=True)
    kind = models.CharField(max_length=8, choices=SourceKind.choices)
    url = models.CharField(
        max_length=500, help_text="mqtt://host:1883, mqtts://host:8883 (TLS) or opc.tcp://host:4840/path"
    )
    enabled = models.BooleanField(default=True, help_text="Read this source (publications may use it either way).")
    username = models.CharField(max_length=200, blank=True)
    password_sealed = models.TextField(blank=True, editable=False, help_text="Encrypted; never shown back.")
    tls_ca_certificate = models.TextField(
        blank=True, help_text="PEM CA certificate to verify an mqtts:// broker (empty: the system's CAs)."
    )
    client_id = models.CharField(
        max_length=100, blank=True, help_text="MQTT client id of the persistent session (empty: stamm-<name>)."
    )
    session_expiry_seconds = models.PositiveIntegerField(
        default=86400, help_text="How long the broker keeps the session (and queues QoS 1 messages) while offline."
    )
    config_version = models.PositiveIntegerField(default=1, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def has_password(self) -> bool:
        return bool(self.password_sealed)

    @property
    def mqtt_client_id(self) -> str:
        return self.client_id or f"stamm-{self.name}"


class MappingRule(models.Model):
    """Topics or nodes matching ``pattern`` become raw points with these (templated) tags."""

    data_source = models.ForeignKey(DataSource, on_delete=models.CASCADE, related_name="rules")
    pattern = models.CharField(
        max_length=500,
        help_text="e.g. plant/{device_id}/{observed_property}, Objects/2:Plant/{device_id}/+ or ns=2;i=7",
    )
    project_name = models.CharField(max_length=TAG_LENGTH)
    device_id = models.CharField(max_length=TAG_LENGTH, default="{device_id}")
    batch_id = models.CharField(max_length=TAG_LENGTH)
    source = models.CharField(max_length=TAG_LENGTH, default="sensor", help_text="sensor, actuator, computed_variable…")
    observed_property = models.CharField(max_length=TAG_LENGTH, default="{observed_property}")
    unit = models.CharField(max_length=64, blank=True, help_text="Written to the variable metadata when first seen.")
    scale = models.FloatField(default=1.0, help_text="Stored value = reported value × scale + offset.")
    offset = models.FloatField(default=0.0)
    sampling_interval_ms = models.PositiveIntegerField(default=1000, help_text="OPC UA monitored-item sampling.")
    deadband = models.FloatField(default=0.0, help_text="OPC UA absolute deadband (0: every change).")
    position = models.PositiveSmallIntegerField(default=0, help_text="Rules are tried in this order; first wins.")

    class Meta:
        ordering = ["data_source", "position", "id"]

    def __str__(self) -> str:
        return f"{self.data_source_id}:{self.pattern}"

    def templates(self) -> dict[str, str]:
        return {
            "project_name": self.project_name,
            "device_id": self.device_id,
            "batch_id": self.batch_id,
            "source": self.source,
            "observed_property": self.observed_property,
        }


class SourceStatus(models.Model):
    """The connectors process's last report on one source (rewritten every few seconds)."""

    data_source = models.OneToOneField(DataSource, on_delete=models.CASCADE, related_name="status")
    runner = models.CharField(max_length=255, blank=True, help_text="host:pid of the connectors process.")
    reported_at = models.DateTimeField()
    connected = models.BooleanField(default=False)
    connected_since = models.DateTimeField(null=True, blank=True)
    state = models.CharField(max_length=500, blank=True, help_text="What the connector is doing or why it is not.")
    config_version = models.PositiveIntegerField(default=0)
    last_message_at = models.DateTimeField(null=True, blank=True)
    messages_total = models.BigIntegerField(default=0)
    messages_per_second = models.FloatField(default=0.0)
    points_total = models.BigIntegerField(default=0)
    errors_total = models.BigIntegerField(default=0)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "source statuses"


class ErrorKind(models.TextChoices):
    PAYLOAD = "payload"
    MAPPING = "mapping"
    CONNECTION = "connection"
    REFUSED = "refused"
    STORE = "store"


class SourceError(models.Model):
    data_source = models.ForeignKey(DataSource, on_delete=models.CASCADE, related_name="errors")
    at = models.DateTimeField(db_index=True)
    kind = models.CharField(max_length=16, choices=ErrorKind.choices)
    address = models.CharField(max_length=500, blank=True, help_text="Topic or node.")
    message = models.TextField()
    excerpt = models.CharField(max_length=200, blank=True, help_text="Start of the offending payload.")

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["data_source", "at"], name="connectors_error_src_idx")]


class QualitySample(models.Model):
    """A Bad or Uncertain reading: stored as such (never as a value); the stale-input rule reads it."""

    data_source = models.ForeignKey(DataSource, on_delete=models.CASCADE, related_name="+")
    project_name = models.CharField(max_length=TAG_LENGTH)
    device_id = models.CharField(max_length=TAG_LENGTH)
    batch_id = models.CharField(max_length=TAG_LENGTH)
    source = models.CharField(max_length=TAG_LENGTH)
    observed_property = models.CharField(max_length=TAG_LENGTH)
    time_ns = models.BigIntegerField(help_text="Source timestamp, ns since the epoch.")
    quality = models.CharField(max_length=16)
    status_code = models.BigIntegerField(null=True, blank=True)
    status_name = models.CharField(max_length=64, blank=True)
    value = models.FloatField(
        null=True, blank=True, help_text="The value reported with it, if any (not stored as data)."
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project_name", "device_id", "batch_id", "source", "observed_property", "time_ns"],
                name="connectors_quality_sample_key",
            )
        ]
        indexes = [
            models.Index(fields=["project_name", "device_id", "batch_id", "time_ns"], name="connectors_qs_group_idx")
        ]


class Publication(TimeStampedModel):
    """A deployment's estimates, sent after each prediction commits, with a quality code."""

    deployment = models.ForeignKey("orchestrator.Deployment", on_delete=models.CASCADE, related_name="publications")
    connection = models.ForeignKey(DataSource, on_delete=models.PROTECT, related_name="publications")
    target = models.CharField(
        max_length=500,
        help_text="MQTT topic or OPC UA node id; templates {project_name} {device_id} {batch_id} {observed_property}",
    )
    enabled = models.BooleanField(default=True)
    retain = models.BooleanField(default=True, help_text="MQTT: the broker keeps the latest estimate for newcomers.")
    max_age_seconds = models.PositiveIntegerField(
        default=600, help_text="Estimates older than this (snapshot time) are never sent: history is not control."
    )
    stale_after_seconds = models.PositiveIntegerField(
        null=True, blank=True, help_text="An input older than this at the snapshot makes the estimate Uncertain."
    )

    class Meta:
        ordering = ["deployment", "id"]
        constraints = [
            models.UniqueConstraint(fields=["deployment", "connection", "target"], name="connectors_publication_key")
        ]

    def __str__(self) -> str:
        return f"{self.deployment_id} → {self.connection_id}:{self.target}"


class PublicationCursor(models.Model):
    publication = models.ForeignKey(Publication, on_delete=models.CASCADE, related_name="cursors")
    project_name = models.CharField(max_length=TAG_LENGTH)
    device_id = models.CharField(max_length=TAG_LENGTH)
    batch_id = models.CharField(max_length=TAG_LENGTH)
    delivered_through_ns = models.BigIntegerField(null=True, blank=True, help_text="Newest estimate time delivered.")
    failure_run_id = models.BigIntegerField(null=True, blank=True, help_text="Failed run last announced as Bad.")
    pending = models.BooleanField(default=False)
    pending_since = models.DateTimeField(null=True, blank=True)
    failures = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["publication", "project_name", "device_id", "batch_id"], name="connectors_cursor_group"
            )
        ]


class DeliveryStatus(models.TextChoices):
    DELIVERED = "delivered"
    FAILED = "failed"


class Delivery(models.Model):
    publication = models.ForeignKey(Publication, on_delete=models.CASCADE, related_name="deliveries")
    project_name = models.CharField(max_length=TAG_LENGTH)
    device_id = models.CharField(max_length=TAG_LENGTH)
    batch_id = models.CharField(max_length=TAG_LENGTH)
    observed_property = models.CharField(max_length=TAG_LENGTH)
    snapshot_ns = models.BigIntegerField(null=True, blank=True, help_text="Time of the estimate's snapshot.")
    destination = models.CharField(max_length=500)
    value = models.FloatField(null=True, blank=True)
    quality = models.CharField(max_length=16)
    status_code = models.BigIntegerField(default=0)
    reasons = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices)
    attempt = models.PositiveSmallIntegerField(default=1)
    error = models.TextField(blank=True)
    at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name_plural = "deliveries"
        indexes = [models.Index(fields=["publication", "at"], name="connectors_delivery_pub_idx")]
