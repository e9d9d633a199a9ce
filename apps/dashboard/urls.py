from django.urls import re_path

from . import views

app_name = "dashboard"

urlpatterns = [
    re_path(r"^home/(?P<role>operator|modeler|manager|admin)/$", views.home, name="home"),
]
