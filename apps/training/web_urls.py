"""Page routes of the training app, mounted under /training/."""

from django.urls import path

from . import views

app_name = "training"

urlpatterns = [
    path("", views.train_page, name="page"),
    path("runs/<int:run_id>/", views.run_page, name="run"),
]
