"""Issue 16 items 13 and 14, as a secretary of the shared box sees them: read receipts update
the tracking and are not unread mail; claim/assign/done only on mail to handle; archiving goes
on to the next message; the move menu chooses no folder by itself."""

import pytest
from django.urls import reverse

from mailboxes import compose
from mailboxes.models import Delivery, Entry, Folder
from mailboxes.reports import send_mdn
from webmail.selectors import navigation

pytestmark = pytest.mark.django_db

CONTROLS = ("Je m'en occupe", "Attribuer à", "Marquer comme traité")


def reading_pane(html: str) -> str:
    return html.split('id="reading-pane"', 1)[1]


def inbox_unread(user, box):
    node = next(n for n in navigation(user) if n.mailbox.pk == box.pk)
    return node.unread


def test_a_read_receipt_updates_the_tracking_and_is_not_unread_mail(cast, client):
    sent = compose.send_from_mailbox(
        cast.cardio,
        cast.alice,
        to=[cast.paul_patient.address],
        subject="Convocation",
        text="Bonjour.",
        request_mdn=True,
    )
    before = inbox_unread(cast.bob, cast.cardio)
    # The patient opens the message: the patient space sends the receipt (reports.send_mdn).
    assert send_mdn(Entry.objects.get(mailbox=cast.paul_box, message=sent.message))
    receipt = Entry.objects.get(mailbox=cast.cardio, folder__role=Folder.Role.INBOX, message__is_report=True)
    assert receipt.seen
    assert inbox_unread(cast.bob, cast.cardio) == before
    assert Delivery.objects.get(message=sent.message).status == Delivery.Status.READ

    client.force_login(cast.bob)
    inbox = client.get(reverse("webmail:folder", args=[cast.cardio.pk, receipt.folder_id])).content.decode()
    assert "non lu" not in inbox.split("<tbody>", 1)[1]
    page = reading_pane(client.get(reverse("webmail:message", args=[receipt.pk])).content.decode())
    assert "Accusé de lecture : il met à jour le suivi de distribution" in page
    for control in CONTROLS:
        assert control not in page
    tracking = client.get(
        reverse("webmail:message", args=[Entry.objects.get(mailbox=cast.cardio, message=sent.message).pk])
    ).content.decode()
    assert "Lu (accusé de lecture)" in tracking
    # Nor can a crafted request claim it: nothing changes, the person is told why.
    response = client.post(
        reverse("webmail:message_action", args=[receipt.pk]), {"action": "claim"}, follow=True
    ).content.decode()
    assert "Un message envoyé ou un accusé de lecture ne s&#x27;attribue pas." in response
    receipt.refresh_from_db()
    assert receipt.assigned_to is None


def test_sharing_controls_only_on_mail_received_by_the_shared_box(cast, client, received):
    sent = compose.send_from_mailbox(
        cast.cardio, cast.bob, to=[cast.charlie_box.address], subject="Réponse", text="Bonjour."
    )
    sent_entry = Entry.objects.get(mailbox=cast.cardio, message=sent.message)
    client.force_login(cast.bob)
    page = reading_pane(client.get(reverse("webmail:message", args=[sent_entry.pk])).content.decode())
    for control in CONTROLS:
        assert control not in page
    page = reading_pane(client.get(reverse("webmail:message", args=[received.pk])).content.decode())
    for control in CONTROLS:
        assert control in page
    client.post(reverse("webmail:message_action", args=[sent_entry.pk]), {"action": "done"})
    sent_entry.refresh_from_db()
    assert sent_entry.done_at is None


def test_archive_goes_on_to_the_next_message(cast, client, send):
    entries = [
        Entry.objects.get(
            mailbox=cast.alice_box,
            message=send(cast.charlie_box, cast.charlie, to=[cast.alice_box.address], subject=f"Message {i}").message,
        )
        for i in range(3)
    ]
    newest, middle, oldest = entries[2], entries[1], entries[0]
    client.force_login(cast.alice)
    response = client.post(reverse("webmail:message_action", args=[newest.pk]), {"action": "archive"})
    assert response["Location"] == reverse("webmail:message", args=[middle.pk])  # the next one down the list
    response = client.post(reverse("webmail:message_action", args=[oldest.pk]), {"action": "trash"})
    assert response["Location"] == reverse("webmail:message", args=[middle.pk])  # none below: the one above
    response = client.post(reverse("webmail:message_action", args=[middle.pk]), {"action": "archive"}, follow=True)
    inbox = cast.alice_box.folder(Folder.Role.INBOX)
    assert response.redirect_chain[-1][0] == reverse("webmail:folder", args=[cast.alice_box.pk, inbox.pk])
    assert "Message archivé." in response.content.decode()


def test_the_move_menu_chooses_no_folder_by_itself(cast, client, received):
    client.force_login(cast.bob)
    page = reading_pane(client.get(reverse("webmail:message", args=[received.pk])).content.decode())
    menu = page.split('id="move-folder"', 1)[1].split("</select>", 1)[0]
    first_option = menu.split("<option", 2)[1]
    assert 'value="" selected' in first_option and "Déplacer vers…" in first_option
    assert "Envoyés" in menu  # offered, not chosen
    response = client.post(
        reverse("webmail:message_action", args=[received.pk]), {"action": "move", "folder": ""}, follow=True
    )
    assert "Choisissez le dossier où déplacer le message." in response.content.decode()
    received.refresh_from_db()
    assert received.folder.role == Folder.Role.INBOX
