"""What the registry's API answers (output serializers) and how its operations find the soft sensor or
version a URL names (a 404 naming it otherwise): shared by ``apis`` and ``version_apis``."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from . import selectors
from .artifact_safety import pickle_approval
from .environment_apis import EnvironmentOutput
from .models import ModelVersion, SoftSensor

# ----------------------------------------------------------------------------------------- serializers


class ProjectOutput(serializers.Serializer):
    project_id = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    coordinator = serializers.CharField()
    contributors = serializers.JSONField()
    start_date = serializers.DateField(allow_null=True)
    end_date = serializers.DateField(allow_null=True)
    data_sources = serializers.JSONField()
    references = serializers.JSONField()


class VariableOutput(serializers.Serializer):
    raw_name = serializers.CharField()
    canonical_name = serializers.CharField()
    column_type = serializers.CharField()
    units = serializers.CharField()
    description = serializers.CharField()
    display_decimals = serializers.IntegerField()


class ArtifactOutput(serializers.Serializer):
    role = serializers.CharField()
    name = serializers.CharField(source="original_name")
    sha256 = serializers.CharField()
    size = serializers.IntegerField()
    trusted_by = serializers.CharField(source="trusted_by.username", default=None, allow_null=True)
    trusted_at = serializers.DateTimeField(allow_null=True)
    approved_by = serializers.CharField(source="approved_by.username", default=None, allow_null=True)
    approved_at = serializers.DateTimeField(allow_null=True)
    approved_sha256 = serializers.CharField(allow_blank=True, help_text="For a pickle: the sha256 an admin approved.")


class PickleApprovalOutput(serializers.Serializer):
    required = serializers.BooleanField(help_text="The version holds a pickle (loading it runs its code).")
    state = serializers.ChoiceField(choices=["not_needed", "disabled", "awaiting_approval", "approved"])
    approved_by = serializers.CharField(allow_null=True)
    approved_at = serializers.DateTimeField(allow_null=True)
    sha256 = serializers.CharField(allow_null=True, help_text="The model file's sha256, which an approval names.")
    notice = serializers.CharField(allow_blank=True, help_text="What accepting a pickle means.")


class VersionOutput(serializers.Serializer):
    number = serializers.IntegerField()
    version_label = serializers.CharField()
    flavor = serializers.CharField()
    status = serializers.CharField()
    status_description = serializers.CharField()
    created_by = serializers.CharField(source="created_by.username", default=None)
    created_at = serializers.DateTimeField()
    status_changed_at = serializers.DateTimeField(allow_null=True)
    parent = serializers.IntegerField(source="parent.number", default=None, allow_null=True)
    training_run_id = serializers.CharField(allow_null=True)
    training_data = serializers.JSONField()
    source = serializers.CharField()
    first_predicted_at = serializers.DateTimeField(allow_null=True)
    archived_at = serializers.DateTimeField(allow_null=True)
    artifacts = ArtifactOutput(many=True)
    pickle = serializers.SerializerMethodField()
    aliases = serializers.SerializerMethodField()
    environment = EnvironmentOutput(allow_null=True, help_text="null: the platform's own interpreter")
    requested_status = serializers.CharField(help_text="The status it takes once its environment is built")
    sha256 = serializers.SerializerMethodField(help_text="What a signature on this version binds to.")

    def get_aliases(self, version: ModelVersion) -> list[str]:
        return sorted(alias.name for alias in version.aliases.all())

    @extend_schema_field(PickleApprovalOutput)
    def get_pickle(self, version: ModelVersion) -> dict[str, Any]:
        return PickleApprovalOutput(pickle_approval(version.artifacts.all())).data

    def get_sha256(self, version: ModelVersion) -> str:
        return selectors.version_sha256(version)


class VersionDetailOutput(VersionOutput):
    descriptor = serializers.JSONField()


class AliasOutput(serializers.Serializer):
    name = serializers.CharField()
    version = serializers.IntegerField(source="version.number")
    updated_at = serializers.DateTimeField()


class AliasMoveOutput(serializers.Serializer):
    alias = serializers.CharField(source="alias_name")
    from_version = serializers.IntegerField(source="from_version.number", default=None)
    to_version = serializers.IntegerField(source="to_version.number", default=None)
    moved_by = serializers.CharField(source="moved_by.username", default=None)
    moved_at = serializers.DateTimeField()
    reason = serializers.CharField()
    signed_by = serializers.CharField(source="signature.signer_username", default=None)
    signature_meaning = serializers.CharField(source="signature.meaning", default=None)
    signed_sha256 = serializers.CharField(source="signature.subject_sha256", default=None)


class SoftSensorOutput(serializers.Serializer):
    project_id = serializers.CharField(source="project.project_id")
    model_id = serializers.CharField()
    name = serializers.CharField()
    language = serializers.CharField()
    predicted_variables = serializers.JSONField()
    archived_at = serializers.DateTimeField(allow_null=True)
    aliases = AliasOutput(many=True)
    latest_version = serializers.SerializerMethodField()

    def get_latest_version(self, soft_sensor: SoftSensor) -> int | None:
        versions = list(soft_sensor.versions.all())
        return versions[0].number if versions else None


def soft_sensor_or_404(project_id: str, model_id: str) -> SoftSensor:
    return selectors.soft_sensor_get(project_id=project_id, model_id=model_id)


def version_or_404(project_id: str, model_id: str, number: int) -> ModelVersion:
    soft_sensor = soft_sensor_or_404(project_id, model_id)
    version = selectors.version_get(soft_sensor=soft_sensor, number=number)
    version.soft_sensor = soft_sensor
    return version
