"""Settings shared by every environment, read from environment variables with safe defaults.

A fresh machine needs no server: without ``DATABASE_URL`` the database is a SQLite file under
``var/``; without ``CELERY_BROKER_URL`` the broker is kombu's filesystem transport under ``var/``;
without ``AWS_STORAGE_BUCKET_NAME`` media files stay on the local filesystem under ``var/media``.
"""

import os
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from .dotenv import read_dotenv

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
read_dotenv(BASE_DIR / ".env", settings_module=os.environ.get("DJANGO_SETTINGS_MODULE", ""))

VAR_DIR = Path(env("LP_VAR_DIR", default=str(BASE_DIR / "var")))

SECRET_KEY = env("DJANGO_SECRET_KEY", default="dev-only-insecure-key-change-me")
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

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
    "drf_spectacular_sidecar",
    "axes",
    "csp",
    "inference",
    "cases",
    "ml_training",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "leukemia_portal.middleware.NoStoreMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "leukemia_portal.middleware.SessionActivityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last: turns a lockout flagged by the authentication backend into a 429 answer.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "leukemia_portal.urls"
WSGI_APPLICATION = "leukemia_portal.wsgi.application"
ASGI_APPLICATION = "leukemia_portal.asgi.application"

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
                "cases.context_processors.review",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
DATABASES["default"]["ATOMIC_REQUESTS"] = False


def connection_lifetime(database: dict, max_age: int | None = None) -> dict:
    """How long a process keeps its database connection: PostgreSQL's for 60 s by default
    (``DJANGO_CONN_MAX_AGE``, checked before each reuse, so a connection the server dropped is
    replaced, not used), SQLite's for one request or task. With a new PostgreSQL connection per
    task, a worker classifying a case opened about a hundred (most tasks find their image
    classified by an earlier batch): a 50-image case on PostgreSQL + Redis took a median 15.3 s
    in five runs, 14.8 s in five with connections kept (README, Performance, machine G)."""
    postgres = database["ENGINE"].endswith(("postgresql", "postgis"))
    database.setdefault("CONN_MAX_AGE", max_age if max_age is not None else 60 if postgres else 0)
    database.setdefault("CONN_HEALTH_CHECKS", postgres)
    return database


connection_lifetime(DATABASES["default"], env.int("DJANGO_CONN_MAX_AGE", default=None))


def sqlite_options(database: dict) -> dict:
    """The embedded default shared by the web process and the worker: WAL (readers never wait
    for the writer), a busy timeout (a writer waits for the lock instead of failing), and
    ``BEGIN IMMEDIATE`` (a transaction takes the write lock up front, so two writers never
    deadlock on a lock upgrade, SQLite's "database is locked" that no timeout cures)."""
    if database["ENGINE"].endswith("sqlite3"):
        database.setdefault("OPTIONS", {}).update(
            {
                "timeout": env.int("LP_SQLITE_BUSY_TIMEOUT_S", default=30),
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            }
        )
    return database


sqlite_options(DATABASES["default"])

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("DJANGO_TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

# --- Authentication: lockout, sessions, API tokens ----------------------------------------------
AUTHENTICATION_BACKENDS = [
    # django-axes first: it refuses a locked-out account or address before the password check.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Failed logins are counted in the database, so every web process and the token endpoint share
# them. After AXES_FAILURE_LIMIT failures for one account, or from one address, further tries are
# refused for the cool-down; a correct password during the cool-down is refused too.
AXES_FAILURE_LIMIT = env.int("LP_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LP_LOGIN_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False  # the cool-down stays bounded
AXES_LOCKOUT_CALLABLE = "leukemia_portal.lockout.lockout_response"
# Reverse proxies in front of the portal (each appends to X-Forwarded-For); 0: use REMOTE_ADDR.
LP_TRUSTED_PROXY_COUNT = env.int("LP_TRUSTED_PROXY_COUNT", default=0)
AXES_CLIENT_IP_CALLABLE = "leukemia_portal.middleware.client_address"
AXES_VERBOSE = False

# Sessions end after LP_SESSION_IDLE_MINUTES without a request, and when the browser closes.
SESSION_COOKIE_AGE = 60 * env.int("LP_SESSION_IDLE_MINUTES", default=30)
# Every request a person makes extends the session; a page's status poll does not
# (leukemia_portal.middleware.SessionActivityMiddleware, in place of SESSION_SAVE_EVERY_REQUEST).
SESSION_SAVE_EVERY_REQUEST = False
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
# API tokens expire this long after they were issued, and are deleted at logout.
LP_API_TOKEN_TTL = timedelta(hours=env.int("LP_API_TOKEN_TTL_HOURS", default=8))

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "cases:patient-list"
LOGOUT_REDIRECT_URL = "login"

# --- Static and media files -------------------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns on every request otherwise

# Media is never served from a public URL: smear images go through an authorised view.
MEDIA_ROOT = VAR_DIR / "media"
MEDIA_URL = "/media-not-public/"

AWS_STORAGE_BUCKET_NAME = env("AWS_STORAGE_BUCKET_NAME", default="")
if AWS_STORAGE_BUCKET_NAME:
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": AWS_STORAGE_BUCKET_NAME,
            "endpoint_url": env("AWS_S3_ENDPOINT_URL", default=None),
            "region_name": env("AWS_S3_REGION_NAME", default=None),
            "default_acl": "private",
            "querystring_auth": True,
            "file_overwrite": False,
        },
    }
else:
    _default_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(MEDIA_ROOT)},
    }
STORAGES = {
    "default": _default_storage,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- Upload validation ------------------------------------------------------------------------
LP_MAX_UPLOAD_BYTES = env.int("LP_MAX_UPLOAD_BYTES", default=20 * 1024 * 1024)
LP_MAX_IMAGE_PIXELS = env.int("LP_MAX_IMAGE_PIXELS", default=40_000_000)
LP_MAX_FILES_PER_UPLOAD = env.int("LP_MAX_FILES_PER_UPLOAD", default=50)
DATA_UPLOAD_MAX_NUMBER_FILES = LP_MAX_FILES_PER_UPLOAD
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

# --- Reports and exports ----------------------------------------------------------------------
# FHIR export: the base of the portal's own code and identifier systems (README, "FHIR"). A lab
# that publishes them sets its URL here; the default is a URN that claims no web address.
LP_FHIR_SYSTEM = env.str("LP_FHIR_SYSTEM", default="urn:leukemia-portal")
# The image CSV streams rows; at most this many days per export (a year, with a margin).
LP_CSV_MAX_DAYS = env.int("LP_CSV_MAX_DAYS", default=400)

# --- Inference --------------------------------------------------------------------------------
LP_MODEL_CACHE_DIR = Path(env("LP_MODEL_CACHE_DIR", default=str(VAR_DIR / "model-cache")))
LP_WEIGHTS_DIR = env(
    "LP_WEIGHTS_DIR", default=""
)  # folder with Keras ImageNet weight files, if any

# --- Celery -----------------------------------------------------------------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="filesystem://")
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=600)
CELERY_TASK_SOFT_TIME_LIMIT = env.int(
    "CELERY_TASK_SOFT_TIME_LIMIT", default=max(1, CELERY_TASK_TIME_LIMIT - 60)
)
# A pool process loads and warms the whole ensemble before it reports "up" (16-50 s for the
# five-member cpu model here). Celery kills a child that is not up after this many seconds
# (default 4 s, which made every replacement child die in a loop): keep it above the load time.
CELERY_WORKER_PROC_ALIVE_TIMEOUT = env.float("CELERY_WORKER_PROC_ALIVE_TIMEOUT", default=300.0)
CELERY_TASK_DEFAULT_QUEUE = env("CELERY_TASK_DEFAULT_QUEUE", default="leukemia-portal")
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        # kombu polls the folder; its default of once a second made a 50-image case wait 50 s.
        "polling_interval": env.float("LP_FILESYSTEM_POLLING_INTERVAL_S", default=0.1),
    }
else:
    # Redis redelivers a dead worker's unacknowledged messages after the visibility timeout:
    # above the longest task (the hard time limit), so a slow classification is not run twice.
    # The lifecycle sweep (below) recovers such images sooner than that.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 2 * CELERY_TASK_TIME_LIMIT}

# --- Classification lifecycle: retries and the recovery sweep (cases.services.lifecycle) ------
# Grad-CAM overlays computed by a follow-up task after each prediction (cases.services.saliency).
LP_SALIENCY = env.bool("LP_SALIENCY", default=True)
# A classification is tried at most this many times (retries after errors, redeliveries after a
# worker died mid-task); then the image ends ``failed`` with a message.
LP_CLASSIFY_MAX_ATTEMPTS = env.int("LP_CLASSIFY_MAX_ATTEMPTS", default=5)
# A classification task takes up to this many waiting images into one engine call
# (micro-batching, ``cases.services.classification``); 1 classifies one image per task. A single
# image uploaded during a case waits for the batch running and then its own: with v1's recipe on
# a 2-core machine, 6 kept that at 2.6 s (p95) on both set-ups, 8 gave 3.1 s on the default one
# (``bench_case``; README, Performance).
LP_CLASSIFY_BATCH_MAX = env.int("LP_CLASSIFY_BATCH_MAX", default=6)
if LP_CLASSIFY_BATCH_MAX < 1:
    raise ImproperlyConfigured("LP_CLASSIFY_BATCH_MAX must be at least 1")
# The sweep runs every LP_SWEEP_INTERVAL_S (Celery beat). It re-sends images left ``queued``
# whose task could not be sent, or was sent longer than LP_SWEEP_QUEUED_AFTER_S ago, and resets
# ``processing`` images older than the hard time limit plus LP_SWEEP_GRACE_S.
LP_SWEEP_INTERVAL_S = env.float("LP_SWEEP_INTERVAL_S", default=60.0)
LP_SWEEP_QUEUED_AFTER_S = env.int("LP_SWEEP_QUEUED_AFTER_S", default=600)
LP_SWEEP_GRACE_S = env.int("LP_SWEEP_GRACE_S", default=60)
CELERY_BEAT_SCHEDULE = {
    "recover-stuck-images": {
        "task": "cases.tasks.recover_images",
        "schedule": LP_SWEEP_INTERVAL_S,
        "options": {"expires": LP_SWEEP_INTERVAL_S},
    }
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# Test-only fault injection (seconds to sleep after an image is claimed); 0 everywhere else.
LP_FAULT_DELAY_AFTER_CLAIM_S = 0.0

# --- REST API ---------------------------------------------------------------------------------
REST_FRAMEWORK = {
    # Token first: an anonymous API call then gets 401 with a WWW-Authenticate header.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "cases.authentication.ExpiringTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Every API error is JSON, including a request Django refuses before the view runs.
    "EXCEPTION_HANDLER": "leukemia_portal.errors.api_exception_handler",
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Leukemia Portal API",
    "DESCRIPTION": "Labs, patients, specimens, smear image uploads, ensemble predictions, "
    "the review queue, verdicts, sign-off and the lab's QA. Research use only: not a "
    "diagnostic device.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # Swagger UI assets ship with drf-spectacular-sidecar: the docs page needs no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",  # served by the split view: no inline script (CSP)
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "ImageStatusEnum": "cases.models.SmearImage.Status",
        "SpecimenStatusEnum": "cases.models.Specimen.Status",
    },
}

# --- Security headers ---------------------------------------------------------------------------
# Every HTML page: scripts, styles, images only from this origin; no inline script or style.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    },
}
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LP_LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "axes": {"level": "WARNING"},
        # WeasyPrint and fontTools narrate every step of every PDF at INFO.
        "weasyprint": {"level": "WARNING"},
        "fontTools": {"level": "WARNING"},
    },
}
