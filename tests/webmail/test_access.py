"""The access matrix of the webmail: Bob (member of cardiologie@) reaches the shared box and its
messages; Charlie (not a member) gets 404 on its list, messages, attachments, search and
timeline — "not yours" looks like "does not exist"."""

import pytest
from django.urls import reverse

from mailboxes.models import Folder

pytestmark = pytest.mark.django_db


@pytest.fixture
def internal(cast, send):
    """A message Alice sends to cardiologie@ with an attachment: Charlie is nowhere in it."""
    result = send(
        cast.alice_box,
        cast.alice,
        to=[cast.cardio.address],
        subject="Lambert : point de situation",
        attachments=[("note.pdf", "application/pdf", b"%PDF-1.4\n% note\n")],
    )
    return result.message.entries.get(mailbox=cast.cardio)


def _urls(cast, entry):
    box, inbox = cast.cardio, cast.cardio.folder(Folder.Role.INBOX)
    attachment = entry.message.attachments.get()
    return [
        ("get", reverse("webmail:mailbox", args=[box.pk])),
        ("get", reverse("webmail:folder", args=[box.pk, inbox.pk])),
        ("get", reverse("webmail:search", args=[box.pk])),
        ("post", reverse("webmail:search", args=[box.pk])),
        ("get", reverse("webmail:empty_trash", args=[box.pk])),
        ("get", reverse("webmail:message", args=[entry.pk])),
        ("get", reverse("webmail:message_body", args=[entry.pk])),
        ("get", reverse("webmail:message_headers", args=[entry.pk])),
        ("get", reverse("webmail:message_print", args=[entry.pk])),
        ("get", reverse("webmail:message_timeline", args=[entry.pk])),
        ("get", reverse("mailboxes:attachment_download", args=[attachment.pk])),
        ("get", reverse("mailboxes:message_eml", args=[entry.pk])),
        ("get", reverse("webmail:compose") + f"?reponse={entry.pk}&mode=reply"),
        ("post", reverse("webmail:message_action", args=[entry.pk])),
        ("post", reverse("webmail:folder_create", args=[box.pk])),
    ]


def test_member_reaches_the_shared_box(cast, client, internal):
    client.force_login(cast.bob)
    for method, url in _urls(cast, internal):
        if method == "post":
            continue
        response = getattr(client, method)(url)
        assert response.status_code in (200, 302), url


def test_non_member_gets_404_everywhere(cast, client, internal):
    client.force_login(cast.charlie)
    for method, url in _urls(cast, internal):
        data = {"action": "archive", "name": "x"} if method == "post" else {}
        response = getattr(client, method)(url, data)
        assert response.status_code == 404, url
    internal.refresh_from_db()
    assert internal.folder.role == Folder.Role.INBOX


def test_patient_cannot_use_the_pro_webmail_on_their_box(cast, client):
    client.force_login(cast.paul)
    response = client.get(reverse("webmail:mailbox", args=[cast.paul_box.pk]))
    assert response.status_code == 404


def test_search_results_never_cross_boxes(cast, client, received, send):
    send(cast.alice_box, cast.alice, to=[cast.charlie_box.address], subject="Lambert confidentiel")
    from webmail.tasks import index_search_task

    assert index_search_task() == 2
    client.force_login(cast.bob)
    results = client.post(reverse("webmail:search", args=[cast.cardio.pk]), {"q": "Lambert"})["Location"]
    page = client.get(results).context["page"]
    assert {r.entry.mailbox_id for r in page.rows} == {cast.cardio.pk}


def test_moving_to_a_folder_of_another_box_is_refused(cast, client, received):
    client.force_login(cast.alice)
    foreign = cast.alice_box.folder(Folder.Role.ARCHIVE)
    response = client.post(
        reverse("webmail:message_action", args=[received.pk]), {"action": "move", "folder": foreign.pk}
    )
    assert response.status_code == 404
    received.refresh_from_db()
    assert received.folder.role == Folder.Role.INBOX


def test_not_yours_and_does_not_exist_show_the_same_french_page(cast, client, internal):
    """A 404 is a page in French, and the same page whether the message is someone else's or
    does not exist (the CSRF token of the sign-out form aside, which changes at every render)."""
    import re

    client.force_login(cast.charlie)
    theirs = client.get(reverse("webmail:message", args=[internal.pk]))
    missing = client.get(reverse("webmail:message", args=[internal.pk + 1_000_000]))
    assert theirs.status_code == missing.status_code == 404

    def page(response) -> str:
        return re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "", response.content.decode())

    assert "Page introuvable" in page(theirs) and "Not Found" not in page(theirs)
    assert page(theirs) == page(missing)


def test_an_unexpected_error_is_a_french_page_that_says_what_to_do(rf):
    """handler500 outside /api/: a page that needs nothing but the static files (no context,
    no database), in French, telling whoever was sending to look in « Envoyés »."""
    from django.urls import get_resolver

    handler = get_resolver().resolve_error_handler(500)
    response = handler(rf.get("/pro/"))
    text = response.content.decode()
    assert response.status_code == 500
    assert "Erreur du serveur" in text and "Envoyés" in text and "Server Error" not in text
