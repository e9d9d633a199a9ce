"""Writes of the drift app, one module per sub-domain; this package re-exports the services.

Modules: ``validation`` (parameters, calibration, windows, the target), ``evaluation`` (running a detector,
results, ad hoc runs), ``jobs`` (jobs, beat entries, a job's run), ``alerts`` (the alert lifecycle and
silences), ``lab`` (the residual ledger).

The rules in one place
----------------------
* **Parameters** are validated against the detector's signature (``Detector.validate_params``); a bad one
  is a 400 naming ``params.<name>``, an unknown detector a 400 naming ``detector``. Jobs store the full
  validated parameter set (defaults filled in), so a later change of a default never changes a job.
* **Windows** are resolved and read by ``window_loading``; a phase test window cuts batch references to
  the same phase.
* **Verdict.** By default reference-calibrated (``stamm_drift.calibration``): needs at least two reference
  segments (batches); with one segment, or when the job asks for it, the detector's nominal threshold
  decides. Either way the rule and its data are stored in ``details``.
* **Results.** Every job run stores a ``DriftResult``; one that cannot score (no data, store down) is
  stored as ``failed`` with the error. Ad hoc API runs are stored too (``job`` empty, trigger ``ad_hoc``)
  unless the caller sends ``store: false``; they never raise alerts.
* **Alerts.** A drift verdict of a job (a *live check*: beat or by hand, never an ad hoc run) opens an
  ``Alert``; while it is active (open or acknowledged) further drift verdicts update it (``last_result``,
  ``occurrences``, the worse severity) instead of opening another. Severity is ``critical`` when the score
  is at least twice its threshold, else ``warning``. Lifecycle: open → acknowledged (who, when, note) →
  resolved, by hand with a reason or automatically when the job's next successful run finds no drift.
  Every transition is an ``AlertEvent`` and an audit entry. Silences (deployment, detector or all, until,
  reason) keep alerts out of the status light; they never stop a check or hide an alert.
* **Ledger.** ``lab_ledger_refresh`` recomputes a deployment's residual rows per group and writes only the
  difference (create / update / delete), so re-running it changes nothing.
"""

from .alerts import (
    MAX_SILENCE_DAYS,
    alert_acknowledge,
    alert_raise,
    alert_resolve,
    alert_silence_create,
    alert_silence_end,
    alerts_clear,
)
from .evaluation import CRITICAL_RATIO, Evaluation, drift_run_ad_hoc, evaluate, lab_settings_of, severity_of
from .jobs import (
    JOB_FIELDS,
    JOB_TASK,
    MIN_SCHEDULE_SECONDS,
    drift_job_create,
    drift_job_delete,
    drift_job_run,
    drift_job_schedule_sync,
    drift_job_update,
    drift_job_validate,
)
from .lab import (
    LAB_SCORING_LOOKBACK_SECONDS,
    LAB_SCORING_TASK,
    LAB_SCORING_TASK_NAME,
    LedgerChange,
    deployment_model_tag,
    lab_ledger_refresh,
    lab_ledgers_refresh_all,
    lab_scoring_schedule_ensure,
    lab_settings_update,
)
from .validation import (
    Target,
    calibration_rule_validate,
    detector_params_validate,
    target_resolve,
    variables_validate,
    window_specs_validate,
)

__all__ = [
    "CRITICAL_RATIO", "JOB_FIELDS", "JOB_TASK", "LAB_SCORING_LOOKBACK_SECONDS", "LAB_SCORING_TASK",
    "LAB_SCORING_TASK_NAME", "MAX_SILENCE_DAYS", "MIN_SCHEDULE_SECONDS", "Evaluation", "LedgerChange", "Target",
    "alert_acknowledge", "alert_raise", "alert_resolve", "alert_silence_create", "alert_silence_end",
    "alerts_clear", "calibration_rule_validate", "deployment_model_tag", "detector_params_validate",
    "drift_job_create", "drift_job_delete", "drift_job_run", "drift_job_schedule_sync", "drift_job_update",
    "drift_job_validate", "drift_run_ad_hoc", "evaluate", "lab_ledger_refresh", "lab_ledgers_refresh_all",
    "lab_scoring_schedule_ensure", "lab_settings_of", "lab_settings_update", "severity_of", "target_resolve",
    "variables_validate", "window_specs_validate",
]
