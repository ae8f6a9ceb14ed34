"""Organising: move, archive, trash and restore, flag, read/unread, user folders, delete for good
after a confirmation, empty the trash, and the retention purge of the trash."""

import datetime
import html

import pytest
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from mailboxes.models import Entry, Folder, Mailbox, Message
from webmail.tasks import purge_expired_trash_task

pytestmark = pytest.mark.django_db


def act(client, entry, action, **data):
    return client.post(reverse("webmail:message_action", args=[entry.pk]), {"action": action, **data})


def test_archive_trash_restore(cast, client, received):
    client.force_login(cast.bob)
    act(client, received, "archive")
    received.refresh_from_db()
    assert received.folder.role == Folder.Role.ARCHIVE
    act(client, received, "trash")
    received.refresh_from_db()
    assert received.folder.role == Folder.Role.TRASH and received.trashed_at is not None
    act(client, received, "restore")
    received.refresh_from_db()
    assert received.folder.role == Folder.Role.INBOX and received.trashed_at is None
    events = AuditEvent.objects.filter(actor=cast.bob).exclude(action=AuditEvent.Action.LOGIN)
    actions = list(events.values_list("action", flat=True).order_by("id"))
    assert actions == [AuditEvent.Action.MOVED, AuditEvent.Action.DELETED, AuditEvent.Action.MOVED]


def test_flag_and_unread(cast, client, received):
    client.force_login(cast.bob)
    act(client, received, "flag")
    received.refresh_from_db()
    assert received.flagged
    act(client, received, "unflag")
    act(client, received, "read")
    received.refresh_from_db()
    assert not received.flagged and received.seen
    act(client, received, "unread")
    received.refresh_from_db()
    assert not received.seen


def test_user_folders_create_move_rename_delete(cast, client, received):
    client.force_login(cast.bob)
    response = client.post(reverse("webmail:folder_create", args=[cast.cardio.pk]), {"name": "Échographies"})
    folder = Folder.objects.get(mailbox=cast.cardio, name="Échographies")
    assert response.status_code == 302
    duplicate = client.post(
        reverse("webmail:folder_create", args=[cast.cardio.pk]), {"name": "échographies"}, follow=True
    )
    assert "existe déjà" in duplicate.content.decode()
    act(client, received, "move", folder=folder.pk)
    received.refresh_from_db()
    assert received.folder_id == folder.pk
    url = reverse("webmail:folder_edit", args=[cast.cardio.pk, folder.pk])
    client.post(url, {"name": "Écho 2026"})
    folder.refresh_from_db()
    assert folder.name == "Écho 2026"
    assert "Le message qu'il contient ira dans la corbeille." in html.unescape(client.get(url).content.decode())
    deleted = client.post(url, {"action": "delete"}, follow=True)
    assert "Dossier supprimé ; 1 message placé dans la corbeille." in html.unescape(deleted.content.decode())
    assert not Folder.objects.filter(pk=folder.pk).exists()
    received.refresh_from_db()
    assert received.folder.role == Folder.Role.TRASH


def test_an_empty_folder_says_it_is_empty_before_and_after_its_deletion(cast, client):
    """French puts 0 in the singular: « Le message qu'il contient ira dans la corbeille » for an
    empty folder would promise a message that is not there; the page says the folder is empty."""
    client.force_login(cast.bob)
    client.post(reverse("webmail:folder_create", args=[cast.cardio.pk]), {"name": "Vide"})
    folder = Folder.objects.get(mailbox=cast.cardio, name="Vide")
    url = reverse("webmail:folder_edit", args=[cast.cardio.pk, folder.pk])
    page = html.unescape(client.get(url).content.decode())
    said = page.split('data-testid="folder-content">', 1)[1].split("</p>", 1)[0]
    assert said == "Le dossier est vide : rien n'ira dans la corbeille."
    deleted = html.unescape(client.post(url, {"action": "delete"}, follow=True).content.decode())
    assert "Dossier supprimé ; il était vide." in deleted


@pytest.mark.parametrize(
    "name, said",
    [
        ("x" * 2000, "Un nom de dossier compte au plus 100 caractères."),
        ("Écho\x00", "Un nom de dossier ne contient pas de caractère de contrôle."),
        ("inbox", "« inbox » est le nom de la boîte de réception."),
    ],
)
def test_a_folder_name_the_box_cannot_keep_is_refused_at_the_form(cast, client, name, said):
    """Creating checked the length, renaming did not: a rename to 2000 characters, or a name
    with a NUL either way, was a database error (a 500). A folder named INBOX is hidden from
    IMAP clients, whose inbox has that name."""
    client.force_login(cast.bob)
    client.post(reverse("webmail:folder_create", args=[cast.cardio.pk]), {"name": "Écho"})
    folder = Folder.objects.get(mailbox=cast.cardio, name="Écho")
    renamed = client.post(reverse("webmail:folder_edit", args=[cast.cardio.pk, folder.pk]), {"name": name})
    assert renamed.status_code == 200 and said in html.unescape(renamed.content.decode())
    created = client.post(reverse("webmail:folder_create", args=[cast.cardio.pk]), {"name": name}, follow=True)
    assert said in html.unescape(created.content.decode())
    names = Folder.objects.filter(mailbox=cast.cardio, role=Folder.Role.USER).values_list("name", flat=True)
    assert list(names) == ["Écho"]


def test_system_folders_cannot_be_renamed(cast, client):
    client.force_login(cast.alice)
    inbox = cast.alice_box.folder(Folder.Role.INBOX)
    response = client.post(reverse("webmail:folder_edit", args=[cast.alice_box.pk, inbox.pk]), {"name": "X"})
    assert response.status_code == 404


def test_delete_for_good_asks_first_and_only_from_trash(cast, client, received):
    client.force_login(cast.bob)
    url = reverse("webmail:message_delete", args=[received.pk])
    assert client.get(url).status_code == 404  # not in the trash
    act(client, received, "trash")
    confirm = client.get(url)
    assert confirm.status_code == 200 and "irréversible" in confirm.content.decode()
    assert Entry.objects.filter(pk=received.pk).exists()
    client.post(url)
    assert not Entry.objects.filter(pk=received.pk).exists()
    # Charlie's copy in his Sent folder keeps the message itself.
    assert Message.objects.filter(pk=received.message_id).exists()
    assert AuditEvent.objects.filter(action=AuditEvent.Action.DELETED, detail__final=True).exists()


def test_empty_trash_with_confirmation(cast, client, received):
    client.force_login(cast.bob)
    act(client, received, "trash")
    url = reverse("webmail:empty_trash", args=[cast.cardio.pk])
    assert "Vider la corbeille" in client.get(url).content.decode()
    used = Mailbox.objects.get(pk=cast.cardio.pk).used_bytes
    assert used >= received.message.size > 0
    client.post(url)
    assert not Entry.objects.filter(mailbox=cast.cardio).exists()
    # The quota gets the space of the deleted message back.
    assert Mailbox.objects.get(pk=cast.cardio.pk).used_bytes == used - received.message.size


@override_settings(TRASH_RETENTION_DAYS=30)
def test_trash_is_purged_after_the_retention(cast, send):
    old = send(cast.charlie_box, cast.charlie, to=[cast.alice_box.address], subject="Ancien").message
    recent = send(cast.charlie_box, cast.charlie, to=[cast.alice_box.address], subject="Récent").message
    trash = cast.alice_box.folder(Folder.Role.TRASH)
    Entry.objects.filter(mailbox=cast.alice_box, message=old).update(
        folder=trash, trashed_at=timezone.now() - datetime.timedelta(days=31)
    )
    Entry.objects.filter(mailbox=cast.alice_box, message=recent).update(
        folder=trash, trashed_at=timezone.now() - datetime.timedelta(days=29)
    )
    assert purge_expired_trash_task.delay().get() == 1
    assert not Entry.objects.filter(mailbox=cast.alice_box, message=old).exists()
    assert Entry.objects.filter(mailbox=cast.alice_box, message=recent).exists()
    assert purge_expired_trash_task.delay().get() == 0  # idempotent


def test_beat_schedule_runs_the_purge():
    from django.conf import settings

    assert any(job["task"] == "webmail.purge_expired_trash" for job in settings.CELERY_BEAT_SCHEDULE.values())
