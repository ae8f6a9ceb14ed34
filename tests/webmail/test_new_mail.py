"""Issue 16 item 15, server side: what an open page asks for new mail, and the unread count in
the tab title."""

import pytest
from django.urls import reverse

from mailboxes.models import Entry, Folder
from webmail.selectors import encode_cursor

pytestmark = pytest.mark.django_db


def test_the_poll_answers_counts_and_the_newest_message(cast, client, send, django_assert_max_num_queries):
    inbox = cast.alice_box.folder(Folder.Role.INBOX)
    url = reverse("webmail:poll", args=[cast.alice_box.pk, inbox.pk])
    client.force_login(cast.alice)
    client.get(url)  # the session and user are loaded once
    assert client.get(url).json() == {
        "unread_total": 0,
        "folders": {str(f.pk): 0 for m in (cast.alice_box, cast.cardio) for f in m.folders.all()},
        "latest": "",
    }
    result = send(cast.charlie_box, cast.charlie, to=[cast.alice_box.address], subject="Nouveau")
    entry = Entry.objects.get(mailbox=cast.alice_box, message=result.message)
    with django_assert_max_num_queries(5):  # session, user, patient check (middleware), navigation, newest
        answer = client.get(url).json()
    assert answer["unread_total"] == 1
    assert answer["folders"][str(inbox.pk)] == 1
    assert answer["latest"] == encode_cursor(entry)
    # The page shown compares with the first row of its list; the title carries the count.
    page = client.get(reverse("webmail:folder", args=[cast.alice_box.pk, inbox.pk])).content.decode()
    assert f'data-latest="{encode_cursor(entry)}" data-live' in page
    assert f'data-poll-url="{url}"' in page
    assert "<title>(1) Boîte de réception" in page


def test_the_poll_of_another_box_is_a_404(cast, client):
    client.force_login(cast.charlie)
    inbox = cast.alice_box.folder(Folder.Role.INBOX)
    assert client.get(reverse("webmail:poll", args=[cast.alice_box.pk, inbox.pk])).status_code == 404
    other = cast.charlie_box.folder(Folder.Role.INBOX)
    assert client.get(reverse("webmail:poll", args=[cast.alice_box.pk, other.pk])).status_code == 404
