"""Chairside settings: one module, driven by environment variables.

The defaults embed everything a single machine needs (SQLite, a filesystem Celery broker and
file-based mail under ``var/``). ``DATABASE_URL`` switches to PostgreSQL and ``REDIS_URL`` to a
Redis broker and cache. A malformed value stops start-up with an error naming the variable.
"""

import hashlib
import ipaddress
import secrets
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import django_stubs_ext
from csp.constants import NONE, SELF
from environs import Env, EnvError
from marshmallow.validate import Length, OneOf, Range
from whitenoise.compress import Compressor

# Lets the admin and querysets be subscripted at run time as the type stubs describe them.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent

env = Env()
env.read_env(str(BASE_DIR / ".env"), recurse=False)


class ImproperlyConfiguredError(EnvError):
    """A variable was present but unusable; the message names it."""


DEBUG = env.bool("DEBUG", default=False)
VAR_DIR = env.path("VAR_DIR", default=BASE_DIR / "var").resolve()
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    # A missing SECRET_KEY on the embedded default is generated once and kept under var/, so
    # sessions survive restarts without a secret ever entering the repository.
    key: str = env.str("SECRET_KEY", default="")
    if key:
        if len(key) < 50:
            raise ImproperlyConfiguredError("SECRET_KEY must be at least 50 characters long")
        return key
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(64))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS: list[str] = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS: list[str] = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "knox",
    "axes",
    "csp",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "scheduling",
    "booking",
    "notifications",
]

MIDDLEWARE = [
    # First, so its request latency (config.metrics, /metrics) includes everything below.
    "config.metrics.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Early, so it also marks the answers the middleware below it gives (a CSRF refusal).
    "config.caching.NoStoreMiddleware",
    "config.compression.StaticFilesMiddleware",
    # Below the static files (they have their compressed copies) and above everything that may
    # still write a response's body.
    "config.compression.CompressedDataMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # request.user.is_verified(): the session passed a second factor (django-otp); then the
    # refusal of an unverified staff session where two-factor sign-in is required.
    "django_otp.middleware.OTPMiddleware",
    "booking.access.two_factor.TwoFactorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last, as django-axes asks: it turns a locked-out sign-in into its lockout answer.
    "axes.middleware.AxesMiddleware",
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
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
# SQLite is the embedded default: WAL lets readers run beside the writer, and IMMEDIATE
# transactions take the write lock at BEGIN, so a booking's check and write cannot interleave
# with another's (PostgreSQL gets an exclusion constraint instead; see booking.models).
CONN_MAX_AGE = env.int("CONN_MAX_AGE", default=60, validate=Range(min=0))
if env.str("DATABASE_URL", default=""):
    _db = env.dj_db_url("DATABASE_URL", conn_max_age=CONN_MAX_AGE, conn_health_checks=True)
    if _db["ENGINE"] not in (
        "django.db.backends.postgresql",
        "django.db.backends.sqlite3",
    ):
        raise ImproperlyConfiguredError(
            f"DATABASE_URL must be a postgres:// or sqlite:// URL, not {_db['ENGINE']}"
        )
    if not _db.get("NAME"):
        raise ImproperlyConfiguredError("DATABASE_URL must name a database")
else:
    _db = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(VAR_DIR / "chairside.sqlite3")}
if _db["ENGINE"] == "django.db.backends.sqlite3":
    _db["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }


def _prepare_threshold() -> int | None:
    # psycopg prepares a statement once a connection has run it this many times, and PostgreSQL
    # then skips parsing and planning it: a booking repeats the same dozen statements every time.
    # A transaction-pooling PgBouncer older than 1.21 cannot follow prepared statements; "off"
    # is for deployments behind one.
    raw: str = env.str("DATABASE_PREPARE_THRESHOLD", default="5").strip().lower()
    if raw == "off":
        return None
    if not raw.isdigit():
        raise ImproperlyConfiguredError(
            f"DATABASE_PREPARE_THRESHOLD must be a whole number or 'off', not {raw!r}"
        )
    return int(raw)


if _db["ENGINE"] == "django.db.backends.postgresql":
    _db["OPTIONS"] = {
        **_db.get("OPTIONS", {}),
        # Server-side binding sends parameters apart from the SQL text, which is what lets one
        # statement be prepared once and reused with new values.
        "server_side_binding": True,
        "prepare_threshold": _prepare_threshold(),
        # JIT compilation off: our statements are short, and on a count over a partitioned table
        # (the audit log's pages) PostgreSQL's cost estimate crossed the JIT threshold and spent
        # 2.7 s of a 2.8 s query compiling (bench.growth; 32 ms without). A PgBouncer in front
        # must list "options" in ignore_startup_parameters, or set jit = off for the role.
        "options": "-c jit=off",
    }
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache and broker -----------------------------------------------------------------------
REDIS_URL: str = env.str("REDIS_URL", default="")
if REDIS_URL and not REDIS_URL.startswith(("redis://", "rediss://", "unix://")):
    raise ImproperlyConfiguredError("REDIS_URL must start with redis://, rediss:// or unix://")

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {"visibility_timeout": 3600}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    # Kombu's filesystem transport: a queue in plain files, no server to run. Both folders are
    # the same directory so producer and consumer see each other's messages.
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
# The outbox sweep, the expiry of waitlist holds and of unconfirmed online bookings. Reminders
# and holds are rows, never ETA tasks.
CELERY_BEAT_SCHEDULE = {
    "deliver-due-messages": {"task": "notifications.tasks.deliver_due", "schedule": 60.0},
    "expire-waitlist-offers": {
        "task": "booking.tasks.expire_waitlist_offers",
        "schedule": 60.0,
    },
    "expire-tentative-holds": {
        "task": "booking.tasks.expire_tentative_holds",
        "schedule": 60.0,
    },
}
# A publish that cannot reach the broker gives up quickly: the database keeps the work.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2}
CELERY_BROKER_CONNECTION_TIMEOUT = 2

# --- Mail -------------------------------------------------------------------------------------
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.filebased.EmailBackend")
EMAIL_FILE_PATH = str(VAR_DIR / "mail")
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
# Seconds a mail server may take: the sender holds the appointment's row lock meanwhile.
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10, validate=Range(min=1))
# Where patients reach this site: secure links in e-mail and calendar files start with it.
PUBLIC_BASE_URL: str = env.str("PUBLIC_BASE_URL", default="http://127.0.0.1:8000").rstrip("/")
if not PUBLIC_BASE_URL.startswith(("http://", "https://")):
    raise ImproperlyConfiguredError("PUBLIC_BASE_URL must start with http:// or https://")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="appointments@chairside.invalid")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# What was or will be sent about some visits, for the staff pages: booking calls this one
# function (it never imports notifications, which keeps the messages).
VISIT_MESSAGES = "notifications.visit_messages.visit_messages"

# --- Text messages ------------------------------------------------------------------------
SMS_BACKEND = env.str("SMS_BACKEND", default="notifications.sms.FileBackend")
SMS_FILE_PATH = str(VAR_DIR / "sms")
TWILIO_ACCOUNT_SID = env.str("TWILIO_ACCOUNT_SID", default="")
TWILIO_AUTH_TOKEN = env.str("TWILIO_AUTH_TOKEN", default="")
TWILIO_FROM_NUMBER = env.str("TWILIO_FROM_NUMBER", default="")
if SMS_BACKEND == "notifications.sms.TwilioBackend" and not (
    TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN and TWILIO_FROM_NUMBER
):
    raise ImproperlyConfiguredError(
        "SMS_BACKEND is Twilio: set TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_FROM_NUMBER"
    )
# Shared secret of the generic signed SMS webhook (/webhooks/sms/generic/); empty turns it off.
SMS_WEBHOOK_SECRET = env.str("SMS_WEBHOOK_SECRET", default="")
# At most this many texts to one number in 24 hours, whatever the rules say.
SMS_DAILY_CAP_PER_PHONE = env.int("SMS_DAILY_CAP_PER_PHONE", default=6)
# Deliverable messages are claimed in batches of this size and handed to one task each.
OUTBOX_BATCH_SIZE = env.int("OUTBOX_BATCH_SIZE", default=500)
# A message claimed this long ago and still "sending" belonged to a worker that died: retry it.
OUTBOX_STALE_CLAIM_SECONDS = env.int("OUTBOX_STALE_CLAIM_SECONDS", default=300)
# E-mail providers through django-anymail: EMAIL_BACKEND=anymail.backends.<provider>.EmailBackend
ANYMAIL: dict[str, str] = env.dict("ANYMAIL", default={})

# Online bookings per client address and hour (booking.throttle); raise it only for load tests.
BOOKINGS_PER_HOUR = env.int("BOOKINGS_PER_HOUR", default=10, validate=Range(min=1))
# Proof of work (booking.pow, ALTCHA, self-hosted): once a client network has tried this many
# online bookings in the hour (counted with BOOKINGS_PER_HOUR), the next one must carry a solved
# challenge. 0 asks it of every booking; the load test sets a large number.
POW_AFTER_ATTEMPTS = env.int("POW_AFTER_ATTEMPTS", default=1, validate=Range(min=0))
# The challenge's secret counter is drawn below this: a browser tries about half of it, well
# under a second at the default.
POW_MAX_NUMBER = env.int("POW_MAX_NUMBER", default=50_000, validate=Range(min=1))
POW_CHALLENGE_MINUTES = env.int("POW_CHALLENGE_MINUTES", default=10, validate=Range(min=1))
# Signs the challenges; derived from SECRET_KEY unless given.
ALTCHA_HMAC_KEY = env.str(
    "ALTCHA_HMAC_KEY",
    default=hashlib.sha256(f"chairside.altcha:{SECRET_KEY}".encode()).hexdigest(),
    validate=Length(min=32),
)

# --- Monitoring -------------------------------------------------------------------------------
# /metrics (config.metrics) answers whoever sends "Authorization: Bearer <METRICS_TOKEN>"; with
# no token, only requests from this machine's loopback that came through no proxy.
METRICS_TOKEN: str = env.str("METRICS_TOKEN", default="")
if METRICS_TOKEN and len(METRICS_TOKEN) < 24:
    raise ImproperlyConfiguredError("METRICS_TOKEN must be at least 24 characters long")
# Error reports to Sentry (or a compatible service) when set; patient data is scrubbed first
# (config.errors). Off when empty.
SENTRY_DSN: str = env.str("SENTRY_DSN", default="")
SENTRY_ENVIRONMENT: str = env.str("SENTRY_ENVIRONMENT", default="production")
if SENTRY_DSN:
    from config.errors import start_error_reporting

    start_error_reporting(SENTRY_DSN, environment=SENTRY_ENVIRONMENT)

# --- Outbound webhooks -----------------------------------------------------------------------
# Receivers are public https:// addresses unless these say otherwise (a clinic's integration
# engine on its own network): a choice made here, not by whoever can open the setup page.
WEBHOOKS_ALLOW_PRIVATE_ADDRESSES = env.bool("WEBHOOKS_ALLOW_PRIVATE_ADDRESSES", default=DEBUG)
WEBHOOKS_ALLOW_HTTP = env.bool("WEBHOOKS_ALLOW_HTTP", default=DEBUG)
# Seconds to connect, and for the whole request; a receiver that takes longer is retried later.
WEBHOOK_CONNECT_TIMEOUT = env.float("WEBHOOK_CONNECT_TIMEOUT", default=5.0, validate=Range(min=0.1))
WEBHOOK_TIMEOUT = env.float("WEBHOOK_TIMEOUT", default=10.0, validate=Range(min=0.1))
# Tries before an event is marked failed (backoff from 30 s, doubling, at most 6 h apart).
WEBHOOK_MAX_ATTEMPTS = env.int("WEBHOOK_MAX_ATTEMPTS", default=10, validate=Range(min=1))
WEBHOOK_BATCH_SIZE = env.int("WEBHOOK_BATCH_SIZE", default=200, validate=Range(min=1))
# A claim left by a worker that died is given back after this many seconds.
WEBHOOK_STALE_CLAIM_SECONDS = env.int(
    "WEBHOOK_STALE_CLAIM_SECONDS", default=300, validate=Range(min=30)
)

# --- Retention --------------------------------------------------------------------------------
# Days a row is kept once it is finished with, before the daily retention task removes it
# (notifications.retention; docs/operations.md, "Retention and disk"). Sent, failed, skipped and
# cancelled messages with their delivery attempts, and inbound texts, count from their last change;
# a message still waiting or being sent is never removed.
RETENTION_MESSAGES_DAYS = env.int("RETENTION_MESSAGES_DAYS", default=400, validate=Range(min=1))
RETENTION_INBOUND_DAYS = env.int("RETENTION_INBOUND_DAYS", default=400, validate=Range(min=1))
# Delivered or failed webhook events and their tries: a receiver's retries are long over.
RETENTION_WEBHOOK_DAYS = env.int("RETENTION_WEBHOOK_DAYS", default=90, validate=Range(min=1))
# Stored answers to Idempotency-Key requests: a client retries within minutes, not weeks.
RETENTION_IDEMPOTENCY_DAYS = env.int("RETENTION_IDEMPOTENCY_DAYS", default=7, validate=Range(min=1))
# Secure links, online-booking holds and waitlist offers, counted from their expiry.
RETENTION_EXPIRED_DAYS = env.int("RETENTION_EXPIRED_DAYS", default=30, validate=Range(min=1))
# The audit log is a legal record: whole months older than this are archived to
# VAR_DIR/archive/audit/ and only then dropped, a partition at a time (PostgreSQL).
AUDIT_RETENTION_YEARS = env.int("AUDIT_RETENTION_YEARS", default=6, validate=Range(min=1))
# Rows deleted per statement, each batch its own short transaction, so the task never holds
# locks for long or builds one huge transaction behind the live traffic.
RETENTION_BATCH_SIZE = env.int("RETENTION_BATCH_SIZE", default=5000, validate=Range(min=1))

# --- Time and language ----------------------------------------------------------------------
# Stored times are UTC; each location carries its own IANA zone for wall-clock rules.
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# Phone numbers written without a country code are read as this region's (ISO 3166 code).
DEFAULT_PHONE_REGION = env.str("DEFAULT_PHONE_REGION", default="US").upper()

# The zone offered when a clinic is created; validated now so a typo fails at start-up.
DEFAULT_CLINIC_TIMEZONE = env.str("DEFAULT_CLINIC_TIMEZONE", default="America/New_York")
try:
    ZoneInfo(DEFAULT_CLINIC_TIMEZONE)
except (ZoneInfoNotFoundError, ValueError) as exc:
    raise ImproperlyConfiguredError(
        f"DEFAULT_CLINIC_TIMEZONE is not an IANA time zone: {DEFAULT_CLINIC_TIMEZONE!r}"
    ) from exc

# --- Static files ---------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)  # WhiteNoise warns about a missing root
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        # collectstatic (the Dockerfile, make run) writes each file under a name carrying a hash
        # of its content, beside a .gz and a .br of it, and the manifest the pages' links are
        # taken from: a changed file gets a new address, so a browser keeps each one for a year
        # (config.compression.StaticFilesMiddleware). Under DEBUG the links are the plain names.
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
# The apps' own folders, as they are edited (no hash, no compressed copy), only when developing.
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
# Source maps are fetched by a developer's tools only: compressing them is most of the build's time.
WHITENOISE_SKIP_COMPRESS_EXTENSIONS = [*Compressor.SKIP_COMPRESS_EXTENSIONS, "map"]

# --- Security ---------------------------------------------------------------------------------
# HTTPS=true is how a deployment behind TLS says so; everything that only makes sense over TLS
# follows from it, so development and production run the same code paths.
HTTPS = env.bool("HTTPS", default=False)
SECURE_SSL_REDIRECT = HTTPS
# Health probes and Prometheus' scrapes come from inside the container network over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
BEHIND_PROXY = env.bool("BEHIND_PROXY", default=False)
if BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Whose address a request is from, for lockouts, rate limits and the audit log alike
# (booking.access.client). Behind the proxy each of PROXY_COUNT proxies appends the address it saw
# to X-Forwarded-For, so the client is the PROXY_COUNT-th from the right; anything further left
# was written by the client itself. TRUSTED_PROXIES (addresses or networks), when set, are the
# only peers whose X-Forwarded-For counts: a connection from elsewhere went around the proxy.
# Without BEHIND_PROXY only the connection's own address counts.
PROXY_COUNT = env.int("PROXY_COUNT", default=1, validate=Range(min=1))


def _trusted_proxies() -> list[str]:
    entries: list[str] = env.list("TRUSTED_PROXIES", default=[])
    networks = []
    for entry in entries:
        try:
            networks.append(str(ipaddress.ip_network(entry.strip(), strict=False)))
        except ValueError as exc:
            raise ImproperlyConfiguredError(
                f"TRUSTED_PROXIES must list IP addresses or networks (e.g. 172.16.0.0/12), "
                f"not {entry!r}"
            ) from exc
    return networks


TRUSTED_PROXIES = _trusted_proxies()
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
# Every page, API answer and error: our own scripts, styles and images only. No inline script or
# style anywhere (pages keep data in json_script blocks, which are not run), so an injected
# <script> or style="" does nothing. The API docs use drf-spectacular's split view, whose start-up
# script is a file too. data: images are Swagger UI's and EventCalendar's icons.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}
SILENCED_SYSTEM_CHECKS: list[str] = []

# --- Staff sign-in ----------------------------------------------------------------------------
LOGIN_URL = "staff-login"
LOGIN_REDIRECT_URL = "staff-home"
LOGOUT_REDIRECT_URL = "staff-login"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Lockout: this many failed sign-ins for one username, or from one address, lock it out.
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5, validate=Range(min=1))
AXES_COOLOFF_TIME = timedelta(
    minutes=env.int("LOGIN_LOCKOUT_MINUTES", default=15, validate=Range(min=1))
)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "staff/locked_out.html"
AXES_VERBOSE = False
# The client's address as the rate limits and the audit log take it (PROXY_COUNT above): behind
# the proxy every connection comes from the proxy, and one lockout would shut out everybody.
AXES_CLIENT_IP_CALLABLE = "booking.access.client.client_ip"
# Idle logout: a session lives this long after the last request (every request renews it).
SESSION_COOKIE_AGE = 60 * env.int("STAFF_IDLE_MINUTES", default=30, validate=Range(min=1))
SESSION_SAVE_EVERY_REQUEST = True
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
# Two-factor sign-in (booking.access.two_factor): superusers, admins and prescribers always, and
# everyone at a location that asks it of all its staff. false lifts the requirement (e.g. behind
# single sign-on that has its own); whoever enrolled an authenticator is still asked for it.
TWO_FACTOR_REQUIRED = env.bool("TWO_FACTOR_REQUIRED", default=True)
OTP_TOTP_ISSUER = "Chairside"
# After each wrong code a device waits 1, 2, 4, 8… seconds before it checks another.
OTP_TOTP_THROTTLE_FACTOR = 1
OTP_STATIC_THROTTLE_FACTOR = 1
# The demo clinic's staff accounts (seed_demo) sign in with this; it is never used otherwise.
DEMO_STAFF_PASSWORD = env.str("DEMO_STAFF_PASSWORD", default="chairside-demo")
# A new staff account's set-password link (booking.staff_accounts) works this long, and once.
PASSWORD_RESET_TIMEOUT = 3 * 24 * 60 * 60

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- API ----------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "config.api.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "knox.auth.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "UNAUTHENTICATED_USER": None,
}
# Staff API tokens (django-rest-knox, `manage.py staff_token`): only a digest of each is stored,
# and each stops working this many hours after it was issued (a working day by default).
API_TOKEN_TTL_HOURS = env.int("API_TOKEN_TTL_HOURS", default=10, validate=Range(min=1, max=24 * 30))
REST_KNOX = {
    "TOKEN_TTL": timedelta(hours=API_TOKEN_TTL_HOURS),
    "AUTH_HEADER_PREFIX": "Token",
    # A token's lifetime runs from when it was issued, however much it is used.
    "AUTO_REFRESH": False,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Chairside API",
    "DESCRIPTION": "Clinic appointment and consultation booking.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # Swagger UI's deep links put a link inside each operation's toggle button: one control
    # nested in another, which keyboards and screen readers cannot tell apart (WCAG 4.1.2).
    "SWAGGER_UI_SETTINGS": {"deepLinking": False},
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # The status codes of a visit, shared by the staff and series answers: one named enum.
    "ENUM_NAME_OVERRIDES": {"AppointmentStatusEnum": "booking.models.AppointmentStatus.values"},
}

# A secure link's address is its key and a staff search's query string holds what was searched
# for (a name, a date of birth): neither may reach a log. Every record goes out through the
# redacting filter — Django's "Not Found: /a/<token>/" warnings and runserver's request lines
# (their own handler, which Django's defaults would otherwise give them) included; gunicorn's
# access log has its own logger (config.gunicorn).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "config.redaction.RedactingFilter"}},
    "formatters": {
        "django.server": {
            "()": "django.utils.log.ServerFormatter",
            "format": "[{server_time}] {message}",
            "style": "{",
        }
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "filters": ["redact"]},
        "django.server": {
            "class": "logging.StreamHandler",
            "formatter": "django.server",
            "filters": ["redact"],
        },
    },
    "loggers": {
        # Only through the root's filtered handler, not also Django's default unfiltered ones.
        "django": {"handlers": []},
        "django.server": {"handlers": ["django.server"], "level": "INFO", "propagate": False},
    },
    "root": {
        "handlers": ["console"],
        "level": env.str(
            "LOG_LEVEL",
            default="INFO",
            validate=OneOf(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]),
        ),
    },
}
