"""API routes of the drift app, mounted under /api/v1/drift/ (no trailing slashes, like the tsdb API)."""
from django.urls import path

from . import apis

JOB = "jobs/<int:job_id>"

urlpatterns = [
    path("detectors", apis.DetectorListApi.as_view(), name="drift-detector-list"),
    path("detectors/<str:key>", apis.DetectorDetailApi.as_view(), name="drift-detector-detail"),
    path("run", apis.DriftRunApi.as_view(), name="drift-run"),
    path("jobs", apis.JobListApi.as_view(), name="drift-job-list"),
    path("jobs/create", apis.JobCreateApi.as_view(), name="drift-job-create"),
    path(JOB, apis.JobDetailApi.as_view(), name="drift-job-detail"),
    path(JOB + "/update", apis.JobUpdateApi.as_view(), name="drift-job-update"),
    path(JOB + "/delete", apis.JobDeleteApi.as_view(), name="drift-job-delete"),
    path(JOB + "/run", apis.JobRunApi.as_view(), name="drift-job-run"),
    path("results", apis.ResultListApi.as_view(), name="drift-result-list"),
    path("results/<int:result_id>", apis.ResultDetailApi.as_view(), name="drift-result-detail"),
    path("alerts", apis.AlertListApi.as_view(), name="drift-alert-list"),
    path("alerts/<int:alert_id>", apis.AlertDetailApi.as_view(), name="drift-alert-detail"),
    path("alerts/<int:alert_id>/history", apis.AlertHistoryApi.as_view(), name="drift-alert-history"),
    path("alerts/<int:alert_id>/acknowledge", apis.AlertAcknowledgeApi.as_view(), name="drift-alert-acknowledge"),
    path("alerts/<int:alert_id>/resolve", apis.AlertResolveApi.as_view(), name="drift-alert-resolve"),
    path("silences", apis.SilenceListApi.as_view(), name="drift-silence-list"),
    path("silences/create", apis.SilenceCreateApi.as_view(), name="drift-silence-create"),
    path("silences/<int:silence_id>/delete", apis.SilenceDeleteApi.as_view(), name="drift-silence-delete"),
    path("status/<str:deployment>", apis.DriftStatusApi.as_view(), name="drift-status"),
    path("lab/residuals", apis.LabResidualListApi.as_view(), name="drift-lab-residual-list"),
    path("lab/metrics", apis.LabMetricsApi.as_view(), name="drift-lab-metrics"),
    path("lab/refresh", apis.LabLedgerRefreshApi.as_view(), name="drift-lab-refresh"),
    path("lab/settings", apis.LabSettingsApi.as_view(), name="drift-lab-settings"),
    path("lab/settings/update", apis.LabSettingsUpdateApi.as_view(), name="drift-lab-settings-update"),
]
