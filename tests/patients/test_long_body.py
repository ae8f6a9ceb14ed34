"""A very long body (up to the 25 MB message limit) does not make a page a phone cannot open:
the patient pages show the first `BODY_DISPLAY_MAX_CHARS` characters, say the message is shown in
part and link to the whole message (the access-checked `.eml` download)."""

import pytest
from django.conf import settings
from django.urls import reverse

from mailboxes.models import Entry
from tests.patients.conftest import pro_send

pytestmark = pytest.mark.django_db

NOTICE = "seul son début est affiché"
LINE = "Ligne de compte rendu numéro {:07d}.\n"


def long_text(chars: int) -> str:
    lines = [LINE.format(i) for i in range(chars // len(LINE.format(0)) + 1)]
    return "".join(lines) + "FIN-DU-MESSAGE\n"


@pytest.fixture
def paul(cast, client):
    client.force_login(cast.paul)
    return client


def _entry_for_paul(cast, text):
    message = pro_send(cast.alice_box, cast.alice, cast.paul_patient.address, text=text).message
    return Entry.objects.get(mailbox=cast.paul_box, message=message)


def test_a_body_over_the_bound_is_shown_in_part_with_the_notice_and_the_download(cast, paul):
    limit = settings.BODY_DISPLAY_MAX_CHARS
    entry = _entry_for_paul(cast, long_text(3 * limit))
    for url in (reverse("patients:message", args=[entry.pk]), reverse("patients:conversation", args=[entry.pk])):
        response = paul.get(url)
        html = response.content.decode()
        assert response.status_code == 200
        # The body's markup (one <br> per line) adds about a tenth: the page stays near the bound.
        assert len(html) < 1.25 * limit
        assert "Ligne de compte rendu numéro 0000000." in html
        assert "FIN-DU-MESSAGE" not in html
        assert NOTICE in html
        assert reverse("mailboxes:message_eml", args=[entry.pk]) in html
        # Plain words for the patient: what the download is, no file extension.
        assert "Télécharger le message en entier" in html
        assert ".eml" not in html
    # The link gives the whole message.
    download = paul.get(reverse("mailboxes:message_eml", args=[entry.pk]))
    assert download.status_code == 200
    assert b"FIN-DU-MESSAGE" in b"".join(download.streaming_content)


def test_a_body_under_the_bound_is_shown_whole_without_the_notice(cast, paul):
    entry = _entry_for_paul(cast, long_text(settings.BODY_DISPLAY_MAX_CHARS // 2))
    html = paul.get(reverse("patients:message", args=[entry.pk])).content.decode()
    assert "FIN-DU-MESSAGE" in html
    assert NOTICE not in html


def test_the_cut_ends_on_a_whole_line(cast, paul, settings):
    settings.BODY_DISPLAY_MAX_CHARS = 10_000
    entry = _entry_for_paul(cast, long_text(50_000))
    html = paul.get(reverse("patients:message", args=[entry.pk])).content.decode()
    body = html.split('<div class="message-body">', 1)[1].split("</div>", 1)[0]
    assert body.rstrip().removesuffix("</p>").rstrip().endswith(".")
    assert len(body) < 12_000


def test_a_long_html_body_is_cut_after_sanitising_and_stays_clean(cast, paul, settings):
    settings.BODY_DISPLAY_MAX_CHARS = 10_000
    html_body = "".join(f'<p>Paragraphe <a href="https://exemple.fr/{i}">lien {i}</a></p>' for i in range(2000))
    message = pro_send(cast.alice_box, cast.alice, cast.paul_patient.address, text="", html=html_body).message
    message.text_body = ""  # an HTML-only message as some senders write them
    message.save(update_fields=["text_body"])
    entry = Entry.objects.get(mailbox=cast.paul_box, message=message)
    html = paul.get(reverse("patients:message", args=[entry.pk])).content.decode()
    body = html.split('<div class="message-body">', 1)[1].split('<div class="body-cut', 1)[0]
    assert "lien 0<" in body and "lien 1999" not in body
    assert body.count("<a ") == body.count("</a>")  # re-sanitised: no tag left open
    assert len(body) < 11_000
    assert NOTICE in html
