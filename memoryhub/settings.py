"""memoryhub settings: twelve-factor, read from the environment through small typed helpers.

Unset variables give the embedded default (SQLite file, in-memory channel layer, in-process tasks),
so a newcomer runs the hub with nothing installed. Production sets DATABASE_URL and REDIS_URL.
"""

import os
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false), got {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}")


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = env_str("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG and env_bool("MEMORYHUB_REQUIRE_SECRET_KEY", False):
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set in production")
    SECRET_KEY = "memoryhub-embedded-default-not-for-production"
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list(
    "DJANGO_CSRF_TRUSTED_ORIGINS", [f"http://{host}:8000" for host in ("127.0.0.1", "localhost")]
)

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "policies",
    "memoryhub.agents",
    "memoryhub.events",
    "memoryhub.api",
    "memoryhub.memories",
    "memoryhub.search",
    "memoryhub.locks",
    "memoryhub.tasks",
    "memoryhub.tallies",
    "contexts",
    "memoryhub.dashboard",
]

MIDDLEWARE = [
    "memoryhub.requestlog.RequestLogMiddleware",  # outermost: times and logs every answer, refusals too
    # Then the rate limit: a refused request costs nothing else (memoryhub.api.ratelimit).
    "memoryhub.api.ratelimit.RateLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "memoryhub.api.middleware.InputGuardMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
]

# Benchmarks serve extra "floor" endpoints through their own URLconf (tests/bench/urls.py).
ROOT_URLCONF = env_str("MEMORYHUB_URLCONF", "memoryhub.urls")
WSGI_APPLICATION = "memoryhub.wsgi.application"
ASGI_APPLICATION = "memoryhub.asgi.application"

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

# --- Database -------------------------------------------------------------------------------------
# Unset DATABASE_URL: a SQLite file. WAL lets readers run beside the one writer; IMMEDIATE transactions
# take the write lock at BEGIN so concurrent writers queue on the busy timeout instead of failing with
# "database is locked" when a read transaction tries to upgrade.
SQLITE_PATH = env_str("MEMORYHUB_SQLITE_PATH", str(BASE_DIR / "memoryhub.sqlite3"))
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{SQLITE_PATH}",
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=30000;",
    }
    # Django's backend plus a queue for the write lock among a process's threads (memoryhub/sqlite).
    DATABASES["default"]["ENGINE"] = "memoryhub.sqlite"
    # A connection per request unless the server keeps its threads (the embedded server does).
    DATABASES["default"]["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 0)
    DATABASES["default"]["TEST"] = {"NAME": env_str("MEMORYHUB_SQLITE_TEST_PATH", str(BASE_DIR / "test.sqlite3"))}
IS_POSTGRES = DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
if IS_POSTGRES and env_bool("DATABASE_POOL", True):
    # A connection pool per process: right for WSGI threads and for ASGI, where every request runs in
    # a new thread (persistent per-thread connections would pile up until PostgreSQL refuses more).
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": env_int("DATABASE_POOL_MIN", 2),
        "max_size": env_int("DATABASE_POOL_MAX", 20),
        # How long a request waits for a pooled connection (also while PostgreSQL is down): past it
        # the request is answered 503 `unavailable` with Retry-After, not held for 30 s.
        "timeout": env_int("DATABASE_POOL_TIMEOUT", 3),
    }
if IS_POSTGRES:
    # A new connection to an unreachable host gives up after this many seconds (libpq's default
    # waits for the operating system's TCP timeout).
    DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = env_int("DATABASE_CONNECT_TIMEOUT", 3)
if IS_POSTGRES and env_bool("DATABASE_PREPARED_STATEMENTS", True):
    # Parameters bound by the server, and a statement run twice on a connection prepared there: the
    # hub's hot statements are few and repeated, and planning them anew each time cost more than
    # running them (the token lookup: 0.22 -> 0.09 ms). Set DATABASE_PREPARED_STATEMENTS=false behind
    # a pooler in transaction mode (pgbouncer < 1.21), which cannot keep prepared statements.
    DATABASES["default"].setdefault("OPTIONS", {}).update(server_side_binding=True, prepare_threshold=2)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: channel layer, Celery broker, cache ---------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            # Pub/sub: a group_send is one PUBLISH, and Redis hands one copy to each server process,
            # which fans it out to its sockets (the queue-based layer wrote a copy per socket into
            # Redis). Nothing is kept for a process that is not listening: the log is the record,
            # and sockets read what they missed from it.
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {
                # redis-py 8 + channels_redis 4.3: without socket_timeout=None idle consumers die with
                # TimeoutError after ~5 s, and the default pool of 100 connections makes more than 100
                # sockets per process fail.
                "hosts": [{"address": REDIS_URL, "socket_timeout": None, "max_connections": 1000}],
            },
        }
    }
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
    CELERY_BROKER_URL = REDIS_URL
    # A paused or unreachable Redis fails a send within seconds instead of holding its thread.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_timeout": 2, "socket_connect_timeout": 2}
    CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 5000}}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CELERY_BROKER_URL = "memory://"
    CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_BEAT_SCHEDULE = {
    "sweep-every-5s": {"task": "memoryhub.sweepers.sweep", "schedule": 5.0},
    "prune-idempotency-hourly": {"task": "memoryhub.sweepers.prune_idempotency_keys", "schedule": 3600.0},
    # A safety net: writes already wake the embedder after commit; this also picks up an embedder change.
    "embed-pending-every-30s": {"task": "memoryhub.search.tasks.embed_pending", "schedule": 30.0},
}
# In the embedded default there is no beat process: the server runs the same sweep in a thread.
MEMORYHUB_INPROCESS_SWEEPER = env_bool("MEMORYHUB_INPROCESS_SWEEPER", not REDIS_URL)
MEMORYHUB_SWEEP_INTERVAL = env_int("MEMORYHUB_SWEEP_INTERVAL", 5)

# --- Auth, sessions -------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
]
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

# --- HTTPS and security headers (production: see the README; `manage.py check --deploy` is clean
# with DJANGO_SECURE_COOKIES, DJANGO_SECURE_SSL_REDIRECT and DJANGO_SECURE_HSTS_SECONDS set) --------
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", False)
# Probes and scrapes come over plain HTTP from inside the network: never redirected.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", False)
if env_bool("DJANGO_SECURE_PROXY_SSL_HEADER", False):
    # Behind a TLS-terminating proxy that sets X-Forwarded-Proto (and strips it from clients).
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Set on every response by SecurityMiddleware / XFrameOptionsMiddleware / the CSP middleware: nosniff,
# Referrer-Policy same-origin, Cross-Origin-Opener-Policy same-origin, X-Frame-Options DENY, and a
# policy allowing only the hub's own scripts, styles, images and sockets (the dashboard has no inline
# script; its few inline style attributes need 'unsafe-inline' for styles).
X_FRAME_OPTIONS = "DENY"
SECURE_CSP = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'", "'unsafe-inline'"],
    "img-src": ["'self'", "data:"],
    "connect-src": ["'self'", "ws:", "wss:"],
    "frame-ancestors": ["'none'"],
    "form-action": ["'self'"],
    "base-uri": ["'self'"],
    "object-src": ["'none'"],
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

# --- REST API -------------------------------------------------------------------------------------
REST_FRAMEWORK: dict[str, Any] = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "memoryhub.agents.authentication.BearerTokenAuthentication",
        "memoryhub.agents.authentication.HumanSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["memoryhub.api.permissions.IsHubCaller"],
    # Rate limits are a middleware (memoryhub.api.ratelimit), decided before authentication.
    "DEFAULT_THROTTLE_CLASSES": [],
    # Proxies in front of the hub: the client address is then read from X-Forwarded-For.
    "NUM_PROXIES": env_int("MEMORYHUB_NUM_PROXIES", 0) or None,
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["memoryhub.api.parsers.StrictJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "memoryhub.api.schema.HubAutoSchema",
    "EXCEPTION_HANDLER": "memoryhub.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
if DEBUG:
    REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"].append("rest_framework.renderers.BrowsableAPIRenderer")

SPECTACULAR_SETTINGS = {
    "TITLE": "memoryhub API",
    "DESCRIPTION": "Shared memory, inbox, locks and tasks for multi-agent systems.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # 3.1: JSON Schema 2020-12 (propertyNames, `null` as a type), which the search filter needs.
    "OAS_VERSION": "3.1.0",
    # A PATCH body is validated as a whole (its required fields are required), not as a partial one.
    "COMPONENT_SPLIT_PATCH": False,
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "memoryhub.api.schema.add_links"],
    "PATH_CONVERTER_OVERRIDES": {"id": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}},
}

# --- memoryhub ------------------------------------------------------------------------------------
MEMORYHUB_MAX_CONTENT_BYTES = env_int("MEMORYHUB_MAX_CONTENT_BYTES", 256 * 1024)
# The largest request body (Django's setting; 2.5 MiB by default): a bigger one is 413 `too_large`.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("MEMORYHUB_MAX_BODY_BYTES", 5 * 2**19)
# JSON (bodies, content) nested deeper than this is refused: deeper would exhaust Python's recursion
# in the merge patch and the encoder (a 500) long before anyone means it.
MEMORYHUB_MAX_JSON_DEPTH = env_int("MEMORYHUB_MAX_JSON_DEPTH", 100)
MEMORYHUB_IDEMPOTENCY_TTL_SECONDS = env_int("MEMORYHUB_IDEMPOTENCY_TTL_SECONDS", 24 * 3600)
# How long a repeat waits for the answer of the request holding its key before a 409 (or, once that
# request's change has committed, an answer rebuilt from its events).
MEMORYHUB_IDEMPOTENCY_WAIT_MS = env_int("MEMORYHUB_IDEMPOTENCY_WAIT_MS", 2000)
# How long a lock request may wait (the API's ceiling is 30 s): a waiting request keeps its sync worker.
MEMORYHUB_MAX_LOCK_WAIT_SECONDS = min(env_int("MEMORYHUB_MAX_LOCK_WAIT_SECONDS", 30), 30)
# Requests per caller ("6000/min", "100/s", "off"), in bursts of at most MEMORYHUB_RATE_LIMIT_BURST
# (unset: one second's worth, at least 10): a runaway agent cannot slow the others down.
MEMORYHUB_RATE_LIMIT = env_str("MEMORYHUB_RATE_LIMIT", "6000/min")
MEMORYHUB_RATE_LIMIT_BURST: int | None = env_int("MEMORYHUB_RATE_LIMIT_BURST", 0) or None
# Failed authentications per client address before its unrecognised requests are refused unread.
MEMORYHUB_AUTH_FAILURE_LIMIT = env_str("MEMORYHUB_AUTH_FAILURE_LIMIT", "30/min")
# Counted across all server processes in Redis where there is one (one round trip per request),
# else per process.
MEMORYHUB_RATE_LIMIT_SHARED = env_bool("MEMORYHUB_RATE_LIMIT_SHARED", bool(REDIS_URL))
MEMORYHUB_EPISODIC_RETENTION_DAYS = env_int("MEMORYHUB_EPISODIC_RETENTION_DAYS", 30)
# How often an idle websocket consumer re-reads the log, so an event whose publish was lost still
# reaches it (the log, not the channel layer, is the source of truth).
MEMORYHUB_WS_CATCHUP_SECONDS = float(env_str("MEMORYHUB_WS_CATCHUP_SECONDS", "2"))
# Search (memoryhub/search): the embedder for semantic search (local | openai | none; README
# "Choosing the embedder"), and where embeddings are computed: a Celery worker in production, a
# background thread of the server process in the embedded default (never the request itself).
MEMORYHUB_EMBEDDER = env_str("MEMORYHUB_EMBEDDER", "local")
MEMORYHUB_EMBEDDER_URL = env_str("MEMORYHUB_EMBEDDER_URL")
MEMORYHUB_EMBEDDER_MODEL = env_str("MEMORYHUB_EMBEDDER_MODEL")
MEMORYHUB_EMBEDDER_API_KEY = env_str("MEMORYHUB_EMBEDDER_API_KEY")
MEMORYHUB_EMBED_INPROCESS = env_bool("MEMORYHUB_EMBED_INPROCESS", not REDIS_URL)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"bare": {"format": "%(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler"},
        "requests": {"class": "logging.StreamHandler", "formatter": "bare"},
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "WARNING")},
    "loggers": {
        # Refusals (401, 412, 409...) are the API working as designed, not something to log per request:
        # memoryhub.request below has one JSON line for every request instead.
        "django.request": {"level": env_str("DJANGO_REQUEST_LOG_LEVEL", "ERROR")},
        "memoryhub.request": {
            "handlers": ["requests"],
            "level": "INFO" if env_bool("MEMORYHUB_REQUEST_LOG", True) else "WARNING",
            "propagate": False,
        },
    },
}
