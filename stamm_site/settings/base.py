"""Settings shared by every way of running the project.

Everything that differs between machines comes from environment variables read through the typed
helpers in ``env.py``; ``local``, ``test`` and ``production`` only choose defaults and tighten rules.
"""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from .env import env_bool, env_choice, env_float, env_int, env_list, env_str

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
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "axes",
    "django_plotly_dash.apps.DjangoPlotlyDashConfig",
    "auditlog",
    "apps.common",
    "apps.audit",
    "apps.accounts",
    "apps.tsdb",
    "apps.registry",
    "apps.orchestrator",
    "apps.training",
    "apps.drift",
    "apps.connectors",
    "apps.notifications",
    "apps.dashboard",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "apps.audit.context.AuditMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_plotly_dash.middleware.BaseMiddleware",
    # Last, as django-axes requires: turns a locked-out sign-in into the lockout answer.
    "axes.middleware.AxesMiddleware",
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
AUTHENTICATION_BACKENDS = [
    # First: refuses a sign-in while its account or address is locked out (django-axes).
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "accounts:home"
LOGOUT_REDIRECT_URL = "accounts:login"

# Sign-in throttling (django-axes, attempts kept in the database so every web process counts alike):
# after STAMM_LOGIN_FAILURE_LIMIT failures for one user name, or from one client address, sign-in (page,
# admin, token endpoint) is refused with 429 for STAMM_LOGIN_LOCKOUT_MINUTES; an admin can lift it early.
AXES_FAILURE_LIMIT = env_int("STAMM_LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("STAMM_LOGIN_LOCKOUT_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_DISABLE_ACCESS_LOG = True
AXES_CLIENT_IP_CALLABLE = "apps.common.client_ip.client_ip"
AXES_LOCKOUT_CALLABLE = "apps.accounts.lockout.lockout_response"
AXES_VERBOSE = False
# How many reverse proxies stand in front of the web server. 0: X-Forwarded-* headers are ignored (a
# client could write them); n: the client address is the n-th entry from the right of X-Forwarded-For,
# and X-Forwarded-Proto says whether the request came over HTTPS.
STAMM_TRUSTED_PROXIES = env_int("STAMM_TRUSTED_PROXIES", 0, minimum=0)
if STAMM_TRUSTED_PROXIES:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

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
        "apps.accounts.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "apps.common.parsers.JSONParser",
        "apps.common.parsers.MultiPartParser",
        "apps.common.parsers.FormParser",
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
    # Choice sets used under several field names get one component name.
    "ENUM_NAME_OVERRIDES": {"NotificationEventKindEnum": "apps.notifications.models.EventKind"},
}

# Celery: JSON only, bounded tasks, beat schedules in the database (editable in the admin).
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "")
# On Redis, kombu's transport with a closed connection reported as a connection error, so that a worker
# reconnects after a broker restart instead of exiting (stamm_site/celery.py).
CELERY_BROKER_TRANSPORT = (
    "stamm_site.celery:RedisTransport" if CELERY_BROKER_URL.startswith("redis://") else None
)
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
# Tasks between two forced reconnects (Celery's Django fixup counts two per task); stamm_site/celery.py.
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", 1000, minimum=1)
CELERY_RESULT_EXPIRES = 3600
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Workers run without gossip, mingle and worker heartbeats, whatever their command line (celery.py).
CELERY_WORKER_CONSUMER = "stamm_site.celery:StammConsumer"

# Beat heartbeat: the task runs every HEARTBEAT_INTERVAL seconds; health fails past HEARTBEAT_MAX_AGE.
STAMM_HEARTBEAT_INTERVAL = env_int("STAMM_HEARTBEAT_INTERVAL", 30, minimum=1)
STAMM_HEARTBEAT_MAX_AGE = env_int("STAMM_HEARTBEAT_MAX_AGE", 120, minimum=1)

# Pipeline (apps/orchestrator): the registry it calls, leases, schedules, retries, chunking.
# STAMM_PREDICTOR: how the one scoring path reaches a model: "rest" (the registry's REST API, STAMM's module
# boundary) or "local" (the registry's predict service in this process).
STAMM_PREDICTOR = env_choice("STAMM_PREDICTOR", ("rest", "local"), "rest")
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
# STAMM_PIPELINE_BATCH: groups (deployment x batch) one pipeline task claims and scores together.
STAMM_PIPELINE_BATCH = env_int("STAMM_PIPELINE_BATCH", 100, minimum=1)
STAMM_PIPELINE_LIVE_WINDOW = env_int("STAMM_PIPELINE_LIVE_WINDOW", 3600, minimum=1)
STAMM_PIPELINE_MAX_LAG = env_int("STAMM_PIPELINE_MAX_LAG", 300, minimum=1)
STAMM_PIPELINE_SERVICE_USER = env_str("STAMM_PIPELINE_SERVICE_USER", "stamm-pipeline")

# Notifications (apps/notifications, docs/notifications.md). E-mail goes through Django's mail framework:
# EMAIL_BACKEND (default SMTP), EMAIL_HOST / EMAIL_PORT / EMAIL_HOST_USER / EMAIL_HOST_PASSWORD / EMAIL_USE_TLS.
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10, minimum=1)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "stamm@localhost")
#: More than this many messages to one subscription within the digest window: the rest wait for one digest.
STAMM_NOTIFY_DIGEST_AFTER = env_int("STAMM_NOTIFY_DIGEST_AFTER", 5, minimum=1)
STAMM_NOTIFY_DIGEST_WINDOW = env_int("STAMM_NOTIFY_DIGEST_WINDOW", 600, minimum=1)
#: A repeated condition (validity Bad on the same batch) is told again only after this many seconds.
STAMM_NOTIFY_REPEAT_SECONDS = env_int("STAMM_NOTIFY_REPEAT_SECONDS", 3600, minimum=0)
#: Delivery attempts (first try included) and the backoff base: waits of base, 2·base, 4·base … seconds.
STAMM_NOTIFY_MAX_ATTEMPTS = env_int("STAMM_NOTIFY_MAX_ATTEMPTS", 6, minimum=1)
STAMM_NOTIFY_BACKOFF_SECONDS = env_int("STAMM_NOTIFY_BACKOFF_SECONDS", 30, minimum=1)
STAMM_NOTIFY_WEBHOOK_TIMEOUT = env_int("STAMM_NOTIFY_WEBHOOK_TIMEOUT", 10, minimum=1)

# Registry (apps/registry): upload and serving limits.
REGISTRY_MAX_ARTIFACT_BYTES = env_int("REGISTRY_MAX_ARTIFACT_BYTES", 200 * 1024 * 1024, minimum=1024)
REGISTRY_MODEL_CACHE_SIZE = env_int("REGISTRY_MODEL_CACHE_SIZE", 32, minimum=1)
REGISTRY_MAX_PREDICT_ROWS = env_int("REGISTRY_MAX_PREDICT_ROWS", 100_000, minimum=1)
# Unpickling runs code: pickles (.pkl, .joblib) load only when this is on AND an admin approved the file
# (apps/registry/artifact_safety.py), and then only inside an isolated runtime worker (runtimes/sandbox.py).
# On by default since model code never runs in the web or Celery processes; false refuses pickles entirely.
REGISTRY_ALLOW_PICKLE = env_bool("REGISTRY_ALLOW_PICKLE", True)

# Model runtimes (apps/registry/runtimes): isolated worker processes and declared environments.
REGISTRY_RUNTIME_SANDBOX = env_choice("REGISTRY_RUNTIME_SANDBOX", ("auto", "bwrap", "process"), "auto")
REGISTRY_RUNTIME_MEMORY_MB = env_int("REGISTRY_RUNTIME_MEMORY_MB", 4096, minimum=256)
REGISTRY_RUNTIME_CPU_SECONDS = env_int("REGISTRY_RUNTIME_CPU_SECONDS", 3600, minimum=10)
REGISTRY_RUNTIME_CALL_TIMEOUT = env_int("REGISTRY_RUNTIME_CALL_TIMEOUT", 60, minimum=1)
REGISTRY_RUNTIME_MAX_WORKERS = env_int("REGISTRY_RUNTIME_MAX_WORKERS", 4, minimum=1)
REGISTRY_RUNTIME_SCRATCH_DIR = env_str("REGISTRY_RUNTIME_SCRATCH_DIR", "")
REGISTRY_RUNTIME_PREWARM = env_bool("REGISTRY_RUNTIME_PREWARM", True)
STAMM_RUNTIME_ENV_DIR = Path(env_str("STAMM_RUNTIME_ENV_DIR", str(VAR_DIR / "runtime-envs")))
REGISTRY_ENV_INDEX_URL = env_str("REGISTRY_ENV_INDEX_URL", "")
REGISTRY_ENV_EXTRA_INDEX_URLS = env_list("REGISTRY_ENV_EXTRA_INDEX_URLS", "")
REGISTRY_ENV_FIND_LINKS = env_list("REGISTRY_ENV_FIND_LINKS", "")
REGISTRY_ENV_BUILD_TIMEOUT = env_int("REGISTRY_ENV_BUILD_TIMEOUT", 900, minimum=10)

# The audit trail (docs/governance.md): django-auditlog writes apps.audit's append-only entry model; values
# are kept as JSON. STAMM_AUDIT_DB_GUARD installs the database triggers that refuse UPDATE/DELETE on the
# audit tables when the migration runs (the test settings leave them out: the test runner empties tables).
AUDITLOG_LOGENTRY_MODEL = "audit.AuditEntry"
# django-auditlog's own entry model is swapped for apps.audit's: its migrations would still create an unused
# table (with foreign keys to users and content types), so they are not run.
MIGRATION_MODULES = {"auditlog": None}
AUDITLOG_STORE_JSON_CHANGES = True
AUDITLOG_USE_FK_STRING_REPRESENTATION = True  # "shadow_of: live", not "shadow_of: 1"
AUDITLOG_DISABLE_REMOTE_ADDR = True  # the address is stamped by apps.audit.context, not auditlog's middleware
STAMM_AUDIT_DB_GUARD = env_bool("STAMM_AUDIT_DB_GUARD", True)

# Champion/challenger (apps/training, docs/governance.md): a shadow deployment is proposed for promotion when it
# beats its champion on at least MIN_SAMPLES lab samples both scored in the last WINDOW_DAYS, with CONFIDENCE
# (one-sided Wilcoxon signed-rank); beat reviews every REVIEW_INTERVAL seconds; the lab-error rule of training
# plans is checked every PLAN_CHECK_INTERVAL seconds.
STAMM_CHALLENGER_CONFIDENCE = env_float("STAMM_CHALLENGER_CONFIDENCE", 0.95)
if not 0.5 <= STAMM_CHALLENGER_CONFIDENCE < 1:
    raise ImproperlyConfigured(
        f"STAMM_CHALLENGER_CONFIDENCE must be in [0.5, 1), got {STAMM_CHALLENGER_CONFIDENCE}"
    )
STAMM_CHALLENGER_MIN_SAMPLES = env_int("STAMM_CHALLENGER_MIN_SAMPLES", 10, minimum=2)
STAMM_CHALLENGER_WINDOW_DAYS = env_int("STAMM_CHALLENGER_WINDOW_DAYS", 30, minimum=1)
STAMM_CHALLENGER_REVIEW_INTERVAL = env_int("STAMM_CHALLENGER_REVIEW_INTERVAL", 3600, minimum=60)
STAMM_PLAN_CHECK_INTERVAL = env_int("STAMM_PLAN_CHECK_INTERVAL", 600, minimum=10)

# Training (apps/training) and lab scoring (apps/drift).
STAMM_TRAINING_RETRIES = env_int("STAMM_TRAINING_RETRIES", 4, minimum=0)
STAMM_LAB_SCORING_INTERVAL = env_int("STAMM_LAB_SCORING_INTERVAL", 600, minimum=1)
STAMM_LAB_SCORING_LOOKBACK = env_int("STAMM_LAB_SCORING_LOOKBACK", 2 * 86400, minimum=1)

# Connectors (apps/connectors): plant data in over MQTT / OPC UA, estimates back out.
# STAMM_CONNECTORS_SECRET_KEY: key material sealing connection passwords (empty: derived from SECRET_KEY).
STAMM_CONNECTORS_SECRET_KEY = env_str("STAMM_CONNECTORS_SECRET_KEY", "")
STAMM_CONNECTORS_FLUSH_MS = env_int("STAMM_CONNECTORS_FLUSH_MS", 100, minimum=1)
STAMM_CONNECTORS_BATCH_MAX = env_int("STAMM_CONNECTORS_BATCH_MAX", 5000, minimum=1)
STAMM_CONNECTORS_STATUS_INTERVAL = env_int("STAMM_CONNECTORS_STATUS_INTERVAL", 2, minimum=1)
STAMM_CONNECTORS_MAX_SILENCE = env_int("STAMM_CONNECTORS_MAX_SILENCE", 30, minimum=1)
STAMM_CONNECTORS_PUBLISH_TIMEOUT = env_int("STAMM_CONNECTORS_PUBLISH_TIMEOUT", 10, minimum=1)
STAMM_CONNECTORS_PUBLISH_RETRIES = env_int("STAMM_CONNECTORS_PUBLISH_RETRIES", 6, minimum=0)
STAMM_CONNECTORS_SWEEP_INTERVAL = env_int("STAMM_CONNECTORS_SWEEP_INTERVAL", 30, minimum=1)
STAMM_CONNECTORS_LOG_RETENTION_DAYS = env_int("STAMM_CONNECTORS_LOG_RETENTION_DAYS", 7, minimum=1)

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
