"""Admin pages of the accounts app: API tokens, and Django's own user and group pages re-registered so that
their "History" shows the audit trail (apps.audit) of the record.

An administrator sees every token (name, user, the first characters of the key, last use, expiry),
revokes one by deleting it, and may issue one for a user (a service account): the key is shown once,
on the page that confirms it (kept nowhere: not in a message, not in the session), and only its digest is saved.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from apps.audit.admin import AuditHistoryMixin

from .models import ApiToken
from .tokens import key_digest, key_generate, key_shown


class ApiTokenAddForm(forms.ModelForm):
    class Meta:
        model = ApiToken
        fields = ("user", "name", "expires_at")


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "prefix", "created_at", "last_used_at", "expires_at")
    list_filter = ("expires_at",)
    search_fields = ("name", "user__username", "prefix")
    readonly_fields = ("prefix", "created_at", "last_used_at")
    list_select_related = ("user",)

    def get_form(self, request: HttpRequest, obj: ApiToken | None = None, **kwargs: Any) -> type[forms.ModelForm]:
        if obj is None:
            kwargs["form"] = ApiTokenAddForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> list[str]:
        if obj is None:
            return ["user", "name", "expires_at"]
        return ["user", "name", "prefix", "created_at", "last_used_at", "expires_at"]

    def get_readonly_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> tuple[str, ...]:
        if obj is None:
            return ()
        return ("user", "prefix", "created_at", "last_used_at")

    def save_model(self, request: HttpRequest, obj: ApiToken, form: forms.ModelForm, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        key = key_generate()
        obj.prefix, obj.digest = key_shown(key), key_digest(key)
        super().save_model(request, obj, form, change)
        obj.new_key = key  # for response_add only: never saved, never put in a message or the session

    def response_add(self, request: HttpRequest, obj: ApiToken, post_url_continue: str | None = None) -> HttpResponse:
        """The new key, in this response only (a message would keep it in a cookie or the session)."""
        context = {**self.admin_site.each_context(request), "token": obj, "key": obj.new_key, "opts": self.opts}
        return TemplateResponse(request, "admin/accounts/apitoken/created.html", context, status=201)


def _replace(model: type, base: type) -> None:
    admin.site.unregister(model)
    admin.site.register(model, type(f"Audited{base.__name__}", (AuditHistoryMixin, base), {}))


if admin.site.is_registered(get_user_model()):
    _replace(get_user_model(), UserAdmin)
if admin.site.is_registered(Group):
    _replace(Group, GroupAdmin)
