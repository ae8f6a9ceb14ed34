"""The profile PDF rendered by a real Celery worker (another process, Redis DB 7): a change to
the profile queues the render after commit; the web process then serves the stored file without
rendering; a duplicate task is a cache hit."""

import io
from pathlib import Path

import pypdf
import pytest
import redis
from django.core.files.storage import default_storage
from django.urls import reverse

from health_record import pdf
from health_record.api import profile_pdf, request_profile_pdf
from health_record.models import Profile
from tests.celery_broker import broker_url, publishing_to
from tests.record.conftest import formset_data
from tests.record.profiles import fill_profile
from tests.transport.conftest import finished, process_env, start_worker, wait_until  # noqa: F401 - fixtures

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

REDIS_URL = broker_url("record", 7)


@pytest.fixture
def broker_db7(settings):
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    settings.CELERY_TASK_ALWAYS_EAGER = False
    try:
        with publishing_to(REDIS_URL):
            yield client
    finally:
        client.flushdb()
        client.close()


def stored_name(patient):
    return Profile.objects.filter(patient=patient).values_list("pdf_name", flat=True).first()


def test_a_profile_change_is_rendered_by_the_worker(cast, client, broker_db7, start_worker, monkeypatch):  # noqa: F811
    fill_profile(cast.paul_patient)
    worker = start_worker(CELERY_BROKER_URL=REDIS_URL)

    client.force_login(cast.paul)
    data = formset_data([{"kind": "allergy", "substance": "Iode", "reaction": "œdème"}])
    assert client.post(reverse("health_record:edit_section", args=["allergies"]), data).status_code == 302

    profile = Profile.objects.get(patient=cast.paul_patient)
    expected = pdf.content_hash(pdf.profile_data(cast.paul_patient))
    wait_until(lambda: Profile.objects.get(pk=profile.pk).pdf_hash == expected, timeout=60)
    name = stored_name(cast.paul_patient)
    assert expected in name
    path = Path(default_storage.path(name))
    assert path.exists() and not [p for p in path.parent.iterdir() if p.name.startswith(".tmp-")]

    # The web process serves the worker's file: nothing is rendered here.
    monkeypatch.setattr(pdf, "render_pdf", lambda *a, **k: pytest.fail("rendered in the web process"))
    _filename, data = profile_pdf(cast.paul_patient)
    text = "\n".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(data)).pages)
    assert "Iode" in text and cast.paul_patient.ins in text

    # A duplicate task is a cache hit: the file is not written again.
    mtime = path.stat().st_mtime_ns
    rendered_at = Profile.objects.get(pk=profile.pk).pdf_rendered_at
    request_profile_pdf(cast.paul_patient.pk)
    wait_until(lambda: broker_db7.llen("celery") == 0, timeout=10)
    # The worker logged the duplicate as finished.
    wait_until(lambda: finished(worker, "health_record.tasks.render_profile_pdf_task") >= 2, timeout=30)
    assert path.stat().st_mtime_ns == mtime
    assert Profile.objects.get(pk=profile.pk).pdf_rendered_at == rendered_at
