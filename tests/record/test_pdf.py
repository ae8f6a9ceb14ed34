"""The profile PDF: rendered by the Celery task for a full and an empty profile, read back
with pypdf; cached by content (a hit renders nothing); stored atomically."""

import io
import os
from pathlib import Path

import pypdf
import pytest
from django.core.files.storage import default_storage
from django.urls import reverse

from audit.models import AuditEvent
from health_record import pdf
from health_record.api import profile_pdf
from health_record.models import Measure, Profile, Treatment
from health_record.profile import SECTIONS, mark_section_updated, profile_for_patient
from health_record.tasks import render_profile_pdf_task
from health_record.templatetags.record_tags import french_typography
from tests.record.profiles import fill_profile

pytestmark = pytest.mark.django_db


def pdf_text(data: bytes) -> str:
    reader = pypdf.PdfReader(io.BytesIO(data))
    text = "\n".join(page.extract_text() for page in reader.pages)
    # Non-breaking spaces (French typography) read as plain spaces for the assertions.
    return text.replace("\u00a0", " ").replace("\u202f", " ")


def stored_pdf(patient) -> bytes:
    profile = Profile.objects.get(patient=patient)
    with default_storage.open(profile.pdf_name, "rb") as handle:
        return handle.read()


def test_task_renders_a_complete_profile(cast):
    fill_profile(cast.paul_patient)
    render_profile_pdf_task.delay(cast.paul_patient.pk)
    data = stored_pdf(cast.paul_patient)
    reader = pypdf.PdfReader(io.BytesIO(data))
    assert len(reader.pages) == 2
    text = pdf_text(data)
    for expected in [
        "Paul",
        "LAMBERT",
        cast.paul_patient.ins,
        "Né(e) le 14/03/1958",
        *[s.title for s in SECTIONS],
        "Pénicilline",
        "Ramipril 5 mg",
        "Appendicectomie",
        "Marie Lambert",
        "personne de confiance",
        "Grippe saisonnière",
        "CPAM de l'Isère",
        "Mesures",
        "82 kg",  # the latest weight
        "135/87 mmHg",  # the latest blood pressure
        "1,22 g/L",
        "73 bpm",
        "26,5 kg/m²",  # BMI, derived
        "page 1 / 2",
        "page 2 / 2",
        "Profil médical généré le",
    ]:
        assert expected in text, expected
    # Charts are inline SVG: the PDF holds vector drawings with their date labels.
    assert "10/01/2025" in text


def test_task_renders_an_empty_profile(cast):
    render_profile_pdf_task.delay(cast.pauline_patient.pk)
    text = pdf_text(stored_pdf(cast.pauline_patient))
    assert "Pauline" in text and "ROUX" in text and cast.pauline_patient.ins in text
    for section in SECTIONS:
        assert section.title in text
    assert "Non renseigné." in text
    assert "Aucune mesure renseignée." in text
    assert "page 1 / 1" in text


def test_french_typography_in_the_pdf_and_the_filter():
    assert french_typography("Allergie : pénicilline ; urticaire ! Vraiment ?") == (
        "Allergie\u00a0: pénicilline\u202f; urticaire\u202f! Vraiment\u202f?"
    )
    assert french_typography("rendez-vous à 10:30") == "rendez-vous à 10:30"
    assert french_typography("« bonjour »") == "«\u202fbonjour\u202f»"


def test_a_cache_hit_renders_nothing(cast, monkeypatch):
    fill_profile(cast.paul_patient)
    name, first, rendered = pdf.ensure_profile_pdf(cast.paul_patient)
    assert rendered
    path = Path(default_storage.path(name))
    mtime = path.stat().st_mtime_ns

    calls = []
    monkeypatch.setattr(pdf, "render_pdf", lambda *a, **k: calls.append(a) or b"%PDF-never")
    filename, again = profile_pdf(cast.paul_patient)
    render_profile_pdf_task.delay(cast.paul_patient.pk)
    assert calls == []
    assert again == first
    assert path.stat().st_mtime_ns == mtime
    assert filename == "profil-medical-paul-lambert.pdf"


def test_a_change_renders_again_and_drops_the_old_file(cast, django_capture_on_commit_callbacks):
    fill_profile(cast.paul_patient)
    old_name, _data, _ = pdf.ensure_profile_pdf(cast.paul_patient)
    profile = profile_for_patient(cast.paul_patient)
    Treatment.objects.create(profile=profile, drug="Kardégic 75 mg", dose="1 sachet le midi")
    with django_capture_on_commit_callbacks(execute=True):
        mark_section_updated(profile, "treatments")
        new_name, data, rendered = pdf.ensure_profile_pdf(cast.paul_patient)
    assert rendered and new_name != old_name
    assert "Kardégic 75 mg" in pdf_text(data)
    assert not default_storage.exists(old_name)
    profile.refresh_from_db()
    assert profile.pdf_name == new_name
    assert profile.pdf_hash in new_name  # the hash is stored with the file


def test_a_new_measure_changes_the_hash(cast):
    before = pdf.content_hash(pdf.profile_data(cast.paul_patient))
    Measure.objects.create(patient=cast.paul_patient, kind="weight", measured_on="2025-05-01", value=80)
    assert pdf.content_hash(pdf.profile_data(cast.paul_patient)) != before


def test_store_is_atomic_and_leaves_no_temporary_file(tmp_path):
    from django.core.files.storage import FileSystemStorage

    storage = FileSystemStorage(location=str(tmp_path))
    pdf.store_atomically("profiles/1/abc.pdf", b"%PDF-1 first", storage)
    pdf.store_atomically("profiles/1/abc.pdf", b"%PDF-1 second", storage)
    folder = tmp_path / "profiles" / "1"
    assert sorted(os.listdir(folder)) == ["abc.pdf"]
    assert (folder / "abc.pdf").read_bytes() == b"%PDF-1 second"


def test_download_view_serves_the_pdf_and_audits(cast, paul_client):
    response = paul_client.get(reverse("health_record:profile_pdf"))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == 'attachment; filename="profil-medical-paul-lambert.pdf"'
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "Paul" in pdf_text(response.content)
    [event] = AuditEvent.objects.filter(action="profile.downloaded")
    assert event.actor == cast.paul and event.object_id == str(cast.paul_patient.pk)


def test_the_fr_filter_handles_plain_and_safe_text():
    from django.template import Context, Template

    rendered = Template('{% load record_tags %}{{ ":"|fr }}|{{ v|fr }}').render(Context({"v": "Note : <b>oui</b> !"}))
    assert rendered == "\u00a0:|Note\u00a0: &lt;b&gt;oui&lt;/b&gt;\u202f!"


def test_a_long_profile_flows_onto_more_pages_without_losing_rows(cast):
    profile = fill_profile(cast.paul_patient)
    Treatment.objects.bulk_create(
        [Treatment(profile=profile, drug=f"Médicament numéro {i:02d}", dose="1 comprimé le matin") for i in range(70)]
    )
    _name, data, _ = pdf.ensure_profile_pdf(cast.paul_patient)
    text = pdf_text(data)
    assert len(pypdf.PdfReader(io.BytesIO(data)).pages) >= 3
    for i in range(70):
        assert f"Médicament numéro {i:02d}" in text
    assert "Grippe saisonnière" in text and "Pénicilline" in text
