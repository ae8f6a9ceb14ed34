"""Scheduled re-import of the national directory (CELERY_BEAT_SCHEDULE["directory-import"])."""

import logging

from celery import shared_task

from directory import fetch
from directory.importer import ImportRefused

log = logging.getLogger(__name__)


@shared_task(name="directory.import_scheduled", acks_late=True)
def import_scheduled():
    """Import DIRECTORY_IMPORT_SOURCE when one is configured; a refusal is recorded, not retried."""
    from django.conf import settings

    if not settings.DIRECTORY_IMPORT_SOURCE:
        log.info("directory import skipped: DIRECTORY_IMPORT_SOURCE is not set")
        return None
    try:
        run = fetch.import_from_source()
    except ImportRefused as exc:
        log.warning("directory import refused: run=%s", exc.run.pk)
        return exc.run.pk
    except fetch.SourceError as exc:
        log.warning("directory import source unavailable: %s", type(exc).__name__)
        return None
    return run.pk
