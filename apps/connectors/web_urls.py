"""Page routes of the connectors app, mounted under /connectors/."""

from django.urls import path

from . import views

app_name = "connectors"

urlpatterns = [path("", views.connectors_page, name="page")]
