"""Unused mailboxes (RULES.md §5, CNIL AU-037): warned once, deleted after the delay and the
notice, their files removed only when nothing else shares them; patient boxes never touched."""

import datetime

import pytest
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.utils import timezone

from audit.models import AuditEvent
from mailboxes.delivery import send_message
from mailboxes.inactivity import delete_inactive_mailboxes, warn_inactive_mailboxes
from mailboxes.models import Attachment, Entry, Mailbox, Membership, Message, TrustedDomain
from tests.core.conftest import PEER, PEER_SENDER, raw_message

DAY = datetime.timedelta(days=1)
LOGIN = "/comptes/login/"


@pytest.fixture
def t0(cast):
    """The moment every box of the cast was last used."""
    now = timezone.now()
    Mailbox.objects.update(last_used_at=now, inactivity_warned_at=None)
    TrustedDomain.objects.get_or_create(name=PEER)
    return now


def deliver(to, *, message_id, body="Bonjour,\nvoici le compte rendu.\n", attachments=()):
    raw = raw_message(to=to, message_id=message_id, body=body, attachments=attachments)
    return send_message(raw, envelope_from=PEER_SENDER, envelope_to=list(to), source="smtp").message


def box(mailbox):
    return Mailbox.objects.get(pk=mailbox.pk)


def keep_using(*boxes, at):
    Mailbox.objects.filter(pk__in=[b.pk for b in boxes]).update(last_used_at=at)


def test_owners_are_warned_once_by_email_without_content(cast, t0, mailoutbox, settings):
    settings.MAILBOX_INACTIVITY_DAYS, settings.MAILBOX_INACTIVITY_WARNING_DAYS = 365, 30
    Membership.objects.filter(mailbox=cast.cardio, user=cast.bob).update(role=Membership.Role.MANAGER)
    deliver([cast.alice_box.address], message_id=f"<secret@{PEER}>", body="Résultat : tumeur maligne.\n")

    assert warn_inactive_mailboxes(t0 + 334 * DAY) == 0  # not yet: 365 - 30 days
    assert mailoutbox == []

    now = t0 + 336 * DAY
    assert warn_inactive_mailboxes(now) == 3  # alice.martin@, cardiologie@, charlie.durand@
    addresses = [cast.alice_box.address, cast.cardio.address, cast.charlie_box.address]
    recipients = sorted((m.to[0], next(a for a in addresses if a in m.subject)) for m in mailoutbox)
    assert recipients == [
        ("alice@exemple.fr", cast.alice_box.address),
        ("alice@exemple.fr", cast.cardio.address),  # the responsible professional
        ("bob@exemple.fr", cast.cardio.address),  # a manager
        ("charlie@exemple.fr", cast.charlie_box.address),
    ]
    # A full year unused, and a full notice after the warning: whichever comes last.
    deletion_on = timezone.localtime(now + 30 * DAY).strftime("%d/%m/%Y")
    for mail in mailoutbox:
        html = mail.alternatives[0][0]
        assert deletion_on in mail.subject and deletion_on in mail.body and deletion_on in html
        assert "connecter" in mail.body and "/comptes/login/" in mail.body
        assert "tumeur" not in mail.body + html and "Compte rendu" not in mail.body + html
    assert all(box(b).inactivity_warned_at == now for b in (cast.alice_box, cast.cardio, cast.charlie_box))

    assert warn_inactive_mailboxes(now + DAY) == 0  # a second run warns nobody again
    assert len(mailoutbox) == 4
    events = AuditEvent.objects.filter(action=AuditEvent.Action.MAILBOX_INACTIVITY_WARNED)
    assert sorted(events.values_list("mailbox_id", flat=True)) == sorted(
        [cast.alice_box.pk, cast.cardio.pk, cast.charlie_box.pk]
    )
    cardio_event = events.get(mailbox_id=cast.cardio.pk)
    assert sorted(cardio_event.detail["user_ids"]) == sorted([cast.alice.pk, cast.bob.pk])
    assert "tumeur" not in str(list(events.values("detail")))


def test_a_failed_warning_is_not_marked_and_is_sent_by_the_next_run(cast, t0, mailoutbox, monkeypatch):
    from django.core.mail.backends.locmem import EmailBackend

    real_send = EmailBackend.send_messages
    calls = []

    def fails_once(self, messages):
        calls.append(1)
        if len(calls) == 1:
            raise OSError("relay down")
        return real_send(self, messages)

    monkeypatch.setattr(EmailBackend, "send_messages", fails_once)
    keep_using(cast.cardio, cast.charlie_box, at=t0 + 400 * DAY)
    now = t0 + 340 * DAY
    assert warn_inactive_mailboxes(now) == 0
    assert box(cast.alice_box).inactivity_warned_at is None and mailoutbox == []
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.MAILBOX_INACTIVITY_WARNED).exists()
    assert warn_inactive_mailboxes(now + DAY) == 1
    assert [m.to for m in mailoutbox] == [["alice@exemple.fr"]]


def test_no_deletion_without_warning_nor_before_the_notice_ends(cast, t0, mailoutbox, settings):
    settings.MAILBOX_INACTIVITY_DAYS, settings.MAILBOX_INACTIVITY_WARNING_DAYS = 365, 30
    keep_using(cast.cardio, cast.charlie_box, at=t0 + 1000 * DAY)

    late = t0 + 500 * DAY  # unused far longer than the delay, but never warned
    assert delete_inactive_mailboxes(late) == 0
    assert box(cast.alice_box).is_active

    assert warn_inactive_mailboxes(late) == 1
    assert delete_inactive_mailboxes(late + 29 * DAY) == 0  # the notice is not over
    assert box(cast.alice_box).is_active
    assert delete_inactive_mailboxes(late + 30 * DAY) == 1
    assert not box(cast.alice_box).is_active
    assert delete_inactive_mailboxes(late + 31 * DAY) == 0  # idempotent


def test_the_full_delay_is_needed_even_after_a_warning(cast, t0, settings):
    settings.MAILBOX_INACTIVITY_DAYS, settings.MAILBOX_INACTIVITY_WARNING_DAYS = 365, 30
    keep_using(cast.cardio, cast.charlie_box, at=t0 + 1000 * DAY)
    # Warned early (the warning delay was longer then): still kept until a full year unused.
    Mailbox.objects.filter(pk=cast.alice_box.pk).update(inactivity_warned_at=t0 + 200 * DAY)
    assert delete_inactive_mailboxes(t0 + 364 * DAY) == 0
    assert delete_inactive_mailboxes(t0 + 366 * DAY) == 1


def test_deletion_removes_entries_memberships_and_unshared_files(cast, t0, django_capture_on_commit_callbacks):
    pdf = ("cr.pdf", "application/pdf", b"%PDF-1.4 shared report bytes")
    other = ("ordo.pdf", "application/pdf", b"%PDF-1.4 alice only bytes")
    only_alice = deliver([cast.alice_box.address], message_id=f"<only@{PEER}>", attachments=[other])
    both = deliver([cast.alice_box.address, cast.charlie_box.address], message_id=f"<both@{PEER}>")
    # The same attachment in another message that Charlie keeps: its file is shared by hash.
    shared_att = deliver([cast.alice_box.address], message_id=f"<att1@{PEER}>", attachments=[pdf])
    deliver([cast.charlie_box.address], message_id=f"<att2@{PEER}>", attachments=[pdf])
    # The same raw bytes delivered twice (two rows, one stored file).
    raw = raw_message(to=[cast.alice_box.address], message_id=f"<same@{PEER}>")
    first_copy = send_message(raw, envelope_from=PEER_SENDER, envelope_to=[cast.alice_box.address], source="smtp")
    raw_to_charlie = raw  # identical bytes, delivered to Charlie on its own
    send_message(raw_to_charlie, envelope_from=PEER_SENDER, envelope_to=[cast.charlie_box.address], source="smtp")
    first_copy = first_copy.message
    assert Message.objects.filter(sha256=first_copy.sha256).count() == 2

    only_alice_raw = only_alice.raw.name
    only_alice_att = only_alice.attachments.get().file.name
    shared_att_name = shared_att.attachments.get().file.name
    shared_raw_name = first_copy.raw.name
    for name in (only_alice_raw, only_alice_att, shared_att_name, shared_raw_name):
        assert default_storage.exists(name)
    assert box(cast.alice_box).used_bytes > 0

    # Charlie stays in use; alice.martin@ and cardiologie@ fall unused.
    keep_using(cast.charlie_box, at=t0 + 1000 * DAY)
    now = t0 + 340 * DAY
    assert warn_inactive_mailboxes(now) == 2
    with django_capture_on_commit_callbacks(execute=True):
        assert delete_inactive_mailboxes(now + 30 * DAY) == 2

    alice_box, cardio = box(cast.alice_box), box(cast.cardio)
    assert not alice_box.is_active and not cardio.is_active and alice_box.used_bytes == 0
    assert not Entry.objects.filter(mailbox__in=[alice_box, cardio]).exists()
    assert not Membership.objects.filter(mailbox=cardio).exists()
    assert box(cast.charlie_box).is_active
    # Held only by alice.martin@: gone with its files.
    assert not Message.objects.filter(pk__in=[only_alice.pk, shared_att.pk, first_copy.pk]).exists()
    assert not default_storage.exists(only_alice_raw) and not default_storage.exists(only_alice_att)
    # Charlie still holds these, or rows sharing their content hash: kept.
    assert Entry.objects.filter(mailbox=cast.charlie_box, message=both).exists()
    assert default_storage.exists(both.raw.name)
    assert Attachment.objects.filter(file=shared_att_name).exists() and default_storage.exists(shared_att_name)
    assert default_storage.exists(shared_raw_name)
    event = AuditEvent.objects.get(action=AuditEvent.Action.MAILBOX_DELETED_INACTIVE, mailbox_id=alice_box.pk)
    assert event.detail == {"entries": 4, "messages": 3}
    assert event.actor_label == "system"

    # Once Charlie's box goes too, nothing references the shared files any more.
    keep_using(cast.charlie_box, at=t0)
    later = now + 400 * DAY
    assert warn_inactive_mailboxes(later) == 1
    with django_capture_on_commit_callbacks(execute=True):
        assert delete_inactive_mailboxes(later + 30 * DAY) == 1
    assert not default_storage.exists(shared_att_name)
    assert not default_storage.exists(shared_raw_name)
    assert not default_storage.exists(both.raw.name)


def test_a_message_waiting_for_the_relay_is_kept(cast, t0, settings):
    from mailboxes.compose import send_from_mailbox
    from mailboxes.models import Outbox

    settings.RELAY_HOST = ""
    keep_using(cast.cardio, cast.charlie_box, at=t0 + 1000 * DAY)
    sent = send_from_mailbox(cast.alice_box, cast.alice, to=[f"dr.x@{PEER}"], subject="Courrier", text="t").message
    Outbox.objects.filter(message=sent).update(status=Outbox.Status.PENDING)
    Mailbox.objects.filter(pk=cast.alice_box.pk).update(last_used_at=t0)
    assert warn_inactive_mailboxes(t0 + 340 * DAY) == 1
    assert delete_inactive_mailboxes(t0 + 370 * DAY) == 1
    assert Message.objects.filter(pk=sent.pk).exists()
    assert not Entry.objects.filter(message=sent).exists()


def test_patient_boxes_are_never_touched(cast, t0, mailoutbox):
    deliver([cast.paul_box.address], message_id=f"<pat@{PEER}>")
    Mailbox.objects.filter(kind=Mailbox.Kind.PATIENT).update(last_used_at=t0 - 5000 * DAY)
    far = t0 + 5000 * DAY
    warn_inactive_mailboxes(far)
    # Even if wrongly marked as warned long ago.
    Mailbox.objects.filter(kind=Mailbox.Kind.PATIENT).update(inactivity_warned_at=t0 - 4000 * DAY)
    delete_inactive_mailboxes(far + 30 * DAY)
    for patient_box in (cast.paul_box, cast.pauline_box):
        assert box(patient_box).is_active
        assert not AuditEvent.objects.filter(mailbox_id=patient_box.pk, action__startswith="mailbox.").exists()
    assert Entry.objects.filter(mailbox=cast.paul_box).count() == 1
    assert all(cast.paul_box.address not in m.subject for m in mailoutbox)
    assert not box(cast.alice_box).is_active  # while professional boxes did go


def test_signing_in_marks_the_boxes_used_and_voids_the_warning(client, cast, t0, password, mailoutbox):
    now = t0 + 340 * DAY
    assert warn_inactive_mailboxes(now) == 3
    before = timezone.now()
    response = client.post(LOGIN, {"login": "alice", "password": password}, follow=True)
    assert "_auth_user_id" in response.wsgi_request.session
    for used in (cast.alice_box, cast.cardio):
        used = box(used)
        assert used.inactivity_warned_at is None and used.last_used_at >= before
    assert box(cast.charlie_box).inactivity_warned_at == now  # not Alice's
    # Alice's boxes are no longer warned: they cannot be deleted without a new warning.
    assert delete_inactive_mailboxes(now + 31 * DAY) == 1  # only charlie.durand@
    assert box(cast.alice_box).is_active and box(cast.cardio).is_active
    assert not box(cast.charlie_box).is_active


def test_a_use_after_the_warning_voids_it_whatever_the_path(cast, t0):
    keep_using(cast.cardio, cast.charlie_box, at=t0 + 1000 * DAY)
    now = t0 + 340 * DAY
    assert warn_inactive_mailboxes(now) == 1
    # Used the day after the warning (the delivery path sets last_used_at, not the warning).
    keep_using(cast.alice_box, at=now + DAY)
    # Unused again for a whole year: the old warning no longer counts, a new one is due first.
    again = now + DAY + 366 * DAY
    assert delete_inactive_mailboxes(again) == 0
    assert box(cast.alice_box).is_active
    assert warn_inactive_mailboxes(again) == 1
    assert delete_inactive_mailboxes(again + 30 * DAY) == 1


def test_dry_run_writes_and_sends_nothing(cast, t0, mailoutbox, settings):
    keep_using(cast.charlie_box, at=t0 + 1000 * DAY)
    Mailbox.objects.filter(pk=cast.cardio.pk).update(inactivity_warned_at=t0 + 1 * DAY)
    later = t0 + 400 * DAY
    before = list(Mailbox.objects.order_by("pk").values())
    events = AuditEvent.objects.count()
    assert warn_inactive_mailboxes(later, dry_run=True) == 1
    assert delete_inactive_mailboxes(later, dry_run=True) == 1
    assert list(Mailbox.objects.order_by("pk").values()) == before
    assert AuditEvent.objects.count() == events and mailoutbox == []


def test_the_command_dry_run_and_run(cast, t0, mailoutbox, capsys, settings):
    settings.MAILBOX_INACTIVITY_DAYS, settings.MAILBOX_INACTIVITY_WARNING_DAYS = 0, 0
    Mailbox.objects.update(last_used_at=t0 - DAY)
    patient_boxes = Mailbox.objects.filter(is_active=True, kind=Mailbox.Kind.PATIENT).count()
    before = list(Mailbox.objects.order_by("pk").values())
    call_command("mailbox_housekeeping", "--dry-run")
    out = capsys.readouterr().out
    assert "3 boîte(s) à avertir" in out and "0 boîte(s) à supprimer" in out and f"#{cast.alice_box.pk}" in out
    assert list(Mailbox.objects.order_by("pk").values()) == before and mailoutbox == []

    call_command("mailbox_housekeeping")
    assert "3 boîte(s) avertie(s), 0 boîte(s) supprimée(s)" in capsys.readouterr().out
    assert len(mailoutbox) == 3
    call_command("mailbox_housekeeping")
    assert "0 boîte(s) avertie(s), 3 boîte(s) supprimée(s)" in capsys.readouterr().out
    assert Mailbox.objects.filter(is_active=True, kind=Mailbox.Kind.PATIENT).count() == patient_boxes >= 2
    assert not Mailbox.objects.filter(is_active=True).exclude(kind=Mailbox.Kind.PATIENT).exists()


def test_the_beat_runs_both_daily(settings):
    schedule = {entry["task"]: entry["schedule"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert schedule["mailboxes.tasks.warn_inactive_mailboxes"] == 24 * 3600
    assert schedule["mailboxes.tasks.delete_inactive_mailboxes"] == 24 * 3600


def test_the_tasks_run_the_housekeeping(cast, t0, mailoutbox):
    from mailboxes import tasks

    Mailbox.objects.update(last_used_at=timezone.now() - 400 * DAY)
    assert tasks.warn_inactive_mailboxes.delay().get() == 3
    Mailbox.objects.update(inactivity_warned_at=timezone.now() - 31 * DAY)
    assert tasks.delete_inactive_mailboxes.delay().get() == 3


def test_receiving_mail_is_not_a_use_of_the_box_but_sending_is(cast):
    from mailboxes.compose import send_from_mailbox
    from mailboxes.models import Mailbox

    Mailbox.objects.filter(pk__in=[cast.alice_box.pk, cast.charlie_box.pk]).update(last_used_at=None)

    send_from_mailbox(cast.charlie_box, cast.charlie, to=[cast.alice_box.address], subject="Avis", text="Bonjour")

    cast.alice_box.refresh_from_db()
    cast.charlie_box.refresh_from_db()
    assert cast.alice_box.last_used_at is None
    assert cast.charlie_box.last_used_at is not None
