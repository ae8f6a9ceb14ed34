"""A time of day reads "9 h 05" on the webmail's pages, as in the messages the product writes
(mssante/formats/fr/formats.py), never "09:05"."""

import datetime
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from mailboxes.models import Entry, Folder, Message

pytestmark = pytest.mark.django_db


def _shown(html: str) -> str:
    """The page without its machine-readable `<time datetime="…">` values (ISO 8601)."""
    return re.sub(r'datetime="[^"]*"', "", html)


def _at_five_past_nine(entry, day):
    moment = timezone.make_aware(datetime.datetime.combine(day, datetime.time(9, 5)))
    Message.objects.filter(pk=entry.message_id).update(date=moment)
    Entry.objects.filter(pk=entry.pk).update(received_at=moment)
    return moment


def test_the_message_list_shows_today_s_time_in_the_french_form(cast, client, received):
    _at_five_past_nine(received, timezone.localdate())
    client.force_login(cast.bob)
    inbox = cast.cardio.folder(Folder.Role.INBOX)
    html = client.get(reverse("webmail:folder", args=[cast.cardio.pk, inbox.pk])).content.decode()
    assert ">9 h 05</time>" in html
    assert "09:05" not in _shown(html)


def test_the_message_view_shows_the_date_and_time_in_the_french_form(cast, client, received):
    _at_five_past_nine(received, datetime.date(2026, 3, 4))
    client.force_login(cast.bob)
    html = client.get(reverse("webmail:message", args=[received.pk])).content.decode()
    assert "mercredi 4 mars 2026 à 9 h 05" in html
    assert "09:05" not in _shown(html)
    printed = client.get(reverse("webmail:message_print", args=[received.pk])).content.decode()
    assert "mercredi 4 mars 2026 à 9 h 05" in printed
