"""Standard inference protocols at the server's root: the Open Inference Protocol V2 and MLflow's scoring paths.

Mounted without a prefix because their clients build the paths themselves (``/v2/models/{name}/infer``,
``…/invocations``). Trailing slashes are optional.
"""

from django.urls import re_path

from . import inference_apis

MODEL = r"v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?"
MLFLOW = r"mlflow/(?P<project_id>P[0-9]{4})/(?P<model_id>[^/]+)(?:/versions/(?P<version>[^/]+))?"

urlpatterns = [
    re_path(r"^v2/?$", inference_apis.V2ServerMetadataApi.as_view(), name="v2-server-metadata"),
    re_path(r"^v2/health/(?:live|ready)/?$", inference_apis.V2HealthApi.as_view(), name="v2-health"),
    re_path(rf"^{MODEL}/?$", inference_apis.V2ModelMetadataApi.as_view(), name="v2-model-metadata"),
    re_path(rf"^{MODEL}/ready/?$", inference_apis.V2ModelReadyApi.as_view(), name="v2-model-ready"),
    re_path(rf"^{MODEL}/infer/?$", inference_apis.V2InferApi.as_view(), name="v2-model-infer"),
    re_path(rf"^{MLFLOW}/invocations/?$", inference_apis.MlflowInvocationsApi.as_view(), name="mlflow-invocations"),
    re_path(rf"^{MLFLOW}/ping/?$", inference_apis.MlflowPingApi.as_view(), name="mlflow-ping"),
]
