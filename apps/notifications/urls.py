"""API routes of the notifications app, mounted under /api/v1/notifications/."""
from django.urls import path

from . import apis

SUB = "subscriptions/<int:subscription_id>"

urlpatterns = [
    path("subscriptions", apis.SubscriptionListApi.as_view(), name="notifications-subscription-list"),
    path("subscriptions/create", apis.SubscriptionCreateApi.as_view(), name="notifications-subscription-create"),
    path(SUB + "/update", apis.SubscriptionUpdateApi.as_view(), name="notifications-subscription-update"),
    path(SUB + "/rotate-secret", apis.SubscriptionRotateSecretApi.as_view(), name="notifications-subscription-rotate"),
    path(SUB + "/delete", apis.SubscriptionDeleteApi.as_view(), name="notifications-subscription-delete"),
    path("deliveries", apis.DeliveryListApi.as_view(), name="notifications-delivery-list"),
    path("events", apis.EventListApi.as_view(), name="notifications-event-list"),
]
