"""Writes of the orchestrator: deployments, the pipeline (health → detect → infer → store), triggers.

Exactly once, the rules in one place
------------------------------------
* **Claim.** A run starts by a conditional UPDATE of its ``Watermark`` row that only matches when no lease
  is held (or the held one has expired): ``lease_token`` becomes the run's token. Whoever gets rowcount 1
  owns the deployment/group window; everybody else backs off. This works the same on SQLite (writes are
  serialised) and PostgreSQL (the UPDATE takes the row lock), with no advisory locks.
* **Complete.** Predictions, the run row and the new watermark are written in ONE transaction, opened by
  an UPDATE that only matches while the run still holds its lease. A run whose lease expired (it was slow,
  or its worker was killed and someone took over) matches nothing, rolls back, and is recorded stale.
  Prediction writes are upserts on (series, time), so a window scored twice stores the same points once.
* **Dedup.** A trigger flips ``pending`` False→True with a conditional UPDATE and only the caller that
  flipped it enqueues a task; a burst of ingests therefore leaves at most one queued run per
  deployment and group. The claim clears ``pending``; data arriving during a run sets it again, and the
  run's completion enqueues the follow-up, so no wake-up is lost.
* **Late data.** Detection reads the snapshots and counts the group's input points at or before the
  watermark inside one consistent read snapshot; a later count that differs means points arrived at or
  before the watermark (late or out of order), and the group is rescored from its start (``dirty_from``).
  Chunked rescoring keeps its place in ``dirty_from_ns``.
* **Stale.** Beat's detection finds leases past their expiry (a worker died mid-run), marks those runs
  stale and queues a redo, which takes the lease over.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Permission
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.common.errors import Conflict, ValidationFailed
from apps.common.health import health_report, registered_checks
from apps.tsdb.backends import get_backend
from apps.tsdb.types import (
    LAB_SOURCE,
    PREDICTION_SOURCE,
    Collection,
    GroupKey,
    PointBatch,
    SeriesFilter,
    SeriesKey,
    SnapshotSet,
    from_ns,
    to_ns,
)

from .models import Deployment, Heartbeat, PipelineRun, RunStatus, Trigger, Watermark
from .registry_client import RegistryClient, RegistryError, RegistryRejected
from .selectors import ScoringPlan, deployment_plan, deployments_for_project

logger = logging.getLogger(__name__)

#: Default periodic tasks: (name, task, interval in seconds). Created once, then edited in the admin.
DEFAULT_SCHEDULES: tuple[tuple[str, str, int], ...] = (
    ("Scheduler heartbeat", "orchestrator.heartbeat", settings.STAMM_HEARTBEAT_INTERVAL),
    ("Pipeline detection", "orchestrator.detect", settings.STAMM_PIPELINE_DETECT_INTERVAL),
    ("Pipeline health", "orchestrator.health", settings.STAMM_PIPELINE_HEALTH_INTERVAL),
)
#: Seconds a passing pipeline health verdict is reused inside one worker process (runs stay fast).
HEALTH_CACHE_SECONDS = 10.0
#: Longest pause between retries of a group whose runs keep failing.
MAX_BACKOFF_SECONDS = 600


def heartbeat_record(
    *, name: str = "beat", now: datetime | None = None, ok: bool | None = None, detail: str = ""
) -> Heartbeat:
    """Upsert the heartbeat row with the current time and host (and a verdict, for health probes)."""
    beat, _ = Heartbeat.objects.update_or_create(
        name=name,
        defaults={
            "last_seen": now or timezone.now(),
            "hostname": socket.gethostname()[:255],
            "ok": ok,
            "detail": detail,
        },
    )
    return beat


@transaction.atomic
def beat_schedules_ensure(*, using: str = "default") -> list[str]:
    """Create the default periodic tasks if absent; existing ones (maybe edited) are left alone."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    created = []
    for name, task, every in DEFAULT_SCHEDULES:
        if PeriodicTask.objects.using(using).filter(name=name).exists():
            continue
        interval, _ = IntervalSchedule.objects.using(using).get_or_create(every=every, period=IntervalSchedule.SECONDS)
        PeriodicTask.objects.using(using).create(
            name=name, task=task, interval=interval, kwargs=json.dumps({}), enabled=True
        )
        created.append(name)
    return created


# ------------------------------------------------------------------------------------------ service account


@transaction.atomic
def service_account_ensure() -> AbstractBaseUser:
    """The pipeline's service user, holding exactly the ``predict`` capability; idempotent."""
    User = get_user_model()
    user, created = User.objects.get_or_create(
        username=settings.STAMM_PIPELINE_SERVICE_USER,
        defaults={"first_name": "Pipeline", "last_name": "service account", "is_active": True},
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    permission = Permission.objects.get(content_type__app_label="accounts", codename="predict")
    user.user_permissions.add(permission)
    return user


def service_token() -> str:
    """The token the pipeline sends to the registry: ``STAMM_REGISTRY_TOKEN``, else the service account's."""
    if settings.STAMM_REGISTRY_TOKEN:
        return settings.STAMM_REGISTRY_TOKEN
    return _local_service_token()


@lru_cache(maxsize=1)
def _local_service_token() -> str:
    from rest_framework.authtoken.models import Token

    token, _ = Token.objects.get_or_create(user=service_account_ensure())
    return token.key


@lru_cache(maxsize=4)
def _client(base_url: str, timeout: int, retries: int, backoff_ms: int) -> RegistryClient:
    return RegistryClient(
        base_url=base_url, token=service_token, timeout=timeout, retries=retries, backoff=backoff_ms / 1000
    )


def registry_client() -> RegistryClient:
    """One keep-alive client per process, rebuilt when the settings change (as in tests)."""
    return _client(
        settings.STAMM_REGISTRY_URL,
        settings.STAMM_REGISTRY_TIMEOUT,
        settings.STAMM_PIPELINE_RETRIES,
        settings.STAMM_PIPELINE_RETRY_BACKOFF_MS,
    )


# -------------------------------------------------------------------------------------------- deployments

DEPLOYMENT_FIELDS = (
    "name",
    "description",
    "soft_sensor",
    "alias",
    "pinned_version",
    "device_ids",
    "batch_pattern",
    "live_only",
    "input_mapping",
    "max_input_age_seconds",
    "score_from",
    "enabled",
)
_SLUG = re.compile(r"^[-a-zA-Z0-9_]+$")


def _deployment_validate(deployment: Deployment) -> None:
    """Every rule at once, each problem naming its field."""
    problems: dict[str, str] = {}
    if not deployment.name or not _SLUG.match(deployment.name):
        problems["name"] = "must be a non-empty slug (letters, digits, - and _)"
    elif Deployment.objects.filter(name=deployment.name).exclude(pk=deployment.pk).exists():
        problems["name"] = f"a deployment named {deployment.name!r} already exists"
    if bool(deployment.alias) == bool(deployment.pinned_version_id):
        problems["alias"] = "give either an alias or a pinned version, not both and not neither"
    soft_sensor = deployment.soft_sensor
    if deployment.pinned_version_id and deployment.pinned_version.soft_sensor_id != soft_sensor.pk:
        problems["pinned_version"] = f"version {deployment.pinned_version_id} does not belong to {soft_sensor.model_id}"
    if deployment.alias and not soft_sensor.aliases.filter(name=deployment.alias).exists():
        problems["alias"] = f"{soft_sensor.model_id} has no alias {deployment.alias!r}"
    if not isinstance(deployment.device_ids, list) or not all(isinstance(d, str) and d for d in deployment.device_ids):
        problems["device_ids"] = "must be a list of non-empty strings"
    if not isinstance(deployment.input_mapping, dict) or not all(
        isinstance(k, str) and k and isinstance(v, str) and v for k, v in deployment.input_mapping.items()
    ):
        problems["input_mapping"] = "must map feature names to variable names (non-empty strings)"
    elif "alias" not in problems and "pinned_version" not in problems:
        plan_version = (
            deployment.pinned_version
            if deployment.pinned_version_id
            else (soft_sensor.aliases.select_related("version").get(name=deployment.alias).version)
        )
        features = [f.get("name") for f in (plan_version.descriptor.get("inputs") or {}).get("features") or []]
        unknown = sorted(set(deployment.input_mapping) - set(features))
        if unknown:
            problems["input_mapping"] = (
                f"not features of the model: {', '.join(unknown)} (features: {', '.join(features)})"
            )
    if deployment.max_input_age_seconds is None or int(deployment.max_input_age_seconds) < 1:
        problems["max_input_age_seconds"] = "must be at least 1"
    if len(deployment.batch_pattern or "") > 128:
        problems["batch_pattern"] = "is longer than 128 characters"
    if problems:
        raise ValidationFailed("The deployment is not valid.", details=problems)


@transaction.atomic
def deployment_create(*, user: Any = None, **data: Any) -> Deployment:
    """Create a deployment (fields: ``DEPLOYMENT_FIELDS``); validated as a whole, nothing saved on error."""
    unknown = set(data) - set(DEPLOYMENT_FIELDS)
    if unknown:
        raise ValidationFailed(f"Unknown deployment fields: {', '.join(sorted(unknown))}.")
    deployment = Deployment(created_by=user if getattr(user, "is_authenticated", False) else None, **data)
    _deployment_validate(deployment)
    deployment.save()
    return deployment


@transaction.atomic
def deployment_ensure(*, name: str, user: Any = None, **data: Any) -> tuple[Deployment, bool]:
    """The deployment called ``name``, created with ``data`` if absent (left as is otherwise): for seed scripts
    such as the demo's, which must be safe to run again. Returns (deployment, created)."""
    existing = Deployment.objects.filter(name=name).first()
    if existing is not None:
        return existing, False
    return deployment_create(user=user, name=name, **data), True


@transaction.atomic
def deployment_update(*, deployment: Deployment, data: Mapping[str, Any]) -> Deployment:
    """Change some fields; a scope or model change resets nothing (watermarks keep their progress)."""
    unknown = set(data) - set(DEPLOYMENT_FIELDS)
    if unknown:
        raise ValidationFailed(f"Unknown deployment fields: {', '.join(sorted(unknown))}.")
    for name, value in data.items():
        setattr(deployment, name, value)
    if "alias" in data and data["alias"] and "pinned_version" not in data:
        deployment.pinned_version = None
    if "pinned_version" in data and data["pinned_version"] is not None and "alias" not in data:
        deployment.alias = ""
    _deployment_validate(deployment)
    deployment.save()
    return deployment


@transaction.atomic
def deployment_delete(*, deployment: Deployment) -> None:
    if Watermark.objects.filter(deployment=deployment, lease_token__isnull=False).exists():
        raise Conflict("A run of this deployment is in progress; disable it first and retry when it ends.")
    deployment.delete()


# ------------------------------------------------------------------------------------------------ health


@dataclass(frozen=True)
class HealthVerdict:
    ok: bool
    checks: dict[str, tuple[bool, str]]

    @property
    def reason(self) -> str:
        return "; ".join(f"{name}: {detail}" for name, (ok, detail) in self.checks.items() if not ok)

    @property
    def summary(self) -> str:
        return "; ".join(f"{name}: {detail}" for name, (_, detail) in self.checks.items())


_health_cache: dict[str, tuple[float, HealthVerdict]] = {}
#: Checks of apps.common.health the pipeline needs before it runs.
PLATFORM_CHECKS = ("database", "broker", "timeseries")


def pipeline_health_check(*, use_cache: bool = True) -> HealthVerdict:
    """Database, time-series collections, broker, registry; a passing verdict is reused for a few seconds."""
    cached = _health_cache.get("verdict")
    if use_cache and cached and time.monotonic() - cached[0] < HEALTH_CACHE_SECONDS:
        return cached[1]
    # The platform's own checks (apps.common.health: database, broker, time-series store with its
    # collections), plus the one only the pipeline needs: the registry answers and accepts its token.
    report = health_report({name: registered_checks()[name] for name in PLATFORM_CHECKS})
    checks: dict[str, tuple[bool, str]] = {
        name: (part["ok"], part["detail"]) for name, part in report["checks"].items()
    }
    checks["registry"] = registry_client().ping()
    verdict = HealthVerdict(ok=all(ok for ok, _ in checks.values()), checks=checks)
    if verdict.ok:
        _health_cache["verdict"] = (time.monotonic(), verdict)
    else:
        _health_cache.pop("verdict", None)
    return verdict


def pipeline_health_record() -> HealthVerdict:
    """The beat health probe: run every check afresh and keep the verdict for the health endpoint."""
    verdict = pipeline_health_check(use_cache=False)
    heartbeat_record(name="pipeline-health", ok=verdict.ok, detail=verdict.summary[:2000])
    return verdict


# ------------------------------------------------------------------------------------------------ triggers


def _enqueue(watermark_ids: Sequence[int], trigger: str, countdown: float | None = None) -> None:
    """Send one run task per watermark after the current transaction commits (robust: beat covers losses)."""
    if not watermark_ids:
        return
    from .tasks import run_group

    def send() -> None:
        for wid in watermark_ids:
            run_group.apply_async(args=[wid, trigger], countdown=countdown)

    transaction.on_commit(send, robust=True)


def _watermarks_ensure(pairs: Iterable[tuple[Deployment, GroupKey]]) -> list[Watermark]:
    """The watermark rows of (deployment, group) pairs, creating missing ones (concurrency-safe)."""
    pairs = list(pairs)
    if not pairs:
        return []
    wanted = {(d.pk, g.project_name, g.device_id, g.batch_id) for d, g in pairs}
    query = Q()
    for d, g in pairs:
        query |= Q(deployment_id=d.pk, project_name=g.project_name, device_id=g.device_id, batch_id=g.batch_id)

    def fetch() -> dict[tuple, Watermark]:
        return {(w.deployment_id, w.project_name, w.device_id, w.batch_id): w for w in Watermark.objects.filter(query)}

    found = fetch()
    missing = wanted - set(found)
    if missing:
        Watermark.objects.bulk_create(
            [Watermark(deployment_id=k[0], project_name=k[1], device_id=k[2], batch_id=k[3]) for k in missing],
            ignore_conflicts=True,
        )
        found = fetch()
    return [found[k] for k in sorted(wanted)]


def _pending_flip(ids: Sequence[int], *, now: datetime) -> list[int]:
    """Set ``pending`` where it was False (one UPDATE … RETURNING); returns the ids that need a task.

    A row whose lease is held by a live run gets the flag but no task: that run's completion reads the
    flag and queues the follow-up itself (its completion UPDATE on the same row serialises with this one),
    which saves a worker from picking up a task only to find the group busy.
    """
    if not ids:
        return []
    table = Watermark._meta.db_table
    placeholders = ", ".join(["%s"] * len(ids))
    stamp = connection.ops.adapt_datetimefield_value(now)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET pending = %s, pending_since = %s WHERE id IN ({placeholders}) AND pending = %s"
            " RETURNING id, lease_token",
            [True, stamp, *ids, False],
        )
        rows = cursor.fetchall()
    free = [int(row[0]) for row in rows if row[1] is None]
    held = [int(row[0]) for row in rows if row[1] is not None]
    if held:  # a lease past its expiry belongs to a dead run: queue the redo now
        free += list(Watermark.objects.filter(id__in=held, lease_expires_at__lt=now).values_list("id", flat=True))
    return sorted(free)


def pipeline_groups_notify(*, groups: Iterable[GroupKey], trigger: str = Trigger.EVENT) -> list[int]:
    """New raw data in ``groups``: queue at most one run per matching deployment and group.

    Returns the watermark ids a task was queued for (the others already had one pending).
    """
    groups = set(groups)
    now = timezone.now()
    pairs = []
    for project_name in {g.project_name for g in groups}:
        for deployment, plan in deployments_for_project(project_name=project_name):
            if plan is None or not plan.online:
                continue
            pairs += [
                (deployment, g)
                for g in groups
                if g.project_name == project_name and deployment.in_scope(device_id=g.device_id, batch_id=g.batch_id)
            ]
    if not pairs:  # data no deployment scores (raw ingest of other projects): no transaction to open
        return []
    with transaction.atomic():
        watermarks = _watermarks_ensure(pairs)
        ready = [w.pk for w in watermarks if not (w.retry_after and w.retry_after > now)]
        flipped = _pending_flip(ready, now=now)
        _enqueue(flipped, trigger)
    return flipped


def on_points_committed(sender: Any, collection: Any = None, groups: Iterable[GroupKey] = (), **kwargs: Any) -> None:
    """Receiver of ``apps.tsdb.signals.points_committed`` (sent after the ingest commits)."""
    if collection is not None and Collection(collection) is not Collection.RAW:
        return
    try:
        pipeline_groups_notify(groups=groups, trigger=Trigger.EVENT)
    except Exception:  # the data is committed; beat's detection is the safety net for a lost trigger
        logger.exception("pipeline: could not schedule detection for %s", sorted(groups))


def _group_input_times(plan: ScoringPlan, project_name: str) -> dict[GroupKey, int]:
    """Newest input time per group of a project (one ``latest`` query: an index lookup per series)."""
    newest: dict[GroupKey, int] = {}
    variables = set(plan.variables)
    for point in get_backend().latest(collection=Collection.RAW, where=SeriesFilter(project_name=project_name)):
        key = point.series
        if key.source == LAB_SOURCE or key.observed_property not in variables:
            continue
        ns = to_ns(point.time)
        if ns > newest.get(key.group, -1):
            newest[key.group] = ns
    return newest


def pipeline_detect(
    *, deployment_id: int | None = None, trigger: str = Trigger.BEAT, now: datetime | None = None
) -> dict[str, int]:
    """The safety net beat runs every N seconds (and the manual trigger): queue what events missed.

    1. leases past expiry (a worker died mid-run): mark the run stale and queue a redo;
    2. ``pending`` for longer than a lease with no task alive (a lost message): queue again;
    3. each enabled deployment with an online version: groups in scope whose newest input is after the
       watermark get a run, de-duplicated by the pending flag like events.
    """
    now = now or timezone.now()
    lease = timedelta(seconds=settings.STAMM_PIPELINE_LEASE_SECONDS)
    counts = {"stale": 0, "requeued": 0, "queued": 0}
    scope = Watermark.objects.all() if deployment_id is None else Watermark.objects.filter(deployment_id=deployment_id)
    with transaction.atomic():
        expired = list(
            scope.filter(lease_token__isnull=False, lease_expires_at__lt=now).values_list("id", "lease_token")
        )
        if expired:
            counts["stale"] = PipelineRun.objects.filter(
                lease_token__in=[t for _, t in expired], status=RunStatus.RUNNING
            ).update(status=RunStatus.STALE, finished_at=now, error="lease expired: the worker stopped mid-run; redone")
            Watermark.objects.filter(id__in=[i for i, _ in expired]).update(pending=True, pending_since=now)
            _enqueue([i for i, _ in expired], trigger)
        stuck = list(
            scope.filter(pending=True, pending_since__lt=now - lease, lease_token__isnull=True)
            .filter(Q(retry_after__isnull=True) | Q(retry_after__lte=now))
            .values_list("id", flat=True)
        )
        if stuck:
            Watermark.objects.filter(id__in=stuck).update(pending_since=now)
            _enqueue(stuck, trigger)
        counts["requeued"] = len(stuck)
    deployments = Deployment.objects.filter(enabled=True).select_related("soft_sensor__project", "pinned_version")
    if deployment_id is not None:
        deployments = deployments.filter(pk=deployment_id)
    live_after = to_ns(now) - settings.STAMM_PIPELINE_LIVE_WINDOW * 1_000_000_000
    newest_cache: dict[tuple[str, tuple[str, ...]], dict[GroupKey, int]] = {}
    for deployment in deployments:
        plan = deployment_plan(deployment)
        if plan is None or not plan.online:
            continue
        project_name = deployment.soft_sensor.project.name.lower()
        cache_key = (project_name, plan.variables)
        if cache_key not in newest_cache:
            newest_cache[cache_key] = _group_input_times(plan, project_name)
        newest = {
            g: t
            for g, t in newest_cache[cache_key].items()
            if deployment.in_scope(device_id=g.device_id, batch_id=g.batch_id)
            and (not deployment.live_only or t >= live_after)
        }
        if not newest:
            continue
        start_ns = to_ns(deployment.score_from) if deployment.score_from else -1
        with transaction.atomic():
            watermarks = _watermarks_ensure([(deployment, g) for g in newest])
            due = [
                w.pk
                for w in watermarks
                if not (w.retry_after and w.retry_after > now)
                and (
                    w.dirty_from_ns is not None
                    or newest[GroupKey(w.project_name, w.device_id, w.batch_id)]
                    > (w.watermark_ns if w.watermark_ns is not None else start_ns)
                )
            ]
            flipped = _pending_flip(due, now=now)
            _enqueue(flipped, trigger)
            counts["queued"] += len(flipped)
    return counts


# ---------------------------------------------------------------------------------------------- the run


class LeaseLost(Exception):
    """This run no longer holds its group's lease (it expired and another run took over)."""


class RunSkipped(Exception):
    """Nothing may be scored (deployment disabled, version offline); the reason is the message."""


@dataclass
class Claim:
    watermark: Watermark
    run: PipelineRun
    token: uuid.UUID


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:255]


def _claim(*, watermark_id: int, trigger: str, task_id: str = "", now: datetime | None = None) -> Claim | None:
    """Take the group's lease with a conditional UPDATE; None when another live run holds it."""
    now = now or timezone.now()
    token = uuid.uuid4()
    until = now + timedelta(seconds=settings.STAMM_PIPELINE_LEASE_SECONDS)
    take = {"lease_token": token, "lease_expires_at": until, "pending": False, "pending_since": None}
    with transaction.atomic():
        # The first statement writes, so SQLite takes its write lock at once (no read→write upgrade).
        claimed = Watermark.objects.filter(id=watermark_id, lease_token__isnull=True).update(**take)
        stale_token = None
        if not claimed:
            held = Watermark.objects.filter(id=watermark_id).values_list("lease_token", "lease_expires_at").first()
            if held is None or held[0] is None or held[1] is None or held[1] >= now:
                return None
            stale_token = held[0]
            claimed = Watermark.objects.filter(
                id=watermark_id, lease_token=stale_token, lease_expires_at__lt=now
            ).update(**take)
            if not claimed:
                return None
        watermark = Watermark.objects.select_related("deployment").get(id=watermark_id)
        dirty = watermark.dirty_from_ns
        if stale_token is not None:
            stale = PipelineRun.objects.filter(lease_token=stale_token).first()
            if stale is not None:
                if stale.dirty_from_ns is not None:
                    dirty = stale.dirty_from_ns if dirty is None else min(dirty, stale.dirty_from_ns)
                if stale.status == RunStatus.RUNNING:
                    stale.status = RunStatus.STALE
                    stale.finished_at = now
                    stale.error = (
                        f"lease expired at {stale.lease_expires_at:%Y-%m-%d %H:%M:%S} UTC; redone by a new run"
                    )
                    stale.save(update_fields=["status", "finished_at", "error"])
        if watermark.dirty_from_ns is not None:
            Watermark.objects.filter(id=watermark_id).update(dirty_from_ns=None)
        run = PipelineRun.objects.create(
            deployment_id=watermark.deployment_id,
            watermark=watermark,
            project_name=watermark.project_name,
            device_id=watermark.device_id,
            batch_id=watermark.batch_id,
            trigger=trigger,
            status=RunStatus.RUNNING,
            lease_token=token,
            lease_expires_at=until,
            worker=_worker_name(),
            task_id=task_id or "",
            dirty_from_ns=dirty,
            started_at=now,
        )
    return Claim(watermark=watermark, run=run, token=token)


def _renew(claim: Claim, *, force: bool = False) -> None:
    """Extend the lease between steps; raise ``LeaseLost`` when someone took the group over.

    While more than half of the lease is left nothing is written (runs are short; this keeps two UPDATEs
    per step off the hot path). The completion's conditional UPDATE is the check that matters anyway.
    """
    now = timezone.now()
    lease = timedelta(seconds=settings.STAMM_PIPELINE_LEASE_SECONDS)
    expires = claim.run.lease_expires_at
    if not force and expires is not None and expires - now > lease / 2:
        return
    until = now + lease
    if not Watermark.objects.filter(id=claim.watermark.pk, lease_token=claim.token).update(lease_expires_at=until):
        raise LeaseLost(f"run {claim.run.pk} lost the lease of {claim.watermark.group_label}")
    PipelineRun.objects.filter(pk=claim.run.pk).update(lease_expires_at=until)
    claim.run.lease_expires_at = until


_AGE = re.compile(r" \(age [^)]*\)")


def skip_reason_key(reason: str | None) -> str:
    """A countable reason: "stale: x (age 4000 s)" → "stale: x" (the ages differ row by row)."""
    return _AGE.sub("", reason or "incomplete")


@dataclass
class Scored:
    """Detect + infer of one chunk: the snapshots, which were complete, and their predictions."""

    snapshots: SnapshotSet
    complete: np.ndarray
    values: np.ndarray | None
    outputs: tuple[str, ...]
    validity: tuple[str, ...]
    skipped: Counter
    attempts: int = 0
    detect_ms: float = 0.0
    infer_ms: float = 0.0

    @property
    def predictions(self) -> int:
        return 0 if self.values is None else int(self.values.shape[0] * self.values.shape[1])


def _snapshots(
    plan: ScoringPlan, group: GroupKey, *, after_ns: int | None, until_ns: int | None, max_age: timedelta, limit: int
) -> SnapshotSet:
    return get_backend().snapshots(
        group=group,
        variables=plan.snapshot_variables,
        after=from_ns(after_ns) if after_ns is not None else None,
        until=from_ns(until_ns) if until_ns is not None else None,
        max_age=max_age,
        limit=limit,
    )


def _infer(plan: ScoringPlan, snapshots: SnapshotSet, started: float) -> Scored:
    detect_ms = (time.perf_counter() - started) * 1000
    complete = np.asarray(snapshots.complete, dtype=bool)
    skipped = Counter(skip_reason_key(snapshots.reasons[i]) for i in np.flatnonzero(~complete))
    if not complete.any():
        return Scored(snapshots, complete, None, plan.outputs, (), skipped, detect_ms=detect_ms)
    matrix = snapshots.matrix[complete]
    inputs = {feature: matrix[:, plan.column_of[feature]].tolist() for feature in plan.features}
    started_infer = time.perf_counter()
    response = registry_client().predict(
        project_id=plan.project_id,
        model_id=plan.model_id,
        number=plan.version_number,
        inputs=inputs,
        rows=int(matrix.shape[0]),
        outputs=plan.outputs,
    )
    if response.version is not None and response.version != plan.version_number:
        raise RegistryRejected(f"asked version {plan.version_number}, the registry served version {response.version}")
    return Scored(
        snapshots,
        complete,
        response.values,
        response.outputs,
        response.validity,
        skipped,
        response.attempts,
        detect_ms=detect_ms,
        infer_ms=(time.perf_counter() - started_infer) * 1000,
    )


def _prediction_batch(plan: ScoringPlan, group: GroupKey, scored: Scored) -> PointBatch | None:
    """Columnar prediction points: one series per output, at each complete snapshot's time."""
    if scored.values is None or not scored.values.size:
        return None
    times = scored.snapshots.times_ns[scored.complete].astype(np.int64)
    rows, outputs = scored.values.shape
    series = [
        SeriesKey(
            group.project_name,
            group.device_id,
            group.batch_id,
            PREDICTION_SOURCE,
            name,
            plan.model_tag,
            plan.version_tag,
        )
        for name in scored.outputs
    ]
    validity = np.array(scored.validity, dtype=object) if scored.validity else np.full(rows, "", dtype=object)
    return PointBatch(
        collection=Collection.PREDICTIONS,
        series=series,
        series_index=np.repeat(np.arange(outputs, dtype=np.int32), rows),
        times_ns=np.tile(times, outputs),
        values=scored.values.T.reshape(-1).astype(np.float64),
        fields={"validity": np.tile(validity, outputs)},
    )


def _store_predictions(batch: PointBatch | None) -> int:
    if batch is None:
        return 0
    from apps.tsdb.services import points_ingest

    return points_ingest(batch=batch, user=None).points


def _input_points_upto(plan: ScoringPlan, group: GroupKey, end_ns: int | None) -> int:
    """Input points of the group at or before ``end_ns`` (the late-data detector's measure)."""
    if end_ns is None:
        return 0
    variables = set(plan.snapshot_variables)
    infos = get_backend().list_series(
        collection=Collection.RAW,
        where=SeriesFilter(project_name=group.project_name, device_id=group.device_id, batch_id=group.batch_id),
        end=from_ns(end_ns),
    )
    return sum(
        i.point_count for i in infos if i.series.source != LAB_SOURCE and i.series.observed_property in variables
    )


def _consistent_read() -> None:
    """Make the rest of the current transaction read one snapshot (PostgreSQL; SQLite already does)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")


def pipeline_group_run(*, watermark_id: int, trigger: str = Trigger.EVENT, task_id: str = "") -> PipelineRun | None:
    """Claim a deployment/group and run health → detect → infer → store once; None if another run holds it.

    One run scores at most ``STAMM_PIPELINE_CHUNK`` snapshots; a full chunk queues a follow-up run.
    """
    claim = _claim(watermark_id=watermark_id, trigger=trigger, task_id=task_id)
    if claim is None:
        return None
    run, watermark = claim.run, claim.watermark
    deployment = Deployment.objects.select_related("soft_sensor__project", "pinned_version").get(pk=run.deployment_id)
    group = GroupKey(watermark.project_name, watermark.device_id, watermark.batch_id)
    try:
        started = time.perf_counter()
        verdict = pipeline_health_check()
        run.health_ms = (time.perf_counter() - started) * 1000
        if not verdict.ok:
            raise RegistryError(f"health check failed: {verdict.reason}")
        if not deployment.enabled:
            raise RunSkipped("deployment disabled")
        plan = deployment_plan(deployment)
        if plan is None:
            raise RunSkipped(f"{deployment.soft_sensor.model_id} has no alias {deployment.alias!r}")
        if not plan.online:
            raise RunSkipped(
                f"version {plan.version_number} of {plan.model_id} is {plan.status}: offline versions are never called"
            )
        run.version_id, run.model_id, run.version_label = plan.version_id, plan.model_id, plan.version_tag
        started = time.perf_counter()
        start_ns = to_ns(deployment.score_from) if deployment.score_from else None
        chunk = settings.STAMM_PIPELINE_CHUNK
        max_age = timedelta(seconds=deployment.max_input_age_seconds)
        outermost = not connection.in_atomic_block
        with transaction.atomic():
            if outermost:
                _consistent_read()
            dirty = run.dirty_from_ns
            if watermark.watermark_ns is not None and dirty is None:
                if _input_points_upto(plan, group, watermark.watermark_ns) != watermark.scored_points:
                    # Points arrived at or before the watermark: rescore the group from its start.
                    dirty = start_ns if start_ns is not None else 0
                    run.dirty_from_ns = dirty
            base = watermark.watermark_ns if watermark.watermark_ns is not None else start_ns
            after = base if dirty is None else (dirty - 1 if base is None else min(base, dirty - 1))
            run.window_after_ns = after
            snapshots = _snapshots(plan, group, after_ns=after, until_ns=None, max_age=max_age, limit=chunk)
            last = int(snapshots.times_ns[-1]) if len(snapshots) else None
            full = len(snapshots) >= chunk
            old = watermark.watermark_ns
            new_watermark = old if last is None else (last if old is None else max(old, last))
            leftover = last + 1 if (full and last is not None and old is not None and last < old) else None
            scored_points = _input_points_upto(plan, group, new_watermark)
        _renew(claim)
        scored = _infer(plan, snapshots, started)
        run.registry_attempts = scored.attempts
        _renew(claim)
        started = time.perf_counter()
        batch = _prediction_batch(plan, group, scored)
        with transaction.atomic():
            changes = {
                "watermark_ns": new_watermark,
                "scored_points": scored_points,
                "lease_token": None,
                "lease_expires_at": None,
                "failures": 0,
                "retry_after": None,
                "last_run_at": timezone.now(),
            }
            if not Watermark.objects.filter(id=watermark.pk, lease_token=claim.token).update(**changes):
                raise LeaseLost(f"run {run.pk} lost the lease of {watermark.group_label} before storing")
            stored = _store_predictions(batch)
            current = Watermark.objects.get(id=watermark.pk)
            if leftover is not None:
                current.dirty_from_ns = (
                    leftover if current.dirty_from_ns is None else min(current.dirty_from_ns, leftover)
                )
                Watermark.objects.filter(id=watermark.pk).update(dirty_from_ns=current.dirty_from_ns)
            follow_up = full or current.pending
            if follow_up and not current.pending:
                Watermark.objects.filter(id=watermark.pk).update(pending=True, pending_since=timezone.now())
            run.snapshots = len(snapshots)
            run.predictions = stored
            run.skipped = sum(scored.skipped.values())
            run.skipped_reasons = dict(scored.skipped)
            run.first_snapshot_ns = int(snapshots.times_ns[0]) if len(snapshots) else None
            run.last_snapshot_ns = last
            run.detect_ms, run.infer_ms = scored.detect_ms, scored.infer_ms
            run.status = RunStatus.SKIPPED if (len(snapshots) and not stored) else RunStatus.SUCCEEDED
            if run.status == RunStatus.SKIPPED:
                run.error = "every snapshot was skipped: " + "; ".join(
                    f"{reason} ({count})" for reason, count in scored.skipped.most_common()
                )
            run.store_ms = (time.perf_counter() - started) * 1000
            run.finished_at = timezone.now()
            run.lease_expires_at = None
            run.save()
            if follow_up:
                _enqueue([watermark.pk], trigger)
        return run
    except LeaseLost as exc:
        PipelineRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
            status=RunStatus.STALE, finished_at=timezone.now(), error=str(exc)
        )
        run.refresh_from_db()
        return run
    except RunSkipped as exc:
        _release(claim, status=RunStatus.SKIPPED, error=str(exc), retry=False)
        return run
    except Exception as exc:  # noqa: BLE001 - every failure is a failed run with its reason, then retried
        logger.warning("pipeline run %s failed: %s", run.pk, exc)
        _release(claim, status=RunStatus.FAILED, error=_describe(exc), retry=True)
        return run


def _describe(exc: BaseException) -> str:
    if isinstance(exc, RegistryError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def backoff_seconds(failures: int) -> float:
    """Exponential backoff after consecutive failures: 2, 4, 8 … seconds, capped at 10 minutes."""
    return float(min(MAX_BACKOFF_SECONDS, 2 ** max(1, failures)))


def _release(claim: Claim, *, status: str, error: str, retry: bool) -> None:
    """End a run that stored nothing: give the lease back, keep the watermark, maybe schedule a retry."""
    run, watermark = claim.run, claim.watermark
    now = timezone.now()
    with transaction.atomic():
        current = Watermark.objects.filter(id=watermark.pk, lease_token=claim.token).first()
        if current is None:  # taken over meanwhile: that run owns the window now
            PipelineRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
                status=RunStatus.STALE, finished_at=now, error=f"lease lost; {error}"[:10000]
            )
            return
        dirty = current.dirty_from_ns
        if run.dirty_from_ns is not None:  # give back the late-data window this run had taken
            dirty = run.dirty_from_ns if dirty is None else min(dirty, run.dirty_from_ns)
        changes: dict[str, Any] = {
            "lease_token": None,
            "lease_expires_at": None,
            "dirty_from_ns": dirty,
            "last_run_at": now,
        }
        delay = None
        if retry:
            failures = current.failures + 1
            delay = backoff_seconds(failures)
            changes.update(
                failures=failures,
                retry_after=now + timedelta(seconds=delay),
                pending=True,
                pending_since=now + timedelta(seconds=delay),
            )
        Watermark.objects.filter(id=watermark.pk).update(**changes)
        run.status, run.error, run.finished_at, run.lease_expires_at = status, error[:10000], now, None
        run.save()
        if retry:
            _enqueue([watermark.pk], run.trigger, countdown=delay)
        elif current.pending:
            _enqueue([watermark.pk], run.trigger)


# ---------------------------------------------------------------------------------------------- backfill


def _parse_moment(value: datetime | str, name: str) -> datetime:
    moment = value if isinstance(value, datetime) else parse_datetime(str(value))
    if moment is None:
        raise ValidationFailed(f"{name} is not an ISO 8601 date-time.", details={name: str(value)})
    if timezone.is_naive(moment):
        raise ValidationFailed(f"{name} needs a time zone (e.g. 2026-01-01T00:00:00Z).", details={name: str(value)})
    return moment


def _claim_waiting(watermark_id: int, trigger: str, *, wait_seconds: float) -> Claim:
    deadline = time.monotonic() + wait_seconds
    while True:
        claim = _claim(watermark_id=watermark_id, trigger=trigger)
        if claim is not None:
            return claim
        if time.monotonic() > deadline:
            raise Conflict("Another run holds this group and did not finish in time; retry later.")
        time.sleep(0.2)


def pipeline_backfill(
    *,
    deployment: Deployment,
    start: datetime | str,
    end: datetime | str,
    progress: Callable[[int, int], None] | None = None,
    trigger: str = Trigger.BACKFILL,
) -> list[PipelineRun]:
    """Rescore every snapshot of the deployment's groups in [start, end]; idempotent (upserts).

    Each group is claimed like a live run (so it never overlaps one), scored chunk by chunk, and recorded
    as one run. Watermarks do not move: live scoring keeps its own place. ``progress(done, total)`` is
    called after each chunk (``total`` is an estimate: the largest input series' point count).
    """
    start, end = _parse_moment(start, "start"), _parse_moment(end, "end")
    if end < start:
        raise ValidationFailed("end is before start.", details={"start": start.isoformat(), "end": end.isoformat()})
    plan = deployment_plan(deployment)
    if plan is None:
        raise ValidationFailed(f"{deployment.soft_sensor.model_id} has no alias {deployment.alias!r}.")
    if not plan.online:
        raise ValidationFailed(
            f"Version {plan.version_number} of {plan.model_id} is {plan.status}; offline versions are never called."
        )
    project_name = deployment.soft_sensor.project.name.lower()
    backend = get_backend()
    infos = backend.list_series(
        collection=Collection.RAW, where=SeriesFilter(project_name=project_name), start=start, end=end
    )
    sizes: dict[GroupKey, int] = {}
    for info in infos:
        key = info.series
        if key.source == LAB_SOURCE or key.observed_property not in plan.snapshot_variables:
            continue
        if deployment.in_scope(device_id=key.device_id, batch_id=key.batch_id):
            sizes[key.group] = max(sizes.get(key.group, 0), info.point_count)
    total = sum(sizes.values())
    done = 0
    service_token()  # resolved here: the inference thread must not need the database
    runs = []
    after0, until = to_ns(start) - 1, to_ns(end)
    max_age = timedelta(seconds=deployment.max_input_age_seconds)
    chunk = settings.STAMM_PIPELINE_CHUNK
    with transaction.atomic():
        watermarks = _watermarks_ensure([(deployment, g) for g in sorted(sizes)])
    for watermark in watermarks:
        group = GroupKey(watermark.project_name, watermark.device_id, watermark.batch_id)
        claim = _claim_waiting(watermark.pk, trigger, wait_seconds=settings.STAMM_PIPELINE_LEASE_SECONDS * 2)
        run = claim.run
        run.window_after_ns, run.window_until_ns = after0, until
        run.version_id, run.model_id, run.version_label = plan.version_id, plan.model_id, plan.version_tag
        skipped: Counter = Counter()
        try:
            # Three-stage pipeline: while the registry predicts chunk k (HTTP, in a thread), this thread
            # stores chunk k-1 and reads chunk k+1, so the database and the model server work at once.
            after = after0
            in_flight: tuple[SnapshotSet, Future] | None = None
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="backfill-infer") as pool:
                while True:
                    started = time.perf_counter()
                    snapshots = _snapshots(plan, group, after_ns=after, until_ns=until, max_age=max_age, limit=chunk)
                    detect_ms = (time.perf_counter() - started) * 1000
                    following = pool.submit(_infer, plan, snapshots, time.perf_counter()) if len(snapshots) else None
                    if in_flight is not None:
                        done += _backfill_store(claim, plan, group, *in_flight, skipped)
                        if progress:
                            progress(done, max(total, done))
                    if following is None:
                        break
                    run.detect_ms = (run.detect_ms or 0) + detect_ms
                    in_flight = (snapshots, following)
                    after = int(snapshots.times_ns[-1])
                    if len(snapshots) < chunk:
                        done += _backfill_store(claim, plan, group, *in_flight, skipped)
                        if progress:
                            progress(done, max(total, done))
                        break
        except Exception as exc:  # noqa: BLE001 - recorded on the run, then re-raised to the caller
            run.skipped, run.skipped_reasons = sum(skipped.values()), dict(skipped)
            _release(
                claim,
                status=RunStatus.STALE if isinstance(exc, LeaseLost) else RunStatus.FAILED,
                error=_describe(exc),
                retry=False,
            )
            raise
        run.skipped, run.skipped_reasons = sum(skipped.values()), dict(skipped)
        _release(
            claim,
            status=RunStatus.SKIPPED if run.snapshots and not run.predictions else RunStatus.SUCCEEDED,
            error="" if run.predictions or not run.snapshots else "every snapshot was skipped",
            retry=False,
        )
        runs.append(run)
    return runs


def _backfill_store(
    claim: Claim, plan: ScoringPlan, group: GroupKey, snapshots: SnapshotSet, inferred: Future, skipped: Counter
) -> int:
    """Wait for a chunk's predictions and store them under the lease; returns the snapshots done."""
    run, watermark = claim.run, claim.watermark
    scored = inferred.result()
    started = time.perf_counter()
    with transaction.atomic():
        if not Watermark.objects.filter(id=watermark.pk, lease_token=claim.token).update(
            lease_expires_at=timezone.now() + timedelta(seconds=settings.STAMM_PIPELINE_LEASE_SECONDS)
        ):
            raise LeaseLost(f"backfill run {run.pk} lost the lease of {watermark.group_label}")
        run.predictions += _store_predictions(_prediction_batch(plan, group, scored))
    run.snapshots += len(snapshots)
    run.registry_attempts += scored.attempts
    skipped.update(scored.skipped)
    run.infer_ms = (run.infer_ms or 0) + scored.infer_ms
    run.store_ms = (run.store_ms or 0) + (time.perf_counter() - started) * 1000
    if run.first_snapshot_ns is None:
        run.first_snapshot_ns = int(snapshots.times_ns[0])
    run.last_snapshot_ns = int(snapshots.times_ns[-1])
    return len(snapshots)


def pipeline_backfill_enqueue(*, deployment: Deployment, start: datetime | str, end: datetime | str) -> str:
    """Validate a backfill request and queue it for a worker; returns the Celery task id."""
    start, end = _parse_moment(start, "start"), _parse_moment(end, "end")
    if end < start:
        raise ValidationFailed("end is before start.", details={"start": start.isoformat(), "end": end.isoformat()})
    plan = deployment_plan(deployment)
    if plan is None or not plan.online:
        raise ValidationFailed("The deployment's version is not online; offline versions are never called.")
    from .tasks import backfill

    task_id = str(uuid.uuid4())
    transaction.on_commit(
        lambda: backfill.apply_async(args=[deployment.pk, start.isoformat(), end.isoformat()], task_id=task_id)
    )
    return task_id
