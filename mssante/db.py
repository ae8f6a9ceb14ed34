"""Kept database connections: checked every few seconds, and a closed one seen without a round trip.

The API (api/connections.py) and the servers of the product (the SMTP gateway, the IMAP server
and the submission server, through `kept_connection_call`) keep their connections between calls,
messages and commands. Django's `close_old_connections` drops a connection that broke or outlived
CONN_MAX_AGE and re-arms the CONN_HEALTH_CHECKS probe (`SELECT 1` before the next query): done
around every message or IMAP command, that probe was one round trip each (issue 17). So it runs
after a call that raised and otherwise at most every CONNECTION_CHECK_SECONDS. In between, a
restart of PostgreSQL, or an administrator's `pg_terminate_backend`, sends each session its last
error and closes it: the kept connection's socket then reads as ready while no query runs.
Polling it costs a system call, and a connection found closed is replaced before the next query
instead of failing it. A connection that vanished without being closed (a network cut) fails one
call, which raises, and is replaced.
"""

from __future__ import annotations

import select
import threading
import time

from django.db import close_old_connections, connections

# How often a server's thread runs Django's full check of its connections when all is well.
CONNECTION_CHECK_SECONDS = 30.0
_thread_state = threading.local()


def server_closed(connection) -> bool:
    """Whether the server has closed `connection`'s kept PostgreSQL connection (nothing to read
    on an idle connection unless the server wrote its last error and hung up)."""
    raw = connection.connection
    if raw is None or connection.vendor != "postgresql" or connection.in_atomic_block:
        return False
    try:
        readable, _, _ = select.select([raw.fileno()], [], [], 0)
    except (OSError, ValueError):  # already closed
        return True
    return bool(readable)


def replace_closed_connections() -> None:
    """Close this thread's connections that the server closed: the next query opens a new one."""
    for connection in connections.all(initialized_only=True):
        if server_closed(connection):
            connection.close()


def check_or_poll(state, every: float, check=close_old_connections) -> None:
    """Before a call on kept connections: `check` (Django's full check) when `state.checked_at`
    is `every` seconds old or more, which it then resets; else only a poll for a connection the
    server closed. The one rule of the API (api/connections.py) and of the servers."""
    now = time.monotonic()
    if now - getattr(state, "checked_at", float("-inf")) >= every:
        check()
        state.checked_at = now
    else:
        replace_closed_connections()


def kept_connection_call(fn, *args, **kwargs):
    """`fn(*args, **kwargs)` in a server's pool thread, which keeps its database connections
    between calls: Django's check every CONNECTION_CHECK_SECONDS and after a call that raised,
    a poll for a closed connection otherwise."""
    check_or_poll(_thread_state, CONNECTION_CHECK_SECONDS)
    try:
        return fn(*args, **kwargs)
    except BaseException:
        close_old_connections()
        _thread_state.checked_at = time.monotonic()
        raise
