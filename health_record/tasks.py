"""Celery tasks of the patient's record: render the profile PDF (RULES.md §3). Thin: they take
a patient id and call `health_record.pdf.ensure_profile_pdf`, which is idempotent (a second run
on an unchanged profile is a cache hit)."""

import logging

from celery import shared_task

from health_record.models import Profile
from health_record.pdf import ensure_profile_pdf

log = logging.getLogger(__name__)


@shared_task(acks_late=True, autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def render_profile_pdf_task(patient_id: int) -> None:
    # health_record refers to the patient through its models' foreign keys only (patients may
    # import health_record, not the reverse: docs/architecture.md).
    patient = Profile._meta.get_field("patient").related_model.objects.filter(pk=patient_id).first()
    if patient is None:
        log.info("render_profile_pdf: patient %s gone", patient_id)
        return
    ensure_profile_pdf(patient)
