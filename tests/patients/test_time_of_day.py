"""The patient space writes a time of day "9 h 05", as the messages the patient receives do."""

import datetime
import re

import pytest
from django.utils import timezone

from mailboxes.models import Entry
from tests.patients.conftest import inbox_of, pro_send

pytestmark = pytest.mark.django_db


def _shown(html: str) -> str:
    """The page without its machine-readable `<time datetime="…">` values (ISO 8601)."""
    return re.sub(r'datetime="[^"]*"', "", html)


def test_the_patient_space_shows_times_in_the_french_form(cast, client):
    sent = pro_send(cast.alice_box, cast.alice, cast.paul_patient.address).message
    entry = inbox_of(cast.paul_box).get(message=sent)
    moment = timezone.make_aware(datetime.datetime(2026, 3, 4, 9, 5))
    Entry.objects.filter(pk=entry.pk).update(received_at=moment)
    client.force_login(cast.paul)
    inbox = client.get("/patient/").content.decode()
    assert "4 mars 2026, 9 h 05" in inbox and "09:05" not in _shown(inbox)
    page = client.get(f"/patient/message/{entry.pk}/").content.decode()
    assert "4 mars 2026 à 9 h 05" in page and "09:05" not in _shown(page)
