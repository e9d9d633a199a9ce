"""The Celery application: configured from Django settings (``CELERY_*``), tasks autodiscovered per app."""
from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "stamm_site.settings.local")

app = Celery("stamm_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
