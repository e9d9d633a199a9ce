"""Writes of the orchestrator, one module per sub-domain; this package re-exports their public services.

- ``deployments``: which soft sensor runs where;
- ``pipeline``: live runs, many groups per task (health → detect → infer → store), with the exactly-once
  rules in its docstring;
- ``runs``: what live runs and backfills share (claim, lease, the online rule, queue, store);
- ``triggers``: data events, beat's safety net, manual runs;
- ``backfill``: rescoring a historical window;
- ``bias``: a deployment's lab bias update and the replay of stored estimates;
- ``health``, ``schedules``, ``registry_access``: the pipeline's health verdict, beat, the REST client.
"""

from .backfill import pipeline_backfill, pipeline_backfill_enqueue
from .bias import (
    BIAS_PARAMETERS,
    TRANSIENT_ERRORS,
    bias_correction_apply,
    bias_correction_configure,
    bias_corrections_apply_recent,
    bias_parameters_validate,
)
from .deployments import (
    DEPLOYMENT_FIELDS,
    deployment_create,
    deployment_delete,
    deployment_ensure,
    deployment_update,
    deployment_validate,
)
from .health import HealthVerdict, pipeline_health_check, pipeline_health_forget, pipeline_health_record
from .pipeline import pipeline_group_run, pipeline_groups_run
from .registry_access import registry_access_reset, registry_client, service_account_ensure, service_token
from .runs import backoff_seconds, not_scoring_reason
from .schedules import DEFAULT_SCHEDULES, beat_schedules_ensure, heartbeat_record
from .triggers import on_points_committed, pipeline_detect, pipeline_groups_notify

__all__ = [
    "BIAS_PARAMETERS",
    "TRANSIENT_ERRORS",
    "DEFAULT_SCHEDULES",
    "DEPLOYMENT_FIELDS",
    "HealthVerdict",
    "backoff_seconds",
    "beat_schedules_ensure",
    "bias_correction_apply",
    "bias_correction_configure",
    "bias_corrections_apply_recent",
    "bias_parameters_validate",
    "deployment_create",
    "deployment_delete",
    "deployment_ensure",
    "deployment_update",
    "deployment_validate",
    "heartbeat_record",
    "not_scoring_reason",
    "on_points_committed",
    "pipeline_backfill",
    "pipeline_backfill_enqueue",
    "pipeline_detect",
    "pipeline_group_run",
    "pipeline_groups_run",
    "pipeline_groups_notify",
    "pipeline_health_check",
    "pipeline_health_forget",
    "pipeline_health_record",
    "registry_access_reset",
    "registry_client",
    "service_account_ensure",
    "service_token",
]
