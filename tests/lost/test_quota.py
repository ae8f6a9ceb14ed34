"""Deleting mail frees quota (issue 15 item 12): every deletion path hands the space back —
deleting from the trash, emptying it, the scheduled purge, and a draft replaced, moved to
another box, deleted or sent — through the pages and the real beat task."""

import datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from mailboxes import compose
from mailboxes.models import Entry, Folder, Mailbox
from mssante.celery import app
from operations.scheduler import jobs_from_settings, run_due

pytestmark = pytest.mark.django_db


def used(box) -> int:
    return Mailbox.objects.values_list("used_bytes", flat=True).get(pk=box.pk)


def autosave(client, box, **data):
    payload = {"sender": box.pk, "to": "", "subject": "Convocation", "body": "Bonjour", **data}
    response = client.post(reverse("webmail:draft_save"), payload)
    assert response.status_code == 200, response.content[:500]
    return Entry.objects.get(pk=response.json()["draft"])


def test_a_draft_counts_once_however_often_it_is_saved_and_goes_when_deleted(cast, client):
    client.force_login(cast.alice)
    start = used(cast.alice_box)
    draft = autosave(client, cast.alice_box, body="Bonjour")
    assert used(cast.alice_box) == start + draft.message.size
    for n in range(1, 6):  # autosaves replace the draft: its size counts once
        draft = autosave(client, cast.alice_box, draft=draft.pk, body="Bonjour" + " encore" * 50 * n)
    draft.message.refresh_from_db()
    assert used(cast.alice_box) == start + draft.message.size
    # Moved to the trash, then deleted for good from its page.
    client.post(reverse("webmail:message_action", args=[draft.pk]), {"action": "trash"})
    assert client.post(reverse("webmail:message_delete", args=[draft.pk])).status_code == 302
    assert not Entry.objects.filter(pk=draft.pk).exists()
    assert used(cast.alice_box) == start


def test_a_draft_moved_to_another_box_and_then_sent_leaves_no_space_behind(cast, client):
    client.force_login(cast.alice)
    start_alice, start_cardio = used(cast.alice_box), used(cast.cardio)
    draft = autosave(client, cast.alice_box)
    draft = autosave(client, cast.cardio, draft=draft.pk)  # the sending box changed
    assert used(cast.alice_box) == start_alice
    assert used(cast.cardio) == start_cardio + draft.message.size
    response = client.post(
        reverse("webmail:compose"),
        {
            "sender": cast.cardio.pk,
            "to": cast.charlie_box.address,
            "subject": "Convocation",
            "body": "Bonjour",
            "draft": draft.pk,
        },
    )
    assert response.status_code == 302
    assert not Entry.objects.filter(pk=draft.pk).exists()
    sent = Entry.objects.get(mailbox=cast.cardio, folder__role=Folder.Role.SENT)
    assert used(cast.cardio) == start_cardio + sent.message.size


def test_the_scheduled_purge_frees_the_space_of_what_it_deletes(cast, settings):
    settings.TRASH_RETENTION_DAYS = 30
    result = compose.send_from_mailbox(
        cast.charlie_box, cast.charlie, to=[cast.alice_box.address], subject="Ancien", text="x" * 5000
    )
    entry = Entry.objects.get(mailbox=cast.alice_box, message=result.message)
    before = used(cast.alice_box)
    assert before >= result.message.size > 5000
    Entry.objects.filter(pk=entry.pk).update(
        folder=cast.alice_box.folder(Folder.Role.TRASH), trashed_at=timezone.now() - datetime.timedelta(days=31)
    )
    # The job of CELERY_BEAT_SCHEDULE, run as `manage.py runscheduler` runs it.
    app.loader.import_default_modules()
    jobs = [job for job in jobs_from_settings(app) if job.task == "webmail.purge_expired_trash"]
    assert run_due(app, jobs, force=True)[0] == [jobs[0].name]
    assert not Entry.objects.filter(pk=entry.pk).exists()
    assert used(cast.alice_box) == before - result.message.size
