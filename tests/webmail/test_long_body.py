"""A very long body in the webmail: the reading pane, the HTML frame and the print view show the
first `BODY_DISPLAY_MAX_CHARS` characters, say so and link to the whole `.eml`."""

import pytest
from django.conf import settings
from django.urls import reverse

from mailboxes.models import Entry
from tests.patients.test_long_body import NOTICE, long_text

pytestmark = pytest.mark.django_db


def _received(cast, send, **kwargs):
    result = send(cast.charlie_box, cast.charlie, to=[cast.cardio.address], **kwargs)
    return Entry.objects.get(mailbox=cast.cardio, message=result.message)


def test_reading_pane_and_print_show_a_long_text_in_part(cast, client, send):
    limit = settings.BODY_DISPLAY_MAX_CHARS
    entry = _received(cast, send, text=long_text(3 * limit))
    client.force_login(cast.bob)
    for name in ("webmail:message", "webmail:message_print"):
        response = client.get(reverse(name, args=[entry.pk]))
        html = response.content.decode()
        assert response.status_code == 200
        assert len(html) < 1.3 * limit
        assert "FIN-DU-MESSAGE" not in html
        assert NOTICE in html
        assert reverse("mailboxes:message_eml", args=[entry.pk]) in html


def test_reading_pane_shows_a_text_under_the_bound_whole(cast, client, send):
    entry = _received(cast, send, text=long_text(settings.BODY_DISPLAY_MAX_CHARS // 2))
    client.force_login(cast.bob)
    html = client.get(reverse("webmail:message", args=[entry.pk])).content.decode()
    assert "FIN-DU-MESSAGE" in html
    assert NOTICE not in html


def test_the_html_frame_is_cut_after_sanitising_and_keeps_its_headers(cast, client, send, settings):
    settings.BODY_DISPLAY_MAX_CHARS = 10_000
    html_body = "".join(f"<p>Paragraphe <strong>{i}</strong></p>" for i in range(2000)) + "<p>FIN-DU-MESSAGE</p>"
    entry = _received(cast, send, text="", html=html_body)
    client.force_login(cast.bob)
    pane = client.get(reverse("webmail:message", args=[entry.pk])).content.decode()
    assert NOTICE in pane
    frame = client.get(reverse("webmail:message_body", args=[entry.pk]))
    body = frame.content.decode()
    assert "Paragraphe <strong>0</strong>" in body and "FIN-DU-MESSAGE" not in body
    assert len(body) < 11_000
    assert body.count("<strong>") == body.count("</strong>")
    assert "default-src 'none'" in frame["Content-Security-Policy"]
    assert frame["Cache-Control"] == "private, no-store"
