"""What other apps use of the patient's record (RULES.md §3, reply contents): the patient
space's reply composer attaches documents and the profile PDF, and saves received attachments
into the record. Keep these names stable.

`profile_pdf` writes no audit event: the caller records what it does with the PDF
(`profile.sent` when attached to a message, `profile.downloaded` for a download).
"""

from health_record.documents import document_for_user, documents_for_patient, read_document, save_document
from health_record.pdf import ensure_profile_pdf, pdf_filename
from mailboxes import queueing

__all__ = [
    "document_for_user",
    "documents_for_patient",
    "profile_pdf",
    "read_document",
    "request_profile_pdf",
    "save_document",
]


def profile_pdf(patient, *, actor=None) -> tuple[str, bytes]:
    """(filename, PDF bytes) of the patient's profile: the cached render, or a render now."""
    _name, data, _rendered = ensure_profile_pdf(patient)
    return pdf_filename(patient), data


def request_profile_pdf(patient_id) -> None:
    """Queue a render of the profile PDF once the current transaction commits."""
    queueing.enqueue_on_commit("health_record.tasks.render_profile_pdf_task", patient_id)
