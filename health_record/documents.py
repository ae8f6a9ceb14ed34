"""The patient's documents (RULES.md §3): keep, list, open and delete health and administrative
documents. Formats by content (mailboxes/filetypes.py), 5 MB each, stored by content hash.

Every fetch goes through `document_for_user`: "not yours" and "does not exist" are both 404.
"""

import hashlib
import logging

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404

from audit.events import record
from audit.models import AuditEvent
from health_record.models import Document, document_upload_path
from mailboxes.filetypes import RECORD_TYPES, check_upload

log = logging.getLogger(__name__)


def patient_for_user(user):
    """The patient whose record this account reaches, or 404 (professionals, anonymous)."""
    patient = getattr(user, "patient", None) if getattr(user, "is_authenticated", False) else None
    if patient is None:
        raise Http404("Aucun dossier pour ce compte")
    return patient


def documents_for_patient(patient) -> QuerySet[Document]:
    return Document.objects.filter(patient=patient)


def document_for_user(user, document_id) -> Document:
    """The document if it belongs to this user's own record, else Http404."""
    if not getattr(user, "is_authenticated", False) or getattr(user, "patient", None) is None:
        raise Http404("Document introuvable")
    try:
        return Document.objects.get(pk=int(document_id), patient__user=user)
    except (Document.DoesNotExist, TypeError, ValueError):
        raise Http404("Document introuvable") from None


@transaction.atomic
def save_document(
    patient,
    *,
    data: bytes,
    filename: str,
    title: str,
    date,
    category: str,
    kind: str,
    actor=None,
    source_attachment=None,
) -> Document:
    """Check the file by its content, store it once by hash, add it to the record, audit it."""
    content_type = check_upload(data, filename, RECORD_TYPES, settings.HEALTH_DOCUMENT_MAX_BYTES)
    if kind not in Document.Kind.values:
        raise ValidationError("Nature de document inconnue.")
    if category not in Document.Category.values:
        raise ValidationError("Catégorie de document inconnue.")
    title = (title or "").strip() or filename
    sha256 = hashlib.sha256(data).hexdigest()
    document = Document(
        patient=patient,
        kind=kind,
        category=category,
        title=title[:200],
        date=date,
        filename=filename[-255:],
        content_type=content_type,
        size=len(data),
        sha256=sha256,
        source_attachment=source_attachment,
    )
    name = document_upload_path(document, filename)
    if default_storage.exists(name):
        # Same bytes already stored (the same report saved twice): point at them.
        document.file.name = name
    else:
        document.file.save(name, ContentFile(data), save=False)
    document.save()
    record(
        AuditEvent.Action.DOCUMENT_ADDED,
        actor=actor,
        actor_label="" if actor else "system",
        obj=document,
        detail={"patient_id": patient.pk, "source_attachment_id": getattr(source_attachment, "pk", None)},
    )
    log.info("document %s added to patient %s", document.pk, patient.pk)
    return document


def read_document(document: Document) -> bytes:
    with document.file.open("rb") as handle:
        return handle.read()


@transaction.atomic
def delete_document(document: Document, *, actor=None) -> None:
    """Remove the document from the record; its bytes go when no other document shares them."""
    document_id, name, sha256 = document.pk, document.file.name, document.sha256
    patient_id = document.patient_id
    document.delete()
    record(
        AuditEvent.Action.DOCUMENT_DELETED,
        actor=actor,
        object_type="document",
        object_id=document_id,
        detail={"patient_id": patient_id},
    )

    def _remove_file():
        if not Document.objects.filter(sha256=sha256).exists():
            default_storage.delete(name)

    transaction.on_commit(_remove_file)
