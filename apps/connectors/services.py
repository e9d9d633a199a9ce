"""Writes of the connectors app: data sources and rules, publications, and what the connectors process reports.

Sources and publications are changed through here (API and admin alike), so one set of rules applies and
every change bumps ``DataSource.config_version``, which the running connectors process polls to apply it
without a restart. Readings are stored through ``apps.tsdb.services.points_ingest`` (the ingest path of
HTTP), so the pipeline triggers exactly as for any other write.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.common.errors import ValidationFailed
from apps.tsdb.types import RAW_SOURCES

from . import mapping
from .credentials import secret_seal
from .models import (
    DataSource,
    Delivery,
    ErrorKind,
    MappingRule,
    Publication,
    QualitySample,
    SourceError,
    SourceKind,
    SourceStatus,
)

_SLUG = re.compile(r"^[-a-zA-Z0-9_]+$")
SOURCE_FIELDS = (
    "name",
    "kind",
    "url",
    "enabled",
    "username",
    "tls_ca_certificate",
    "client_id",
    "session_expiry_seconds",
)
RULE_FIELDS = (
    "pattern",
    "project_name",
    "device_id",
    "batch_id",
    "source",
    "observed_property",
    "unit",
    "scale",
    "offset",
    "sampling_interval_ms",
    "deadband",
)
PUBLICATION_FIELDS = (
    "deployment",
    "connection",
    "target",
    "enabled",
    "retain",
    "max_age_seconds",
    "stale_after_seconds",
)
#: URL schemes per kind and their default ports.
SCHEMES = {SourceKind.MQTT: {"mqtt": 1883, "mqtts": 8883}, SourceKind.OPCUA: {"opc.tcp": 4840}}
#: Errors kept per source (older ones are pruned as new ones arrive).
ERRORS_KEPT = 200
PUBLICATION_TEMPLATE_NAMES = {"project_name", "device_id", "batch_id", "observed_property"}


# ------------------------------------------------------------------------------------------ validation


def url_problems(kind: str, url: str) -> str | None:
    """Why ``url`` cannot reach a ``kind`` peer, or None."""
    schemes = SCHEMES.get(kind)
    if schemes is None:
        return None
    try:
        parts = urlsplit(url or "")
        port = parts.port
    except ValueError as exc:
        return f"is not a valid URL ({exc})"
    if parts.scheme not in schemes:
        return f"must start with {' or '.join(s + '://' for s in schemes)}"
    if not parts.hostname:
        return "names no host"
    if port is not None and not 0 < port < 65536:
        return "has an invalid port"
    return None


def _source_problems(source: DataSource) -> dict[str, str]:
    problems: dict[str, str] = {}
    if not source.name or not _SLUG.match(source.name):
        problems["name"] = "must be a non-empty slug (letters, digits, - and _)"
    elif DataSource.objects.filter(name=source.name).exclude(pk=source.pk).exists():
        problems["name"] = f"a data source named {source.name!r} already exists"
    if source.kind not in SourceKind.values:
        problems["kind"] = f"must be one of {', '.join(SourceKind.values)}"
    elif url_problem := url_problems(source.kind, source.url):
        problems["url"] = url_problem
    if source.tls_ca_certificate:
        if source.kind != SourceKind.MQTT or not source.url.startswith("mqtts://"):
            problems["tls_ca_certificate"] = "only an mqtts:// source verifies its broker with a CA certificate"
        elif "BEGIN CERTIFICATE" not in source.tls_ca_certificate:
            problems["tls_ca_certificate"] = "is not a PEM certificate"
    if source.client_id and not re.fullmatch(r"[-A-Za-z0-9_.:]{1,100}", source.client_id):
        problems["client_id"] = "may hold letters, digits and - _ . : only"
    return problems


def rule_problems(kind: str, rule: Mapping[str, Any]) -> dict[str, str]:
    """Every problem of one mapping rule (pattern grammar, templates, the raw source tag, numbers)."""
    templates = {tag: str(rule.get(tag) or "") for tag in mapping.TAGS}
    problems = mapping.rule_check(str(rule.get("pattern") or ""), templates)
    pattern = str(rule.get("pattern") or "")
    if "pattern" not in problems:
        parsed = mapping.Pattern.parse(pattern)
        if kind == SourceKind.MQTT and parsed.is_node_id:
            problems["pattern"] = "an MQTT pattern is a topic filter, not an OPC UA node id"
    source_tag = templates["source"]
    if "source" not in problems and not mapping.template_names(source_tag) and source_tag not in RAW_SOURCES:
        problems["source"] = f"{source_tag!r} is not one of {', '.join(RAW_SOURCES)}"
    for tag in mapping.TAGS:
        if tag not in problems and len(templates[tag]) > 128:
            problems[tag] = "is longer than 128 characters"
    scale = rule.get("scale", 1.0)
    if scale is not None and (
        not isinstance(scale, int | float) or scale != scale or scale in (float("inf"), float("-inf"))
    ):
        problems["scale"] = "must be a finite number"
    return problems


def _rule_with_defaults(rule: Mapping[str, Any]) -> dict[str, Any]:
    """A rule's fields with the model's defaults for the ones left out (e.g. ``device_id={device_id}``)."""
    defaults = MappingRule()
    return {name: rule[name] if name in rule else getattr(defaults, name) for name in RULE_FIELDS}


def _rules_problems(kind: str, rules: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    found = {}
    for index, rule in enumerate(rules):
        problems = rule_problems(kind, _rule_with_defaults(rule))
        if problems:
            found[str(index)] = problems
    return {"rules": found} if found else {}


# ---------------------------------------------------------------------------------------------- sources


def _rules_replace(source: DataSource, rules: Sequence[Mapping[str, Any]]) -> None:
    MappingRule.objects.filter(data_source=source).delete()
    MappingRule.objects.bulk_create(
        [
            MappingRule(data_source=source, position=index, **_rule_with_defaults(rule))
            for index, rule in enumerate(rules)
        ]
    )


@transaction.atomic
def data_source_create(
    *, rules: Sequence[Mapping[str, Any]] = (), password: str | None = None, **data: Any
) -> DataSource:
    """A new source with its rules; every problem is one 400 naming the field (rules by index)."""
    source = DataSource(**{k: v for k, v in data.items() if k in SOURCE_FIELDS})
    problems = {**_source_problems(source), **_rules_problems(source.kind, rules)}
    if problems:
        raise ValidationFailed("The data source is not valid; nothing was saved.", details=problems)
    source.password_sealed = secret_seal(password or "")
    source.save()
    _rules_replace(source, rules)
    return source


@transaction.atomic
def data_source_update(
    *,
    data_source: DataSource,
    data: Mapping[str, Any],
    rules: Sequence[Mapping[str, Any]] | None = None,
    password: str | None = None,
) -> DataSource:
    """Change fields, replace the rules (when given) and/or the password (None keeps it, "" clears it)."""
    source = DataSource.objects.select_for_update().get(pk=data_source.pk)
    for name in SOURCE_FIELDS:
        if name in data:
            setattr(source, name, data[name])
    current_rules = rules if rules is not None else []
    problems = {**_source_problems(source), **(_rules_problems(source.kind, rules) if rules is not None else {})}
    if rules is None:
        existing = [r.__dict__ for r in source.rules.all()]
        problems.update(_rules_problems(source.kind, existing))
    if problems:
        raise ValidationFailed("The data source is not valid; nothing was saved.", details=problems)
    if password is not None:
        source.password_sealed = secret_seal(password)
    source.config_version = F("config_version") + 1
    source.save()
    if rules is not None:
        _rules_replace(source, current_rules)
    source.refresh_from_db()
    return source


@transaction.atomic
def data_source_touch(*, data_source: DataSource) -> None:
    """Tell the running connector that this source changed (the admin's inline rule edits)."""
    DataSource.objects.filter(pk=data_source.pk).update(config_version=F("config_version") + 1)


@transaction.atomic
def data_source_delete(*, data_source: DataSource) -> None:
    if data_source.publications.exists():
        raise ValidationFailed(
            f"{data_source.name} carries publications; delete or move them first.",
            details={"publications": list(data_source.publications.values_list("id", flat=True))},
        )
    data_source.delete()


# ------------------------------------------------------------------------------------------ publications


def _publication_problems(publication: Publication) -> dict[str, str]:
    problems: dict[str, str] = {}
    if publication.deployment_id and publication.deployment.is_shadow:
        problems["deployment"] = (
            f"{publication.deployment.name} is a shadow challenger: its estimates never reach the plant "
            "(publish its champion's deployment)"
        )
    target = (publication.target or "").strip()
    if not target:
        problems["target"] = "must not be empty"
    else:
        unknown = mapping.template_names(target) - PUBLICATION_TEMPLATE_NAMES
        if unknown:
            problems["target"] = f"unknown placeholders {sorted(unknown)}; use {sorted(PUBLICATION_TEMPLATE_NAMES)}"
        elif (
            publication.connection_id
            and publication.connection.kind == SourceKind.MQTT
            and any(c in target for c in "+#")
        ):
            problems["target"] = "an MQTT topic to publish to has no wildcards"
        elif (
            publication.connection_id
            and publication.connection.kind == SourceKind.OPCUA
            and not mapping.is_node_id(target)
        ):
            problems["target"] = "an OPC UA target is a node id such as ns=2;s=R1.estimate"
    if not publication.max_age_seconds:
        problems["max_age_seconds"] = "must be at least 1"
    return problems


@transaction.atomic
def publication_create(**data: Any) -> Publication:
    publication = Publication(**{k: v for k, v in data.items() if k in PUBLICATION_FIELDS})
    problems = _publication_problems(publication)
    if (
        not problems
        and Publication.objects.filter(
            deployment=publication.deployment, connection=publication.connection, target=publication.target
        ).exists()
    ):
        problems["target"] = "this deployment already publishes there"
    if problems:
        raise ValidationFailed("The publication is not valid; nothing was saved.", details=problems)
    publication.save()
    return publication


@transaction.atomic
def publication_update(*, publication: Publication, data: Mapping[str, Any]) -> Publication:
    for name in PUBLICATION_FIELDS:
        if name in data:
            setattr(publication, name, data[name])
    problems = _publication_problems(publication)
    if problems:
        raise ValidationFailed("The publication is not valid; nothing was saved.", details=problems)
    publication.save()
    return publication


@transaction.atomic
def publication_delete(*, publication: Publication) -> None:
    publication.delete()


# ------------------------------------------------------------------------- what the connectors process reports


def source_status_report(*, reports: Iterable[Mapping[str, Any]], runner: str, now: datetime | None = None) -> None:
    """Upsert each source's status row (called every ``STAMM_CONNECTORS_STATUS_INTERVAL`` seconds)."""
    now = now or timezone.now()
    with transaction.atomic():
        for report in reports:
            SourceStatus.objects.update_or_create(
                data_source_id=report["data_source_id"],
                defaults={
                    **{k: v for k, v in report.items() if k != "data_source_id"},
                    "runner": runner,
                    "reported_at": now,
                },
            )


def source_errors_record(*, errors: Sequence[Mapping[str, Any]]) -> None:
    """Append errors (``data_source_id``, ``at``, ``kind``, ``message``, ``address``, ``excerpt``); keep the newest."""
    if not errors:
        return
    with transaction.atomic():
        SourceError.objects.bulk_create(
            [
                SourceError(
                    data_source_id=e["data_source_id"],
                    at=e["at"],
                    kind=e.get("kind", ErrorKind.PAYLOAD),
                    message=str(e["message"])[:2000],
                    address=str(e.get("address", ""))[:500],
                    excerpt=str(e.get("excerpt", ""))[:200],
                )
                for e in errors
            ]
        )
        for source_id in {e["data_source_id"] for e in errors}:
            cutoff = (
                SourceError.objects.filter(data_source_id=source_id)
                .order_by("-at", "-id")
                .values_list("id", flat=True)[ERRORS_KEPT : ERRORS_KEPT + 1]
            )
            cutoff_id = next(iter(cutoff), None)
            if cutoff_id is not None:
                SourceError.objects.filter(data_source_id=source_id, id__lte=cutoff_id).delete()


def connectors_log_prune(*, now: datetime | None = None) -> dict[str, int]:
    """Forget deliveries and quality samples older than ``STAMM_CONNECTORS_LOG_RETENTION_DAYS``."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.STAMM_CONNECTORS_LOG_RETENTION_DAYS)
    from apps.tsdb.types import to_ns

    with transaction.atomic():
        deliveries, _ = Delivery.objects.filter(at__lt=cutoff).delete()
        samples, _ = QualitySample.objects.filter(time_ns__lt=to_ns(cutoff)).delete()
    return {"deliveries": deliveries, "quality_samples": samples}
