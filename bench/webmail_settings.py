"""Bench-only settings for bench/webmail_bench.py: the product's settings, plus the floor view's
URLconf and template folder. Never used by the product."""

import os

os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("SECRET_KEY", "bench-secret-key-not-for-production-0123456789")
os.environ.setdefault("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver")

from mssante.settings import *  # noqa: E402,F403
from mssante.settings import BASE_DIR, DATABASES, TEMPLATES  # noqa: E402

ROOT_URLCONF = "bench.webmail_urls"
TEMPLATES[0]["DIRS"] = [*TEMPLATES[0]["DIRS"], BASE_DIR / "bench" / "templates"]
SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
SECURE_HSTS_SECONDS = 0
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405
DATABASES["default"]["CONN_MAX_AGE"] = 600
# The product's LOGGING (its console handler, request ids, masking) with the root at WARNING:
# the benches' gunicorn (gunicorn.conf.py) writes its access log, one line per request, as
# production's does; webmail_bench and directory_bench send its output to a file.
LOGGING = {**LOGGING, "root": {**LOGGING["root"], "level": "WARNING"}}  # noqa: F405
