"""The database connection under API calls (issue 10).

Django checks the kept connection around every request (`close_old_connections` on
`request_started` and `request_finished`): CONN_MAX_AGE, and with CONN_HEALTH_CHECKS a
`SELECT 1` before the request's first query. On `POST /api/v1/messages` that probe was about 6 %
of a gunicorn worker's CPU (py-spy, bench/RESULTS.md issue 10, branch i10y) and one round trip
per call. For requests under `/api/`, the checks run at most every `API_DB_CHECK_SECONDS` per
worker thread, and after a call that raised; every other request keeps Django's behaviour. The
SMTP gateway, the IMAP server and the submission server do the same around their messages and
commands (`mssante.db.kept_connection_call`).

Between those checks, each API call still looks, without a round trip, whether the server has
closed the kept connection (`mssante.db.server_closed`: a restart or an administrator's
`pg_terminate_backend`), and if so replaces it before the call's first query.

What it costs: when the database vanished without closing its connections (a network cut, a
failover to another host), within those seconds one call per worker fails with a 500 before the
connection is replaced; nothing was sent by it, so the client's retry (with its
`Idempotency-Key`) sends once. `API_DB_CHECK_SECONDS=0` puts back Django's check around every
call; so does a database whose connections are not kept (`CONN_MAX_AGE` 0, the SQLite default).
"""

from __future__ import annotations

import threading

from django.conf import settings
from django.core import signals
from django.db import close_old_connections, transaction

from mssante.db import check_or_poll

thread_state = threading.local()
NEVER = float("-inf")


def is_api_call(environ: dict | None) -> bool:
    return environ is not None and environ.get("PATH_INFO", "").startswith("/api/")


def check_connections() -> None:
    """Django's `close_old_connections`, except inside an open `atomic` block: only a test's
    transaction spans requests, and Django's test client leaves it alone the same way."""
    if not transaction.get_connection().in_atomic_block:
        close_old_connections()


def on_request_started(sender, environ=None, **kwargs) -> None:
    thread_state.api_call = is_api_call(environ)
    thread_state.failed = False
    if thread_state.api_call:
        check_or_poll(thread_state, settings.API_DB_CHECK_SECONDS, check_connections)
        return
    check_connections()
    thread_state.checked_at = NEVER


def on_request_finished(sender, **kwargs) -> None:
    api_call, failed = getattr(thread_state, "api_call", False), getattr(thread_state, "failed", False)
    thread_state.api_call = False
    if api_call and not failed:
        return
    check_connections()
    thread_state.checked_at = NEVER  # the next API call checks first


def on_request_exception(sender, request=None, **kwargs) -> None:
    thread_state.failed = True


def install() -> None:
    """In place of Django's own receivers (`django.db`), when connections are kept."""
    if settings.API_DB_CHECK_SECONDS <= 0 or not settings.DATABASES["default"].get("CONN_MAX_AGE"):
        return
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    signals.request_started.connect(on_request_started, dispatch_uid="api_db_request_started")
    signals.request_finished.connect(on_request_finished, dispatch_uid="api_db_request_finished")
    signals.got_request_exception.connect(on_request_exception, dispatch_uid="api_db_request_exception")
