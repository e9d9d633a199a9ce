"""Pages of continuous training and governed promotion: training plans, champion/challenger comparisons and the
promotion requests the platform proposes (approved with an electronic signature, or dismissed)."""

from __future__ import annotations

import json
import math
import uuid
from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.audit.services import Meaning, SignatureInput
from apps.common.errors import ApplicationError
from apps.common.pages import capability_required
from apps.orchestrator.selectors import deployment_get, deployment_list
from apps.registry.selectors import project_list, version_sha256

from . import selectors, services
from .models import RequestStatus, RunTrigger

ROLE = "modeler"


# ---------------------------------------------------------------------------------------------- plans


class PlanForm(forms.Form):
    name = forms.SlugField(max_length=100)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    project = forms.ChoiceField()
    config = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false"}),
        initial='{"target": "penicillin_concentration", "learners": ["random_forest"], "alias": "challenger"}',
        help_text="A training request without batches and split (JSON).",
    )
    device_id = forms.CharField(required=False, max_length=128)
    batch_pattern = forms.CharField(required=False, max_length=128)
    window_days = forms.IntegerField(min_value=1, max_value=3650, initial=90)
    holdout_newest = forms.IntegerField(min_value=1, max_value=50, initial=2)
    schedule = forms.CharField(required=False, max_length=100, initial="0 3 * * 1", help_text="crontab, UTC")
    deployment = forms.ChoiceField(required=False)
    on_drift_alert = forms.BooleanField(required=False)
    lab_error_threshold = forms.FloatField(required=False)
    lab_error_samples = forms.IntegerField(min_value=1, max_value=500, initial=5)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["project"].choices = [(p.project_id, f"{p.project_id} {p.name}") for p in project_list()]
        self.fields["deployment"].choices = [("", "—")] + [
            (str(d.pk), d.name) for d in deployment_list().filter(shadow_of__isnull=True)
        ]

    def clean_config(self) -> dict:
        try:
            value = json.loads(self.cleaned_data["config"])
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"not JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise forms.ValidationError("a JSON object")
        return value

    def plan_fields(self) -> dict[str, Any]:
        from apps.registry.selectors import project_get  # noqa: PLC0415

        data = dict(self.cleaned_data)
        data["project"] = project_get(project_id=data["project"])
        data["deployment"] = deployment_get(deployment_id=data["deployment"]) if data.get("deployment") else None
        return data


@capability_required("train_models", role=ROLE)
def plans_page(request: HttpRequest) -> HttpResponse:
    form = PlanForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            plan = services.training_plan_create(user=request.user, **form.plan_fields())
        except ApplicationError as exc:
            details = exc.details if isinstance(exc.details, dict) else {}
            for field, message in details.items():
                form.add_error(field if field in form.fields else None, str(message))
            if not details:
                form.add_error(None, exc.message)
        else:
            messages.success(request, f"Training plan {plan.name} created.")
            return redirect("training:plan", plan_id=plan.pk)
    plans = list(selectors.plan_list())
    return render(request, "training/plans.html", {"plans": plans, "form": form})


@capability_required("train_models", role=ROLE)
def plan_page(request: HttpRequest, plan_id: int) -> HttpResponse:
    plan = selectors.plan_get(plan_id=plan_id)
    try:
        batches, holdout = services.plan_batches(plan)
        batches_error = ""
    except ApplicationError as exc:
        batches, holdout, batches_error = [], [], exc.message
    return render(
        request,
        "training/plan.html",
        {
            "plan": plan,
            "runs": selectors.plan_runs(plan=plan),
            "batches": batches,
            "holdout": holdout,
            "batches_error": batches_error,
            "config": json.dumps(plan.config, indent=2, sort_keys=True),
        },
    )


@capability_required("train_models", role=ROLE)
@require_POST
def plan_action(request: HttpRequest, plan_id: int) -> HttpResponse:
    """Run now, enable/disable, or delete a plan."""
    plan = selectors.plan_get(plan_id=plan_id)
    action = request.POST.get("action")
    try:
        if action == "run":
            run = services.training_plan_trigger(
                plan_id=plan.pk,
                trigger=RunTrigger.MANUAL,
                key=f"manual:{uuid.uuid4()}",
                detail={"requested_by": request.user.username},
            )
            if run is None:
                plan.refresh_from_db()
                reason = (plan.trigger_state or {}).get("last_skipped", {}).get("reason", "skipped")
                messages.error(request, f"No run started: {reason}")
            else:
                messages.success(request, f"Training run {run.pk} started.")
                return redirect("training:run", run_id=run.pk)
        elif action in ("enable", "disable"):
            services.training_plan_update(plan=plan, data={"enabled": action == "enable"})
            messages.success(request, f"Plan {plan.name} {action}d.")
        elif action == "delete":
            services.training_plan_delete(plan=plan)
            messages.success(request, f"Plan {plan.name} deleted.")
            return redirect("training:plans")
        else:
            messages.error(request, f"Unknown action {action!r}.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("training:plan", plan_id=plan.pk)


# ------------------------------------------------------------------------------ champion and challenger


def _residual_plot(pairs: list[Any], width: int = 760, height: int = 240) -> dict[str, Any] | None:
    """Points of an SVG residual plot: both estimators' residuals at each paired lab sample, in time order."""
    if not pairs:
        return None
    values = [v for p in pairs for v in (p.champion_residual, p.challenger_residual)]
    top = max(abs(v) for v in values) or 1.0
    pad = 30
    n = len(pairs)

    def x(i: int) -> float:
        return pad + (width - 2 * pad) * (i / (n - 1) if n > 1 else 0.5)

    def y(v: float) -> float:
        return height / 2 - (height / 2 - pad / 2) * v / top

    champion = [(round(x(i), 1), round(y(p.champion_residual), 1)) for i, p in enumerate(pairs)]
    challenger = [(round(x(i), 1), round(y(p.challenger_residual), 1)) for i, p in enumerate(pairs)]
    return {
        "width": width,
        "height": height,
        "zero": round(height / 2, 1),
        "top": f"{top:.3g}",
        "champion": champion,
        "challenger": challenger,
        "challenger_path": " ".join(f"{a},{b}" for a, b in challenger),
    }


@capability_required("train_models", role=ROLE)
def challengers_page(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "training/challengers.html",
        {
            "comparisons": services.challengers_all(),
            "pending": list(selectors.promotion_request_list(status=RequestStatus.PENDING)[:50]),
        },
    )


def _fmt(value: float | None) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.4g}"


@capability_required("train_models", role=ROLE)
def challenger_page(request: HttpRequest, deployment_id: int) -> HttpResponse:
    challenger = deployment_get(deployment_id=deployment_id)
    comparison = services.challenger_compare(challenger=challenger)
    verdict = comparison.verdict
    pending = comparison.pending
    return render(
        request,
        "training/challenger.html",
        {
            "c": comparison,
            "v": verdict,
            "figures": {
                "champion_rmse": _fmt(verdict.champion_rmse),
                "challenger_rmse": _fmt(verdict.challenger_rmse),
                "champion_bias": _fmt(verdict.champion_bias),
                "challenger_bias": _fmt(verdict.challenger_bias),
                "wilcoxon_p": _fmt(verdict.wilcoxon_p),
                "wilcoxon_statistic": _fmt(verdict.wilcoxon_statistic),
                "dm_statistic": _fmt(verdict.dm_statistic),
                "dm_p": _fmt(verdict.dm_p),
            },
            "plot": _residual_plot(comparison.pairs),
            "pending_sha256": version_sha256(pending.version) if pending else "",
            "meanings": Meaning.choices,
        },
    )


@capability_required("train_models", role=ROLE)
@require_POST
def challenger_action(request: HttpRequest, deployment_id: int) -> HttpResponse:
    """Review now; approve the pending request (with a signature) or dismiss it."""
    challenger = deployment_get(deployment_id=deployment_id)
    action = request.POST.get("action")
    try:
        if action == "review":
            proposal = services.challenger_review(challenger=challenger)
            messages.success(
                request,
                f"Promotion proposed: {proposal.alias} → v{proposal.version.number}."
                if proposal
                else "Reviewed: nothing (new) to propose.",
            )
        elif action in ("approve", "dismiss"):
            proposal = selectors.promotion_request_get(request_id=int(request.POST.get("request") or 0))
            note = request.POST.get("note", "")
            if action == "dismiss":
                services.promotion_request_dismiss(request=proposal, user=request.user, note=note)
                messages.success(request, "Proposal dismissed.")
            else:
                password = request.POST.get("password") or ""
                signature = (
                    SignatureInput(
                        password=password,
                        meaning=request.POST.get("meaning", ""),
                        reason=note,
                        sha256=request.POST.get("sha256", "").lower(),
                    )
                    if password
                    else None
                )
                services.promotion_request_approve(request=proposal, user=request.user, signature=signature, note=note)
                messages.success(request, f"{proposal.alias} now points at v{proposal.version.number} (signed).")
        else:
            messages.error(request, f"Unknown action {action!r}.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("training:challenger", deployment_id=challenger.pk)
