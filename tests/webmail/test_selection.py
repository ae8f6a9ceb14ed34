"""Issue 16 item 16 through the pages: several messages ticked in the list, one action, all or
nothing, each message access-checked, a confirmation before trashing or deleting, one audit
event per message."""

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from mailboxes import compose
from mailboxes.models import Entry, Folder

pytestmark = pytest.mark.django_db


@pytest.fixture
def three(cast, send):
    """Three messages from Charlie in Alice's inbox, oldest first."""
    return [
        Entry.objects.get(
            mailbox=cast.alice_box,
            message=send(cast.charlie_box, cast.charlie, to=[cast.alice_box.address], subject=f"Bilan {i}").message,
        )
        for i in range(3)
    ]


def bulk(client, box, action, entries, follow=True, **data):
    return client.post(
        reverse("webmail:bulk", args=[box.pk]),
        {"action": action, "entries": [e.pk for e in entries], **data},
        follow=follow,
    )


def folders(entries):
    return [Entry.objects.get(pk=e.pk).folder.role for e in entries]


def test_the_list_offers_a_checkbox_per_message_and_the_actions(cast, client, three):
    client.force_login(cast.alice)
    html = client.get(reverse("webmail:mailbox", args=[cast.alice_box.pk]), follow=True).content.decode()
    for entry in three:
        assert f'name="entries" value="{entry.pk}" form="bulk-form"' in html
    assert 'aria-label="Sélectionner : Bilan 0"' in html
    for label in ("Archiver", "Supprimer…", "Déplacer vers…", "Tout"):
        assert label in html.split('id="bulk-form"', 1)[1].split("</form>", 1)[0]


def test_archive_several(cast, client, three):
    client.force_login(cast.alice)
    response = bulk(client, cast.alice_box, "archive", three[:2])
    assert "2 messages déplacés dans « Archives »." in response.content.decode()
    assert folders(three) == [Folder.Role.ARCHIVE, Folder.Role.ARCHIVE, Folder.Role.INBOX]
    moved = AuditEvent.objects.filter(action=AuditEvent.Action.MOVED, actor=cast.alice)
    assert sorted(moved.values_list("object_id", flat=True)) == sorted(str(e.pk) for e in three[:2])


def test_one_message_not_yours_and_nothing_happens(cast, client, three, send):
    foreign = Entry.objects.get(
        mailbox=cast.charlie_box,
        message=send(cast.alice_box, cast.alice, to=[cast.charlie_box.address], subject="Pour Charlie").message,
    )
    client.force_login(cast.alice)
    assert bulk(client, cast.alice_box, "archive", [*three, foreign], follow=False).status_code == 404
    # Alice reaches the shared box too, but a selection belongs to the box of the list.
    shared = Entry.objects.get(
        mailbox=cast.cardio,
        message=send(cast.charlie_box, cast.charlie, to=[cast.cardio.address], subject="Au service").message,
    )
    assert bulk(client, cast.alice_box, "archive", [three[0], shared], follow=False).status_code == 404
    response = client.post(reverse("webmail:bulk", args=[cast.alice_box.pk]), {"action": "read", "entries": ["x"]})
    assert response.status_code == 404
    assert folders(three) == [Folder.Role.INBOX] * 3
    assert Entry.objects.get(pk=shared.pk).folder.role == Folder.Role.INBOX
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.MOVED).exists()


def test_trash_asks_first_then_moves_all(cast, client, three):
    client.force_login(cast.alice)
    page = bulk(client, cast.alice_box, "trash", three, follow=False)
    html = page.content.decode()
    assert page.status_code == 200 and "Placer 3 message(s) dans la corbeille ?" in html
    assert "Bilan 0" in html and "Bilan 2" in html
    assert folders(three) == [Folder.Role.INBOX] * 3  # nothing yet
    response = bulk(client, cast.alice_box, "trash", three, confirmed="1")
    assert "3 messages placés dans la corbeille." in response.content.decode()
    assert folders(three) == [Folder.Role.TRASH] * 3


def test_delete_for_good_from_the_trash(cast, client, three):
    client.force_login(cast.alice)
    bulk(client, cast.alice_box, "trash", three, confirmed="1")
    html = bulk(client, cast.alice_box, "delete", three[:2], follow=False).content.decode()
    assert "Supprimer définitivement 2 message(s) ?" in html and "irréversible" in html
    assert Entry.objects.filter(pk__in=[e.pk for e in three]).count() == 3
    response = bulk(client, cast.alice_box, "delete", three[:2], confirmed="1")
    assert "2 messages supprimés définitivement." in response.content.decode()
    assert list(Entry.objects.filter(pk__in=[e.pk for e in three]).values_list("pk", flat=True)) == [three[2].pk]
    final = AuditEvent.objects.filter(action=AuditEvent.Action.DELETED, detail__final=True)
    assert final.count() == 2


def test_delete_for_good_only_from_the_trash(cast, client, three):
    client.force_login(cast.alice)
    bulk(client, cast.alice_box, "trash", three[:1], confirmed="1")
    response = bulk(client, cast.alice_box, "delete", three[:2], confirmed="1")
    assert "Seuls les messages de la corbeille" in response.content.decode()
    assert Entry.objects.filter(pk__in=[e.pk for e in three]).count() == 3


def test_mark_read_and_unread(cast, client, three):
    client.force_login(cast.alice)
    response = bulk(client, cast.alice_box, "read", three)
    assert "3 messages marqués comme lus." in response.content.decode()
    assert all(Entry.objects.get(pk=e.pk).seen for e in three)
    bulk(client, cast.alice_box, "unread", three[1:])
    assert [Entry.objects.get(pk=e.pk).seen for e in three] == [True, False, False]
    assert AuditEvent.objects.filter(action="message.marked_read").count() == 3
    assert AuditEvent.objects.filter(action="message.marked_unread").count() == 2


def test_move_several_to_a_folder(cast, client, three):
    target = Folder.objects.create(mailbox=cast.alice_box, role=Folder.Role.USER, name="Bilans", position=100)
    client.force_login(cast.alice)
    response = bulk(client, cast.alice_box, "move", three)
    assert "Choisissez le dossier où déplacer les messages." in response.content.decode()
    assert folders(three) == [Folder.Role.INBOX] * 3
    bulk(client, cast.alice_box, "move", three, folder=target.pk)
    assert {Entry.objects.get(pk=e.pk).folder_id for e in three} == {target.pk}
    other_box_folder = cast.cardio.folder(Folder.Role.ARCHIVE)
    assert bulk(client, cast.alice_box, "move", three, folder=other_box_folder.pk, follow=False).status_code == 404


def test_nothing_selected_is_explained(cast, client, three):
    client.force_login(cast.alice)
    response = bulk(client, cast.alice_box, "archive", [])
    assert "Sélectionnez au moins un message." in response.content.decode()


def test_claim_several_in_the_shared_box_all_or_nothing(cast, client, send, received):
    second = Entry.objects.get(
        mailbox=cast.cardio,
        message=send(cast.charlie_box, cast.charlie, to=[cast.cardio.address], subject="Deuxième").message,
    )
    reply = compose.send_from_mailbox(cast.cardio, cast.alice, to=[cast.charlie_box.address], subject="R", text="x")
    sent = Entry.objects.get(mailbox=cast.cardio, message=reply.message)
    client.force_login(cast.bob)
    response = bulk(client, cast.cardio, "claim", [received, second, sent])
    assert "ne s&#x27;attribue pas" in response.content.decode()
    assert not Entry.objects.filter(mailbox=cast.cardio, assigned_to__isnull=False).exists()
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.ASSIGNED).exists()
    response = bulk(client, cast.cardio, "claim", [received, second])
    assert "Vous prenez 2 messages en charge." in response.content.decode()
    assert set(Entry.objects.filter(assigned_to=cast.bob).values_list("pk", flat=True)) == {received.pk, second.pk}
    assert AuditEvent.objects.filter(action=AuditEvent.Action.ASSIGNED, actor=cast.bob).count() == 2
