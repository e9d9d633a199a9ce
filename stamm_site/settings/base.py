"""Settings shared by every way of running the project.

Everything that differs between machines comes from environment variables read through the typed
helpers in ``env.py``; ``local``, ``test`` and ``production`` only choose defaults and tighten rules.
"""
from __future__ import annotations

from pathlib import Path

from .env import env_bool, env_choice, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(env_str("STAMM_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "django_plotly_dash.apps.DjangoPlotlyDashConfig",
    "apps.common",
    "apps.accounts",
    "apps.tsdb",
    "apps.registry",
    "apps.orchestrator",
    "apps.training",
    "apps.drift",
    "apps.dashboard",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_plotly_dash.middleware.BaseMiddleware",
]

ROOT_URLCONF = "stamm_site.urls"
WSGI_APPLICATION = "stamm_site.wsgi.application"
ASGI_APPLICATION = "stamm_site.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "apps.accounts.context_processors.roles",
            ],
        },
    },
]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "accounts:home"
LOGOUT_REDIRECT_URL = "accounts:login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(env_str("DJANGO_STATIC_ROOT", str(VAR_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "django_plotly_dash.finders.DashAssetFinder",
    "django_plotly_dash.finders.DashComponentFinder",
    "django_plotly_dash.finders.DashAppDirectoryFinder",
]
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(env_str("DJANGO_MEDIA_ROOT", str(VAR_DIR / "media")))
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DJANGO_DATA_UPLOAD_MAX_MEMORY_SIZE", 50 * 1024 * 1024, minimum=1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

# django-plotly-dash: serve every Dash asset from local static files (no CDN). Dash apps are rendered
# inline (the `plotly_direct` tag), never in iframes, so framing stays denied.
X_FRAME_OPTIONS = "DENY"
PLOTLY_DASH = {"serve_locally": True, "cache_arguments": False}
PLOTLY_COMPONENTS = ["dpd_components"]

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "apps.common.pagination.StandardPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_SCHEMA_CLASS": "apps.common.schema.StammAutoSchema",
    "EXCEPTION_HANDLER": "apps.common.exception_handler.api_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "STAMM on Django API",
    "DESCRIPTION": (
        "Process data, soft-sensor models, pipeline and drift. "
        "Token auth for external systems, session auth for the browser."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

# Celery: JSON only, bounded tasks, beat schedules in the database (editable in the admin).
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "")
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", "") or None
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_ENABLE_UTC = True
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 600, minimum=1)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 540, minimum=1)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_RESULT_EXPIRES = 3600
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"

# Beat heartbeat: the task runs every HEARTBEAT_INTERVAL seconds; health fails past HEARTBEAT_MAX_AGE.
STAMM_HEARTBEAT_INTERVAL = env_int("STAMM_HEARTBEAT_INTERVAL", 30, minimum=1)
STAMM_HEARTBEAT_MAX_AGE = env_int("STAMM_HEARTBEAT_MAX_AGE", 120, minimum=1)

# Pipeline (apps/orchestrator): the registry it calls, leases, schedules, retries, chunking.
# STAMM_REGISTRY_URL: base URL of the registry's REST API ("this server" by default).
STAMM_REGISTRY_URL = env_str("STAMM_REGISTRY_URL", "http://127.0.0.1:8000")
STAMM_REGISTRY_TOKEN = env_str("STAMM_REGISTRY_TOKEN", "")  # empty: the local pipeline service account's token
STAMM_REGISTRY_TIMEOUT = env_int("STAMM_REGISTRY_TIMEOUT", 30, minimum=1)
STAMM_PIPELINE_LEASE_SECONDS = env_int("STAMM_PIPELINE_LEASE_SECONDS", 120, minimum=1)
STAMM_PIPELINE_DETECT_INTERVAL = env_int("STAMM_PIPELINE_DETECT_INTERVAL", 30, minimum=1)
STAMM_PIPELINE_HEALTH_INTERVAL = env_int("STAMM_PIPELINE_HEALTH_INTERVAL", 60, minimum=1)
STAMM_PIPELINE_RETRIES = env_int("STAMM_PIPELINE_RETRIES", 4, minimum=0)
STAMM_PIPELINE_RETRY_BACKOFF_MS = env_int("STAMM_PIPELINE_RETRY_BACKOFF_MS", 200, minimum=1)
STAMM_PIPELINE_CHUNK = env_int("STAMM_PIPELINE_CHUNK", 5000, minimum=1)
STAMM_PIPELINE_LIVE_WINDOW = env_int("STAMM_PIPELINE_LIVE_WINDOW", 3600, minimum=1)
STAMM_PIPELINE_MAX_LAG = env_int("STAMM_PIPELINE_MAX_LAG", 300, minimum=1)
STAMM_PIPELINE_SERVICE_USER = env_str("STAMM_PIPELINE_SERVICE_USER", "stamm-pipeline")

# Registry (apps/registry): upload and serving limits.
REGISTRY_MAX_ARTIFACT_BYTES = env_int("REGISTRY_MAX_ARTIFACT_BYTES", 200 * 1024 * 1024, minimum=1024)
REGISTRY_MODEL_CACHE_SIZE = env_int("REGISTRY_MODEL_CACHE_SIZE", 32, minimum=1)
REGISTRY_MAX_PREDICT_ROWS = env_int("REGISTRY_MAX_PREDICT_ROWS", 100_000, minimum=1)

# Training (apps/training) and lab scoring (apps/drift).
STAMM_TRAINING_RETRIES = env_int("STAMM_TRAINING_RETRIES", 4, minimum=0)
STAMM_LAB_SCORING_INTERVAL = env_int("STAMM_LAB_SCORING_INTERVAL", 600, minimum=1)
STAMM_LAB_SCORING_LOOKBACK = env_int("STAMM_LAB_SCORING_LOOKBACK", 2 * 86400, minimum=1)

# Time-series store: a dotted backend path plus options, checked at start-up (tsdb.E001...).
TSDB_BACKEND_NAME = env_choice("TSDB_BACKEND", ("sql", "influxdb"), "sql")
TSDB = {
    "sql": {"BACKEND": "apps.tsdb.backends.sql.SQLBackend", "OPTIONS": {}},
    "influxdb": {
        "BACKEND": "apps.tsdb.backends.influx.InfluxBackend",
        "OPTIONS": {
            "URL": env_str("INFLUXDB_URL", "http://127.0.0.1:8086"),
            "TOKEN": env_str("INFLUXDB_TOKEN", ""),
            "USERNAME": env_str("INFLUXDB_USERNAME", ""),
            "PASSWORD": env_str("INFLUXDB_PASSWORD", ""),
            "TIMEOUT": env_int("INFLUXDB_TIMEOUT", 10, minimum=1),
        },
    },
}[TSDB_BACKEND_NAME]
# InfluxDB-compatible write endpoints (/api/v2/write, /write): largest body accepted, after gzip
# decompression; larger ones get 413. Bodies are parsed as they stream, so memory does not grow with it.
TSDB_LINE_PROTOCOL_MAX_BYTES = env_int("TSDB_LINE_PROTOCOL_MAX_BYTES", 256 * 1024 * 1024, minimum=1024)

LOG_LEVEL = env_choice("DJANGO_LOG_LEVEL", ("DEBUG", "INFO", "WARNING", "ERROR"), "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
