"""A patient writes (RULES.md §3): a reply to a box that wrote to them, or a first message to
a pharmacy that dispensed them a prescription. Attachments come from three places: the medical
profile as PDF, documents of their record, files from their device (PDF, JPG, RTF, TIFF, PNG
only, checked by content, each within the attachment limit, the whole within 25 MB).

Who may receive it is decided by the policy inside the one delivery path, not here.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.template.defaultfilters import filesizeformat

from audit.events import record
from audit.models import AuditEvent
from health_record.api import document_for_user, profile_pdf, read_document
from mailboxes import compose
from mailboxes.delivery import DeliveryRefused
from mailboxes.filetypes import PATIENT_REPLY_TYPES, check_upload
from patients import policy
from patients.models import Patient


def device_attachments(uploads) -> list[tuple[str, str, bytes]]:
    """Files chosen on the device, each checked by content; the first problem raises."""
    attachments = []
    errors = []
    for upload in uploads:
        name = (upload.name or "fichier").rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
        if upload.size > settings.ATTACHMENT_MAX_BYTES:
            errors.append(
                f"Le fichier « {name} » pèse {filesizeformat(upload.size)} : "
                f"la limite est de {filesizeformat(settings.ATTACHMENT_MAX_BYTES)}."
            )
            continue
        data = upload.read()
        try:
            content_type = check_upload(data, name, PATIENT_REPLY_TYPES, settings.ATTACHMENT_MAX_BYTES)
        except ValidationError as exc:
            errors.extend(exc.messages)
            continue
        attachments.append((name, content_type, data))
    if errors:
        raise ValidationError(errors)
    return attachments


def record_attachments(user, document_ids) -> list[tuple[str, str, bytes]]:
    attachments = []
    for document_id in document_ids:
        document = document_for_user(user, document_id)
        attachments.append((document.filename, document.content_type, read_document(document)))
    return attachments


def profile_attachment(patient: Patient, user) -> tuple[str, str, bytes]:
    filename, data = profile_pdf(patient, actor=user)
    return filename, "application/pdf", data


def send_from_patient(
    patient: Patient,
    user,
    *,
    to: str,
    subject: str,
    text: str,
    in_reply_to=None,
    include_profile: bool = False,
    document_ids=(),
    uploads=(),
):
    """Build and send the patient's message. ValidationError for attachment problems (nothing
    sent); `DeliveryRefused` when the policy or the limits refuse it."""
    attachments = device_attachments(uploads)
    attachments += record_attachments(user, document_ids)
    if include_profile:
        attachments.append(profile_attachment(patient, user))
    estimate = compose.estimated_encoded_size(text=text, attachment_sizes=[len(a[2]) for a in attachments])
    if estimate > policy.message_limit():
        raise ValidationError(policy.too_large_to_send_text())
    result = compose.send_from_mailbox(
        patient.mailbox,
        user,
        to=[to],
        subject=subject,
        text=text,
        attachments=attachments,
        in_reply_to=in_reply_to,
        source="patient",
    )
    if to.lower() in {a.lower() for a in result.refused}:
        decision = next(d for a, d in result.refused.items() if a.lower() == to.lower())
        raise DeliveryRefused(decision.code, decision.reason, refused=result.refused)
    if include_profile:
        record(
            AuditEvent.Action.PROFILE_SENT,
            actor=user,
            obj=patient,
            mailbox_id=patient.mailbox_id,
            message_id=result.message.pk,
        )
    return result
