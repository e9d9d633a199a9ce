"""Writes of the registry, one module per sub-domain; this package re-exports their public services.

- ``projects``: projects and their variable dictionaries;
- ``versions``: registering a version (descriptor, files, load check);
- ``lifecycle``: status, descriptor revisions, deletion and archiving;
- ``aliases``: alias moves with their history;
- ``signing``: the electronic signature a signed alias (``production``) needs, bound to the version's sha256;
- ``predict``: running a version (``version_predict``), the only path to a model;
- ``imports``: STAMM project folders and zips in and out.

Every write runs in ``transaction.atomic``; files written for a version that then fails to register are
removed, so a rejected upload leaves nothing behind.
"""

from ..artifacts import MAX_ZIP_MEMBERS
from .aliases import alias_delete, alias_move
from .environments import environment_build, environment_rebuild
from .explanations import EstimateExplanation, estimate_explain, model_version_explanation_build
from .imports import (
    ImportOutcome,
    ImportReport,
    export_descriptor,
    project_folder_export,
    project_folder_import,
    project_zip_import,
    version_bundle_zip,
    zip_extract,
)
from .lifecycle import (
    model_version_approve_pickle,
    model_version_delete,
    model_version_record_evaluation,
    model_version_set_status,
    model_version_update_descriptor,
    soft_sensor_delete,
)
from .predict import (
    model_version_mark_load_error,
    model_version_mark_predicted,
    version_predict,
    version_predict_body,
    version_predict_columns,
    version_servable,
)
from .projects import project_update, project_upsert, variables_replace
from .versions import (
    UPLOAD_FIELDS,
    ArtifactInput,
    artifact_inputs,
    descriptor_error,
    flavor_for,
    model_version_register,
    model_version_register_yaml,
    parse_descriptor_or_400,
)

__all__ = [
    "MAX_ZIP_MEMBERS",
    "ArtifactInput",
    "EstimateExplanation",
    "UPLOAD_FIELDS",
    "artifact_inputs",
    "ImportOutcome",
    "ImportReport",
    "alias_delete",
    "alias_move",
    "descriptor_error",
    "environment_build",
    "environment_rebuild",
    "estimate_explain",
    "export_descriptor",
    "flavor_for",
    "model_version_approve_pickle",
    "model_version_delete",
    "model_version_explanation_build",
    "model_version_mark_load_error",
    "model_version_mark_predicted",
    "model_version_record_evaluation",
    "model_version_register",
    "model_version_register_yaml",
    "model_version_set_status",
    "model_version_update_descriptor",
    "parse_descriptor_or_400",
    "project_folder_export",
    "project_folder_import",
    "project_update",
    "project_upsert",
    "project_zip_import",
    "soft_sensor_delete",
    "variables_replace",
    "version_bundle_zip",
    "version_predict",
    "version_predict_body",
    "version_predict_columns",
    "version_servable",
    "zip_extract",
]
