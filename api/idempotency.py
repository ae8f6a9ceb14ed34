"""`Idempotency-Key` (issue 10 §1): the same key and body within API_IDEMPOTENCY_HOURS replay the
first answer and send nothing twice; the same key with another body is a 409.

The record is inserted before the send (its unique constraint is the claim): a concurrent call
with the same key gets "in progress" rather than a second send. Answers worth replaying (2xx and
the 4xx that would come again) are kept; after a 429 or a 5xx the record goes, so that a retry
sends.
"""

from __future__ import annotations

import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from api.models import ApiKey, IdempotencyRecord
from api.problems import Problem

KEEP_STATUSES = range(200, 429)


def begin(
    key: ApiKey, idempotency_key: str, body_sha256: str
) -> tuple[IdempotencyRecord | None, IdempotencyRecord | None]:
    """(new record, None) to go ahead, or (None, earlier record) to replay it."""
    if len(idempotency_key) > 255 or not idempotency_key.strip():
        raise Problem("validation_error", extra={"errors": {"Idempotency-Key": ["1 à 255 caractères."]}})
    horizon = timezone.now() - datetime.timedelta(hours=settings.API_IDEMPOTENCY_HOURS)
    IdempotencyRecord.objects.filter(api_key=key, key=idempotency_key, created_at__lt=horizon).delete()
    try:
        with transaction.atomic():
            return IdempotencyRecord.objects.create(api_key=key, key=idempotency_key, body_sha256=body_sha256), None
    except IntegrityError:
        pass
    earlier = IdempotencyRecord.objects.filter(api_key=key, key=idempotency_key).first()
    if earlier is None:  # purged between the two statements: try once more
        return begin(key, idempotency_key, body_sha256)
    if earlier.body_sha256 != body_sha256:
        raise Problem(
            "idempotency_conflict",
            "Cette clé d'idempotence a déjà servi, dans les dernières 24 heures, pour une requête différente.",
        )
    if earlier.status_code is None:
        raise Problem(
            "idempotency_in_progress",
            "Une requête de même clé est en cours : réessayez dans un instant.",
            headers={"Retry-After": "1"},
        )
    return None, earlier


def finish(record: IdempotencyRecord, status_code: int, body) -> None:
    if status_code in KEEP_STATUSES:
        IdempotencyRecord.objects.filter(pk=record.pk).update(status_code=status_code, response=body)
    else:
        IdempotencyRecord.objects.filter(pk=record.pk).delete()


def purge() -> int:
    horizon = timezone.now() - datetime.timedelta(hours=settings.API_IDEMPOTENCY_HOURS)
    return IdempotencyRecord.objects.filter(created_at__lt=horizon).delete()[0]
