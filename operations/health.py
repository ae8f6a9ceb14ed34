"""Liveness and readiness (issue 14 item 4).

`/healthz` says the process answers (no dependency is touched: a load balancer restarting a web
server because the database is down would not help). `/readyz` checks what serving needs:

| check | fails (503) when | warns when |
| --- | --- | --- |
| database | a query fails | — |
| broker (when `CELERY_BROKER_URL` is set) | no connection | — |
| cache (when `CACHE_URL` is set) | a write/read fails | — |
| storage | a small file cannot be written, read back and deleted | — |
| relay queue | — | its oldest row is older than `READYZ_RELAY_MAX_AGE_SECONDS` |
| notification queue | — | its oldest row is older than `READYZ_NOTIFICATION_MAX_AGE_SECONDS` |
| automatic returns | — | the oldest unsent return is older than `READYZ_NOTIFICATION_MAX_AGE_SECONDS` |
| search index | — | the oldest message not yet indexed for search is older than `READYZ_SEARCH_INDEX_MAX_AGE_SECONDS` |
| scheduler | — | its last heartbeat is older than `READYZ_BEAT_MAX_AGE_SECONDS` (or never ran) |

A queue that ages or a stopped scheduler is for an operator to look at (JSON detail, metrics),
not a reason to take every web server out of the load balancer: warnings answer 200 with
`"status": "degraded"`, unless `READYZ_STRICT` makes them 503 too.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass, field

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.utils import timezone

from operations.models import Heartbeat

OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass
class Check:
    name: str
    status: str
    detail: str = ""
    value: float | None = None
    ms: float = 0.0
    extra: dict = field(default_factory=dict)


def _timed(name, function) -> Check:
    started = time.perf_counter()
    try:
        check = function()
    except Exception as error:  # a readiness probe reports failures, it never raises
        check = Check(name, FAIL, f"{type(error).__name__}: {str(error)[:200]}")
    check.ms = round((time.perf_counter() - started) * 1000, 1)
    return check


def check_database() -> Check:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return Check("database", OK, connection.vendor)


def check_broker() -> Check:
    from mssante.celery import app

    with app.connection_for_write(settings.CELERY_BROKER_URL) as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=2)
    return Check("broker", OK, settings.CELERY_BROKER_URL.split(":", 1)[0])


def check_cache() -> Check:
    from django.core.cache import cache

    key = f"readyz:{uuid.uuid4().hex}"
    cache.set(key, "1", 10)
    if cache.get(key) != "1":
        return Check("cache", FAIL, "la valeur écrite n'a pas été relue")
    cache.delete(key)
    return Check("cache", OK)


def check_storage() -> Check:
    payload = uuid.uuid4().hex.encode()
    name = default_storage.save(f"health/readyz-{payload.decode()}.txt", ContentFile(payload))
    try:
        with default_storage.open(name, "rb") as handle:
            if handle.read() != payload:
                return Check("storage", FAIL, "le fichier relu diffère du fichier écrit")
    finally:
        default_storage.delete(name)
    return Check("storage", OK)


def _age_check(name: str, age: float, depth: int, limit: int) -> Check:
    status = WARN if depth and age > limit else OK
    detail = f"{depth} en attente, la plus ancienne depuis {int(age)} s (seuil {limit} s)"
    return Check(name, status, detail, value=round(age, 1), extra={"depth": depth})


def check_queues() -> list[Check]:
    from operations.metrics import queue_stats

    stats = queue_stats()
    relay, notes, returns, search = (
        stats["relay"],
        stats["notifications"],
        stats["automatic_returns"],
        stats["search_index"],
    )
    notify_limit = settings.READYZ_NOTIFICATION_MAX_AGE_SECONDS
    return [
        _age_check("relay_queue", relay["oldest_seconds"], relay["depth"], settings.READYZ_RELAY_MAX_AGE_SECONDS),
        _age_check("notification_queue", notes["oldest_seconds"], notes["depth"], notify_limit),
        _age_check("automatic_returns", returns["oldest_seconds"], returns["depth"], notify_limit),
        _age_check(
            "search_index", search["oldest_seconds"], search["depth"], settings.READYZ_SEARCH_INDEX_MAX_AGE_SECONDS
        ),
    ]


def check_scheduler() -> Check:
    last = Heartbeat.objects.filter(name=Heartbeat.BEAT).values_list("at", flat=True).first()
    limit = settings.READYZ_BEAT_MAX_AGE_SECONDS
    if last is None:
        return Check("scheduler", WARN, "le planificateur (celery beat ou runscheduler) n'a jamais tourné")
    age = (timezone.now() - last).total_seconds()
    status = WARN if age > limit else OK
    return Check("scheduler", status, f"dernier passage il y a {int(age)} s (seuil {limit} s)", value=round(age, 1))


def readiness() -> tuple[int, dict]:
    checks = [_timed("database", check_database)]
    if settings.CELERY_BROKER_URL:
        checks.append(_timed("broker", check_broker))
    if settings.REDIS_CACHE_URL:
        checks.append(_timed("cache", check_cache))
    checks.append(_timed("storage", check_storage))
    if checks[0].status == OK:  # the rest reads the database
        started = time.perf_counter()
        try:
            queues = check_queues()
        except Exception as error:
            queues = [Check("queues", FAIL, f"{type(error).__name__}")]
        for check in queues:
            check.ms = round((time.perf_counter() - started) * 1000, 1)
        checks += queues
        checks.append(_timed("scheduler", check_scheduler))
    failed = [c.name for c in checks if c.status == FAIL]
    warned = [c.name for c in checks if c.status == WARN]
    status = "fail" if failed else ("degraded" if warned else "ok")
    code = 503 if failed or (warned and settings.READYZ_STRICT) else 200
    body = {
        "status": status,
        "failed": failed,
        "warnings": warned,
        "checks": {
            c.name: {k: v for k, v in asdict(c).items() if k != "name" and v not in ("", None, {})} for c in checks
        },
        "at": timezone.now().isoformat(timespec="seconds"),
    }
    return code, body
