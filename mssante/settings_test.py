"""Settings for the test suite: the real settings with test-friendly embedded defaults.

`DATABASE_URL` (PostgreSQL in CI) and `CELERY_BROKER_URL` (Redis, for the integration tests
that start a real worker) are taken from the environment as in production.
"""

import os

os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production-0123456789")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,127.0.0.1,localhost")

from mssante.settings import *  # noqa: E402,F403
from mssante.settings import VAR_DIR  # noqa: E402

# Production defaults to a required second factor (DEBUG off); the tests that exercise it turn
# it on themselves, the others sign the test cast in with a password. (Set here, not in the
# environment, so that subprocesses started by tests get the production default.)
MFA_REQUIRED_FOR_PROFESSIONALS = False
SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
SECURE_HSTS_SECONDS = 0
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# An open IMAP or submission session looks at its access before every command, so that a test
# sees the next command refused; tests/clients/test_session_access.py checks the default bound.
CLIENTS_ACCESS_CHECK_SECONDS = 0
# Tests flush the database between them (no signal): read the trust space on every message
# unless a test turns the per-process cache on.
TRUST_CACHE_SECONDS = 0
# Unit tests run tasks in process; integration tests flip this and start a real worker.
CELERY_TASK_ALWAYS_EAGER = True
# Celery reads CELERY_BROKER_URL from the environment before its configuration: drop it from the
# test process so that the integration fixtures can point the app at their own Redis database.
os.environ.pop("CELERY_BROKER_URL", None)
MEDIA_ROOT = VAR_DIR / "test-media" / str(os.getpid())
if STORAGES["default"]["BACKEND"].endswith("FileSystemStorage"):  # noqa: F405
    STORAGES["default"] = {  # noqa: F405
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(MEDIA_ROOT), "base_url": None},
    }

if DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # noqa: F405
    # A file, not memory, so that a real Celery worker or SMTP server started in another
    # process by the integration tests sees the same test database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")}  # noqa: F405

# whitenoise warns on every request when the collected-static folder is missing.
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405
