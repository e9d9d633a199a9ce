"""Role home pages: what each role can do today, built from the links apps register."""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from apps.accounts.roles import ROLE_LABELS
from apps.common.navigation import links_for_role

from .access import role_required


@login_required
@role_required
def home(request: HttpRequest, *, role: str) -> HttpResponse:
    links = links_for_role(role=role, user=request.user)
    grouped: dict[str, list] = {}
    for link, url in links:
        grouped.setdefault(link.section, []).append((link, url))
    sections = list(grouped.items())
    return render(
        request,
        "dashboard/home.html",
        {"role": role, "role_label": ROLE_LABELS[role], "sections": sections},
    )
