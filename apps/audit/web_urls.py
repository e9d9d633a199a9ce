"""Page routes of the audit trail, mounted under /audit/."""

from django.urls import path

from . import views

app_name = "audit"

urlpatterns = [
    path("", views.trail_page, name="trail"),
    path("signatures/", views.signatures_page, name="signatures"),
]
