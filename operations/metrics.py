"""`/metrics` for Prometheus (issue 14 item 4).

Two sources, chosen per kind of number:
- counters and the latency histogram (mssante/metrics.py) are counted where things happen; the
  message and relay counters from the audit events once their transaction committed (the one
  place every send, delivery, refusal and relay outcome already passes), across processes with
  prometheus_client's multiprocess mode when `PROMETHEUS_MULTIPROC_DIR` is set;
- queue depths and ages, and the age of the last scheduler run, are read from the database at
  scrape time (`DatabaseCollector`): one small indexed query each, true whichever process
  changed them.
"""

import os

from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from audit.models import AuditEvent
from mailboxes.models import Message, Outbox
from mssante import metrics as counters
from operations.models import Heartbeat
from patients.models import Notification, PendingReturn

RELAY_OUTCOMES = {
    AuditEvent.Action.RELAYED: "relayed",
    AuditEvent.Action.BOUNCED: "bounced",
    AuditEvent.Action.RELAY_DEFERRED: "deferred",
}


def count_events(sender, rows, **kwargs) -> None:
    """Receiver of `audit.chain.events_committed`."""
    for row in rows:
        action = row.action
        counters.AUDIT_EVENTS.labels(action=action).inc()
        if action == AuditEvent.Action.SUBMITTED:
            counters.MESSAGES_SUBMITTED.labels(source=(row.detail or {}).get("source") or row.actor_label).inc()
        elif action == AuditEvent.Action.DELIVERED:
            counters.MESSAGES_DELIVERED.labels(source=row.actor_label or "-").inc()
        elif action == AuditEvent.Action.REFUSED:
            counters.MESSAGES_REFUSED.labels(code=row.outcome or "-").inc()
        elif action in RELAY_OUTCOMES:
            counters.RELAY_ATTEMPTS.labels(outcome=RELAY_OUTCOMES[action]).inc()


def _age(oldest, now) -> float:
    return max((now - oldest).total_seconds(), 0.0) if oldest else 0.0


def queue_stats(now=None) -> dict[str, dict]:
    """Depth and oldest age (seconds) of each queue the service keeps in its database."""
    now = now or timezone.now()
    relay = Outbox.objects.filter(status__in=[Outbox.Status.PENDING, Outbox.Status.SENDING])
    relay_by_status = dict(relay.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    waiting = ["pending", "sending"]  # failed rows are recorded, not waiting
    notifications = Notification.objects.filter(status__in=waiting)
    returns = PendingReturn.objects.filter(status__in=waiting)
    relay_oldest = relay.aggregate(oldest=Min("created_at"))["oldest"]
    notification = notifications.aggregate(n=Count("id"), oldest=Min("created_at"))
    pending_returns = returns.aggregate(n=Count("id"), oldest=Min("refused_at"))
    # The search index's queue is the message row (webmail/search_index.py, issue 17).
    search = Message.objects.filter(search_pending=True).aggregate(n=Count("id"), oldest=Min("created_at"))
    return {
        "relay": {
            "depth": sum(relay_by_status.values()),
            "sending": relay_by_status.get(Outbox.Status.SENDING, 0),
            "retrying": relay.filter(attempts__gt=0, status=Outbox.Status.PENDING).count(),
            "oldest_seconds": _age(relay_oldest, now),
        },
        "notifications": {"depth": notification["n"], "oldest_seconds": _age(notification["oldest"], now)},
        "automatic_returns": {"depth": pending_returns["n"], "oldest_seconds": _age(pending_returns["oldest"], now)},
        "search_index": {"depth": search["n"], "oldest_seconds": _age(search["oldest"], now)},
    }


class DatabaseCollector:
    def collect(self):
        now = timezone.now()
        stats = queue_stats(now)
        depth = GaugeMetricFamily("mss_queue_depth", "Items waiting in a queue.", labels=["queue"])
        oldest = GaugeMetricFamily("mss_queue_oldest_seconds", "Age of the oldest item waiting.", labels=["queue"])
        for queue, values in stats.items():
            depth.add_metric([queue], values["depth"])
            oldest.add_metric([queue], values["oldest_seconds"])
        yield depth
        yield oldest
        yield GaugeMetricFamily(
            "mss_relay_retrying",
            "Relay rows waiting for a retry after a temporary failure.",
            value=stats["relay"]["retrying"],
        )
        beat = Heartbeat.objects.filter(name=Heartbeat.BEAT).values_list("at", flat=True).first()
        yield GaugeMetricFamily(
            "mss_scheduler_last_run_age_seconds",
            "Seconds since the scheduler (Celery beat or runscheduler) last ran its heartbeat (-1: never).",
            value=_age(beat, now) if beat else -1,
        )


def render() -> tuple[bytes, str]:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
    else:
        for collector in (
            counters.MESSAGES_SUBMITTED,
            counters.MESSAGES_DELIVERED,
            counters.MESSAGES_REFUSED,
            counters.RELAY_ATTEMPTS,
            counters.AUDIT_EVENTS,
            counters.SMTP_SESSIONS,
            counters.HTTP_LATENCY,
        ):
            registry.register(collector)
    registry.register(DatabaseCollector())
    return generate_latest(registry), CONTENT_TYPE_LATEST
