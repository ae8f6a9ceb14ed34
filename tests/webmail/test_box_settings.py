"""A box's settings (RULES.md §6 client functions) through the pages and the real delivery path:
sorting rules, the absence message (once per sender per period, never to automatic mail or
patients unless chosen) and forwarding (never outside the trust space, never in a loop)."""

import datetime
import html
from email import policy
from email.parser import BytesParser

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from mailboxes import compose
from mailboxes.models import (
    AbsenceMessage,
    BoxRule,
    Entry,
    Folder,
    Forwarding,
    IncomingAction,
    Membership,
    Message,
)
from mailboxes.store import read_raw
from webmail.organise import create_folder

pytestmark = pytest.mark.django_db

ON_COMMIT = []


@pytest.fixture(autouse=True)
def _run_after_commit(django_capture_on_commit_callbacks):
    # The test runs in a transaction: run what the delivery queues "after commit" (absence
    # replies, forwards) as a committed delivery would, tasks in process.
    ON_COMMIT[:] = [django_capture_on_commit_callbacks]
    yield
    ON_COMMIT.clear()


def send(sender_box, actor, to, subject="Compte rendu", text="Bonjour,\nvoici le compte rendu.\n", **kwargs):
    with ON_COMMIT[0](execute=True):
        return compose.send_from_mailbox(sender_box, actor, to=to, subject=subject, text=text, **kwargs)


def text(response) -> str:
    return html.unescape(response.content.decode())


def headers_of(message):
    return BytesParser(policy=policy.default).parsebytes(read_raw(message), headersonly=True)


def inbox_entry(box, message):
    return Entry.objects.select_related("folder").get(mailbox=box, message=message)


# --- Sorting rules -----------------------------------------------------------------------------


def test_rules_page_adds_a_rule_that_moves_and_flags_new_mail(cast, client):
    folder = create_folder(cast.alice_box, "Échographies")
    client.force_login(cast.alice)
    response = client.post(
        reverse("webmail:rules", args=[cast.alice_box.pk]),
        {"field": "subject", "contains": "echographie", "move_to": folder.pk, "flag": "on"},
    )
    assert response.status_code == 302
    rule = BoxRule.objects.get(mailbox=cast.alice_box)
    assert (rule.field, rule.contains, rule.move_to_id, rule.flag) == ("subject", "echographie", folder.pk, True)

    matched = send(cast.charlie_box, cast.charlie, [cast.alice_box.address], subject="Compte rendu d'ÉCHOGRAPHIE")
    other = send(cast.charlie_box, cast.charlie, [cast.alice_box.address], subject="Bilan sanguin")
    entry = inbox_entry(cast.alice_box, matched.message)
    assert entry.folder_id == folder.pk and entry.flagged and not entry.seen
    untouched = inbox_entry(cast.alice_box, other.message)
    assert untouched.folder.role == Folder.Role.INBOX and not untouched.flagged
    moved = AuditEvent.objects.get(action=AuditEvent.Action.MOVED, message_id=matched.message.pk)
    assert moved.actor_label == "rule" and moved.detail == {"rules": [rule.pk], "to_folder": folder.pk}
    # The sender's copy in its Sent folder is never touched by the recipient's rules.
    assert inbox_entry(cast.charlie_box, matched.message).folder.role == Folder.Role.SENT


def test_rules_on_sender_and_recipients_mark_read_and_first_move_wins(cast, client):
    archive = cast.cardio.folder(Folder.Role.ARCHIVE)
    lac = create_folder(cast.cardio, "Clinique du Lac")
    client.force_login(cast.alice)  # responsible professional of cardiologie@
    url = reverse("webmail:rules", args=[cast.cardio.pk])
    client.post(url, {"field": "from", "contains": "Durand", "move_to": lac.pk, "mark_read": "on"})
    client.post(url, {"field": "to", "contains": "cardiologie@", "move_to": archive.pk})
    result = send(cast.charlie_box, cast.charlie, [cast.cardio.address])
    entry = inbox_entry(cast.cardio, result.message)
    assert entry.folder_id == lac.pk and entry.seen
    # Disabled, the first rule no longer applies: the second one moves to the archive.
    first = BoxRule.objects.get(mailbox=cast.cardio, field="from")
    client.post(reverse("webmail:rule_action", args=[cast.cardio.pk, first.pk]), {"action": "disable"})
    second = send(cast.charlie_box, cast.charlie, [cast.cardio.address], subject="Deuxième")
    entry = inbox_entry(cast.cardio, second.message)
    assert entry.folder_id == archive.pk and not entry.seen


def test_rule_form_errors_are_specific_and_nothing_is_saved(cast, client):
    client.force_login(cast.alice)
    url = reverse("webmail:rules", args=[cast.alice_box.pk])
    response = client.post(url, {"field": "subject", "contains": "urgent"})
    assert response.status_code == 400
    assert "Choisissez au moins une action" in text(response)
    foreign = cast.charlie_box.folder(Folder.Role.ARCHIVE)
    response = client.post(url, {"field": "subject", "contains": "urgent", "move_to": foreign.pk})
    assert response.status_code == 400
    assert not BoxRule.objects.exists()


def test_settings_pages_are_for_owner_and_managers_only(cast, client):
    client.force_login(cast.bob)  # a member of cardiologie@, not a manager
    for name in ("absence", "rules"):
        assert client.get(reverse(f"webmail:{name}", args=[cast.cardio.pk])).status_code == 403
    Membership.objects.filter(mailbox=cast.cardio, user=cast.bob).update(role=Membership.Role.MANAGER)
    assert client.get(reverse("webmail:absence", args=[cast.cardio.pk])).status_code == 200
    # Another person's box does not exist for him; forwarding is for nominative boxes only.
    assert client.get(reverse("webmail:absence", args=[cast.alice_box.pk])).status_code == 404
    assert client.get(reverse("webmail:forwarding", args=[cast.cardio.pk])).status_code == 404
    rule = BoxRule.objects.create(mailbox=cast.alice_box, field="subject", contains="x", flag=True)
    response = client.post(reverse("webmail:rule_action", args=[cast.cardio.pk, rule.pk]), {"action": "delete"})
    assert response.status_code == 404 and BoxRule.objects.filter(pk=rule.pk).exists()


# --- Absence message ---------------------------------------------------------------------------


def set_absence(client, box, **fields):
    today = timezone.localdate()
    data = {
        "enabled": "on",
        "starts_on": today.isoformat(),
        "ends_on": (today + datetime.timedelta(days=14)).isoformat(),
        "text": "Je suis absente jusqu'au 15. En cas d'urgence : cardiologie@ch-troispics.mssante.fr.",
        **fields,
    }
    data = {k: v for k, v in data.items() if v is not None}
    return client.post(reverse("webmail:absence", args=[box.pk]), data)


def absence_replies(to_box):
    return Message.objects.filter(entries__mailbox=to_box, auto_submitted=True, envelope_from="")


def test_absence_answers_each_sender_once_per_period(cast, client):
    client.force_login(cast.alice)
    assert set_absence(client, cast.alice_box).status_code == 302
    first = send(cast.charlie_box, cast.charlie, [cast.alice_box.address], subject="Avis")
    send(cast.charlie_box, cast.charlie, [cast.alice_box.address], subject="Relance")
    replies = list(absence_replies(cast.charlie_box))
    assert len(replies) == 1
    reply = replies[0]
    assert reply.from_address == cast.alice_box.address
    assert reply.subject == "Réponse automatique : Avis"
    assert "absente jusqu'au 15" in reply.text_body
    assert reply.in_reply_to == first.message.message_id
    headers = headers_of(reply)
    assert headers["Auto-Submitted"] == "auto-replied"
    # Nothing of it in Alice's Sent folder: the reply is the system's, sent with the null sender.
    assert not Entry.objects.filter(mailbox=cast.alice_box, message=reply).exists()
    outcomes = sorted(IncomingAction.objects.filter(kind="absence").values_list("outcome", flat=True))
    assert outcomes == ["already_answered", "sent"]
    assert (
        AuditEvent.objects.filter(action=AuditEvent.Action.ABSENCE_REPLIED, mailbox_id=cast.alice_box.pk).count() == 1
    )
    # New dates: a new period, so Charlie is answered once more.
    period = AbsenceMessage.objects.get().period
    later = (timezone.localdate() + datetime.timedelta(days=20)).isoformat()
    set_absence(client, cast.alice_box, ends_on=later, subject="Absente")
    assert AbsenceMessage.objects.get().period == period + 1
    send(cast.charlie_box, cast.charlie, [cast.alice_box.address], subject="Encore")
    assert absence_replies(cast.charlie_box).count() == 2
    assert absence_replies(cast.charlie_box).filter(subject="Absente").exists()


def test_absence_never_answers_automatic_mail_reports_patients_or_outside_its_dates(cast, client):
    client.force_login(cast.alice)
    set_absence(client, cast.alice_box)
    send(cast.charlie_box, cast.charlie, [cast.alice_box.address], extra_headers={"Auto-Submitted": "auto-generated"})
    send(cast.charlie_box, cast.charlie, [cast.alice_box.address], extra_headers={"List-Id": "<staff.lac>"})
    send(cast.charlie_box, cast.charlie, [cast.alice_box.address], extra_headers={"Precedence": "bulk"})
    # Alice in copy of a message to the cardiology box only: not addressed to her, no reply.
    send(cast.charlie_box, cast.charlie, [cast.cardio.address])
    assert absence_replies(cast.charlie_box).count() == 0
    outcomes = list(IncomingAction.objects.filter(kind="absence").values_list("outcome", flat=True))
    assert sorted(outcomes) == ["automatic", "automatic"]  # Auto-Submitted never even queues an action
    # A patient answering Alice gets nothing unless she chose to answer patients.
    from tests.patients.conftest import patient_send

    opening = send(cast.alice_box, cast.alice, [cast.paul_patient.address], subject="Préparation")
    with ON_COMMIT[0](execute=True):
        patient_send(cast.paul_patient, cast.alice_box.address, in_reply_to=opening.message)
    assert absence_replies(cast.paul_box).count() == 0
    set_absence(client, cast.alice_box, reply_to_patients="on")
    with ON_COMMIT[0](execute=True):
        patient_send(cast.paul_patient, cast.alice_box.address, in_reply_to=opening.message, subject="Autre")
    assert absence_replies(cast.paul_box).count() == 1
    # Dates over: nothing.
    yesterday = (timezone.localdate() - datetime.timedelta(days=1)).isoformat()
    set_absence(
        client,
        cast.alice_box,
        starts_on=(timezone.localdate() - datetime.timedelta(days=9)).isoformat(),
        ends_on=yesterday,
    )
    before = IncomingAction.objects.count()
    send(cast.cardio, cast.alice, [cast.alice_box.address])
    assert IncomingAction.objects.count() == before


def test_absence_replies_do_not_ping_pong_between_two_absent_boxes(cast, client):
    client.force_login(cast.alice)
    set_absence(client, cast.alice_box)
    client.force_login(cast.charlie)
    set_absence(client, cast.charlie_box, text="Absent.")
    send(cast.charlie_box, cast.charlie, [cast.alice_box.address])
    # Alice's box answers Charlie once; Charlie's box never answers that automatic reply.
    assert absence_replies(cast.charlie_box).count() == 1
    assert absence_replies(cast.alice_box).count() == 0


def test_absence_form_errors(cast, client):
    client.force_login(cast.alice)
    today = timezone.localdate()
    response = set_absence(client, cast.alice_box, text="", ends_on=(today - datetime.timedelta(days=3)).isoformat())
    assert response.status_code == 400
    body = text(response)
    assert "La date de fin précède la date de début." in body
    assert "Écrivez le texte que recevront vos correspondants." in body
    assert not AbsenceMessage.objects.exists()


# --- Forwarding --------------------------------------------------------------------------------


def set_forwarding(client, box, address, keep_copy=True):
    data = {"enabled": "on", "address": address}
    if keep_copy:
        data["keep_copy"] = "on"
    return client.post(reverse("webmail:forwarding", args=[box.pk]), data)


@pytest.mark.parametrize(
    ("address", "error"),
    [
        ("dr.martin@gmail.com", "n'appartient pas à l'espace de confiance MSSanté"),
        ("alice.martin@ch-troispics.mssante.fr", "ne peut pas transférer son courrier à elle-même"),
        ("personne@ch-troispics.mssante.fr", "Aucune boîte aux lettres active"),
        ("pas une adresse", "n'est pas une adresse de messagerie valide"),
    ],
)
def test_forwarding_outside_the_trust_space_is_refused_with_a_clear_error(cast, client, address, error):
    client.force_login(cast.alice)
    response = set_forwarding(client, cast.alice_box, address)
    assert response.status_code == 400
    assert error in text(response)
    assert not Forwarding.objects.exists()


def test_forwarding_to_a_patient_is_refused(cast, client):
    client.force_login(cast.alice)
    response = set_forwarding(client, cast.alice_box, cast.paul_patient.address)
    assert response.status_code == 400
    assert "jamais vers une adresse patient" in text(response)


def test_forwarded_message_reaches_the_target_unaltered_with_resent_fields(cast, client):
    client.force_login(cast.alice)
    assert set_forwarding(client, cast.alice_box, cast.charlie_box.address, keep_copy=False).status_code == 302
    original = send(cast.cardio, cast.alice, [cast.alice_box.address], subject="Staff de mardi")
    forwarded = Message.objects.exclude(pk=original.message.pk).get(subject="Staff de mardi")
    assert Entry.objects.filter(mailbox=cast.charlie_box, message=forwarded, folder__role=Folder.Role.INBOX).exists()
    raw = read_raw(forwarded)
    assert raw.endswith(read_raw(original.message))  # the original bytes, untouched
    headers = headers_of(forwarded)
    assert headers["Resent-From"] == cast.alice_box.address
    assert headers["Resent-To"] == cast.charlie_box.address
    assert forwarded.envelope_from == cast.alice_box.address
    # Without a copy, Alice's entry goes to her trash (restorable), marked forwarded.
    kept = inbox_entry(cast.alice_box, original.message)
    assert kept.folder.role == Folder.Role.TRASH and kept.forwarded and kept.trashed_at is not None
    assert AuditEvent.objects.filter(action=AuditEvent.Action.AUTO_FORWARDED, message_id=original.message.pk).exists()


def test_forwarding_never_loops(cast, client):
    client.force_login(cast.alice)
    set_forwarding(client, cast.alice_box, cast.charlie_box.address)
    client.force_login(cast.charlie)
    response = set_forwarding(client, cast.charlie_box, cast.alice_box.address)
    assert response.status_code == 400
    assert "tournerait en boucle" in text(response)
    # A message forwarded here once is never forwarded again (single hop): Charlie's own
    # forwarding to the cardiology box leaves it alone.
    Forwarding.objects.create(mailbox=cast.charlie_box, enabled=True, address=cast.cardio.address)
    send(cast.cardio, cast.alice, [cast.alice_box.address], subject="Une fois")
    assert Message.objects.filter(subject="Une fois").count() == 2  # the original and one forward
    assert IncomingAction.objects.get(mailbox=cast.charlie_box).outcome == "already_forwarded"
    # Set both ways behind the form's back, the forward is refused when it would go out.
    Forwarding.objects.filter(mailbox=cast.charlie_box).update(address=cast.alice_box.address)
    send(cast.cardio, cast.alice, [cast.alice_box.address], subject="Boucle")
    assert Message.objects.filter(subject="Boucle").count() == 1
    assert IncomingAction.objects.get(mailbox=cast.alice_box, message__subject="Boucle").outcome == "target_refused"
    # Nor does a box forward what it sent itself.
    send(cast.alice_box, cast.alice, [cast.alice_box.address], subject="Note à moi-même")
    assert Message.objects.filter(subject="Note à moi-même").count() == 1


# --- The tasks: claimed once, swept when lost ---------------------------------------------------


def test_a_duplicate_task_sends_nothing_and_the_sweeper_requeues_a_lost_one(cast, client):
    from mailboxes.box_actions import run_action, sweep_actions

    client.force_login(cast.alice)
    set_absence(client, cast.alice_box)
    # Delivered, but the task queued after commit never ran (lost with its broker).
    compose.send_from_mailbox(cast.charlie_box, cast.charlie, to=[cast.alice_box.address], subject="A", text="x")
    action = IncomingAction.objects.get()
    assert action.status == IncomingAction.Status.PENDING
    assert sweep_actions() == 0  # still within the grace period of its own task
    IncomingAction.objects.filter(pk=action.pk).update(updated_at=timezone.now() - datetime.timedelta(minutes=5))
    with ON_COMMIT[0](execute=True):
        assert sweep_actions() == 1
    action.refresh_from_db()
    assert (action.status, action.outcome, action.attempts) == (IncomingAction.Status.DONE, "sent", 1)
    assert run_action(action.pk) is None  # a duplicate of the task: nothing to claim
    assert absence_replies(cast.charlie_box).count() == 1
