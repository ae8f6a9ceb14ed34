"""Settings, all read from the environment. See docs/configuration.md for the table.

Embedded defaults (SQLite, tasks in process, local files, mail to the console) let a fresh
clone run with one command; production sets the variables. With DEBUG off, SECRET_KEY is
required and `manage.py check --deploy` is clean.
"""

from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from mssante.env import env_bool, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not (DEBUG or env_bool("SECRET_KEY_NOT_NEEDED", False)):
        raise ImproperlyConfigured("SECRET_KEY (or SECRET_KEY_FILE) is required when DEBUG is off")
    SECRET_KEY = "django-insecure-development-key-only-used-with-debug-on-or-offline-commands"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
# The public base URL of every link in an e-mail (notifications, invitations, warnings). Without
# SITE_URL it is the loopback address on PORT, the port `scripts/run` serves on.
SITE_URL = (env_str("SITE_URL") or f"http://127.0.0.1:{env_int('PORT', 8000)}").rstrip("/")

INSTALLED_APPS = [
    "audit.admin_config.AuditedAdminConfig",  # django.contrib.admin, every deletion audited
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
    "accounts",
    "audit",
    "mailboxes",
    "patients",
    "health_record",
    "webmail",
    "directory",
    "automation",
    "api",
    "clients",
    "operations",
]

MIDDLEWARE = [
    # Under /api/, a 500 is a problem with DEBUG on as off (api/problems.py).
    "api.problems.ServerErrorProblemMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "accounts.middleware.InactivityTimeoutMiddleware",
    "accounts.middleware.RequireProfessionalMFAMiddleware",
    "accounts.middleware.IdentityProviderUnavailableMiddleware",
]

ROOT_URLCONF = "mssante.urls"
WSGI_APPLICATION = "mssante.wsgi.application"

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
                "accounts.context_processors.portal",
                "accounts.context_processors.session_timeout",
            ],
            "libraries": {"links": "mssante.links"},
        },
    },
    # Jinja2 renders the one hot partial of the product, the rows of the message list
    # (templates/jinja2/webmail/_row.html): about five times cheaper than the same markup in
    # Django's template language, on the page professionals load all day (bench/RESULTS.md,
    # issue 13). Every other page is a Django template. Auto-escaping is on.
    {
        "BACKEND": "django.template.backends.jinja2.Jinja2",
        "NAME": "jinja2",
        "DIRS": [BASE_DIR / "templates" / "jinja2"],
        "APP_DIRS": False,
        "OPTIONS": {"environment": "mssante.jinja2.environment"},
    },
]

# --- Database -----------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'db.sqlite3'}"
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL,
        conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # The server binds the parameters (DB_SERVER_SIDE_BINDING, on by default since issue 17), and
    # a statement run DB_PREPARE_THRESHOLD times on a connection is prepared there, parsed and
    # planned once (Django's documented OPTIONS, passed to psycopg 3). Measured on the SMTP
    # ingest: 0.45 → 0.62 of Postfix's rate at 10 KB (bench/RESULTS.md, issue 17).
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        server_side_binding=env_bool("DB_SERVER_SIDE_BINDING", True),
        prepare_threshold=env_int("DB_PREPARE_THRESHOLD", 5),
    )
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # Seconds a query waits for a lock held by another connection (SQLite has one writer).
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = env_int("SQLITE_TIMEOUT", 20)
    # A transaction takes the write lock when it begins (Django's documented option): a deferred
    # one that read first and then writes while another connection writes fails at once with
    # "database is locked" (SQLite does not wait there, it would deadlock), whatever the timeout.
    # The embedded run has the web, SMTP and IMAP servers and the in-process tasks on one file.
    DATABASES["default"]["OPTIONS"]["transaction_mode"] = "IMMEDIATE"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth ---------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 10},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "home"
ACCOUNT_LOGOUT_REDIRECT_URL = "account_login"
ACCOUNT_ADAPTER = "accounts.adapter.AccountAdapter"
SOCIALACCOUNT_ADAPTER = "accounts.adapter.SocialAccountAdapter"
ACCOUNT_LOGIN_METHODS = {"email", "username"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "username*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_LOGOUT_ON_GET = False
ACCOUNT_RATE_LIMITS = {
    "login_failed": env_str("LOGIN_RATE_LIMIT", "10/m/ip,5/5m/key"),
    "reset_password": "20/m/ip,5/m/key",
}
ACCOUNT_PASSWORD_RESET_BY_CODE_ENABLED = False
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = env_str("MFA_TOTP_ISSUER", "MSSanté")
# Codes of the neighbouring 30 s steps are accepted too (RFC 6238 §5.2: a code typed as its step
# ends, or a phone's clock a few seconds off); 0 accepts the current step only.
MFA_TOTP_TOLERANCE = env_int("MFA_TOTP_TOLERANCE", 1)
# Professionals must enrol a second factor before reaching any page (RULES.md §5): on unless
# DEBUG; turning it off in production makes `check --deploy` warn (accounts.W001).
MFA_REQUIRED_FOR_PROFESSIONALS = env_bool("MFA_REQUIRED_FOR_PROFESSIONALS", not DEBUG)
# Inactivity timeout (issue 15 item 22): a professional's session ends after this many seconds
# without a request (0: off), with a warning SESSION_INACTIVITY_WARNING seconds before; a
# patient's after SESSION_INACTIVITY_TIMEOUT_PATIENT (0: only SESSION_COOKIE_AGE).
SESSION_INACTIVITY_TIMEOUT = env_int("SESSION_INACTIVITY_TIMEOUT", 30 * 60)
SESSION_INACTIVITY_TIMEOUT_PATIENT = env_int("SESSION_INACTIVITY_TIMEOUT_PATIENT", 0)
SESSION_INACTIVITY_WARNING = env_int("SESSION_INACTIVITY_WARNING", 120)
SOCIALACCOUNT_ONLY = False
SOCIALACCOUNT_AUTO_SIGNUP = False
SOCIALACCOUNT_EMAIL_AUTHENTICATION = False
SOCIALACCOUNT_PROVIDERS = {}
if env_str("OIDC_CLIENT_ID"):
    # Pro Santé Connect (or any OpenID Connect provider) switched on by configuration.
    SOCIALACCOUNT_PROVIDERS["openid_connect"] = {
        "OAUTH_PKCE_ENABLED": True,
        "APPS": [
            {
                "provider_id": env_str("OIDC_PROVIDER_ID", "psc"),
                "name": env_str("OIDC_PROVIDER_NAME", "Pro Santé Connect"),
                "client_id": env_str("OIDC_CLIENT_ID"),
                "secret": env_str("OIDC_CLIENT_SECRET", ""),
                "settings": {
                    "server_url": env_str("OIDC_SERVER_URL", ""),
                    "token_auth_method": env_str("OIDC_TOKEN_AUTH_METHOD", "client_secret_basic"),
                    "auth_params": {"acr_values": env_str("OIDC_ACR_VALUES", "eidas1")},
                    "scope": ["openid", "scope_all"],
                },
            }
        ],
    }

# --- I18n ---------------------------------------------------------------------------------
LANGUAGE_CODE = "fr"
LANGUAGES = [("fr", _("Français"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
# Times of day read "9 h 30" on pages as in messages (mssante/formats/fr/formats.py); the input
# formats stay Django's.
FORMAT_MODULE_PATH = ["mssante.formats"]
TIME_ZONE = "Europe/Paris"
USE_I18N = True
USE_TZ = True

# --- Static and stored files --------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
# htmx is installed from the npm registry at set-up (package.json), never committed.
if (BASE_DIR / "node_modules" / "htmx.org" / "dist").is_dir():
    STATICFILES_DIRS.append(("vendor/htmx", BASE_DIR / "node_modules" / "htmx.org" / "dist"))
MEDIA_ROOT = VAR_DIR / "media"
# Stored files are never served by URL: every download goes through an access-checked view.
MEDIA_URL = "/_stored-files-are-not-served/"

S3_BUCKET = env_str("S3_BUCKET")
if S3_BUCKET:
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": S3_BUCKET,
            "endpoint_url": env_str("S3_ENDPOINT_URL") or None,
            "access_key": env_str("S3_ACCESS_KEY_ID"),
            "secret_key": env_str("S3_SECRET_ACCESS_KEY"),
            "region_name": env_str("S3_REGION", "us-east-1"),
            "addressing_style": env_str("S3_ADDRESSING_STYLE", "path"),
            "signature_version": "s3v4",
            "default_acl": None,
            "querystring_auth": True,
            "file_overwrite": False,
            "location": env_str("S3_PREFIX", ""),
        },
    }
else:
    _default_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(MEDIA_ROOT), "base_url": None},
    }
STORAGES = {
    "default": _default_storage,
    "staticfiles": {
        "BACKEND": env_str(
            "STATICFILES_BACKEND",
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage",
        )
    },
}

# --- E-mail (notifications and the outbound relay) -----------------------------------------
EMAIL_HOST = env_str("EMAIL_HOST")
if EMAIL_HOST:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_PORT = env_int("EMAIL_PORT", 25)
    EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
    EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
    EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
    EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
    EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 30)
elif env_str("EMAIL_FILE_PATH"):
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = env_str("EMAIL_FILE_PATH")
else:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "ne-pas-repondre@patient.mssante.fr")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# The outbound relay towards other MSSanté operators (defaults to the e-mail settings above).
RELAY_HOST = env_str("RELAY_HOST", EMAIL_HOST or "")
RELAY_PORT = env_int("RELAY_PORT", env_int("EMAIL_PORT", 25))
RELAY_USERNAME = env_str("RELAY_USERNAME", "")
RELAY_PASSWORD = env_str("RELAY_PASSWORD", "")
RELAY_USE_TLS = env_bool("RELAY_USE_TLS", False)
RELAY_TIMEOUT = env_int("RELAY_TIMEOUT", 30)
RELAY_RETRY_WINDOW_SECONDS = env_int("RELAY_RETRY_WINDOW_SECONDS", 5 * 24 * 3600)

# --- Celery -------------------------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600)}
# beat keeps the last run of each job in this file; Celery's default is relative to the directory
# beat starts in (the checkout, with the documented command), which may be read-only there.
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    "purge-audit-events": {"task": "audit.tasks.purge_audit_events", "schedule": 24 * 3600},
}

# --- Cache --------------------------------------------------------------------------------
REDIS_CACHE_URL = env_str("CACHE_URL", "")
if REDIS_CACHE_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_CACHE_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- The MSSanté domain -------------------------------------------------------------------
PATIENT_DOMAIN = (env_str("PATIENT_DOMAIN", "patient.mssante.fr") or "").lower()
# Trust every domain under .mssante.fr, beside the hosted domains and the imported white list.
TRUST_ALL_MSSANTE = env_bool("TRUST_ALL_MSSANTE", False)
# How long a process keeps the hosted and trusted domain names (0: read them on every message).
TRUST_CACHE_SECONDS = env_int("TRUST_CACHE_SECONDS", 10)
MAILBOX_DEFAULT_QUOTA = env_int("MAILBOX_DEFAULT_QUOTA", 2 * 1024**3)
MAILBOX_MAX_MESSAGE_BYTES = env_int("MAILBOX_MAX_MESSAGE_BYTES", 25 * 1024**2)
PATIENT_MAX_MESSAGE_BYTES = env_int("PATIENT_MAX_MESSAGE_BYTES", 25 * 1024**2)
# A page shows at most this many characters of a message body, then says the rest is in the
# downloadable message (mailboxes/shown_body.py). 300,000 characters is about 150 printed pages,
# far above any letter a person writes, and renders in well under a second on a phone; a 25 MB
# body shown whole made a 26.7 MB page that took about 50 s in Chromium at 375 px.
BODY_DISPLAY_MAX_CHARS = env_int("BODY_DISPLAY_MAX_CHARS", 300_000)
ATTACHMENT_MAX_BYTES = env_int("ATTACHMENT_MAX_BYTES", 10 * 1024**2)
# An IHE_XDM.zip is read for its CDA codes within this many inflated bytes (a zip bomb is refused).
XDM_MAX_DECOMPRESSED_BYTES = env_int("XDM_MAX_DECOMPRESSED_BYTES", 50 * 1024**2)
HEALTH_DOCUMENT_MAX_BYTES = env_int("HEALTH_DOCUMENT_MAX_BYTES", 5 * 1024**2)
# An unqualified INS was tolerated until end 2022; a structure chooses its policy.
INS_REQUIRE_QUALIFIED = env_bool("INS_REQUIRE_QUALIFIED", False)
AUDIT_RETENTION_DAYS = env_int("AUDIT_RETENTION_DAYS", 183)
MAILBOX_INACTIVITY_DAYS = env_int("MAILBOX_INACTIVITY_DAYS", 365)
# The owner of an unused box is warned this many days before its deletion (mailboxes/inactivity.py).
MAILBOX_INACTIVITY_WARNING_DAYS = env_int("MAILBOX_INACTIVITY_WARNING_DAYS", 30)
CELERY_BEAT_SCHEDULE["mailbox-inactivity-warn"] = {
    "task": "mailboxes.tasks.warn_inactive_mailboxes",
    "schedule": 24 * 3600,
}
CELERY_BEAT_SCHEDULE["mailbox-inactivity-delete"] = {
    "task": "mailboxes.tasks.delete_inactive_mailboxes",
    "schedule": 24 * 3600,
}
TRASH_RETENTION_DAYS = env_int("TRASH_RETENTION_DAYS", 30)
# How often an open webmail page asks for new mail (seconds; issue 16 item 15).
WEBMAIL_POLL_SECONDS = env_int("WEBMAIL_POLL_SECONDS", 30)

# Inbound SMTP gateway (manage.py runsmtpd).
SMTPD_HOST = env_str("SMTPD_HOST", "127.0.0.1")
SMTPD_PORT = env_int("SMTPD_PORT", 2525)
SMTPD_TLS_CERT = env_str("SMTPD_TLS_CERT", "")
SMTPD_TLS_KEY = env_str("SMTPD_TLS_KEY", "")
SMTPD_REQUIRE_TLS = env_bool("SMTPD_REQUIRE_TLS", bool(SMTPD_TLS_CERT))

# --- Security -----------------------------------------------------------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
# The header only declares the wish; submitting the domain to the preload list stays a manual step.
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 8 * 3600)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SILENCED_SYSTEM_CHECKS = []
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "frame-src": ["'self'"],
        "frame-ancestors": ["'self'"],
        "form-action": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
    }
}

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    # The process's standard error itself (sys.__stderr__), not whatever sys.stderr is when logging
    # is configured: a test runner's capture stream there is closed when its run ends, and a line
    # written afterwards (a thread or an exit handler still logging) would be lost in a "Logging
    # error" traceback. pytest still captures these lines (it captures file descriptor 2).
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.__stderr__"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}

# The patient-domain policy the delivery path asks (mailboxes/patient_domain.py).
PATIENT_POLICY = env_str("PATIENT_POLICY", "patients.policy.PatientPolicy")

# --- Mail in and out: SMTP gateway TLS and workers, relay retries (docs/smtp.md) -----------
# The four suites of the MSSanté TLS 1.2 profile (RULES.md §5).
SMTPD_TLS_CIPHERS = env_str(
    "SMTPD_TLS_CIPHERS",
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-SHA384:ECDHE-RSA-AES128-SHA256",
)
# "1.2" pins the listener to TLS 1.2 exactly; empty also allows TLS 1.3.
SMTPD_TLS_MAX_VERSION = env_str("SMTPD_TLS_MAX_VERSION", "")
SMTPD_HOSTNAME = env_str("SMTPD_HOSTNAME", "")
SMTPD_WORKERS = env_int("SMTPD_WORKERS", 8)
SMTPD_PROCESSES = env_int("SMTPD_PROCESSES", 1)
# MAIL and RCPT answers are reused this long (DATA always decides again from the database).
SMTPD_DECISION_CACHE_SECONDS = env_int("SMTPD_DECISION_CACHE_SECONDS", 5)
SMTPD_TIMEOUT = env_int("SMTPD_TIMEOUT", 300)
SMTPD_MAX_RECIPIENTS = env_int("SMTPD_MAX_RECIPIENTS", 100)
# The largest message the gateway reads (EHLO SIZE): over the largest a box takes, a message to
# patients only is answered by the patient domain's automatic return "maximum size exceeded"
# (RULES.md §3), its body counted and dropped, never held; over this, 552 at once. 0: no returns
# for size, the gateway reads no more than the limits (docs/smtp.md).
SMTP_OVERSIZE_RETURN_MAX_BYTES = env_int("SMTP_OVERSIZE_RETURN_MAX_BYTES", 100 * 1024**2)
# Mail loops (RFC 5321 §6.3): a message whose header block holds more `Received:` fields than
# this is refused, 554 5.4.6, nothing stored (Postfix's hopcount_limit, also 50).
SMTP_HOP_LIMIT = env_int("SMTP_HOP_LIMIT", 50)
RELAY_TLS_CA_FILE = env_str("RELAY_TLS_CA_FILE", "")
RELAY_TLS_VERIFY = env_bool("RELAY_TLS_VERIFY", True)
# import_whitelist refuses (unless --force) a list that removes more than this percentage of the
# white-list domains present: a truncated file must not cut operators off (issue 15 item 7).
WHITELIST_MAX_REMOVED_PERCENT = env_int("WHITELIST_MAX_REMOVED_PERCENT", 10)
# Like SMTPD_TLS_MAX_VERSION, for the relay client: "1.2" pins TLS 1.2; empty allows TLS 1.3.
RELAY_TLS_MAX_VERSION = env_str("RELAY_TLS_MAX_VERSION", SMTPD_TLS_MAX_VERSION)
RELAY_HELO_NAME = env_str("RELAY_HELO_NAME", "")
# Backoff of a temporary failure: 1, 2, 4 minutes, then every 5 minutes (a hospital expects a
# relay back in service to carry its mail within minutes, not an hour).
RELAY_RETRY_BASE_SECONDS = env_int("RELAY_RETRY_BASE_SECONDS", 60)
RELAY_RETRY_MAX_SECONDS = env_int("RELAY_RETRY_MAX_SECONDS", 300)
# A row left in "sending" longer than this lost its worker: the sweeper puts it back in line.
# It must outlast the longest SMTP transaction (a handful of commands of RELAY_TIMEOUT each), or
# a slow send could be taken back and sent twice: 6 × RELAY_TIMEOUT, 3 minutes by default.
RELAY_SENDING_TIMEOUT_SECONDS = env_int("RELAY_SENDING_TIMEOUT_SECONDS", 6 * RELAY_TIMEOUT)
# The sweeper leaves fresh rows to the task enqueued on commit for this long.
RELAY_SWEEP_GRACE_SECONDS = env_int("RELAY_SWEEP_GRACE_SECONDS", 60)
# Celery queue of the relay tasks (empty: the default queue).
RELAY_QUEUE = env_str("RELAY_QUEUE", "")
CELERY_BEAT_SCHEDULE["relay-sweep-outbox"] = {
    "task": "mailboxes.tasks.sweep_outbox",
    "schedule": env_int("RELAY_SWEEP_INTERVAL_SECONDS", 60),
}

# Notifications and automatic returns follow the relay's discipline with the relay's settings
# above (backoff, "sending" timeout, sweep grace); a notification still failing temporarily
# after this window is recorded as failed (docs/operations.md "Queues and sweepers").
NOTIFICATION_RETRY_WINDOW_SECONDS = env_int("NOTIFICATION_RETRY_WINDOW_SECONDS", 24 * 3600)
CELERY_BEAT_SCHEDULE["patients-sweep-notifications"] = {
    "task": "patients.tasks.sweep_notifications",
    "schedule": env_int("RELAY_SWEEP_INTERVAL_SECONDS", 60),
}
CELERY_BEAT_SCHEDULE["patients-sweep-automatic-returns"] = {
    "task": "patients.tasks.sweep_automatic_returns",
    "schedule": env_int("RELAY_SWEEP_INTERVAL_SECONDS", 60),
}

CELERY_BEAT_SCHEDULE["webmail-purge-expired-trash"] = {
    # Empties what sat longer than TRASH_RETENTION_DAYS in a trash (webmail/tasks.py).
    "task": "webmail.purge_expired_trash",
    "schedule": 3600.0,
}
# Search index, off the ingest path (webmail/search_index.py, issue 17): the indexer runs every
# SEARCH_INDEX_INTERVAL_SECONDS (it is also the queue's sweeper), SEARCH_INDEX_BATCH messages per
# transaction, for at most SEARCH_INDEX_MAX_SECONDS per run; the first SEARCH_BODY_CHARS
# characters of a text body are indexed (with subject, names, addresses, attachment names):
# 4,000 since issue 17's measure of `to_tsvector('french')`, about 0.25 ms of PostgreSQL CPU per
# 1,000 characters, the indexer's largest cost (bench/RESULTS.md, branch i17-index).
SEARCH_INDEX_INTERVAL_SECONDS = env_int("SEARCH_INDEX_INTERVAL_SECONDS", 1)
SEARCH_INDEX_BATCH = env_int("SEARCH_INDEX_BATCH", 200)
SEARCH_INDEX_MAX_SECONDS = env_int("SEARCH_INDEX_MAX_SECONDS", 20)
SEARCH_BODY_CHARS = env_int("SEARCH_BODY_CHARS", 4000)
CELERY_BEAT_SCHEDULE["webmail-index-search"] = {
    "task": "webmail.index_search",
    "schedule": float(SEARCH_INDEX_INTERVAL_SECONDS),
    # A run that is late is superseded by the next one (they share the queue).
    "options": {"expires": max(SEARCH_INDEX_INTERVAL_SECONDS * 5, 10)},
}
CELERY_BEAT_SCHEDULE["webmail-fill-address-books"] = {
    # Contacts from the mail exchanged (webmail/contacts.py); pages also fill on opening.
    "task": "webmail.fill_address_books",
    "schedule": 600.0,
}

# --- Message store and delivery path (docs/messaging.md) ------------------------------------
# The patient domain's system sender (automatic returns, MDNs of patients, test answers);
# hosted domains use mailer-daemon@<domain> (mailboxes/reports.py).
PATIENT_SYSTEM_ADDRESS = env_str("PATIENT_SYSTEM_ADDRESS", f"ne-pas-repondre@{PATIENT_DOMAIN}").lower()
CELERY_BEAT_SCHEDULE["mailbox-sweep-incoming-actions"] = {
    # Absence replies and forwards whose task was lost (mailboxes/box_actions.py).
    "task": "mailboxes.tasks.sweep_incoming_actions",
    "schedule": 60.0,
}

# --- Directory: the national MSSanté directory (directory/, docs/directory.md) -------------
# Where the scheduled import fetches the extract: a local path or an https:// URL (empty: none).
DIRECTORY_IMPORT_SOURCE = env_str("DIRECTORY_IMPORT_SOURCE", "")
# Hour and minute (server time zone) of the daily scheduled import.
DIRECTORY_IMPORT_HOUR = env_int("DIRECTORY_IMPORT_HOUR", 3)
DIRECTORY_IMPORT_MINUTE = env_int("DIRECTORY_IMPORT_MINUTE", 30)
# A download larger than this is refused (the real extract is about 90 MB, 20 MB zipped).
DIRECTORY_DOWNLOAD_MAX_BYTES = env_int("DIRECTORY_DOWNLOAD_MAX_BYTES", 1024**3)
# CA bundle to verify the HTTPS server of DIRECTORY_IMPORT_SOURCE (empty: the system's).
DIRECTORY_IMPORT_CA_FILE = env_str("DIRECTORY_IMPORT_CA_FILE", "")
# An import that would remove more than this share of the national entries is refused unless
# forced (a file cut at a line end looks well formed).
DIRECTORY_MAX_REMOVED_PERCENT = env_int("DIRECTORY_MAX_REMOVED_PERCENT", 20)
# Recipient completion and directory searches allowed per user and per minute.
DIRECTORY_SEARCH_RATE_PER_MINUTE = env_int("DIRECTORY_SEARCH_RATE_PER_MINUTE", 120)
CELERY_BEAT_SCHEDULE["directory-import"] = {
    "task": "directory.import_scheduled",
    "schedule": crontab(hour=DIRECTORY_IMPORT_HOUR, minute=DIRECTORY_IMPORT_MINUTE),
}


# --- Automation: message models, convocations, campaigns (automation/, docs/automation.md) -
# How many messages one box may send a day through automation (models, convocations,
# reminders, campaigns); a campaign that reaches it pauses with a clear message.
AUTOMATION_DAILY_LIMIT = env_int("AUTOMATION_DAILY_LIMIT", 20000)
# Local time of day (Europe/Paris) at which D-n reminders leave.
AUTOMATION_REMINDER_TIME = env_str("AUTOMATION_REMINDER_TIME", "09:00")
AUTOMATION_REMINDER_BUDGET_SECONDS = env_int("AUTOMATION_REMINDER_BUDGET_SECONDS", 50)
AUTOMATION_CSV_MAX_LINES = env_int("AUTOMATION_CSV_MAX_LINES", 20000)
AUTOMATION_CSV_MAX_BYTES = env_int("AUTOMATION_CSV_MAX_BYTES", 10 * 1024**2)
# Lines per transaction, lines per Celery task, parallel tasks per campaign.
AUTOMATION_CAMPAIGN_CHUNK = env_int("AUTOMATION_CAMPAIGN_CHUNK", 50)
AUTOMATION_CAMPAIGN_BATCH = env_int("AUTOMATION_CAMPAIGN_BATCH", 500)
AUTOMATION_CAMPAIGN_PARALLEL = env_int("AUTOMATION_CAMPAIGN_PARALLEL", 2)
# A sending campaign without progress this long lost its tasks: the sweeper re-queues them.
AUTOMATION_CAMPAIGN_STALL_SECONDS = env_int("AUTOMATION_CAMPAIGN_STALL_SECONDS", 60)
# Without a broker, each sweep sends for this long (runscheduler is then the worker).
AUTOMATION_EMBEDDED_BUDGET_SECONDS = env_int("AUTOMATION_EMBEDDED_BUDGET_SECONDS", 4)
# Celery queue of the campaign batches (empty: the default queue).
AUTOMATION_QUEUE = env_str("AUTOMATION_QUEUE", "")
CELERY_BEAT_SCHEDULE["automation-send-due-reminders"] = {
    "task": "automation.tasks.send_due_reminders",
    "schedule": env_int("AUTOMATION_REMINDER_INTERVAL_SECONDS", 60),
}
CELERY_BEAT_SCHEDULE["automation-sweep-campaigns"] = {
    "task": "automation.tasks.sweep_campaigns",
    "schedule": env_int("AUTOMATION_SWEEP_INTERVAL_SECONDS", 10),
}


# --- API for hospital software (api/, docs/api.md) -----------------------------------------
REST_FRAMEWORK.update(
    {
        "EXCEPTION_HANDLER": "api.problems.handle_exception",
        "DEFAULT_AUTHENTICATION_CLASSES": [],
        "DEFAULT_PERMISSION_CLASSES": [],
        "UNAUTHENTICATED_USER": None,
        "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
        "DEFAULT_PARSER_CLASSES": [
            "rest_framework.parsers.JSONParser",
            "rest_framework.parsers.MultiPartParser",
            "rest_framework.parsers.FormParser",
        ],
    }
)
SPECTACULAR_SETTINGS = {
    "TITLE": "API MSSanté pour les logiciels hospitaliers",
    "DESCRIPTION": "Envoi et lecture des messages d'une BAL applicative ou organisationnelle, file des "
    "réponses de patients, webhooks. Guide : docs/api.md.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "AUTHENTICATION_WHITELIST": [],
    "APPEND_COMPONENTS": {
        "securitySchemes": {
            "apiKey": {
                "type": "http",
                "scheme": "bearer",
                "description": "Authorization: Bearer mss_<préfixe>_<secret>",
            }
        }
    },
    "SECURITY": [{"apiKey": []}],
}
# Calls per minute and per key, unless the key sets its own (429 with Retry-After past it).
API_RATE_PER_MINUTE = env_int("API_RATE_PER_MINUTE", 600)
# How long a new API key lives: its expiry (`ApiKey.expires_at`, editable in the admin) is set
# this many days after its creation; an expired key is refused (401 key_expired).
API_KEY_LIFETIME_DAYS = env_int("API_KEY_LIFETIME_DAYS", 365)
# Mutual TLS behind the reverse proxy: the header in which the proxy forwards the SHA-256
# fingerprint of the client certificate it verified (e.g. X-SSL-Client-SHA256). Empty: off.
API_CLIENT_CERT_HEADER = env_str("API_CLIENT_CERT_HEADER", "")
# How long an Idempotency-Key replays its first answer.
API_IDEMPOTENCY_HOURS = env_int("API_IDEMPOTENCY_HOURS", 24)
# The largest request body the API reads (JSON with base64 attachments or multipart): 413 past it.
API_MAX_REQUEST_BYTES = env_int("API_MAX_REQUEST_BYTES", 40 * 1024**2)
# DRF reads a JSON body through `request.body`, which Django caps at DATA_UPLOAD_MAX_MEMORY_SIZE
# (2.5 MB by default): the API's JSON with base64 attachments needs the API's own limit. The
# reverse proxy's body limit stays the first guard for every page.
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_REQUEST_BYTES
# The most attachments one API call sends (JSON `attachments` or multipart `files`): 422 past it.
# Django stops reading a form at DATA_UPLOAD_MAX_NUMBER_FILES files (100 by default): the same
# number, so that a form of too many files is refused as a JSON body of too many attachments.
API_MAX_ATTACHMENTS = env_int("API_MAX_ATTACHMENTS", 100)
DATA_UPLOAD_MAX_NUMBER_FILES = API_MAX_ATTACHMENTS
# API calls check their kept database connection (CONN_MAX_AGE, the CONN_HEALTH_CHECKS probe) at
# most this often per worker thread, and after a call that raised; 0: around every call, as
# Django does for every other request (api/connections.py).
API_DB_CHECK_SECONDS = env_int("API_DB_CHECK_SECONDS", 30)
API_WEBHOOK_TIMEOUT_SECONDS = env_int("API_WEBHOOK_TIMEOUT_SECONDS", 10)
API_WEBHOOK_BACKOFF_SECONDS = env_int("API_WEBHOOK_BACKOFF_SECONDS", 30)
API_WEBHOOK_MAX_FAILURES = env_int("API_WEBHOOK_MAX_FAILURES", 10)
CELERY_BEAT_SCHEDULE["api-sweep-webhooks"] = {"task": "api.tasks.sweep_webhooks", "schedule": 60.0}
CELERY_BEAT_SCHEDULE["api-collect-return-replies"] = {"task": "api.tasks.collect_return_replies", "schedule": 300.0}
CELERY_BEAT_SCHEDULE["api-purge-idempotency"] = {"task": "api.tasks.purge_idempotency_records", "schedule": 3600.0}


# --- Desktop clients: IMAP and SMTP submission (clients/, docs/desktop-clients.md) ---------


# --- Operations: statistics, health, metrics, self-test (operations/, docs/operations.md) --
# The certificate of the IMAP and submission listeners (default: the SMTP gateway's). Without
# one they only listen on loopback (the embedded set-up) and accept passwords in clear there.
CLIENTS_TLS_CERT = env_str("CLIENTS_TLS_CERT", SMTPD_TLS_CERT)
CLIENTS_TLS_KEY = env_str("CLIENTS_TLS_KEY", SMTPD_TLS_KEY)
IMAP_HOST = env_str("IMAP_HOST", "127.0.0.1")
IMAP_PORT = env_int("IMAP_PORT", 1143)
# Implicit TLS (IMAPS, 993 in production); 0: off.
IMAP_TLS_PORT = env_int("IMAP_TLS_PORT", 0)
# Public name and ports announced by autoconfiguration and the app-password page (behind a
# load balancer or port mapping they differ from the listeners'). Default host: the site's.
CLIENTS_PUBLIC_HOST = env_str("CLIENTS_PUBLIC_HOST", "")
CLIENTS_PUBLIC_IMAP_PORT = env_int("CLIENTS_PUBLIC_IMAP_PORT", 143 if CLIENTS_TLS_CERT else IMAP_PORT)
CLIENTS_PUBLIC_IMAPS_PORT = env_int("CLIENTS_PUBLIC_IMAPS_PORT", IMAP_TLS_PORT)
CLIENTS_PUBLIC_SUBMISSION_PORT = env_int(
    "CLIENTS_PUBLIC_SUBMISSION_PORT", 587 if CLIENTS_TLS_CERT else env_int("SUBMISSION_PORT", 1587)
)
IMAP_WORKERS = env_int("IMAP_WORKERS", 8)
IMAP_TIMEOUT_SECONDS = env_int("IMAP_TIMEOUT_SECONDS", 30 * 60)
# Organisational boxes appear under this prefix (RFC 2342 shared namespace).
IMAP_SHARED_PREFIX = env_str("IMAP_SHARED_PREFIX", "Partagés")
# On PostgreSQL, LISTEN for the entries' change notifications (mailboxes migration 0005).
IMAP_LISTEN = env_bool("IMAP_LISTEN", True)
# Idling clients look again this often without PostgreSQL notifications (SQLite) ...
IMAP_POLL_SECONDS = float(env_str("IMAP_POLL_SECONDS", "1") or 1)
# ... and this often with them (a safety net: a notification wakes them at once).
IMAP_SAFETY_POLL_SECONDS = float(env_str("IMAP_SAFETY_POLL_SECONDS", "30") or 30)
SUBMISSION_HOST = env_str("SUBMISSION_HOST", "127.0.0.1")
SUBMISSION_PORT = env_int("SUBMISSION_PORT", 1587)
# Failed logins (IMAP and submission): free attempts, then a delay doubling from 1 s up to the cap.
CLIENTS_AUTH_FREE_FAILURES = env_int("CLIENTS_AUTH_FREE_FAILURES", 3)
CLIENTS_AUTH_MAX_DELAY = env_int("CLIENTS_AUTH_MAX_DELAY", 300)
CLIENTS_AUTH_WINDOW = env_int("CLIENTS_AUTH_WINDOW", 15 * 60)
CLIENTS_AUTH_FAILURE_PAUSE = float(env_str("CLIENTS_AUTH_FAILURE_PAUSE", "1") or 1)
# An open IMAP or submission session checks that its access still holds (account active, app
# password or password unchanged, its boxes still reached) before a command the client sends,
# at most once every this many seconds (0: before each one; the check costs about 5 ms, a
# client fetching message by message sends one command every few ms: bench/imap_access_check.py).
CLIENTS_ACCESS_CHECK_SECONDS = env_float("CLIENTS_ACCESS_CHECK_SECONDS", 1.0)
# Pro Santé Connect access tokens for OAUTHBEARER / XOAUTH2 (clients/psc.py).
OIDC_PROVIDER_ID = env_str("OIDC_PROVIDER_ID", "psc")
PSC_TOKEN_ISSUER = env_str("PSC_TOKEN_ISSUER", env_str("OIDC_SERVER_URL", ""))
PSC_JWKS_URL = env_str("PSC_JWKS_URL", "")
PSC_TOKEN_AUDIENCE = env_str("PSC_TOKEN_AUDIENCE", "")
PSC_TOKEN_USER_CLAIM = env_str("PSC_TOKEN_USER_CLAIM", "sub")
PSC_TOKEN_LEEWAY = env_int("PSC_TOKEN_LEEWAY", 30)
PSC_JWKS_CACHE_SECONDS = env_int("PSC_JWKS_CACHE_SECONDS", 300)
PSC_JWKS_TIMEOUT = env_int("PSC_JWKS_TIMEOUT", 5)
# Closed days of the audit trail are sealed (audit/chain.py); the purge seals first too.
CELERY_BEAT_SCHEDULE["audit-seal-days"] = {"task": "audit.tasks.seal_audit_days", "schedule": 3600.0}
# /readyz (operations/health.py): ages over these only warn, unless READYZ_STRICT.
READYZ_RELAY_MAX_AGE_SECONDS = env_int("READYZ_RELAY_MAX_AGE_SECONDS", 3600)
# The search indexer (webmail/search_index.py) runs every second: a message waiting longer than
# this means it is stopped or cannot keep up.
READYZ_SEARCH_INDEX_MAX_AGE_SECONDS = env_int("READYZ_SEARCH_INDEX_MAX_AGE_SECONDS", 300)
READYZ_NOTIFICATION_MAX_AGE_SECONDS = env_int("READYZ_NOTIFICATION_MAX_AGE_SECONDS", 900)
READYZ_BEAT_MAX_AGE_SECONDS = env_int("READYZ_BEAT_MAX_AGE_SECONDS", 300)
READYZ_STRICT = env_bool("READYZ_STRICT", False)
# /metrics: when set, scrapers send "Authorization: Bearer <token>".
METRICS_TOKEN = env_str("METRICS_TOKEN", "")
CELERY_BEAT_SCHEDULE["operations-heartbeat"] = {"task": "operations.tasks.heartbeat", "schedule": 60.0}
CELERY_BEAT_SCHEDULE["operations-aggregate-statistics"] = {
    "task": "operations.tasks.aggregate_statistics",
    "schedule": 3600.0,
}
# Stored files that no row names (a delivery whose transaction never committed): moved to
# quarantine/ after this many hours, deleted after this many days there (operations/store_sweep.py).
STORE_ORPHAN_HOURS = env_int("STORE_ORPHAN_HOURS", 24)
STORE_QUARANTINE_DAYS = env_int("STORE_QUARANTINE_DAYS", 30)
CELERY_BEAT_SCHEDULE["operations-sweep-store"] = {"task": "operations.tasks.sweep_store", "schedule": 24 * 3600.0}
# Logs: "plain" (default) or "json" (one object per line, with the request id).
LOG_FORMAT = env_str("LOG_FORMAT", "plain")
MIDDLEWARE.insert(0, "operations.observability.RequestIdMiddleware")
LOGGING["filters"] = {
    "request_id": {"()": "operations.observability.RequestIdFilter"},
    "redact": {"()": "operations.observability.RedactFilter", "patient_domain": PATIENT_DOMAIN},
}
LOGGING["formatters"]["json"] = {"()": "operations.observability.JsonFormatter"}
LOGGING["formatters"]["plain"]["format"] = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
LOGGING["handlers"]["console"]["filters"] = ["request_id", "redact"]
# Every line goes through the console handler and its filters: Django's loggers too (its own
# handlers would print "Not Found: /path" unmasked with DEBUG on, and the development server's
# access lines), and gunicorn's, which gunicorn.conf.py configures from this LOGGING. The levels
# of gunicorn's loggers stay gunicorn's (`--log-level`).
LOGGING["loggers"] = {
    "django": {"handlers": [], "level": "INFO"},
    "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
    "gunicorn.error": {"handlers": ["console"], "propagate": False},
    "gunicorn.access": {"handlers": ["console"], "propagate": False},
}
# Celery writes "Task <name>[<id>] succeeded in …" at INFO for every task it runs. Without a
# broker (the embedded set-up: tasks in process, `manage.py runscheduler`) that is a line a second
# for the search indexer alone, in the scheduler's and the web server's output: such a run shows
# its failures only (ERROR lines, and the scheduler's "scheduled job failed"). A Celery worker
# keeps the line, its record of what ran with which task id (docs/operations.md "Logs").
TASK_TRACE_LOG_LEVEL = env_str("TASK_TRACE_LOG_LEVEL", "WARNING" if CELERY_TASK_ALWAYS_EAGER else "")
if TASK_TRACE_LOG_LEVEL:
    if TASK_TRACE_LOG_LEVEL.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ImproperlyConfigured("TASK_TRACE_LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
    LOGGING["loggers"]["celery.app.trace"] = {"level": TASK_TRACE_LOG_LEVEL.upper()}
# No `mail_admins` handler (Django's default sends an e-mail per 500 when ADMINS is set): its
# report quotes the request — path, query, form fields (a message's subject and body), cookies —
# which the log filter above cannot mask, and it would travel as plain e-mail. Errors are the
# ERROR lines of the log and the 5xx of /metrics (docs/operations.md "Logs").
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured("LOG_FORMAT must be plain or json")
LOGGING["handlers"]["console"]["formatter"] = LOG_FORMAT
# Probes and scrapers may speak plain HTTP inside the network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
# Workers log through LOGGING above (JSON lines too), not Celery's own root handler.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# manage.py selftest (operations/selftest.py).
SELFTEST_MAILBOX = env_str("SELFTEST_MAILBOX", "")
SELFTEST_ROUND_TRIP_SECONDS = env_int("SELFTEST_ROUND_TRIP_SECONDS", 30)
SELFTEST_WHITELIST_MAX_AGE_DAYS = env_int("SELFTEST_WHITELIST_MAX_AGE_DAYS", 35)
SELFTEST_MAX_CLOCK_SKEW_SECONDS = env_int("SELFTEST_MAX_CLOCK_SKEW_SECONDS", 2)
# Behind the reverse proxy (issue 15 item 19): how to find the client's address, for allauth's
# login rate limits and the audit trail (audit.events.client_ip). TRUSTED_PROXY_COUNT: the number
# of proxies of ours that append to X-Forwarded-For (1 behind one nginx); or
# TRUSTED_CLIENT_IP_HEADER: a header the proxy sets to the client address (X-Real-IP). Unset:
# the connection's address (REMOTE_ADDR), right when nothing stands in front.
ALLAUTH_TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)
ALLAUTH_TRUSTED_CLIENT_IP_HEADER = env_str("TRUSTED_CLIENT_IP_HEADER", "") or None
