"""What a PostgreSQL restart does to the product's kept connections, for the tests that drive it."""

from django.db import connection


def terminate_other_sessions() -> int:
    """`pg_terminate_backend` of every other session of the test database (the servers' and
    workers' kept connections), as a restart does to each; how many. Nothing on SQLite: 0."""
    if connection.vendor != "postgresql":
        return 0
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]
