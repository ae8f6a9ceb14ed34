"""Webhooks per API key (issue 10 §4): signed POSTs on reply received, delivered, bounced, read.

Signature: `X-MSS-Timestamp: <unix seconds>` and
`X-MSS-Signature: sha256=<hex HMAC-SHA256(webhook secret, "<timestamp>." + body)>`; the receiver
recomputes it and refuses a timestamp older than five minutes (docs/api.md shows the check).

Each event is a `WebhookDelivery` row, unique per key, event and subject (a replayed audit row
queues nothing twice), written by `queue_events` after the delivery commit, sent by the Celery
task `api.tasks.deliver_webhook` which claims the row by a conditional update. A failure is
retried with exponential backoff; after `API_WEBHOOK_MAX_FAILURES` consecutive failures the key's
webhook is switched off with the reason shown in the admin. The sweeper re-queues lost rows.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import logging
import time
import urllib.error
import urllib.request

from celery import signature
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.formats import date_format

from api.models import ApiKey, WebhookDelivery
from audit.events import record

log = logging.getLogger("api.webhooks")

STUCK_AFTER = datetime.timedelta(minutes=5)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def keys_with_webhook(box_ids) -> list[ApiKey]:
    return list(
        ApiKey.objects.filter(
            mailbox_id__in=box_ids,
            revoked_at__isnull=True,
            expires_at__gt=timezone.now(),
            webhook_enabled=True,
            webhook_url__gt="",
        )
    )


def queue_event(keys, event: str, subject_ref: str, data: dict) -> list[int]:
    """One pending delivery per key; the ids of those created (enqueued after commit)."""
    created = []
    for key in keys:
        payload = {"event": event, "created_at": timezone.now().isoformat(), "data": data}
        try:
            with transaction.atomic():
                row = WebhookDelivery.objects.create(api_key=key, event=event, subject_ref=subject_ref, payload=payload)
        except IntegrityError:
            continue
        created.append(row.pk)
    for pk in created:
        transaction.on_commit(lambda pk=pk: enqueue(pk), robust=True)
    return created


def enqueue(delivery_id: int, countdown: int | None = None) -> None:
    options = {"countdown": countdown} if countdown else {}
    signature("api.tasks.deliver_webhook", args=(delivery_id,)).apply_async(**options)


def backoff(attempts: int) -> int:
    return min(settings.API_WEBHOOK_BACKOFF_SECONDS * 2 ** max(attempts - 1, 0), 3600)


def claim(delivery_id: int) -> WebhookDelivery | None:
    now = timezone.now()
    claimed = WebhookDelivery.objects.filter(
        pk=delivery_id, status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now
    ).update(status=WebhookDelivery.Status.SENDING, attempts=F("attempts") + 1, updated_at=now)
    if not claimed:
        return None
    return WebhookDelivery.objects.select_related("api_key").get(pk=delivery_id)


def post(url: str, secret: str, payload: dict) -> None:
    """One signed POST; raises on a network error or a non-2xx answer."""
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    timestamp = int(time.time())
    request = urllib.request.Request(  # noqa: S310 (the URL is the administrator's, http(s) only)
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "mssante-webhook/1",
            "X-MSS-Timestamp": str(timestamp),
            "X-MSS-Signature": sign(secret, timestamp, body),
        },
    )
    if not url.lower().startswith(("http://", "https://")):
        raise ValueError("URL de webhook non HTTP(S)")
    with urllib.request.urlopen(request, timeout=settings.API_WEBHOOK_TIMEOUT_SECONDS) as answer:  # noqa: S310
        if not 200 <= answer.status < 300:
            raise urllib.error.HTTPError(url, answer.status, "non-2xx", answer.headers, None)


def deliver(delivery_id: int) -> int | None:
    """Send one claimed delivery. Returns the seconds until the next attempt, or None when done
    (sent, given up, or not ours to send now)."""
    delivery = claim(delivery_id)
    if delivery is None:
        return None
    key = delivery.api_key
    if key.revoked_at is not None or key.is_expired or not key.webhook_enabled or not key.webhook_url:
        delivery.status, delivery.last_error = WebhookDelivery.Status.FAILED, "webhook désactivé"
        delivery.save(update_fields=["status", "last_error", "updated_at"])
        return None
    payload = dict(delivery.payload, id=delivery.pk)
    try:
        post(key.webhook_url, key.webhook_secret, payload)
    except (OSError, ValueError) as exc:
        return failed(delivery, key, exc)
    delivery.status, delivery.last_error = WebhookDelivery.Status.SENT, ""
    delivery.save(update_fields=["status", "last_error", "updated_at"])
    ApiKey.objects.filter(pk=key.pk).update(webhook_failures=0)
    log.info("webhook sent: delivery=%s key=%s event=%s", delivery.pk, key.pk, delivery.event)
    return None


def failed(delivery: WebhookDelivery, key: ApiKey, exc: Exception) -> int | None:
    error = f"{type(exc).__name__}: {getattr(exc, 'code', '') or getattr(exc, 'reason', '') or exc}"[:300]
    ApiKey.objects.filter(pk=key.pk).update(webhook_failures=F("webhook_failures") + 1)
    key.refresh_from_db(fields=["webhook_failures", "webhook_enabled"])
    log.info("webhook failed: delivery=%s key=%s attempt=%s", delivery.pk, key.pk, delivery.attempts)
    if key.webhook_failures >= settings.API_WEBHOOK_MAX_FAILURES:
        disable(key, error)
        delivery.status = WebhookDelivery.Status.FAILED
        delivery.last_error = error
        delivery.save(update_fields=["status", "last_error", "updated_at"])
        return None
    delay = backoff(delivery.attempts)
    delivery.status = WebhookDelivery.Status.PENDING
    delivery.last_error = error
    delivery.next_attempt_at = timezone.now() + datetime.timedelta(seconds=delay)
    delivery.save(update_fields=["status", "last_error", "next_attempt_at", "updated_at"])
    return delay


def disable(key: ApiKey, error: str) -> None:
    reason = (
        f"Désactivé le {date_format(timezone.localtime(), 'SHORT_DATETIME_FORMAT')} après {key.webhook_failures} échecs consécutifs "
        f"(dernier : {error})"
    )[:300]
    changed = ApiKey.objects.filter(pk=key.pk, webhook_enabled=True).update(
        webhook_enabled=False, webhook_disabled_reason=reason
    )
    if changed:
        WebhookDelivery.objects.filter(api_key=key, status=WebhookDelivery.Status.PENDING).update(
            status=WebhookDelivery.Status.FAILED, last_error="webhook désactivé"
        )
        record(
            "api.webhook_disabled",
            actor_label="system",
            object_type="apikey",
            object_id=key.pk,
            mailbox_id=key.mailbox_id,
            outcome="disabled",
        )
        log.warning("webhook disabled: key=%s failures=%s", key.pk, key.webhook_failures)


def sweep() -> dict:
    """Re-queue pending deliveries whose time has come (their task lost or run eagerly) and
    deliveries stuck in "sending" after a worker died."""
    now = timezone.now()
    stuck = WebhookDelivery.objects.filter(
        status=WebhookDelivery.Status.SENDING, updated_at__lt=now - STUCK_AFTER
    ).update(status=WebhookDelivery.Status.PENDING, next_attempt_at=now)
    due = list(
        WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:500]
    )
    for pk in due:
        enqueue(pk)
    return {"stuck": stuck, "queued": len(due)}
