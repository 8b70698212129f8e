"""CrowdDissect settings: one module, everything from the environment.

Nothing set = the embedded default: SQLite and media in CROWDDISSECT_DATA_DIR (./var), Celery tasks run
eagerly in-process. DATABASE_URL and CELERY_BROKER_URL switch to PostgreSQL and Redis/RabbitMQ.
"""

import os
import tempfile
from pathlib import Path

from config import env

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = env.data_dir()

SECRET_KEY = env.secret_key(DATA_DIR)
DEBUG = env.env_bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.env_list(
    "DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"]
)
CSRF_TRUSTED_ORIGINS = env.env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and Redoc served from our static files (offline)
    "core",
    "dissect",
    "annotate.crowd",
    "annotate.labels",
    "annotate.explain",
    "annotate",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Oversize requests refused from Content-Length, before anything reads the body.
    "core.request_limits.RequestSizeLimitMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # One page-level error path: NUL bytes refused, core.errors.AppError -> message or status.
    "core.errors.AppErrorMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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
                "config.context_processors.role",
            ],
        },
    },
]

DATABASES = {"default": env.database_config(DATA_DIR / "crowddissect.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise looks there even when serving from the finders
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(env.os.environ.get("CROWDDISSECT_MEDIA_ROOT", DATA_DIR / "media")).resolve()
# Where run artifacts (shard states, merged state, counts CSV) live on local storage.
RUNS_DIR = Path(env.os.environ.get("CROWDDISSECT_RUNS_DIR", DATA_DIR / "runs")).resolve()
# Every file goes through one of three storages (dissect.artifacts, dissect.storage):
# "default" (media: tiles, montages, RF maps, uploads, exports), "artifacts" (run artifacts) and
# "imagesets" (copies of the image sets' files, so workers on other hosts can read them).
# CROWDDISSECT_STORAGE=s3 puts all three in one S3-compatible bucket under their own prefixes.
STORAGE_KIND = env.storage_kind()
if STORAGE_KIND == "s3":
    _S3 = env.s3_options()  # with botocore's retries and timeouts (its client_config)
    _FILES = {
        alias: {"BACKEND": "storages.backends.s3.S3Storage",
                "OPTIONS": {**_S3, "location": env.s3_prefix(prefix)}}
        for alias, prefix in (("default", "media"), ("artifacts", "runs"),
                              ("imagesets", "imagesets"))
    }  # fmt: skip
    # Workers keep only caches here (image sets read from the store); never the data directory.
    SCRATCH_DIR = env.scratch_dir(Path(tempfile.gettempdir()) / f"crowddissect-{os.getuid()}")
else:
    _FILES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "artifacts": {
            "BACKEND": "dissect.artifacts.AtomicFileSystemStorage",
            "OPTIONS": {"location": RUNS_DIR},
        },
    }  # fmt: skip  (local image sets are read where they were registered: nothing copied)
    SCRATCH_DIR = env.scratch_dir(DATA_DIR / "scratch")
STORAGES = {
    **_FILES,
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedStaticFilesStorage"
        )
    },
}
# Uploaded images for explain() are checked by size ourselves; keep Django's own cap just above it.
DATA_UPLOAD_MAX_MEMORY_SIZE = 25 * 1024 * 1024
# Whole requests: the 20 MB explain upload plus its form; larger ones are refused from their
# Content-Length before they are read (core.request_limits).
MAX_REQUEST_BYTES = env.env_int("CROWDDISSECT_MAX_REQUEST_BYTES", 21 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

# --- Production hardening: on whenever DEBUG is off and not on the embedded loopback default.
SECURE_HSTS_SECONDS = env.env_int("DJANGO_HSTS_SECONDS", 0 if DEBUG else 3600)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = env.env_bool("DJANGO_HSTS_PRELOAD", default=SECURE_HSTS_SECONDS >= 31536000)
SECURE_SSL_REDIRECT = env.env_bool("DJANGO_SECURE_SSL_REDIRECT", default=False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = env.env_bool("DJANGO_SECURE_COOKIES", default=False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
# Outside crowds frame the task page: only that view is exempted (xframe_options_exempt).
X_FRAME_OPTIONS = "DENY"

# --- REST framework
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # One error path: core.errors.AppError and bad values -> 400/404/409 {"detail", "field"}.
    "EXCEPTION_HANDLER": "core.errors.api_exception_handler",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_THROTTLE_RATES": {
        "submit": env.os.environ.get("CROWDDISSECT_SUBMIT_RATE", "30/min"),
        # Outside-crowd doors (no login): requests per client IP, new leases per worker id.
        "external_entry": env.os.environ.get("CROWDDISSECT_EXTERNAL_ENTRY_RATE", "30/min"),
        "external_lease": env.os.environ.get("CROWDDISSECT_EXTERNAL_LEASE_RATE", "60/hour"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "CrowdDissect API",
    "DESCRIPTION": "Dissection runs, labeling campaigns, tasks, answers and unit labels.",
    "VERSION": "0.1.0",
    # /api/docs/ and /api/redoc/ load their JavaScript and CSS from our own static files
    # (drf-spectacular-sidecar), never from a CDN: the docs work offline and are pinned.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Swagger UI's default validator badge loads an image from swagger.io: off.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    # Choice sets shared by several serializers get one stable name each in the schema.
    "ENUM_NAME_OVERRIDES": {
        "ConceptCategoryEnum": "core.concepts.CATEGORIES",
        "RunStatusEnum": "dissect.models.DissectionRun.Status",
        "CampaignStatusEnum": "annotate.crowd.models.Campaign.Status",
        "AssignmentStatusEnum": "annotate.crowd.models.Assignment.Status",
        "ExportStatusEnum": "annotate.labels.models.Export.Status",
        "ImageStatusEnum": "dissect.models.Image.Status",
    },
    # Every operation documents the error bodies of core.errors (400/401/403, 404 on objects).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "core.schema.document_errors",
    ],
}

# --- Celery: eager in-process when no broker is configured (the embedded default).
CELERY_BROKER_URL = env.broker_url()
CELERY_RESULT_BACKEND = env.result_backend(CELERY_BROKER_URL)
CELERY_TASK_ALWAYS_EAGER = CELERY_BROKER_URL is None
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_SOFT_TIME_LIMIT = env.env_int("CELERY_TASK_SOFT_TIME_LIMIT", 3600)
CELERY_TASK_TIME_LIMIT = env.env_int("CELERY_TASK_TIME_LIMIT", 3900)
# Redis (and SQS) hand an unacknowledged message to another worker after the visibility timeout.
# kombu's default, 3,600 s, is shorter than the task time limit (a long task would then run twice):
# derive it from the hard limit plus a margin, so a live task is never redelivered. A dead worker's
# task is not left waiting for it: the run watchdog (beat) resumes a run that stops moving.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_TASK_TIME_LIMIT + 300}
CELERY_BROKER_CONNECTION_TIMEOUT = 5
CELERY_RESULT_EXPIRES = 24 * 3600

# --- Caches: a local-memory cache is enough for throttling on one machine; Redis when configured.
_CACHE_URL = env.os.environ.get("CACHE_URL", "").strip()
if not _CACHE_URL and CELERY_BROKER_URL and CELERY_BROKER_URL.startswith("redis"):
    _CACHE_URL = CELERY_BROKER_URL
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": _CACHE_URL}
        if _CACHE_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

# --- CrowdDissect
CROWDDISSECT = {
    # A unit detects its concept when its aggregated precision reaches this (paper: 0.75).
    "DETECTOR_PRECISION": float(env.os.environ.get("CROWDDISSECT_DETECTOR_PRECISION", "0.75")),
    # Where run artifacts live on local storage (see STORAGES["artifacts"]).
    "RUNS_DIR": RUNS_DIR,
    # Leases outside-crowd doors may hold at once in a campaign: this share of its open slots
    # (and at most EXTERNAL_LEASES_MAX when set), so anonymous worker ids never exhaust it.
    "EXTERNAL_LEASE_SHARE": float(env.os.environ.get("CROWDDISSECT_EXTERNAL_LEASE_SHARE", "0.5")),
    "EXTERNAL_LEASES_MAX": env.env_int("CROWDDISSECT_EXTERNAL_LEASES_MAX", 0) or None,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.os.environ.get("LOG_LEVEL", "INFO")},
}

# Serve static files straight from the source folders: the embedded default needs no collectstatic.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
