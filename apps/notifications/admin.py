"""Admin of the notifications app: subscriptions, events and the delivery log (read-only: written by the
services)."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from .models import Delivery, DeliveryAttempt, Event, Subscription


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = ("id", "user", "deployment", "channel", "url", "enabled", "created_at")
    list_filter = ("channel", "enabled")
    search_fields = ("user__username", "url", "deployment__name")
    list_select_related = ("user", "deployment")
    readonly_fields = ("secret", "created_at", "updated_at")


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ("id", "created_at", "kind", "deployment", "subject")
    list_filter = ("kind",)
    search_fields = ("subject", "body", "key")
    readonly_fields = [f.name for f in Event._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


class AttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    fields = readonly_fields = ("number", "at", "ok", "status_code", "error", "duration_ms")

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ("id", "created_at", "subscription", "event", "status", "attempts", "sent_at")
    list_filter = ("status", "subscription__channel")
    list_select_related = ("subscription__user", "event")
    readonly_fields = [f.name for f in Delivery._meta.fields]
    inlines = [AttemptInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
