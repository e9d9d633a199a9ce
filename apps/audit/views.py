"""The audit pages: the trail (filtered, paged, exported as CSV) and the signatures, read only."""

from __future__ import annotations

from urllib.parse import urlencode

from django import forms
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from apps.common.errors import ValidationFailed
from apps.common.pages import capability_required

from . import selectors

PAGE_SIZE = 50


class EntryFilterForm(forms.Form):
    model = forms.ChoiceField(required=False)
    object_id = forms.CharField(required=False, label="Object id")
    actor = forms.CharField(required=False, label="Who")
    action = forms.ChoiceField(required=False, choices=[("", "any action"), *((a, a) for a in selectors.ACTIONS)])
    via = forms.ChoiceField(required=False, choices=[("", "any channel"), *((c, c) for c in selectors.CHANNELS)])
    since = forms.DateTimeField(required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    until = forms.DateTimeField(required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["model"].choices = [("", "every audited model")] + [
            (m.key, m.label) for m in selectors.audited_model_list()
        ]


class SignatureFilterForm(forms.Form):
    signer = forms.CharField(required=False)
    outcome = forms.ChoiceField(required=False, choices=[("", "any"), ("accepted", "accepted"), ("refused", "refused")])
    subject_type = forms.CharField(required=False, label="Record type")
    subject_id = forms.CharField(required=False, label="Record id")


def _clean(form: forms.Form) -> dict:
    return {k: v for k, v in form.cleaned_data.items() if v not in (None, "")}


@capability_required("view_audit", role="modeler, manager or administrator")
def trail_page(request: HttpRequest) -> HttpResponse:
    form = EntryFilterForm(request.GET or None)
    filters: dict = {}
    error = ""
    if form.is_bound and form.is_valid():
        filters = _clean(form)
    elif form.is_bound:
        error = "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items())
    try:
        entries = selectors.entry_list(**filters)
    except ValidationFailed as exc:
        entries, error = selectors.entry_list(), exc.message
        filters = {}
    page = Paginator(entries, PAGE_SIZE).get_page(request.GET.get("page"))
    rows = [{"entry": e, "action": selectors.ACTION_NAMES.get(e.action, e.action), "changes": selectors.change_rows(e)}
            for e in page.object_list]
    query = urlencode({k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in filters.items()})
    return render(
        request,
        "audit/trail.html",
        {
            "form": form,
            "rows": rows,
            "page": page,
            "error": error,
            "query": query,
            "export_url": reverse("api:audit-entry-export") + (f"?{query}" if query else ""),
        },
    )


@capability_required("view_audit", role="modeler, manager or administrator")
def signatures_page(request: HttpRequest) -> HttpResponse:
    form = SignatureFilterForm(request.GET or None)
    filters = _clean(form) if form.is_bound and form.is_valid() else {}
    page = Paginator(selectors.signature_list(**filters), PAGE_SIZE).get_page(request.GET.get("page"))
    query = urlencode(filters)
    return render(
        request,
        "audit/signatures.html",
        {
            "form": form,
            "page": page,
            "query": query,
            "export_url": reverse("api:audit-signature-export") + (f"?{query}" if query else ""),
        },
    )
