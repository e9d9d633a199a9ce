"""Portal pages: login, logout, password change, the role redirect and the API token page."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.views.decorators.http import require_http_methods

from apps.common.errors import ApplicationError

from .forms import ApiTokenForm, PortalAuthenticationForm
from .selectors import api_tokens_of, user_primary_role
from .services import api_token_create, api_token_revoke


class PortalLoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    authentication_form = PortalAuthenticationForm
    redirect_authenticated_user = True


class PortalPasswordChangeView(auth_views.PasswordChangeView):
    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("accounts:password_change_done")


class PortalPasswordChangeDoneView(auth_views.PasswordChangeDoneView):
    template_name = "accounts/password_change_done.html"


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Send each user to their role's home; an account without a role sees why it has nothing."""
    role = user_primary_role(user=request.user)
    if role is None:
        return render(request, "accounts/no_role.html", status=403)
    return redirect("dashboard:home", role=role)


@login_required
@require_http_methods(["GET", "POST"])
def api_token(request: HttpRequest) -> HttpResponse:
    """The user's API tokens: create one (its key is in this response only: it is kept nowhere, not even in
    the session), revoke one."""
    if not request.user.has_perm("accounts.use_platform"):
        return render(request, "accounts/no_role.html", status=403)
    form = ApiTokenForm(request.POST if request.POST.get("action") == "create" else None)
    if request.method == "POST":
        try:
            if request.POST.get("action") == "revoke":
                api_token_revoke(user=request.user, token_id=_int(request.POST.get("token")))
                messages.success(request, "The token was revoked; it no longer works.")
                return redirect("accounts:token")
            if form.is_valid():
                token, key = api_token_create(
                    user=request.user, name=form.cleaned_data["name"], expires_at=form.expires_at()
                )
                context = {"tokens": api_tokens_of(user=request.user), "form": ApiTokenForm(), "new_key": key}
                return render(request, "accounts/token.html", context, status=201)
        except ApplicationError as exc:
            messages.error(request, exc.message)
            return redirect("accounts:token")
    context = {"tokens": api_tokens_of(user=request.user), "form": form, "new_key": None}
    return render(request, "accounts/token.html", context, status=400 if form.errors else 200)


def _int(value: str | None) -> int:
    try:
        return int(value or "")
    except ValueError:
        return 0
