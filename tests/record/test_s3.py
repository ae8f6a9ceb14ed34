"""The record on S3-compatible object storage (SeaweedFS on loopback, real signatures):
documents stored by hash and the profile PDF cache work the same as on local files."""

import datetime
import uuid

import pytest
from django.core.files.storage import default_storage

from health_record import pdf
from health_record.api import document_for_user, read_document, save_document
from health_record.documents import delete_document
from tests.transport.conftest import s3_storages, seaweedfs, wait_until  # noqa: F401 - fixtures

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


@pytest.fixture
def s3(seaweedfs, settings):  # noqa: F811
    settings.STORAGES = s3_storages(seaweedfs, prefix=f"record-{uuid.uuid4().hex[:8]}")
    assert default_storage.__class__.__name__ == "S3Storage"
    return seaweedfs


def test_documents_and_the_profile_pdf_on_s3(cast, s3, monkeypatch, django_capture_on_commit_callbacks):
    data = b"%PDF-1.4\n% compte rendu\n%%EOF\n"
    document = save_document(
        cast.paul_patient,
        data=data,
        filename="cr.pdf",
        title="Compte rendu",
        date=datetime.date(2025, 3, 1),
        category="report",
        kind="health",
    )
    assert default_storage.exists(document.file.name)
    assert read_document(document_for_user(cast.paul, document.pk)) == data

    name, first, rendered = pdf.ensure_profile_pdf(cast.paul_patient)
    assert rendered and default_storage.exists(name) and first.startswith(b"%PDF")
    monkeypatch.setattr(pdf, "render_pdf", lambda *a, **k: pytest.fail("cache miss"))
    assert pdf.ensure_profile_pdf(cast.paul_patient) == (name, first, False)

    with django_capture_on_commit_callbacks(execute=True):
        delete_document(document, actor=cast.paul)
    assert not default_storage.exists(document.file.name)
