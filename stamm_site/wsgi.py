"""WSGI entry point (gunicorn in production)."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "stamm_site.settings.local")
application = get_wsgi_application()
