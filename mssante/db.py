"""Kept database connections: whether the server has closed one, seen without a round trip.

The API (api/connections.py) and the SMTP gateway (mailboxes/smtp_gateway.py) keep their
connections between calls and messages, and check them with Django's `close_old_connections`
only every few seconds (its `SELECT 1` per call was a round trip per message). In between, a
restart of PostgreSQL, or an administrator's `pg_terminate_backend`, sends each session its last
error and closes it: the kept connection's socket then reads as ready while no query runs. Polling
it costs a system call, and a connection found closed is replaced before the next query instead
of failing it.
"""

from __future__ import annotations

import select

from django.db import connections


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
