"""Every setting of the portal, read from the environment in this one place.

The embedded default (no environment at all) is one node: SQLite, a local folder as the model origin and
everything under ``PORTAL_DATA_DIR``. ``DATABASE_URL``, ``REDIS_URL`` and ``MODEL_SHARED_URI`` turn it into
a fleet member. ``DJANGO_PRODUCTION=true`` demands real secrets and passes ``manage.py check --deploy``.
"""

import os
import socket
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env")

PRODUCTION = env.bool("DJANGO_PRODUCTION", default=False)
DATA_DIR = Path(env("PORTAL_DATA_DIR", default=str(BASE_DIR / "var"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)

if PRODUCTION:
    # No defaults: a production node that forgot its secret must not start with a public one.
    SECRET_KEY = env("DJANGO_SECRET_KEY")
    ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")
    DEBUG = False
else:
    SECRET_KEY = env("DJANGO_SECRET_KEY", default="insecure-local-development-key-change-me")
    ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"])
    DEBUG = env.bool("DJANGO_DEBUG", default=False)

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
    "axes",
    "cache_app",
    "predictions",
]

MIDDLEWARE = [
    # First, so it sees the response last: a streaming one no longer holds back batches (predictions.batching).
    "predictions.batching.StreamingLeavesWork",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "portal.middleware.BodySizeLimitMiddleware",  # before CSRF: its check would parse the whole body
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "portal.middleware.NotFoundMiddleware",
    # Last, as django-axes requires: it turns a locked-out login into its 429 answer.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

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
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'portal.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several gunicorn workers write to one SQLite file: WAL lets readers run beside the writer, and
    # IMMEDIATE transactions plus a busy timeout make writers queue instead of failing with "locked".
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    # A file, not memory: tests share it with threads and child processes. One per test run, so that
    # several runs on one machine do not recreate each other's database.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / f"test-portal-{os.getpid()}.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# django-axes first: it refuses a locked-out account or address before any password is checked.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]

# --- Throttling ------------------------------------------------------------------------------------------
# How many reverse proxies (deploy/nginx-portal.conf.template) stand in front of gunicorn: the client's
# address is then that many entries from the right of X-Forwarded-For. 0: REMOTE_ADDR (no proxy; the header
# is ignored, as a client could forge it).
PORTAL_PROXY_COUNT = env.int("PORTAL_PROXY_COUNT", default=0)
# Login attempts (/accounts/login/ and /admin/login/): after this many failures an account, and separately
# an address, is refused (429) until the failures are this old.
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("LOGIN_COOLOFF_MINUTES", default=15.0))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_CLIENT_IP_CALLABLE = "portal.throttling.client_ip"
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False
# API rates per user (token or session) and per address for anonymous calls, DRF's "N/second|minute|hour|day";
# empty: no limit. Counted per server process (Django's local-memory cache).
API_THROTTLE_USER = env("API_THROTTLE_USER", default="1200/minute") or None
API_THROTTLE_ANON = env("API_THROTTLE_ANON", default="60/minute") or None
# Batch jobs queued or running at once per user: one user's big CSVs must not slow everyone. 0: no limit.
PREDICT_JOB_MAX_ACTIVE_PER_USER = env.int("PREDICT_JOB_MAX_ACTIVE_PER_USER", default=3)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise warns on every request until collectstatic has run
STATICFILES_DIRS = [BASE_DIR / "static"]
# Prediction inputs and results (web CSV results, batch job chunks): a local folder by default (or
# file:///path); in a fleet an S3 bucket (s3://bucket/prefix) or an Azure container (azure://container/prefix)
# every node reads.
RESULTS_STORAGE_URI = env("RESULTS_STORAGE_URI", default="")


def _results_storage(uri: str) -> dict:
    from urllib.parse import urlparse

    parsed = urlparse(uri)
    if not uri or parsed.scheme == "file":
        return {"BACKEND": "django.core.files.storage.FileSystemStorage",
                "OPTIONS": {"location": parsed.path if uri else str(DATA_DIR / "results")}}
    prefix = parsed.path.strip("/")
    # A store that is down must answer a request with its 503 within seconds, before a proxy's timeout:
    # the SDKs' defaults wait up to a minute per connection and retry for over a minute more.
    if parsed.scheme == "s3":
        from botocore.config import Config

        return {"BACKEND": "storages.backends.s3.S3Storage",
                "OPTIONS": {"bucket_name": parsed.netloc, "location": prefix, "file_overwrite": False,
                            "client_config": Config(connect_timeout=5, read_timeout=20,
                                                    retries={"mode": "standard", "max_attempts": 3})}}
    if parsed.scheme == "azure":
        return {"BACKEND": "predictions.results_azure.ResultsAzureStorage",
                "OPTIONS": {"azure_container": parsed.netloc, "location": prefix, "overwrite_files": False,
                            "connection_string": env("AZURE_CONNECTION_STRING", default=None),
                            "client_options": {"connection_timeout": 5, "read_timeout": 20, "retry_total": 2,
                                               "initial_backoff": 0.5, "increment_base": 1.5,
                                               "random_jitter_range": 0.5}}}
    raise ImproperlyConfigured(
        f"RESULTS_STORAGE_URI {uri!r}: use file:///path, s3://bucket/prefix or azure://container/prefix"
    )


STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
    "results": _results_storage(RESULTS_STORAGE_URI),
}
MEDIA_ROOT = DATA_DIR / "media"

LOGIN_URL = "web:login"
LOGIN_REDIRECT_URL = "web:catalog"
LOGOUT_REDIRECT_URL = "web:login"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "predictions.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "portal.negotiation.RememberingContentNegotiation",
    "DEFAULT_PARSER_CLASSES": [
        "portal.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    # JSON answers are ASCII, non-ASCII text escaped: an echoed string that is not valid Unicode (a lone
    # surrogate) can then still be written, as Django's own JsonResponse writes it.
    "UNICODE_JSON": False,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "portal.exceptions.api_exception_handler",
    "DEFAULT_THROTTLE_CLASSES": [
        "portal.throttling.AnonRateThrottle",
        "portal.throttling.UserRateThrottle",
    ],
    "NUM_PROXIES": PORTAL_PROXY_COUNT,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Model Cache Portal API",
    "VERSION": "1.0.0",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# The staff login `make run` makes sure of; with no password given one is generated and kept in DATA_DIR.
PORTAL_ADMIN_USER = env("PORTAL_ADMIN_USER", default="admin")
PORTAL_ADMIN_PASSWORD = env("PORTAL_ADMIN_PASSWORD", default="")
PORTAL_BIND = env("PORTAL_BIND", default="127.0.0.1:8000")

# --- The model cache -------------------------------------------------------------------------------------
NODE_NAME = env("PORTAL_NODE_NAME", default=socket.gethostname())
# Where `publish_model` puts new archives: file:///abs/folder, s3://bucket/prefix or azure://container/prefix.
MODEL_ORIGIN_URI = env("MODEL_ORIGIN_URI", default=(DATA_DIR / "origin").as_uri())
# The fleet's shared tier (s3://bucket/prefix or azure://container/prefix); empty: no shared tier.
MODEL_SHARED_URI = env("MODEL_SHARED_URI", default="")
MODEL_CACHE_DIR = Path(env("MODEL_CACHE_DIR", default=str(DATA_DIR / "model_cache"))).resolve()
# Defaults for the runtime limits; staff change them in the admin without a restart.
MODEL_CACHE_MAX_BYTES = env.int("MODEL_CACHE_MAX_BYTES", default=10 * 1024**3)
MODEL_MEMORY_MAX_BYTES = env.int("MODEL_MEMORY_MAX_BYTES", default=4 * 1024**3)
MODEL_MEMORY_MAX_COUNT = env.int("MODEL_MEMORY_MAX_COUNT", default=8)
MODEL_CACHE_HIT_RATE_WARNING = env.float("MODEL_CACHE_HIT_RATE_WARNING", default=0.5)
# A whole fetch (all tiers, all retries) must finish within this many seconds.
MODEL_FETCH_DEADLINE_SECONDS = env.float("MODEL_FETCH_DEADLINE_SECONDS", default=600.0)
MODEL_FETCH_RETRIES = env.int("MODEL_FETCH_RETRIES", default=3)
# How long a request waits for another thread, process or node that is fetching the same model.
MODEL_FETCH_WAIT_SECONDS = env.float("MODEL_FETCH_WAIT_SECONDS", default=900.0)
# The fleet lock's lease, renewed while its holder lives: a node that dies frees the others this fast.
MODEL_FETCH_LOCK_LEASE_SECONDS = env.float("MODEL_FETCH_LOCK_LEASE_SECONDS", default=15.0)
# A failed fetch is remembered this long: callers meanwhile get its error instead of retrying every tier.
MODEL_FETCH_FAILURE_MEMORY_SECONDS = env.float("MODEL_FETCH_FAILURE_MEMORY_SECONDS", default=5.0)
# How often each process sweeps temporaries of dead processes and unused lock files from the cache folder.
MODEL_CACHE_SWEEP_SECONDS = env.float("MODEL_CACHE_SWEEP_SECONDS", default=300.0)
# Caps on what an archive may extract to: refuse bombs before they fill the disk.
MODEL_EXTRACT_MAX_BYTES = env.int("MODEL_EXTRACT_MAX_BYTES", default=20 * 1024**3)
MODEL_EXTRACT_MAX_MEMBERS = env.int("MODEL_EXTRACT_MAX_MEMBERS", default=100_000)
MODEL_EXTRACT_MAX_RATIO = env.float("MODEL_EXTRACT_MAX_RATIO", default=200.0)
MODEL_WARM_PINNED_ON_START = env.bool("MODEL_WARM_PINNED_ON_START", default=False)

REDIS_URL = env("REDIS_URL", default="")

# Clients of the remote tiers. django-storages reads these names; the tiers add retries and deadlines.
AWS_S3_ENDPOINT_URL = env("AWS_S3_ENDPOINT_URL", default=None)
AWS_ACCESS_KEY_ID = env("AWS_ACCESS_KEY_ID", default=None)
AWS_SECRET_ACCESS_KEY = env("AWS_SECRET_ACCESS_KEY", default=None)
AWS_S3_REGION_NAME = env("AWS_S3_REGION_NAME", default="us-east-1")
AZURE_CONNECTION_STRING = env("AZURE_CONNECTION_STRING", default=None)

# --- Predictions -----------------------------------------------------------------------------------------
PREDICT_MAX_ROWS = env.int("PREDICT_MAX_ROWS", default=100_000)
PREDICT_MAX_UPLOAD_BYTES = env.int("PREDICT_MAX_UPLOAD_BYTES", default=50 * 1024**2)
# CSV batch jobs: split into chunks that workers predict in parallel (Celery with REDIS_URL, else in-process).
PREDICT_JOB_CHUNK_ROWS = env.int("PREDICT_JOB_CHUNK_ROWS", default=10_000)
# A job's upload is checked whole before the job is accepted, in the request (1-2 MB/s on one core): the
# default keeps that check well inside gunicorn's PORTAL_TIMEOUT, which would otherwise kill the request.
PREDICT_JOB_MAX_UPLOAD_BYTES = env.int("PREDICT_JOB_MAX_UPLOAD_BYTES", default=256 * 1024**2)
# The Celery queue for chunks: fleets that share one Redis keep apart by naming theirs.
PREDICT_JOB_QUEUE = env("PREDICT_JOB_QUEUE", default="portal")
# A running job with no chunk stored for this long is failed with a message instead of running forever.
PREDICT_JOB_STALL_SECONDS = env.int("PREDICT_JOB_STALL_SECONDS", default=1800)
# Chunks whose model cannot be served right now are tried again, this many times, this far apart (x attempt).
PREDICT_JOB_RETRIES = env.int("PREDICT_JOB_RETRIES", default=3)
PREDICT_JOB_RETRY_SECONDS = env.float("PREDICT_JOB_RETRY_SECONDS", default=5.0)
# Web CSV results and finished jobs' files are deleted this long after they were made (``results_clean``).
PREDICT_RESULTS_TTL_HOURS = env.int("PREDICT_RESULTS_TTL_HOURS", default=168)
# Serving throughput (predictions.lookups, predictions.prediction_logs, predictions.batching).
# Tokens, models and versions are kept in each process this many seconds: how long a change made on another
# worker or node (a deleted token, a new current version) takes to be seen there.
PREDICT_LOOKUP_CACHE_SECONDS = env.float("PREDICT_LOOKUP_CACHE_SECONDS", default=5.0)
# While the database cannot be reached, cached lookups keep serving for this long (a model in memory answers).
PREDICT_LOOKUP_STALE_SECONDS = env.float("PREDICT_LOOKUP_STALE_SECONDS", default=300.0)
# Prediction logs are written in bulk by a background thread this often; false writes each in its request.
PREDICTION_LOG_BUFFER = env.bool("PREDICTION_LOG_BUFFER", default=True)
PREDICTION_LOG_FLUSH_SECONDS = env.float("PREDICTION_LOG_FLUSH_SECONDS", default=1.0)
# Logs kept per process while the database is down; past it the oldest are dropped (and counted in the log).
PREDICTION_LOG_BUFFER_MAX = env.int("PREDICTION_LOG_BUFFER_MAX", default=100_000)
# Concurrent small requests for one model in one process share a predict call of up to this many rows,
# waiting at most this long for company, and only while other requests are on their way (never when idle).
PREDICT_BATCH_MAX_ROWS = env.int("PREDICT_BATCH_MAX_ROWS", default=64)
PREDICT_BATCH_MAX_WAIT_MS = env.float("PREDICT_BATCH_MAX_WAIT_MS", default=2.0)
# OpenMP threads (LightGBM, XGBoost) one large prediction may use; 0: the cores that no other large prediction
# of the server holds at that moment (predictions.threads), so workers never oversubscribe the machine and a
# prediction alone uses all of it. Small batches always use one.
PREDICT_THREADS_PER_WORKER = env.int("PREDICT_THREADS_PER_WORKER", default=0)
WEB_CONCURRENCY = env.int("WEB_CONCURRENCY", default=2)
DATA_UPLOAD_MAX_MEMORY_SIZE = PREDICT_MAX_UPLOAD_BYTES + 1024**2
# Uploads larger than this go to a temporary file as they arrive, never whole into a worker's memory; a body
# larger than its endpoint allows is refused before it is read (portal.middleware.BodySizeLimitMiddleware).
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024**2

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    # The Azure SDK logs every HTTP request at INFO.
    "loggers": {"azure": {"level": "WARNING"}},
}

if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 30)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True

# --- Model registry (predictions.promotion, predictions.publishing) ----------------------------------------
# A promotion (an alias or the current version moved) waits this long for every serving process to warm the
# target before it gives up and switches nothing.
PROMOTION_WARM_TIMEOUT_SECONDS = env.float("PROMOTION_WARM_TIMEOUT_SECONDS", default=600.0)
# How often each gunicorn worker looks for promotions to warm (a small read).
PROMOTION_POLL_SECONDS = env.float("PROMOTION_POLL_SECONDS", default=0.5)
# A worker silent for this long is taken for dead: promotions stop waiting for it.
PROMOTION_PROCESS_STALE_SECONDS = env.float("PROMOTION_PROCESS_STALE_SECONDS", default=15.0)
# Publishing over HTTP (POST /api/models/<name>/versions, the admin's upload page): the largest archive taken,
# and where it is streamed and extracted before it is recorded (empty: the system's temporary folder).
MODEL_PUBLISH_MAX_UPLOAD_BYTES = env.int("MODEL_PUBLISH_MAX_UPLOAD_BYTES", default=10 * 1024**3)
PUBLISH_UPLOAD_DIR = env("PUBLISH_UPLOAD_DIR", default="") or None
# The serving profile measured at publish (a fresh process loads the version and times it) gives up after this.
MODEL_PROFILE_TIMEOUT_SECONDS = env.float("MODEL_PROFILE_TIMEOUT_SECONDS", default=300.0)
