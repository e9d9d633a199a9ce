"""Page routes of the notifications app, mounted under /notifications/."""
from django.urls import path

from . import views

app_name = "notifications"

urlpatterns = [path("", views.subscriptions_page, name="subscriptions")]
