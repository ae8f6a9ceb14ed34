"""Documents of the record: upload checked by content, preview and download with safe headers,
deletion after confirmation, and an audit event for each."""

import datetime

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from audit.models import AuditEvent
from health_record.api import document_for_user, documents_for_patient, save_document
from health_record.models import Document

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
HTML = b"<!doctype html><html><script>alert(1)</script></html>"

pytestmark = pytest.mark.django_db


def upload(client, data, name, **fields):
    payload = {
        "file": SimpleUploadedFile(name, data),
        "title": "Compte rendu de cardiologie",
        "date": "2025-03-01",
        "kind": "health",
        "category": "report",
        **fields,
    }
    return client.post(reverse("health_record:upload_document"), payload)


def events(action):
    return list(AuditEvent.objects.filter(action=action))


def test_upload_a_pdf_adds_it_and_audits(cast, paul_client):
    response = upload(paul_client, PDF, "cr.pdf")
    document = Document.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("health_record:document", args=[document.pk])
    assert document.patient == cast.paul_patient
    assert document.content_type == "application/pdf"
    assert document.file.name == f"docs/{document.sha256[:2]}/{document.sha256}"
    [event] = events("document.added")
    assert event.actor == cast.paul and event.object_id == str(document.pk)
    page = paul_client.get(reverse("health_record:documents"))
    assert "Compte rendu de cardiologie" in page.content.decode()


def test_a_pdf_name_with_html_content_is_refused(cast, paul_client):
    response = upload(paul_client, HTML, "ordonnance.pdf")
    assert response.status_code == 200
    assert "n&#x27;est pas d&#x27;un format accepté" in response.content.decode()
    assert not Document.objects.exists()
    assert not events("document.added")
    with pytest.raises(ValidationError, match="format accepté"):
        save_document(
            cast.paul_patient,
            data=HTML,
            filename="ordonnance.pdf",
            title="x",
            date=datetime.date(2025, 1, 1),
            category="prescription",
            kind="health",
        )


def test_content_must_match_the_extension_and_size_is_limited(cast, paul_client, settings):
    response = upload(paul_client, PNG, "image.pdf")
    assert "ne correspond pas à son extension" in response.content.decode()
    settings.HEALTH_DOCUMENT_MAX_BYTES = 100
    response = upload(paul_client, PDF + b"0" * 200, "gros.pdf")
    assert "la limite est de" in response.content.decode()
    assert not Document.objects.exists()


def test_category_must_fit_the_kind(paul_client):
    response = upload(paul_client, PDF, "cr.pdf", kind="admin", category="report")
    assert "ne correspond pas à un document administratif" in response.content.decode()


def test_preview_is_inline_nosniff_with_a_restrictive_csp(cast, paul_client):
    upload(paul_client, PDF, "cr.pdf")
    document = Document.objects.get()
    page = paul_client.get(reverse("health_record:document", args=[document.pk]))
    assert f'<iframe src="{reverse("health_record:document_inline", args=[document.pk])}"' in page.content.decode()
    response = paul_client.get(reverse("health_record:document_inline", args=[document.pk]))
    assert response.status_code == 200
    assert response.content == PDF
    assert response["Content-Type"] == "application/pdf"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'none'" in response["Content-Security-Policy"]
    assert "script-src" not in response["Content-Security-Policy"]
    assert response["X-Frame-Options"] == "SAMEORIGIN"
    [viewed] = events("document.viewed")
    assert viewed.object_id == str(document.pk)


def test_image_previews_with_img_and_text_has_no_preview(cast, paul_client):
    upload(paul_client, PNG, "carte.png", kind="admin", category="blood_group", title="Carte de groupe")
    image = Document.objects.get()
    assert '<img src="' in paul_client.get(reverse("health_record:document", args=[image.pk])).content.decode()
    upload(paul_client, b"Notes de suivi\n", "notes.txt", title="Notes")
    text = Document.objects.get(filename="notes.txt")
    assert paul_client.get(reverse("health_record:document_inline", args=[text.pk])).status_code == 404
    assert (
        "téléchargez le document" in paul_client.get(reverse("health_record:document", args=[text.pk])).content.decode()
    )


def test_download_is_an_attachment_and_audited(cast, paul_client):
    upload(paul_client, PDF, "cr.pdf")
    document = Document.objects.get()
    response = paul_client.get(reverse("health_record:document_download", args=[document.pk]))
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment")
    assert 'filename="cr.pdf"' in response["Content-Disposition"]
    assert response["X-Content-Type-Options"] == "nosniff"
    assert b"".join(response.streaming_content) == PDF
    assert len(events("document.downloaded")) == 1


def test_delete_asks_for_confirmation_then_removes_and_audits(cast, paul_client, django_capture_on_commit_callbacks):
    upload(paul_client, PDF, "cr.pdf")
    document = Document.objects.get()
    url = reverse("health_record:document_delete", args=[document.pk])
    page = paul_client.get(url)
    assert "Supprimer ce document" in page.content.decode()
    assert Document.objects.filter(pk=document.pk).exists()
    storage = document.file.storage
    name = document.file.name
    assert storage.exists(name)
    with django_capture_on_commit_callbacks(execute=True):
        response = paul_client.post(url)
    assert response.status_code == 302
    assert not Document.objects.filter(pk=document.pk).exists()
    assert len(events("document.deleted")) == 1
    assert not storage.exists(name)


def test_same_bytes_twice_share_one_stored_file(cast):
    first = save_document(
        cast.paul_patient,
        data=PDF,
        filename="a.pdf",
        title="A",
        date=datetime.date(2025, 1, 1),
        category="report",
        kind="health",
    )
    second = save_document(
        cast.paul_patient,
        data=PDF,
        filename="b.pdf",
        title="B",
        date=datetime.date(2025, 1, 2),
        category="report",
        kind="health",
    )
    assert first.file.name == second.file.name
    assert list(documents_for_patient(cast.paul_patient)) == [second, first]
    assert document_for_user(cast.paul, first.pk) == first


PDF_WITH_SCRIPT = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/OpenAction<</S/JavaScript/JS(app.alert(1))>>>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n<html><body><script>alert(document.cookie)</script></body></html>\n"
)


def test_preview_of_a_document_has_the_headers_of_an_attachment_preview(cast, paul_client):
    """A PDF carrying JavaScript and an HTML tail is a valid PDF: it is accepted, and its preview
    is sandboxed exactly like an attachment's (issue 15 item 11)."""
    from mailboxes.file_headers import PREVIEW_CSP

    assert upload(paul_client, PDF_WITH_SCRIPT, "cr.pdf").status_code == 302
    document = Document.objects.get()
    response = paul_client.get(reverse("health_record:document_inline", args=[document.pk]))
    assert response.status_code == 200
    csp = [part.strip() for part in response["Content-Security-Policy"].split(";")]
    assert "sandbox" in csp and "default-src 'none'" in csp
    assert response["Content-Disposition"] == "inline"
    assert response["X-Frame-Options"] == "SAMEORIGIN"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Cache-Control"] == "private, no-store"
    assert response["Content-Security-Policy"] == PREVIEW_CSP
    download = paul_client.get(reverse("health_record:document_download", args=[document.pk]))
    assert "sandbox" in download["Content-Security-Policy"]
    assert download["Content-Disposition"].startswith("attachment")
