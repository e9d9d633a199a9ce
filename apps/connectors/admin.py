"""Admin of the connectors app: sources with their rules (the password write-only), publications, and the
status, error, quality-sample and delivery records (read-only). Saves go through the services' rules.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from apps.common.errors import ApplicationError

from . import services
from .models import DataSource, Delivery, MappingRule, Publication, QualitySample, SourceError, SourceStatus


class DataSourceForm(forms.ModelForm):
    """``password`` is write-only: empty keeps the stored one; tick ``clear_password`` to remove it."""

    password = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Stored encrypted and never shown; leave empty to keep the current one.",
    )
    clear_password = forms.BooleanField(required=False, help_text="Remove the stored password.")

    class Meta:
        model = DataSource
        fields = services.SOURCE_FIELDS

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        candidate = DataSource(
            pk=self.instance.pk, **{k: cleaned.get(k) for k in services.SOURCE_FIELDS if k in cleaned}
        )
        candidate.tls_ca_certificate = candidate.tls_ca_certificate or ""
        candidate.client_id = candidate.client_id or ""
        for field, message in services._source_problems(candidate).items():
            self.add_error(field if field in self.fields else None, message)
        return cleaned


class MappingRuleForm(forms.ModelForm):
    class Meta:
        model = MappingRule
        exclude = ()

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        kind = (
            self.data.get("kind") or getattr(self.instance.data_source, "kind", "")
            if self.instance.data_source_id
            else self.data.get("kind", "")
        )
        for field, message in services.rule_problems(kind, cleaned).items():
            self.add_error(field if field in self.fields else None, message)
        return cleaned


class MappingRuleInline(admin.TabularInline):
    model = MappingRule
    form = MappingRuleForm
    extra = 1
    fields = ("position", *services.RULE_FIELDS)


@admin.register(DataSource)
class DataSourceAdmin(admin.ModelAdmin):
    form = DataSourceForm
    inlines = [MappingRuleInline]
    list_display = ("name", "kind", "url", "enabled", "has_password", "config_version", "updated_at")
    list_filter = ("kind", "enabled")
    search_fields = ("name", "url")
    readonly_fields = ("config_version", "created_at", "updated_at")

    @admin.display(boolean=True, description="password set")
    def has_password(self, obj: DataSource) -> bool:
        return obj.has_password

    def save_model(self, request: HttpRequest, obj: DataSource, form: DataSourceForm, change: bool) -> None:
        """Through the services (rules, sealing, config_version); inline rules are saved after this."""
        data = {name: getattr(obj, name) for name in services.SOURCE_FIELDS}
        password = form.cleaned_data.get("password") or None
        if form.cleaned_data.get("clear_password"):
            password = ""
        try:
            if change:  # the inline saves the rules next (each checked by MappingRuleForm)
                services.data_source_update(data_source=obj, data=data, password=password)
            else:
                created = services.data_source_create(password=password, **data)
                obj.pk = created.pk
                obj._state.adding = False
        except ApplicationError as exc:  # the form already checked; a race is reported, not a 500
            self.message_user(request, exc.message, level="error")

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        services.data_source_touch(data_source=form.instance)  # the running connector applies rule edits


@admin.register(Publication)
class PublicationAdmin(admin.ModelAdmin):
    list_display = ("deployment", "connection", "target", "enabled", "max_age_seconds", "stale_after_seconds")
    list_filter = ("enabled",)
    raw_id_fields = ("deployment",)

    def save_model(self, request: HttpRequest, obj: Publication, form: Any, change: bool) -> None:
        data = {name: getattr(obj, name) for name in services.PUBLICATION_FIELDS}
        if change:
            services.publication_update(publication=obj, data=data)
        else:
            obj.pk = services.publication_create(**data).pk


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(SourceStatus)
class SourceStatusAdmin(ReadOnlyAdmin):
    list_display = (
        "data_source",
        "connected",
        "state",
        "last_message_at",
        "messages_per_second",
        "messages_total",
        "points_total",
        "errors_total",
        "reported_at",
        "runner",
    )


@admin.register(SourceError)
class SourceErrorAdmin(ReadOnlyAdmin):
    list_display = ("at", "data_source", "kind", "address", "message")
    list_filter = ("kind", "data_source")


@admin.register(QualitySample)
class QualitySampleAdmin(ReadOnlyAdmin):
    list_display = (
        "data_source",
        "project_name",
        "device_id",
        "batch_id",
        "observed_property",
        "time_ns",
        "quality",
        "status_name",
        "value",
    )
    list_filter = ("quality",)


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = (
        "at",
        "publication",
        "device_id",
        "batch_id",
        "observed_property",
        "value",
        "quality",
        "status",
        "attempt",
        "destination",
    )
    list_filter = ("status", "quality")
