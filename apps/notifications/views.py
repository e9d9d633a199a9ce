"""The page where a user manages their notification subscriptions and reads their delivery log."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from apps.common.errors import ApplicationError

from . import selectors, services
from .models import Channel, EventKind


class SubscriptionForm(forms.Form):
    deployment = forms.ChoiceField(required=False, help_text="Empty: every deployment.")
    events = forms.MultipleChoiceField(choices=EventKind.choices, widget=forms.CheckboxSelectMultiple,
                                       initial=[EventKind.ALERT_OPENED])
    channel = forms.ChoiceField(choices=Channel.choices, initial=Channel.EMAIL)
    url = forms.URLField(required=False, label="Webhook URL", assume_scheme="https",
                         help_text="Only for webhooks (http or https).")

    def __init__(self, *args, **kwargs) -> None:
        from apps.orchestrator.selectors import deployment_list

        super().__init__(*args, **kwargs)
        self.fields["deployment"].choices = [("", "every deployment")] + [
            (str(d.pk), d.name) for d in deployment_list().filter(shadow_of__isnull=True)
        ]


def _int(value: str | None) -> int:
    try:
        return int(value or "")
    except ValueError:
        return 0


@login_required
@require_http_methods(["GET", "POST"])
def subscriptions_page(request: HttpRequest) -> HttpResponse:
    """List, create, enable / disable and delete your subscriptions (CSRF-protected forms); recent deliveries."""
    if not request.user.has_perm("accounts.view_process"):
        return render(request, "accounts/no_role.html", status=403)
    action = request.POST.get("action")
    form = SubscriptionForm(request.POST if action == "create" else None)
    status = 200
    if request.method == "POST":
        try:
            if action == "create":
                if form.is_valid():
                    from apps.orchestrator.selectors import deployment_get

                    chosen = form.cleaned_data["deployment"]
                    services.subscription_create(
                        user=request.user, events=form.cleaned_data["events"], channel=form.cleaned_data["channel"],
                        url=form.cleaned_data["url"],
                        deployment=deployment_get(deployment_id=chosen) if chosen else None,
                    )
                    messages.success(request, "Subscribed.")
                    return redirect("notifications:subscriptions")
                status = 400
            elif action in ("delete", "toggle", "rotate"):
                subscription = selectors.subscription_get(user=request.user,
                                                          subscription_id=_int(request.POST.get("subscription")))
                if action == "delete":
                    services.subscription_delete(subscription=subscription)
                    messages.success(request, "Subscription deleted.")
                elif action == "toggle":
                    services.subscription_update(subscription=subscription, data={"enabled": not subscription.enabled})
                    messages.success(request, "Subscription " + ("paused." if subscription.enabled else "resumed."))
                else:
                    services.subscription_secret_rotate(subscription=subscription)
                    messages.success(request, "New webhook secret made; update your receiver.")
                return redirect("notifications:subscriptions")
        except ApplicationError as exc:
            messages.error(request, exc.message)
            status = 400
    context = {
        "form": form,
        "subscriptions": selectors.subscription_list(user=request.user),
        "deliveries": selectors.delivery_list(user=request.user)[:30],
        "has_email": bool(request.user.email),
    }
    return render(request, "notifications/subscriptions.html", context, status=status)
