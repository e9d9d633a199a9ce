"""A deployment's lab bias update: its versioned configuration, and the replay of stored estimates.

The live scoring path applies the bias update as it scores (``apps.orchestrator.scoring``); the replay here
rewrites stored corrected estimates when lab results were entered after they became known.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from django.db import InterfaceError, OperationalError, transaction
from django.utils import timezone

from apps.audit.tracking import audited_update
from apps.common.errors import Conflict, ServiceUnavailable, ValidationFailed, reject_unknown_fields
from apps.tsdb.backends import BackendError, get_backend
from apps.tsdb.selectors import series_list
from apps.tsdb.services import points_ingest
from apps.tsdb.types import LAB_SOURCE, PREDICTION_SOURCE, Collection, PointBatch, SeriesFilter

from ..bias import bias_trace
from ..models import BiasCorrection, Deployment
from ..selectors import bias_correction_current, deployment_estimator
from .runs import failure_text

logger = logging.getLogger(__name__)

#: Lab delay of a new bias configuration that names none (the training workflow passes the project's).
DEFAULT_LAB_DELAY_SECONDS = 4 * 3600
#: Errors a retry can fix: the store or the database was briefly unavailable (the periodic task re-raises them).
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    ServiceUnavailable,
    BackendError,
    OperationalError,
    InterfaceError,
    ConnectionError,
    TimeoutError,
)


#: Maximum age of a lab result when it becomes known, when a configuration names none.
DEFAULT_MAX_LAB_AGE_SECONDS = 8 * 3600
#: The parameters of a bias update (what ``BiasSettings`` and a version's trained ``BiasSpec`` hold).
BIAS_PARAMETERS = ("alpha", "lab_delay_seconds", "max_lab_age_seconds", "lab_min", "lab_max")


def bias_parameters_validate(
    data: Mapping[str, Any], *, prefix: str = "", lab_delay_default: int = DEFAULT_LAB_DELAY_SECONDS
) -> dict[str, Any]:
    """The bias update's parameters, normalised, or a 400 naming ``<prefix><field>``: one rule for a
    deployment's configuration and a training run's choice."""

    def fail(key: str, message: str, value: Any) -> ValidationFailed:
        return ValidationFailed(f"{prefix}{key}: {message}", details={f"{prefix}{key}": value})

    if data.get("alpha") in (None, ""):
        raise fail("alpha", "required (trust in each lab residual, 0..1)", "required")
    try:
        alpha = float(data["alpha"])
    except (TypeError, ValueError):
        raise fail("alpha", "must be a number", data.get("alpha")) from None
    if not 0.0 <= alpha <= 1.0:
        raise fail("alpha", "must be between 0 and 1", alpha)
    result: dict[str, Any] = {"alpha": alpha}
    for key, default in (
        ("lab_delay_seconds", lab_delay_default),
        ("max_lab_age_seconds", DEFAULT_MAX_LAB_AGE_SECONDS),
    ):
        value = data.get(key)
        if value in (None, ""):
            value = default
        if isinstance(value, bool):
            raise fail(key, "must be an integer", value)
        try:
            result[key] = int(value)
        except (TypeError, ValueError):
            raise fail(key, "must be an integer", value) from None
        if result[key] < 0:
            raise fail(key, "must not be negative", value)
    for key in ("lab_min", "lab_max"):
        value = data.get(key)
        try:
            result[key] = None if value in (None, "") else float(value)
        except (TypeError, ValueError):
            raise fail(key, "must be a number or null", value) from None
    if result["lab_min"] is not None and result["lab_max"] is not None and result["lab_min"] >= result["lab_max"]:
        raise ValidationFailed(
            f"{prefix}lab_min: must be below lab_max",
            details={f"{prefix}lab_min": result["lab_min"], f"{prefix}lab_max": result["lab_max"]},
        )
    return result


@transaction.atomic
def bias_correction_configure(*, deployment: Deployment, user: Any, data: Mapping[str, Any]) -> BiasCorrection:
    """A new version of the deployment's bias-update configuration (the last state carries over)."""
    allowed = {*BIAS_PARAMETERS, "enabled", "reset_each_batch", "reason"}
    reject_unknown_fields(data, allowed, what="bias-update")
    parameters = bias_parameters_validate(data)
    last = BiasCorrection.objects.select_for_update().filter(deployment=deployment).order_by("-number").first()
    return BiasCorrection.objects.create(
        deployment=deployment,
        number=(last.number + 1) if last else 1,
        enabled=bool(data.get("enabled", True)),
        reset_each_batch=bool(data.get("reset_each_batch", True)),
        reason=str(data.get("reason") or ""),
        created_by=user if getattr(user, "pk", None) else None,
        state=dict(last.state) if last else {},
        **parameters,
    )


def bias_correction_apply(*, deployment: Deployment, since: datetime | None = None) -> dict[str, Any]:
    """Recompute ``corrected_value`` of the stored estimates of the deployment's current version.

    Per batch and per output, the filtered bias is replayed (``bias.bias_trace``, the rule the scoring path
    applies live) from the batch's lab samples in the order their results became known, so the result is
    the same however often it runs (idempotent). The raw prediction (``value``) and its validity verdict are
    written back unchanged. This catches lab results entered later than they became known; ``since``
    limits the work to batches with estimates after that time (the periodic update replays live batches).
    """
    estimator = deployment_estimator(deployment)
    if estimator is None:
        raise Conflict(f"deployment {deployment} has no version to apply a bias update to")
    settings_ = estimator.config.bias
    if settings_ is None:
        return {"applied": False, "reason": f"deployment {deployment} runs no bias update"}
    spec = estimator.spec
    infos = series_list(
        collection=Collection.PREDICTIONS,
        where=SeriesFilter(
            project_name=spec.project_name, source=PREDICTION_SOURCE, model_id=spec.model_tag, version=spec.version_tag
        ),
        start=since,
        end=timezone.now() if since is not None else None,
    )
    infos = [
        i
        for i in infos
        if estimator.is_output(i.series)
        and deployment.in_scope(device_id=i.series.device_id, batch_id=i.series.batch_id)
    ]
    backend = get_backend()
    state: dict[str, Any] = {}
    written = 0
    carried = 0.0
    max_gap = deployment.max_input_age_seconds * 1_000_000_000
    for info in sorted(infos, key=lambda i: (i.first_time, i.series)):
        key = info.series
        data = backend.read(collection=Collection.PREDICTIONS, series=key, start=info.first_time, end=info.last_time)
        times, values = np.asarray(data.times_ns, dtype=np.int64), np.asarray(data.values, dtype=float)
        validity = data.fields.get("validity")
        lab = [
            i
            for i in series_list(
                where=SeriesFilter(
                    project_name=key.project_name,
                    device_id=key.device_id,
                    batch_id=key.batch_id,
                    source=LAB_SOURCE,
                    observed_property=key.observed_property,
                )
            )
        ]
        if lab:
            lab_data = backend.read(
                collection=Collection.RAW, series=lab[0].series, start=lab[0].first_time, end=lab[0].last_time
            )
            lab_t, lab_v = np.asarray(lab_data.times_ns, dtype=np.int64), np.asarray(lab_data.values, dtype=float)
        else:
            lab_t, lab_v = np.empty(0, dtype=np.int64), np.empty(0)
        params = settings_.params(initial_bias=0.0 if settings_.reset_each_batch else carried)
        trace = bias_trace(times, values, lab_t, lab_v, params, max_gap_ns=max_gap)
        carried = trace.final_bias
        fields = {"corrected_value": trace.corrected.astype(np.float64)}
        if validity is not None and validity.shape[0] == times.shape[0]:
            fields["validity"] = validity
        batch = PointBatch(
            collection=Collection.PREDICTIONS,
            series=[key],
            series_index=np.zeros(times.shape[0], dtype=np.int32),
            times_ns=times,
            values=values,
            fields=fields,
        )
        if len(batch):
            written += points_ingest(batch=batch).points
        state[f"{key.device_id}/{key.batch_id}/{key.observed_property}@{key.version}"] = {
            "bias": round(trace.final_bias, 6),
            "used": trace.used,
            "rejected": trace.rejected,
            "predictions": int(times.shape[0]),
        }
    correction = bias_correction_current(deployment=deployment)
    if correction is not None:
        audited_update(BiasCorrection.objects.filter(pk=correction.pk), applied_at=timezone.now(), state=state)
    return {
        "applied": True,
        "version": correction.number if correction is not None else None,
        "source": settings_.source,
        "points": written,
        "series": state,
    }


def bias_corrections_apply_recent(*, window_seconds: int = 6 * 3600) -> dict[str, Any]:
    """The periodic update: every deployment whose newest bias configuration is enabled, for the batches
    that received predictions in the last ``window_seconds``. One failing deployment does not stop the others."""
    since = timezone.now() - timedelta(seconds=int(window_seconds))
    newest = {}
    for config in BiasCorrection.objects.order_by("deployment_id", "-number"):
        newest.setdefault(config.deployment_id, config)
    enabled = [pk for pk, config in newest.items() if config.enabled]
    results: dict[str, Any] = {}
    for deployment in Deployment.objects.filter(pk__in=enabled, enabled=True).select_related("soft_sensor__project"):
        try:
            outcome = bias_correction_apply(deployment=deployment, since=since)
            results[deployment.name] = {"points": outcome.get("points", 0), "series": len(outcome.get("series", {}))}
        except TRANSIENT_ERRORS:
            raise
        except Exception as exc:  # noqa: BLE001 - reported per deployment, the others still run
            logger.warning("bias update of %s failed: %s", deployment.name, exc)
            results[deployment.name] = {"error": failure_text(exc)}
    return results
