"""API calls check their kept database connection at most every API_DB_CHECK_SECONDS, and after a
call that raised; every other request keeps Django's check at its start and its end
(api/connections.py)."""

from unittest import mock

import pytest
from django.conf import settings as django_settings
from django.core import signals
from django.db import close_old_connections
from django.test import override_settings

from api import connections
from mssante.db import server_closed


@pytest.fixture
def checks(settings):
    """The number of times the connections were checked, each request sent as the WSGI handler
    sends it (signals `request_started` with its environ, `request_finished`)."""
    settings.API_DB_CHECK_SECONDS = 30
    connections.thread_state.__dict__.clear()
    with mock.patch.object(connections, "close_old_connections") as check:
        yield check


def request(path: str, *, raises: bool = False) -> None:
    connections.on_request_started(None, environ={"PATH_INFO": path})
    if raises:
        connections.on_request_exception(None, request=None)
    connections.on_request_finished(None)


def test_api_calls_check_once_within_the_delay(checks):
    for _ in range(3):
        request("/api/v1/messages")
    assert checks.call_count == 1


def test_api_calls_check_each_time_with_no_delay(checks, settings):
    settings.API_DB_CHECK_SECONDS = 0
    for _ in range(3):
        request("/api/v1/messages")
    assert checks.call_count == 3


@pytest.mark.parametrize(
    "paths, expected",
    [
        # Pages keep Django's check at their start and end.
        (["/api/v1/messages", "/webmail/", "/comptes/connexion/"], 1 + 2 + 2),
        # A page between two calls makes the next call check.
        (["/api/v1/messages", "/webmail/", "/api/v1/messages"], 1 + 2 + 1),
    ],
)
def test_pages_keep_djangos_check_and_make_the_next_call_check(checks, paths, expected):
    for path in paths:
        request(path)
    assert checks.call_count == expected


def test_a_call_that_raised_checks_at_its_end_and_the_next_call_checks_first(checks):
    request("/api/v1/messages")
    request("/api/v1/messages", raises=True)
    assert checks.call_count == 2
    request("/api/v1/messages")
    request("/api/v1/messages")
    assert checks.call_count == 3


def test_no_check_inside_an_open_transaction(db, settings):
    """A test's transaction spans requests: closing its connection would lose it."""
    settings.API_DB_CHECK_SECONDS = 0
    with mock.patch.object(connections, "close_old_connections") as check:
        request("/webmail/")
    assert check.call_count == 0


OURS = [
    (signals.request_started, connections.on_request_started, "api_db_request_started"),
    (signals.request_finished, connections.on_request_finished, "api_db_request_finished"),
    (signals.got_request_exception, connections.on_request_exception, "api_db_request_exception"),
]
DJANGOS = [signals.request_started, signals.request_finished]


def receivers_disconnected() -> tuple[list[bool], list[bool]]:
    """Disconnects ours and Django's; `disconnect` says whether each one was connected."""
    ours = [signal.disconnect(receiver, dispatch_uid=uid) for signal, receiver, uid in OURS]
    return ours, [signal.disconnect(close_old_connections) for signal in DJANGOS]


@pytest.fixture
def django_receivers_only():
    delay = django_settings.API_DB_CHECK_SECONDS
    receivers_disconnected()
    for signal in DJANGOS:
        signal.connect(close_old_connections)
    yield
    receivers_disconnected()
    for signal in DJANGOS:
        signal.connect(close_old_connections)
    with override_settings(API_DB_CHECK_SECONDS=delay):
        connections.install()  # as the process started (on PostgreSQL: ours)


@pytest.mark.parametrize(("max_age", "delay", "installed"), [(60, 30, True), (0, 30, False), (60, 0, False)])
def test_installed_in_place_of_djangos_receivers_only_for_kept_connections(
    settings, django_receivers_only, max_age, delay, installed
):
    settings.API_DB_CHECK_SECONDS = delay
    with mock.patch.dict(settings.DATABASES["default"], {"CONN_MAX_AGE": max_age}):
        connections.install()
    assert receivers_disconnected() == ([installed] * 3, [not installed] * 2)


@pytest.mark.django_db(transaction=True)
def test_a_connection_the_server_closed_is_replaced_before_the_call(settings):
    """A database restart (here `pg_terminate_backend`, what a restart does to each session)
    within API_DB_CHECK_SECONDS: the next call's first query runs on a new connection instead of
    failing with a 500. No round trip: the closed socket is seen by a poll."""
    import psycopg
    from django.db import connection

    from mailboxes.models import Mailbox

    settings.API_DB_CHECK_SECONDS = 30
    connections.thread_state.__dict__.clear()
    request("/api/v1/messages")  # checked: the window opens
    Mailbox.objects.count()
    assert not server_closed(connection)  # kept and idle: nothing to read
    if connection.vendor != "postgresql":
        return  # SQLite: nothing to close, the poll is not made
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        [before] = cursor.fetchone()
    params = connection.get_connection_params()
    with psycopg.connect(**{k: v for k, v in params.items() if k not in ("cursor_factory", "context")}) as admin:
        admin.execute("SELECT pg_terminate_backend(%s, 5000)", [before])
    assert server_closed(connection)
    connections.on_request_started(None, environ={"PATH_INFO": "/api/v1/messages"})  # within the window
    Mailbox.objects.count()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] != before
    connections.on_request_finished(None)
