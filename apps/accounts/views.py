"""Portal pages: login, logout, password change, the role redirect and the API token page."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.views.decorators.http import require_http_methods
from rest_framework.authtoken.models import Token

from .forms import PortalAuthenticationForm
from .selectors import user_primary_role
from .services import api_token_rotate


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
    """Show the user's API token; POST rotates it (the old one stops working)."""
    if not request.user.has_perm("accounts.use_platform"):
        return render(request, "accounts/no_role.html", status=403)
    if request.method == "POST":
        api_token_rotate(user=request.user)
        messages.success(request, "A new API token was issued; the previous one no longer works.")
        return redirect("accounts:token")
    token = Token.objects.filter(user=request.user).first()
    return render(request, "accounts/token.html", {"token": token})
