"""Declared environments: finding or creating the row a version runs in, building it, settling the waiting versions.

A version whose packages the platform already has runs in the default runtime (no row). Otherwise its
environment row is found by the declared key or created in state ``building``; the build runs once (a Celery
task, or inline for the import command and tests) and the versions waiting for it then take the status they
asked for, after the usual load check inside the new environment, or stay offline with the installer's
message when the build failed.
"""

from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.audit.tracking import audited_update
from apps.common.errors import NotFound, ValidationFailed

from ..models import EnvironmentState, ModelVersion, RuntimeEnvironment, VersionStatus
from ..runtimes import PYTHON_FLAVORS, OfflineReason, environments
from ..runtimes.python import environment_root
from ..selectors import version_artifacts, version_spec
from ..serving import load_error
from .status import model_version_status_record

logger = logging.getLogger(__name__)

WAITING = "Waiting for its environment to be built"


def build_options() -> environments.BuildOptions:
    """The installer's settings (``STAMM_RUNTIME_ENV_DIR``, ``REGISTRY_ENV_*``)."""
    uv = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    return environments.BuildOptions(
        root=environment_root(),
        uv=uv,
        index_url=getattr(settings, "REGISTRY_ENV_INDEX_URL", ""),
        extra_index_urls=tuple(getattr(settings, "REGISTRY_ENV_EXTRA_INDEX_URLS", ()) or ()),
        find_links=tuple(getattr(settings, "REGISTRY_ENV_FIND_LINKS", ()) or ()),
        timeout=float(getattr(settings, "REGISTRY_ENV_BUILD_TIMEOUT", 900)),
    )


def environment_spec_for(
    *, flavor: str, packages, language_version: str | None, requirements_text: str | None = None
) -> environments.EnvironmentSpec | None:
    """The environment a Python version needs (None: the default runtime); a 400 naming what is unusable."""
    if flavor not in PYTHON_FLAVORS:
        return None
    try:
        return environments.environment_spec(
            flavor=flavor, packages=packages, language_version=language_version, requirements_text=requirements_text
        )
    except environments.RequirementsError as exc:
        field = "requirements" if requirements_text else "descriptor"
        raise ValidationFailed(str(exc), details={field: str(exc)}, code="invalid_requirements") from exc


def _spec_of(environment: RuntimeEnvironment) -> environments.EnvironmentSpec:
    return environments.EnvironmentSpec(
        environment.python_request or None,
        tuple(environment.requirements),
        tuple(sorted((environment.variables or {}).items())),
    )


def environment_usable(environment: RuntimeEnvironment) -> bool:
    """Ready in the database and present on this machine's disk."""
    return environment.state == EnvironmentState.READY and environments.is_ready(
        environment.location, environment_root()
    )


@transaction.atomic
def environment_ensure(*, spec: environments.EnvironmentSpec) -> RuntimeEnvironment:
    """The row of a declared environment, created in state ``building`` on first use.

    A row marked ready whose folder is missing here (a wiped cache, another host) goes back to building.
    """
    environment, created = RuntimeEnvironment.objects.select_for_update().get_or_create(
        key=spec.key,
        defaults={
            "python_request": spec.python or "",
            "requirements": list(spec.requirements),
            "variables": dict(spec.variables),
        },
    )
    if not created and environment.state == EnvironmentState.READY and not environment_usable(environment):
        environment.state = EnvironmentState.BUILDING
        environment.message = "the built folder is missing on this host; rebuilding"
        environment.save(update_fields=["state", "message"])
    return environment


def environment_queue(*, environment: RuntimeEnvironment) -> None:
    """Build it in a Celery worker once the current transaction commits."""
    from ..tasks import environment_build as task  # noqa: PLC0415

    environment_id = environment.pk
    transaction.on_commit(lambda: task.delay(environment_id))


def environment_build(*, environment_id: int) -> RuntimeEnvironment:
    """Build (or find built) one environment, record the outcome, then settle the versions waiting for it."""
    environment = RuntimeEnvironment.objects.filter(pk=environment_id).first()
    if environment is None:
        raise NotFound(f"Runtime environment {environment_id} does not exist.")
    if not environment_usable(environment):
        audited_update(RuntimeEnvironment.objects.filter(pk=environment.pk), state=EnvironmentState.BUILDING)
        result = environments.build(_spec_of(environment), build_options())
        environment.state = EnvironmentState.READY if result.ok else EnvironmentState.FAILED
        environment.message = result.message
        environment.location = result.location
        environment.python_version = result.python_version
        environment.resolved = result.resolved
        environment.built_at = timezone.now()
        environment.build_seconds = round(result.seconds, 2)
        environment.save()
        logger.info("registry: environment %s %s (%s)", environment.key[:12], environment.state, result.message[:200])
    environment_settle(environment=environment)
    return environment


def environment_settle(*, environment: RuntimeEnvironment) -> list[ModelVersion]:
    """Versions waiting for ``environment`` take their requested status (after a load check) or stay offline."""
    settled = []
    waiting = ModelVersion.objects.filter(environment=environment, archived_at__isnull=True).exclude(
        requested_status=""
    )
    for version in waiting.select_related("soft_sensor__project", "environment"):
        if environment.state == EnvironmentState.FAILED:  # it keeps its request: a rebuild may still serve it
            description = f"environment build failed: {environment.message}"
            settled.append(
                model_version_status_record(
                    version_id=version.pk, status=VersionStatus.OFFLINE, description=description
                )
            )
            continue
        else:
            artifacts = version_artifacts(version_id=version.pk, created_at=version.created_at)
            problem = load_error(version_spec(version), artifacts)
            if isinstance(problem, OfflineReason):  # e.g. a pickle still awaiting approval: its request stands
                settled.append(
                    model_version_status_record(
                        version_id=version.pk, status=VersionStatus.OFFLINE, description=str(problem)
                    )
                )
                continue
            if problem is not None:
                status, description = VersionStatus.LOAD_ERROR, f"Load error: {problem}"
            elif version.requested_status == VersionStatus.ONLINE:
                status, description = VersionStatus.ONLINE, "Model is loaded and ready for predictions."
            else:
                status, description = VersionStatus.OFFLINE, "Registered offline; its environment is built."
        settled.append(
            model_version_status_record(
                version_id=version.pk, status=status, description=description, requested_status=""
            )
        )
    return settled


@transaction.atomic
def environment_rebuild(*, environment: RuntimeEnvironment) -> RuntimeEnvironment:
    """Queue a new build (after a failure, or to refresh a missing folder); waiting versions are settled again."""
    audited_update(RuntimeEnvironment.objects.filter(pk=environment.pk), state=EnvironmentState.BUILDING, message="")
    environment.refresh_from_db()
    environment_queue(environment=environment)
    return environment
