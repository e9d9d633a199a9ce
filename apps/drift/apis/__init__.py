"""REST API of the drift app under /api/v1/drift/ (one APIView per operation), one module per sub-domain:
``runs`` (catalogue, ad hoc runs, results), ``jobs``, ``alerts`` (lifecycle, silences, status), ``lab``.

Roles: reading (catalogue, jobs, results, alerts and their history, silences, status, lab residuals and
metrics) needs ``view_process``; ad hoc runs, jobs (create, change, delete, run) and ledger refreshes need
``run_drift`` (modelers, admins); acting on alerts follows ``apps.drift.access`` (acknowledge: operators,
modelers, managers, admins; resolve and silence: modelers and admins).

Errors: a bad detector parameter is a 400 whose message and ``details.params`` name the parameter; an
unknown detector is a 400 naming ``detector`` (404 on ``GET detectors/<key>``); a window without data
is a 400 with code ``no_data``; acting on an alert in the wrong state is a 409.
"""

from .alerts import (
    AlertAcknowledgeApi,
    AlertDetailApi,
    AlertHistoryApi,
    AlertListApi,
    AlertResolveApi,
    DriftStatusApi,
    SilenceCreateApi,
    SilenceDeleteApi,
    SilenceListApi,
)
from .jobs import JobCreateApi, JobDeleteApi, JobDetailApi, JobListApi, JobRunApi, JobUpdateApi
from .lab import LabLedgerRefreshApi, LabMetricsApi, LabResidualListApi, LabSettingsApi, LabSettingsUpdateApi
from .runs import DetectorDetailApi, DetectorListApi, DriftRunApi, ResultDetailApi, ResultListApi

__all__ = [
    "AlertAcknowledgeApi", "AlertDetailApi", "AlertHistoryApi", "AlertListApi", "AlertResolveApi",
    "DetectorDetailApi", "DetectorListApi", "DriftRunApi", "DriftStatusApi", "JobCreateApi", "JobDeleteApi",
    "JobDetailApi", "JobListApi", "JobRunApi", "JobUpdateApi", "LabLedgerRefreshApi", "LabMetricsApi",
    "LabResidualListApi", "LabSettingsApi", "LabSettingsUpdateApi", "ResultDetailApi", "ResultListApi",
    "SilenceCreateApi", "SilenceDeleteApi", "SilenceListApi",
]
