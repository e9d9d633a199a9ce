"""The Train pages for modelers: choose data, learners and gates; follow a run live; approve or promote.

Pages render the server-side state; the start form and the live progress talk to the training API
(``/api/v1/training/``) with the session's CSRF token, so the page and the API share one set of rules.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from apps.common.pages import capability_required
from apps.registry.selectors import project_list, signing_policy_of

from . import selectors
from .gates import DEFAULT_GATES
from .models import RunStatus


@capability_required("train_models", role="modeler")
def train_page(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "training/train.html",
        {
            "projects": list(project_list()),
            "runs": list(selectors.run_list()[:25]),
            "learners": selectors.learner_options(),
            "gates": DEFAULT_GATES,
            "pending_proposals": selectors.promotion_request_list(status="pending").count(),
        },
    )


@capability_required("train_models", role="modeler")
def run_page(request: HttpRequest, run_id: int) -> HttpResponse:
    run = selectors.run_get(run_id=run_id)
    signed = signing_policy_of(project=run.project).aliases
    return render(
        request, "training/run.html", {"run": run, "awaiting": RunStatus.AWAITING_APPROVAL, "signed_aliases": signed}
    )
