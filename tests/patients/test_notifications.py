"""Notifications to personal addresses carry no health content (RULES.md §3): sentinel strings
put everywhere a leak could come from must never appear in any notification."""

import pytest
from django.core import mail

from mailboxes.models import Mailbox, Structure
from patients.models import Notification
from tests.patients.conftest import PDF, inbox_of, patient_send, pro_send

pytestmark = pytest.mark.django_db(transaction=True)

SENTINELS = [
    "SENTINEL-SUBJECT",
    "SENTINEL-BODY",
    "SENTINEL-FILE",
    "SENTINEL-STRUCTURE",
    "SENTINEL-PRO",
    "SENTINEL-PATIENT",
]


@pytest.fixture
def sentinel_cast(cast):
    Structure.objects.filter(pk=cast.troispics.pk).update(name="SENTINEL-STRUCTURE Hôpital")
    Mailbox.objects.filter(pk=cast.cardio.pk).update(display_name="SENTINEL-PRO Cardiologie SENTINEL-STRUCTURE")
    cast.cardio.refresh_from_db()
    cast.alice_pro.notify_patient_replies = True
    cast.alice_pro.save()
    cast.paul_patient.first_names = "SENTINEL-PATIENT"
    cast.paul_patient.save()
    return cast


def all_notification_text() -> str:
    parts = []
    for message in mail.outbox:
        parts += [message.subject, message.body, " ".join(message.to)]
        parts += [content for content, _type in getattr(message, "alternatives", [])]
        assert not message.attachments
    return "\n".join(parts)


def test_no_health_content_in_any_notification(sentinel_cast):
    cast = sentinel_cast
    sent = pro_send(
        cast.cardio,
        cast.bob,
        cast.paul_patient.address,
        subject="SENTINEL-SUBJECT bilan",
        text="SENTINEL-BODY résultats",
        attachments=[("SENTINEL-FILE.pdf", "application/pdf", PDF)],
    ).message
    assert [m.to for m in mail.outbox] == [["paul.perso@exemple.org"]]
    patient_mail = mail.outbox[0]
    assert "https://messagerie.exemple.fr/patient/" in patient_mail.body
    assert "un professionnel de santé" in patient_mail.body.lower()

    # Alice (member of cardiologie@, asked to be notified) hears of Paul's reply; Bob did not ask.
    patient_send(
        cast.paul_patient,
        cast.cardio.address,
        subject="SENTINEL-SUBJECT réponse",
        text="SENTINEL-BODY merci",
        in_reply_to=sent,
        attachments=[("SENTINEL-FILE-2.pdf", "application/pdf", PDF)],
    )
    assert [m.to for m in mail.outbox][1:] == [[cast.alice.email]]
    assert "https://messagerie.exemple.fr/" in mail.outbox[1].body

    text = all_notification_text()
    for sentinel in SENTINELS:
        assert sentinel not in text
    assert cast.paul_patient.ins not in text


def test_each_new_message_notifies_once(cast):
    pro_send(cast.alice_box, cast.alice, cast.paul_patient.address)
    pro_send(cast.alice_box, cast.alice, cast.paul_patient.address, subject="Rappel")
    assert len(mail.outbox) == 2
    assert Notification.objects.filter(status=Notification.Status.SENT).count() == 2


def test_running_the_task_twice_sends_one_email(cast):
    from patients.tasks import send_notification

    pro_send(cast.alice_box, cast.alice, cast.paul_patient.address)
    notification = Notification.objects.get()
    send_notification.delay(notification.pk)
    send_notification(notification.pk)
    assert len(mail.outbox) == 1


def test_no_email_without_a_personal_address(cast):
    cast.paul_patient.notification_email = ""
    cast.paul_patient.save()
    pro_send(cast.alice_box, cast.alice, cast.paul_patient.address)
    assert mail.outbox == []
    assert Notification.objects.get().status == Notification.Status.SKIPPED


def test_pro_without_the_setting_is_not_notified(cast):
    sent = pro_send(cast.alice_box, cast.alice, cast.paul_patient.address).message
    mail.outbox.clear()
    patient_send(cast.paul_patient, cast.alice_box.address, in_reply_to=sent)
    assert mail.outbox == []
    assert inbox_of(cast.alice_box).count() == 1


def test_the_task_reads_its_notification_and_address_in_one_statement(cast):
    """Claim, one read of the notification with its personal address, the final state: three
    statements when there is nobody to write to; with an address, the e-mail goes to it."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from patients.notifications import send_notification

    pro_send(cast.alice_box, cast.alice, cast.paul_patient.address)
    notification = Notification.objects.get()
    assert [m.to for m in mail.outbox] == [["paul.perso@exemple.org"]]

    cast.paul_patient.notification_email = ""
    cast.paul_patient.save()
    Notification.objects.filter(pk=notification.pk).update(status=Notification.Status.PENDING)
    with CaptureQueriesContext(connection) as queries:
        assert send_notification(notification.pk) is None
    assert len(queries) == 3, [q["sql"][:80] for q in queries.captured_queries]
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == (Notification.Status.SKIPPED, 2)
    assert len(mail.outbox) == 1


def test_claim_takes_a_due_pending_row_once_and_finish_sets_its_final_state(cast):
    import datetime

    from django.utils import timezone

    from mailboxes import queueing

    cast.paul_patient.notification_email = ""
    cast.paul_patient.save()
    pro_send(cast.alice_box, cast.alice, cast.paul_patient.address)
    pk = Notification.objects.get().pk
    later = timezone.now() + datetime.timedelta(minutes=5)
    Notification.objects.filter(pk=pk).update(status="pending", attempts=3, next_attempt_at=later, last_error="451")
    assert not queueing.claim(Notification, pk)  # not due yet
    Notification.objects.filter(pk=pk).update(next_attempt_at=timezone.now())
    assert queueing.claim(Notification, pk)
    assert not queueing.claim(Notification, pk)  # taken
    row = Notification.objects.get(pk=pk)
    assert (row.status, row.attempts, row.last_error) == ("sending", 4, "451")
    sent_at = timezone.now()
    assert queueing.finish(Notification, pk, Notification.Status.SENT, sent_at=sent_at)
    row = Notification.objects.get(pk=pk)
    assert (row.status, row.next_attempt_at, row.last_error, row.sent_at) == ("sent", None, "", sent_at)
    assert row.updated_at >= sent_at
    assert not queueing.finish(Notification, pk, Notification.Status.FAILED, "late")  # final already


def test_a_notifications_state_changes_skip_the_flush_in_their_own_transaction_only(cast):
    """On PostgreSQL a notification's claim and final state commit without waiting for the WAL
    flush (a database crash may send one twice, never lose one): the setting lives in that one
    statement's transaction. Inside a caller's transaction they wait with it, and the setting
    never outlives the statement (the next delivery on the connection is flushed)."""
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from mailboxes import queueing

    def synchronous_commit() -> str:
        with connection.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit" if connection.vendor == "postgresql" else "SELECT 'on'")
            return cursor.fetchone()[0]

    cast.paul_patient.notification_email = ""
    cast.paul_patient.save()
    pro_send(cast.alice_box, cast.alice, cast.paul_patient.address)
    pk = Notification.objects.get().pk
    postgres = connection.vendor == "postgresql"

    Notification.objects.filter(pk=pk).update(status="pending", next_attempt_at=None)
    with CaptureQueriesContext(connection) as queries:
        assert queueing.claim(Notification, pk, flush=False)
        assert queueing.finish(Notification, pk, Notification.Status.SKIPPED, flush=False)
    assert [("synchronous_commit" in q["sql"]) for q in queries.captured_queries] == [postgres, postgres]
    assert synchronous_commit() == "on"
    assert Notification.objects.get(pk=pk).status == Notification.Status.SKIPPED

    Notification.objects.filter(pk=pk).update(status="pending", next_attempt_at=None)
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        assert queueing.claim(Notification, pk, flush=False)
        assert synchronous_commit() == "on"
    assert not any("synchronous_commit" in q["sql"] for q in queries.captured_queries[:1])
    assert Notification.objects.get(pk=pk).status == "sending"
