"""Pointing the test process's Celery app at a real Redis broker, for the integration tests that
start a real worker (tests run tasks in process otherwise)."""

import os
from contextlib import contextmanager


def broker_url(group: str, database: int) -> str:
    """The Redis database of one group of worker tests (each empties its own): `database` on the
    local Redis, or `TEST_<GROUP>_REDIS_URL` for a checkout testing beside another (README)."""
    return os.environ.get(f"TEST_{group.upper()}_REDIS_URL", f"redis://127.0.0.1:6379/{database}")


def forget_pools(app) -> None:
    """Drop the connection and producer pools (Celery's and kombu's registry) so the next publish
    uses the broker configured now; an earlier test may have built them for another one."""
    from kombu import pools as kombu_pools

    kombu_pools.reset()
    if app._pool is not None:
        app._pool.force_close_all()
        app._pool = None
    if "amqp" in app.__dict__:
        app.amqp._producer_pool = None


@contextmanager
def publishing_to(url: str):
    """Within the block, tasks are published to `url` instead of running in process."""
    from mssante.celery import app

    saved = {k: app.conf[k] for k in ("task_always_eager", "broker_url")}
    forget_pools(app)
    app.conf.update(task_always_eager=False, broker_url=url)
    try:
        yield app
    finally:
        app.conf.update(saved)
        forget_pools(app)
