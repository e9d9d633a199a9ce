"""Modeler pages of the registry: projects, model grid, upload, model detail, edit, status, aliases.

Operators (``view_process``) see the read-only pages; every page or action that writes needs
``manage_models``. The pages call the same services and selectors as the REST API.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from apps.audit.services import Meaning, SignatureInput
from apps.common.errors import ApplicationError, ValidationFailed
from apps.common.pages import capability_required

from . import selectors, services
from .artifact_safety import PICKLE_NOTICE, pickle_approval
from .descriptors import DescriptorError, descriptor_sections, validate_config
from .models import AliasMove, ModelVersion, SoftSensor
from .version_apis import version_download
from .yaml_io import dump_yaml, load_yaml

SECTIONS = (
    ("model_identification", "Identification"),
    ("model_description", "Description"),
    ("model_architecture", "Architecture"),
    ("training_information", "Training"),
    ("inputs", "Inputs"),
    ("outputs", "Outputs"),
)


def _can_manage(request: HttpRequest) -> bool:
    return request.user.has_perm("accounts.manage_models")


def _model_url(soft_sensor: SoftSensor, version: int | None = None) -> str:
    url = reverse(
        "registry:model", kwargs={"project_id": soft_sensor.project.project_id, "model_id": soft_sensor.model_id}
    )
    return f"{url}?version={version}" if version else url


# ------------------------------------------------------------------------------------------------ forms


class UploadForm(forms.Form):
    descriptor_file = forms.FileField(required=False, label="Descriptor (YAML file)")
    descriptor_text = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 10}), label="…or paste the descriptor YAML"
    )
    model_file = forms.FileField(
        required=False,
        label="Model artefact",
        help_text="ONNX (.onnx) or skops (.skops) load without running code. Pickle/joblib (.pkl, .joblib), "
        "Keras (.keras) and MLflow model zips (.mlflow) may run their author's code: they are recorded as trusted "
        "by you and loaded only inside an isolated runtime worker. R: .rds. " + PICKLE_NOTICE,
    )
    input_scaler = forms.FileField(required=False, label="Input scaler (if inputs.scaler names one)")
    output_scaler = forms.FileField(required=False, label="Output scaler (if outputs.scaler names one)")
    requirements = forms.FileField(
        required=False,
        label="Requirements (requirements.txt)",
        help_text="The packages it needs, instead of the descriptor's packages list. Versions the platform lacks "
        "are installed once into a cached environment the model runs in.",
    )
    convert_to_onnx = forms.BooleanField(
        required=False,
        label="Serve it as ONNX",
        help_text="scikit-learn models: converted with skl2onnx and accepted only if it agrees with the original "
        "on the version's reference rows.",
    )
    status = forms.ChoiceField(
        choices=[("", "as the descriptor says"), ("online", "online"), ("offline", "offline")], required=False
    )
    alias = forms.SlugField(required=False, help_text="Point this alias (e.g. staging) at the new version.")
    reason = forms.CharField(required=False, help_text="Why (recorded with the alias move).")


class DescriptorBuilderForm(forms.Form):
    """The descriptor's scalar fields, for modelers who have no YAML yet."""

    model_id = forms.RegexField(
        regex=r"^[0-9]{4}_\[[A-Za-z0-9.+-]+\]_[A-Za-z0-9_.\-]+$",
        label="Model ID",
        help_text="NNNN_[language]_name, e.g. 0002_[python]_penicillin_GB",
    )
    name = forms.CharField(max_length=200)
    version = forms.CharField(max_length=50, initial="V.1.0")
    author = forms.CharField(max_length=200, required=False)
    doi = forms.CharField(max_length=200, required=False)
    language = forms.ChoiceField(choices=[("python", "python"), ("R", "R")])
    language_version = forms.CharField(max_length=20, required=False)
    learner = forms.CharField(max_length=100, required=False, help_text="e.g. random_forest, CART, M5")
    model_type = forms.ChoiceField(
        choices=[("black box", "black box"), ("interpretable", "interpretable"), ("ensemble", "ensemble")]
    )
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    number_of_instances = forms.IntegerField(min_value=0, required=False)
    validation = forms.CharField(max_length=300, required=False)
    experiments_ID = forms.CharField(max_length=300, required=False, help_text="Batches, comma-separated: 92, 93")
    status = forms.ChoiceField(choices=[("online", "online"), ("offline", "offline")])
    model_file = forms.FileField(label="Model artefact", help_text="skops (.skops) recommended; .pkl/.joblib; R: .rds")
    input_scaler = forms.FileField(required=False)
    output_scaler = forms.FileField(required=False)


class FeatureRowForm(forms.Form):
    name = forms.CharField(max_length=200)
    type = forms.ChoiceField(
        choices=[("sensor", "sensor"), ("actuator", "actuator"), ("computed_variable", "computed variable")],
        initial="sensor",
    )
    units = forms.CharField(max_length=50, required=False)
    lag = forms.IntegerField(min_value=0, required=False, help_text="0 when empty")
    min = forms.FloatField(required=False)
    max = forms.FloatField(required=False)
    description = forms.CharField(max_length=500, required=False)


class OutputRowForm(forms.Form):
    name = forms.CharField(max_length=200)
    units = forms.CharField(max_length=50, required=False)
    forecast_horizon = forms.FloatField(required=False, help_text="0 when empty")
    min = forms.FloatField(required=False)
    max = forms.FloatField(required=False)
    description = forms.CharField(max_length=500, required=False)


FeatureFormSet = forms.formset_factory(FeatureRowForm, extra=6, min_num=1, validate_min=True)
OutputFormSet = forms.formset_factory(OutputRowForm, extra=1, min_num=1, validate_min=True)


def _range(row: dict) -> dict:
    return {key: row[key] for key in ("min", "max") if row.get(key) is not None}


def descriptor_from_form(data: dict, features: list[dict], outputs: list[dict]) -> dict:
    """The ``ml_model_configuration`` mapping the builder form describes (validated by the caller)."""
    config: dict = {
        "model_identification": {
            "name": data["name"],
            "version": data["version"],
            "ID": data["model_id"],
            "UUID": "",
            "author": data["author"],
            "doi": data["doi"],
            "creation_date": timezone.localdate().strftime("%d-%m-%Y"),
            "project": "../project_info.yaml",
            "status": data["status"],
            "status_description": "",
        },
        "model_description": {
            "learner": data["learner"],
            "model_type": data["model_type"],
            "model_name": data["name"],
            "description": data["description"],
            "language": [
                {
                    "name": data["language"],
                    **({"version": data["language_version"]} if data["language_version"] else {}),
                }
            ],
            "config_files": {"model_file": data["model_file"].name},
        },
        "training_information": {
            "number_of_instances": data["number_of_instances"],
            "validation": data["validation"],
            "experiments_ID": data["experiments_ID"],
        },
        "inputs": {
            "features": [
                {
                    "name": f["name"],
                    "type": f["type"],
                    "description": f["description"],
                    "units": f["units"],
                    "lag": f["lag"] or 0,
                    "feature_scaling": "none",
                    **({"expected_range": _range(f)} if _range(f) else {}),
                }
                for f in features
            ]
        },
        "outputs": {
            "information": [
                {
                    "name": o["name"],
                    "description": o["description"],
                    "units": o["units"],
                    "forecast_horizon": o["forecast_horizon"] or 0,
                    "feature_scaling": "none",
                    **({"expected_range": _range(o)} if _range(o) else {}),
                }
                for o in outputs
            ]
        },
    }
    if data["input_scaler"]:
        config["inputs"]["scaler"] = data["input_scaler"].name
    if data["output_scaler"]:
        config["outputs"]["scaler"] = data["output_scaler"].name
    return config


class BundleForm(forms.Form):
    bundle = forms.FileField(
        label="Zip of a STAMM project folder", help_text="project_info.yaml, configs/*.yaml, models/*"
    )


class AliasForm(forms.Form):
    alias = forms.SlugField(initial="production")
    version = forms.IntegerField(min_value=1)
    reason = forms.CharField(max_length=500)
    # The electronic signature (production and the project's other signed aliases): docs/governance.md.
    password = forms.CharField(required=False, widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))
    meaning = forms.ChoiceField(choices=Meaning.choices, initial=Meaning.APPROVED, required=False)
    sha256 = forms.CharField(required=False, widget=forms.HiddenInput, max_length=64)

    def signature(self) -> SignatureInput | None:
        """The signature given with the move (None when no password was typed)."""
        data = self.cleaned_data
        if not data.get("password"):
            return None
        return SignatureInput(password=data["password"], meaning=data.get("meaning") or "", reason=data["reason"],
                              sha256=(data.get("sha256") or "").lower())


class StatusForm(forms.Form):
    status = forms.ChoiceField(choices=[("online", "online"), ("offline", "offline")])
    description = forms.CharField(required=False, max_length=500)


class YamlForm(forms.Form):
    descriptor = forms.CharField(widget=forms.Textarea(attrs={"rows": 32, "spellcheck": "false"}))


# ------------------------------------------------------------------------------------------------ pages


@capability_required("view_process")
def project_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "registry/project_list.html",
        {
            "projects": selectors.project_list(),
            "can_manage": _can_manage(request),
            "bundle_form": BundleForm(),
        },
    )


@capability_required("manage_models")
@require_POST
def project_import(request: HttpRequest, project_id: str | None = None) -> HttpResponse:
    """Import a zipped STAMM project folder and report per model (refused whole if a descriptor is invalid)."""
    form = BundleForm(request.POST, request.FILES)
    project = selectors.project_get(project_id=project_id) if project_id else None
    back = reverse("registry:project", args=[project_id]) if project_id else reverse("registry:projects")
    if not form.is_valid():
        messages.error(request, "Choose a zip file to import.")
        return redirect(back)
    try:
        report = services.project_zip_import(upload=form.cleaned_data["bundle"], user=request.user, project=project)
    except ApplicationError as exc:
        details = exc.details if isinstance(exc.details, dict) else {}
        return render(
            request, "registry/import_result.html", {"error": exc.message, "report": details, "back": back}, status=400
        )
    return render(
        request,
        "registry/import_result.html",
        {"report": report.as_dict(), "back": reverse("registry:project", args=[report.project.project_id])},
    )


@capability_required("view_process")
def project_detail(request: HttpRequest, project_id: str) -> HttpResponse:
    project = selectors.project_get(project_id=project_id)
    rows = []
    for soft_sensor in selectors.soft_sensor_list(project=project):
        current = selectors.current_version(soft_sensor)
        spec = selectors.spec_current(soft_sensor=soft_sensor)
        versions = list(soft_sensor.versions.all())
        rows.append(
            {
                "soft_sensor": soft_sensor,
                "current": current,
                "latest": versions[0] if versions else None,
                "author": spec.author if spec else "",
                "aliases": sorted((a.name, a.version.number) for a in soft_sensor.aliases.all()),
            }
        )
    return render(
        request,
        "registry/project_detail.html",
        {
            "project": project,
            "variables": selectors.variable_list(project=project),
            "rows": rows,
            "can_manage": _can_manage(request),
            "bundle_form": BundleForm(),
        },
    )


@capability_required("manage_models")
@require_http_methods(["GET", "POST"])
def upload(request: HttpRequest, project_id: str) -> HttpResponse:
    """New version: descriptor YAML + artefact (+ scalers). Errors are shown next to the form."""
    project = selectors.project_get(project_id=project_id)
    form = UploadForm(request.POST or None, request.FILES or None)
    errors: list[str] = []
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        text = (
            data["descriptor_file"].read().decode("utf-8", errors="replace")
            if data["descriptor_file"]
            else data["descriptor_text"]
        )
        files = services.artifact_inputs(data)
        try:
            if not (text or "").strip():
                raise ValidationFailed(
                    "descriptor: give the descriptor YAML (file or text).", details={"descriptor": ["required"]}
                )
            descriptor = services.parse_descriptor_or_400(text)
            version = services.model_version_register(
                project=project,
                descriptor=descriptor,
                files=files,
                user=request.user,
                source="upload",
                status=data["status"] or None,
                alias=data["alias"] or None,
                alias_reason=data["reason"],
                requirements=data["requirements"].read().decode("utf-8", errors="replace")
                if data["requirements"]
                else None,
                convert_to_onnx=data["convert_to_onnx"],
            )
        except ApplicationError as exc:
            details = exc.details.get("descriptor") if isinstance(exc.details, dict) else None
            errors = list(details) if isinstance(details, list) and details != ["required"] else [exc.message]
        else:
            level = messages.success if version.status == "online" else messages.warning
            level(request, f"Registered {version} ({version.get_status_display()}: {version.status_description}).")
            return redirect(_model_url(version.soft_sensor, version.number))
    return render(
        request,
        "registry/upload.html",
        {
            "project": project,
            "form": form,
            "errors": errors,
            "bundle_form": BundleForm(),
            "pickle_notice": PICKLE_NOTICE,
        },
    )


@capability_required("manage_models")
@require_http_methods(["GET", "POST"])
def build(request: HttpRequest, project_id: str) -> HttpResponse:
    """Describe a model with a form (repeatable feature and output rows) and upload its artefact."""
    project = selectors.project_get(project_id=project_id)
    form = DescriptorBuilderForm(request.POST or None, request.FILES or None)
    features = FeatureFormSet(request.POST or None, prefix="features")
    outputs = OutputFormSet(request.POST or None, prefix="outputs")
    errors: list[str] = []
    if request.method == "POST" and form.is_valid() and features.is_valid() and outputs.is_valid():
        rows = [row for row in features.cleaned_data if row.get("name")]
        out_rows = [row for row in outputs.cleaned_data if row.get("name")]
        config = descriptor_from_form(form.cleaned_data, rows, out_rows)
        files = services.artifact_inputs(form.cleaned_data)
        try:
            descriptor = validate_config(config)
            version = services.model_version_register(
                project=project, descriptor=descriptor, files=files, user=request.user, source="upload"
            )
        except DescriptorError as exc:
            errors = exc.errors
        except ApplicationError as exc:
            errors = [exc.message]
        else:
            messages.success(
                request, f"Registered {version} ({version.get_status_display()}: {version.status_description})."
            )
            return redirect(_model_url(version.soft_sensor, version.number))
    return render(
        request,
        "registry/build.html",
        {"project": project, "form": form, "features": features, "outputs": outputs, "errors": errors},
    )


@capability_required("view_process")
def model_detail(request: HttpRequest, project_id: str, model_id: str) -> HttpResponse:
    soft_sensor = selectors.soft_sensor_get(project_id=project_id, model_id=model_id)
    versions = list(soft_sensor.versions.all())
    number = request.GET.get("version")
    shown = None
    if number and number.isdigit():
        shown = selectors.version_get(soft_sensor=soft_sensor, number=int(number))
    shown = shown or selectors.current_version(soft_sensor) or (versions[0] if versions else None)
    sections = descriptor_sections(shown.descriptor, SECTIONS) if shown is not None else []
    return render(
        request,
        "registry/model_detail.html",
        {
            "soft_sensor": soft_sensor,
            "project": soft_sensor.project,
            "versions": versions,
            "shown": shown,
            "sections": sections,
            "aliases": sorted(soft_sensor.aliases.all(), key=lambda a: a.name),
            "alias_history": selectors.alias_history(soft_sensor=soft_sensor),
            "digests": {v.pk: selectors.version_sha256(v) for v in versions},
            "shown_sha256": selectors.version_sha256(shown) if shown else "",
            "signed_aliases": selectors.signing_policy_of(project=soft_sensor.project).aliases,
            "revisions": selectors.descriptor_history(version=shown)[:20] if shown else [],
            "can_manage": _can_manage(request),
            "can_approve": request.user.has_perm("accounts.administer"),
            "pickle": pickle_approval(shown.artifacts.all()) if shown is not None else None,
            "alias_form": AliasForm(
                initial={"version": shown.number if shown else None, "sha256": selectors.version_sha256(shown)}
                if shown
                else {}
            ),
        },
    )


@capability_required("manage_models")
@require_POST
def environment_rebuild(request: HttpRequest, key: str) -> HttpResponse:
    """Build a failed environment again (queued for a Celery worker)."""
    environment = services.environment_rebuild(environment=selectors.environment_get(key=key))
    messages.info(request, f"Environment {environment.key[:12]} is being built again.")
    target = request.POST.get("next") or reverse("registry:projects")
    return redirect(target if target.startswith("/") and not target.startswith("//") else reverse("registry:projects"))


def _version_or_404(project_id: str, model_id: str, number: int) -> ModelVersion:
    soft_sensor = selectors.soft_sensor_get(project_id=project_id, model_id=model_id)
    version = selectors.version_get(soft_sensor=soft_sensor, number=number)
    version.soft_sensor = soft_sensor
    return version


@capability_required("manage_models")
@require_http_methods(["GET", "POST"])
def edit_yaml(request: HttpRequest, project_id: str, model_id: str, number: int) -> HttpResponse:
    """Edit the raw descriptor YAML; the change is merged, validated and recorded like an API update."""
    version = _version_or_404(project_id, model_id, number)
    errors: list[str] = []
    if request.method == "POST":
        form = YamlForm(request.POST)
        if form.is_valid():
            try:
                document = load_yaml(form.cleaned_data["descriptor"])
                config = document.get("ml_model_configuration") if isinstance(document, dict) else None
                if not isinstance(config, dict):
                    raise DescriptorError(["ml_model_configuration: is required (the root key of a STAMM descriptor)"])
                validate_config(config)
                services.model_version_update_descriptor(
                    version=version, patch=config, user=request.user, source="ui", replace=True
                )
            except DescriptorError as exc:
                errors = exc.errors
            except ApplicationError as exc:
                details = exc.details.get("descriptor") if isinstance(exc.details, dict) else None
                errors = list(details) if isinstance(details, list) else [exc.message]
            else:
                messages.success(request, f"Descriptor of {version} updated.")
                return redirect(_model_url(version.soft_sensor, version.number))
    else:
        form = YamlForm(initial={"descriptor": dump_yaml({"ml_model_configuration": version.descriptor})})
    return render(
        request,
        "registry/edit_yaml.html",
        {
            "version": version,
            "soft_sensor": version.soft_sensor,
            "project": version.soft_sensor.project,
            "form": form,
            "errors": errors,
        },
    )


@capability_required("manage_models")
@require_POST
def set_status(request: HttpRequest, project_id: str, model_id: str, number: int) -> HttpResponse:
    version = _version_or_404(project_id, model_id, number)
    form = StatusForm(request.POST)
    if form.is_valid():
        try:
            services.model_version_set_status(version=version, user=request.user, source="ui", **form.cleaned_data)
            messages.success(request, f"{version} is now {version.get_status_display()}.")
        except ApplicationError as exc:
            messages.error(request, exc.message)
    return redirect(_model_url(version.soft_sensor, version.number))


@capability_required("administer")
@require_POST
def approve_pickle(request: HttpRequest, project_id: str, model_id: str, number: int) -> HttpResponse:
    """An administrator approves the pickle files of a version (the sha256 shown on the page) and puts it online."""
    version = _version_or_404(project_id, model_id, number)
    try:
        services.model_version_approve_pickle(version=version, user=request.user, sha256=request.POST.get("sha256", ""))
        messages.success(request, f"{version}: pickle approved by you; the version is loaded and online.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect(_model_url(version.soft_sensor, version.number))


@capability_required("manage_models")
@require_POST
def move_alias(request: HttpRequest, project_id: str, model_id: str) -> HttpResponse:
    soft_sensor = selectors.soft_sensor_get(project_id=project_id, model_id=model_id)
    form = AliasForm(request.POST)
    if not form.is_valid():
        messages.error(
            request, "Alias move refused: " + "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items())
        )
        return redirect(_model_url(soft_sensor))
    try:
        version = selectors.version_get(soft_sensor=soft_sensor, number=form.cleaned_data["version"])
        services.alias_move(
            soft_sensor=soft_sensor,
            name=form.cleaned_data["alias"],
            version=version,
            user=request.user,
            reason=form.cleaned_data["reason"],
            signature=form.signature(),
        )
        messages.success(request, f"Alias {form.cleaned_data['alias']} now points at version {version.number}.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect(_model_url(soft_sensor))


@capability_required("manage_models")
@require_http_methods(["GET", "POST"])
def delete_version(request: HttpRequest, project_id: str, model_id: str, number: int) -> HttpResponse:
    """Confirm, then erase a never-used version or archive one that was aliased or served predictions."""
    version = _version_or_404(project_id, model_id, number)
    if request.method == "POST":
        try:
            outcome = services.model_version_delete(version=version, user=request.user)
        except ApplicationError as exc:
            messages.error(request, exc.message)
            return redirect(_model_url(version.soft_sensor, version.number))
        messages.success(request, f"{version} {outcome}.")
        return redirect(_model_url(version.soft_sensor))
    used = (
        version.first_predicted_at is not None
        or version.aliases.exists()
        or AliasMove.objects.filter(to_version=version).exists()
    )
    return render(
        request,
        "registry/delete_confirm.html",
        {"version": version, "soft_sensor": version.soft_sensor, "project": version.soft_sensor.project, "used": used},
    )


@capability_required("view_process")
def download(request: HttpRequest, project_id: str, model_id: str, number: int, kind: str) -> HttpResponse:
    return version_download(_version_or_404(project_id, model_id, number), kind)
