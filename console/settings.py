"""Console settings, from the environment.

DATABASE_URL  sqlite:///path or postgresql://user@host:port/db (default: waymark.sqlite3 here)
WAYMARK_APP   module:function that registers the workflows on an Engine (default: the demo)
SECRET_KEY    required when DEBUG is off
DEBUG         "1" to enable (default on for local runs without SECRET_KEY)
ALLOWED_HOSTS comma-separated (default: localhost names)
WAYMARK_SSL_REDIRECT  "0" when a proxy already redirects HTTP to HTTPS (DEBUG off only)
WAYMARK_HSTS_SECONDS  HSTS max-age, opt-in (DEBUG off only)
WAYMARK_BEHIND_PROXY  "1" behind a TLS-terminating reverse proxy: trust X-Forwarded-Proto/-For
WAYMARK_STATIC_ROOT   where collectstatic puts the static files (default: staticfiles/ here)
WAYMARK_LOG_FORMAT    "json": one JSON object per log line (console and runworker; default text)
WAYMARK_METRICS_TOKEN bearer token Prometheus scrapes /metrics with (unset: admins only)
WAYMARK_ALERT_INTERVAL seconds between alert evaluations in runworker (default 5)
WAYMARK_CONSOLE_URL   the console's address, linked from alert notifications (optional)
WAYMARK_ALERT_FROM    sender of alert e-mail; EMAIL_HOST/_PORT/_HOST_USER/_HOST_PASSWORD/_USE_TLS
WAYMARK_SOURCES       other databases: [{"name","kind":"waymark"|"dbos","url","schema"}] (JSON)
WAYMARK_DECODE_PICKLES "1" decodes dbos-py pickled payloads made of builtin values (restricted)

"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from console import sources as _sources
from console.dburl import database_config

BASE_DIR = Path(__file__).resolve().parent.parent

DATABASE_URL = os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'waymark.sqlite3'}")
SECRET_KEY = os.environ.get("SECRET_KEY", "")
DEBUG = os.environ.get("DEBUG", "1" if not SECRET_KEY else "0") == "1"
if not SECRET_KEY:
    if not DEBUG:
        raise RuntimeError("SECRET_KEY must be set when DEBUG is off")
    SECRET_KEY = "insecure-local-development-key"
# Set when a reverse proxy terminates HTTPS in front of the console: then (and only then) its
# X-Forwarded-Proto and X-Forwarded-For headers are believed. Without a proxy any client could
# send them, to look like HTTPS or to throttle someone else's address.
WAYMARK_BEHIND_PROXY = os.environ.get("WAYMARK_BEHIND_PROXY", "0") == "1"
ALLOWED_HOSTS = [
    h.strip() for h in os.environ.get("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",")
]

# Production hardening when DEBUG is off (`manage.py check --deploy` passes): cookies only
# over HTTPS, HTTPS redirect (WAYMARK_SSL_REDIRECT=0 when a proxy already does it), HSTS only
# when asked for (WAYMARK_HSTS_SECONDS: a long-lived promise, so opt-in).
if not DEBUG:
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = os.environ.get("WAYMARK_SSL_REDIRECT", "1") == "1"
    if WAYMARK_BEHIND_PROXY:  # otherwise a client could claim HTTPS with this header
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = int(os.environ.get("WAYMARK_HSTS_SECONDS", "0"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
    SECURE_HSTS_PRELOAD = False
    if not SECURE_HSTS_SECONDS:
        SILENCED_SYSTEM_CHECKS = ["security.W004"]  # HSTS is a deliberate opt-in (above)
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "axes",
    "console",
]

MIDDLEWARE = [
    "console.headers.SecurityHeadersMiddleware",  # outermost: CSP on every response
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",  # static files, also with DEBUG off
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "console.middleware.DatabaseUnavailableMiddleware",
    "console.middleware.SourceMiddleware",  # ?source=NAME: which database the pages read
    "axes.middleware.AxesMiddleware",  # turns a locked-out sign-in into the lockout page
]

ROOT_URLCONF = "console.urls"
WSGI_APPLICATION = "console.wsgi.application"

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
                "console.saved_views.nav",  # saved views, listed in the nav
                "console.middleware.source_context",  # the source switcher
            ]
        },
    }
]


# The engine: same database by default (its tables live in their own schema on Postgres).
WAYMARK_DATABASE_URL = os.environ.get("WAYMARK_DATABASE_URL", DATABASE_URL)
WAYMARK_SCHEMA = os.environ.get("WAYMARK_SCHEMA", "waymark")

# "default" holds the console's own tables (users, audit trail); "waymark" is the engine's
# system database, read through unmanaged models (console/routers.py sends them there).
DATABASES = {
    "default": database_config(DATABASE_URL),
    "waymark": database_config(WAYMARK_DATABASE_URL),
}
if DATABASES["waymark"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["waymark"]["OPTIONS"] = {"options": f"-c search_path={WAYMARK_SCHEMA}"}
DATABASE_ROUTERS = ["console.routers.SystemTablesRouter"]
# Other databases the console opens with ?source=NAME (console/sources.py): each gets its own
# alias on first use; a DBOS source is read through temp views and never migrated.
WAYMARK_SOURCES = _sources.parse(os.environ.get("WAYMARK_SOURCES", ""))
WAYMARK_APP = os.environ.get("WAYMARK_APP", "demo.app:build")
WAYMARK_APP_NAME = os.environ.get("WAYMARK_APP_NAME", "waymark-demo")
WAYMARK_HEARTBEAT_TIMEOUT = float(os.environ.get("WAYMARK_HEARTBEAT_TIMEOUT", "30"))
WAYMARK_CELERY_BROKER_URL = os.environ.get("WAYMARK_CELERY_BROKER_URL", "")
# /metrics (console/metrics.py): Prometheus scrapes with "Authorization: Bearer <this>". Unset:
# only signed-in admins may read it. A secret: never logged or shown back.
WAYMARK_METRICS_TOKEN = os.environ.get("WAYMARK_METRICS_TOKEN", "")
# Alerts (console/alerts/): every runworker evaluates the rules this often (seconds), the one
# holding the lease does the work; notifications link to WAYMARK_CONSOLE_URL when it is set.
# E-mail goes through Django's SMTP backend, configured by Django's usual names.
WAYMARK_ALERT_INTERVAL = float(os.environ.get("WAYMARK_ALERT_INTERVAL", "5"))
WAYMARK_CONSOLE_URL = os.environ.get("WAYMARK_CONSOLE_URL", "")
DEFAULT_FROM_EMAIL = os.environ.get("WAYMARK_ALERT_FROM", "waymark@localhost")
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")  # a secret: never shown
EMAIL_USE_TLS = os.environ.get("EMAIL_USE_TLS", "0") == "1"
# Tracing: a link from each workflow to its trace, e.g. https://tempo.example/trace/{trace_id}
WAYMARK_TRACE_URL = os.environ.get("WAYMARK_TRACE_URL", "")
# Retention (console/retention.py, applied by runworker): keep finished workflows N days
# and/or at most M of them; per-name overrides as JSON {"name": {"days": N, "max": M}}.
WAYMARK_RETENTION_DAYS = os.environ.get("WAYMARK_RETENTION_DAYS", "")
WAYMARK_RETENTION_MAX = os.environ.get("WAYMARK_RETENTION_MAX", "")
WAYMARK_RETENTION_OVERRIDES = os.environ.get("WAYMARK_RETENTION_OVERRIDES", "")
WAYMARK_RETENTION_INTERVAL = float(os.environ.get("WAYMARK_RETENTION_INTERVAL", "600"))
# dbos-py's pickled payloads are never unpickled; "1" opts in to the restricted decoder
# (console/pickles.py: plain builtin values only, every other class refused).
WAYMARK_DECODE_PICKLES = os.environ.get("WAYMARK_DECODE_PICKLES", "0") == "1"


# Django's four standard validators, applied wherever a password is set: the admin's forms,
# `changepassword`, `createuser` and `make run` (console/devserver.py).
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": f"django.contrib.auth.password_validation.{name}"}
    for name in (
        "UserAttributeSimilarityValidator",
        "MinimumLengthValidator",
        "CommonPasswordValidator",
        "NumericPasswordValidator",
    )
]
# Login throttling (django-axes counts failed sign-ins on the console login and /admin/ alike):
# 5 failures lock the client address, and the username, each on its own, for 15 minutes; a
# success clears the count. Keying on the username alone would let anyone lock an account out;
# on the address alone, a botnet could guess one password per address: both together cost an
# attacker the most. An admin lifts a lockout early in /admin/ (Axes > Access attempts: delete)
# or with `manage.py axes_reset_username NAME` / `axes_reset_ip ADDRESS`.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses locked-out sign-ins
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = 5
AXES_COOLOFF_TIME = timedelta(minutes=15)
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_CLIENT_IP_CALLABLE = "console.http.client_address"

# Server errors (5xx, with their traceback) and security events (bad Host headers, suspicious
# operations) go to stderr when DEBUG is off. Django's own default logs them to the console
# only with DEBUG on, and otherwise mails ADMINS, which a console deployment does not have: a
# 500 in production would leave no trace. With DEBUG on Django's console handler prints them.
# The engine's and the console's events ("waymark.*", "console.*": workflow start/finish,
# executors, alerts) go to stderr at INFO, one line each with its stable action= key (stdout
# is for commands' output, like `workflows list --json`); this is also how runworker logs (it
# is a management command: Django configures it from here).
# WAYMARK_LOG_FORMAT=json makes every one of those lines a JSON object (console/logs.py).
WAYMARK_LOG_FORMAT = os.environ.get("WAYMARK_LOG_FORMAT", "text")
if WAYMARK_LOG_FORMAT not in ("text", "json"):
    raise RuntimeError(f"WAYMARK_LOG_FORMAT={WAYMARK_LOG_FORMAT!r}: use text or json")
_JSON_LOGS = WAYMARK_LOG_FORMAT == "json"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"production": {"()": "django.utils.log.RequireDebugFalse"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "actions": {"()": "console.worker.ActionFormatter"},
        "json": {"()": "console.logs.JsonFormatter"},
    },
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stderr",
            "filters": ["production"],
            "formatter": "json" if _JSON_LOGS else "plain",
        },
        "events": {
            "()": "console.logs.StderrHandler",
            "formatter": "json" if _JSON_LOGS else "actions",
        },
    },
    "loggers": {
        "django.request": {"handlers": ["stderr"], "level": "ERROR"},
        "django.security": {"handlers": ["stderr"], "level": "WARNING"},
        "waymark": {"handlers": ["events"], "level": "INFO", "propagate": False},
        "console": {"handlers": ["events"], "level": "INFO", "propagate": False},
    },
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Production serves static files from the console process itself (WhiteNoise: no separate web
# server needed): `manage.py collectstatic` copies them to STATIC_ROOT with content-hashed,
# pre-compressed names, served with far-future cache headers. With DEBUG on they are served
# straight from the app directories, unhashed, so no collectstatic is needed to develop.
STATIC_ROOT = Path(os.environ.get("WAYMARK_STATIC_ROOT", BASE_DIR / "staticfiles"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"
