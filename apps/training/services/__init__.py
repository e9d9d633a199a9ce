"""Writes of the training app, one module per part of the workflow; this package re-exports the services.

The workflow is load → preprocess → split → train (one step per learner) → register → evaluate → gate →
promote. Each step is a function of the run id that can be called again at any time:

- its ``TrainingStep`` row is updated in place (attempts + 1), never duplicated;
- load, preprocess and split rewrite their ``.npz`` file under ``MEDIA_ROOT/training/<run uid>/``;
- train rewrites the candidate's artefact, unless the candidate is already registered (then reused);
- register reuses the version already registered for a candidate (looked up by lineage), so a re-run never
  adds a version; candidates are registered **offline** and only the gate step puts a passing one online;
- evaluate scores each registered candidate as deployed through the platform's one scoring path;
- promote does nothing when the alias already points at the chosen version.

Transient failures (store or database unavailable) propagate so the Celery task retries with backoff; any
other failure marks the step and the run failed with the reason. Celery tasks (``tasks.py``) only call these
functions; ``training_run_execute_inline`` runs the same steps in-process (the command line).

Modules: ``config`` (validation, project profile), ``runs`` (create, queue, step runner), ``data_steps``,
``registration``, ``evaluate``, ``promotion`` (gates, promotion, approval), ``inline``, ``bias``, ``plans``
(training plans and their triggers), ``challengers`` (shadow deployments judged on lab residuals, promotion
proposals), ``schedules`` (beat entries).
"""

from .bias import BIAS_SCHEDULE, bias_correction_configure, bias_schedule_ensure
from .challengers import (
    challenger_compare,
    challenger_review,
    challengers_all,
    challengers_review_all,
    promotion_request_approve,
    promotion_request_dismiss,
)
from .config import DEFAULT_BIAS, default_model_id, project_profile, project_profile_set, training_config_validate
from .data_steps import step_load, step_preprocess, step_split, step_train
from .evaluate import step_evaluate
from .explain_uploads import EXPLAINED_SOURCES, version_explain_on_experiments
from .inline import training_run_execute_inline
from .plans import (
    PLAN_FIELDS,
    plan_batches,
    plans_check_lab_error,
    plans_on_alert_opened,
    training_plan_create,
    training_plan_delete,
    training_plan_trigger,
    training_plan_update,
)
from .promotion import step_gate, step_promote, training_run_approve, training_run_promote
from .registration import step_register
from .runs import (
    TRANSIENT_ERRORS,
    RunOrigin,
    failure_text,
    run_dir,
    step_names,
    training_run_create,
    training_run_fail,
    training_run_start,
    workflow_signature,
)
from .schedules import governance_schedules_ensure

__all__ = [
    "BIAS_SCHEDULE",
    "EXPLAINED_SOURCES",
    "version_explain_on_experiments",
    "PLAN_FIELDS",
    "RunOrigin",
    "challenger_compare",
    "challenger_review",
    "challengers_all",
    "challengers_review_all",
    "governance_schedules_ensure",
    "plan_batches",
    "plans_check_lab_error",
    "plans_on_alert_opened",
    "promotion_request_approve",
    "promotion_request_dismiss",
    "training_plan_create",
    "training_plan_delete",
    "training_plan_trigger",
    "training_plan_update",
    "DEFAULT_BIAS",
    "TRANSIENT_ERRORS",
    "bias_correction_configure",
    "bias_schedule_ensure",
    "default_model_id",
    "failure_text",
    "project_profile",
    "project_profile_set",
    "run_dir",
    "step_evaluate",
    "step_gate",
    "step_load",
    "step_names",
    "step_preprocess",
    "step_promote",
    "step_register",
    "step_split",
    "step_train",
    "training_config_validate",
    "training_run_approve",
    "training_run_create",
    "training_run_execute_inline",
    "training_run_fail",
    "training_run_promote",
    "training_run_start",
    "workflow_signature",
]
