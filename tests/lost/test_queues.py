"""Every queue has the relay's discipline (issue 15 items 13 and 14): notifications and automatic
returns are claimed by a conditional update, a 4xx is retried with backoff, a 5xx is recorded as
failed, the beat sweepers take back rows whose task was lost or whose worker died, and a broker
that is down at send time costs the user nothing."""

import datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from mailboxes.models import Outbox, TrustedDomain
from mssante.celery import app
from operations.scheduler import jobs_from_settings, run_due
from patients.models import Notification, Patient, PendingReturn
from tests.celery_broker import publishing_to
from tests.patients.conftest import inbox_of, pro_send

pytestmark = pytest.mark.django_db

DOWN_BROKER = "redis://127.0.0.1:25999/0"  # nothing listens there (this branch's port range)


def run_beat_job(task_name: str) -> None:
    """Run one job of CELERY_BEAT_SCHEDULE the way `manage.py runscheduler` does."""
    app.loader.import_default_modules()
    jobs = [job for job in jobs_from_settings(app) if job.task == task_name]
    assert jobs, f"{task_name} is not in the beat schedule"
    ran, _wait = run_due(app, jobs, force=True)
    assert ran == [jobs[0].name]


def make_due(model, **changes):
    past = timezone.now() - datetime.timedelta(hours=1)
    model.objects.update(updated_at=past, **changes)


def test_a_4xx_is_retried_with_backoff_then_sent_by_the_sweeper(cast, mail_peer, django_capture_on_commit_callbacks):
    mail_peer.handler.data_replies = ["451 4.3.0 Try again later"]
    with django_capture_on_commit_callbacks(execute=True):
        pro_send(cast.alice_box, cast.alice, cast.paul_patient.address)
    notification = Notification.objects.get()
    assert notification.status == Notification.Status.PENDING
    assert notification.attempts == 1
    assert notification.last_error.startswith("451 4.3.0")
    assert notification.next_attempt_at > timezone.now()
    # Not due yet: the sweeper leaves it.
    with django_capture_on_commit_callbacks(execute=True):
        run_beat_job("patients.tasks.sweep_notifications")
    assert len(mail_peer.handler.received) == 1
    make_due(Notification, next_attempt_at=timezone.now() - datetime.timedelta(minutes=5))
    with django_capture_on_commit_callbacks(execute=True):
        run_beat_job("patients.tasks.sweep_notifications")
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == (Notification.Status.SENT, 2)
    assert len(mail_peer.handler.received) == 2
    assert len({r.message_id for r in mail_peer.handler.received}) == 1  # one Message-ID per row


def test_a_5xx_is_recorded_as_failed_and_never_retried(cast, mail_peer, django_capture_on_commit_callbacks):
    mail_peer.handler.data_replies = ["550 5.1.1 No such user"]
    with django_capture_on_commit_callbacks(execute=True):
        pro_send(cast.alice_box, cast.alice, cast.paul_patient.address)
    notification = Notification.objects.get()
    assert notification.status == Notification.Status.FAILED
    assert notification.last_error.startswith("550 5.1.1")
    event = AuditEvent.objects.get(action="notification.failed")
    assert event.outcome == "failed" and event.object_id == str(notification.pk)
    make_due(Notification)
    with django_capture_on_commit_callbacks(execute=True):
        run_beat_job("patients.tasks.sweep_notifications")
    assert len(mail_peer.handler.received) == 1


def test_a_killed_worker_leaves_sending_rows_the_sweeper_takes_back(
    cast, mail_peer, settings, django_capture_on_commit_callbacks
):
    pro_send(cast.alice_box, cast.alice, cast.paul_patient.address)  # on_commit not run: task lost
    notification = Notification.objects.get()
    Notification.objects.update(status=Notification.Status.SENDING, attempts=1)  # the worker died here
    with django_capture_on_commit_callbacks(execute=True):
        run_beat_job("patients.tasks.sweep_notifications")
    assert Notification.objects.get().status == Notification.Status.SENDING  # not stuck long enough
    make_due(Notification)
    with django_capture_on_commit_callbacks(execute=True):
        run_beat_job("patients.tasks.sweep_notifications")
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == (Notification.Status.SENT, 2)
    assert len(mail_peer.handler.received) == 1


def test_a_lost_automatic_return_is_sent_by_the_sweeper_once(cast, django_capture_on_commit_callbacks):
    from mailboxes.delivery import DeliveryRefused
    from patients.policy import system_address

    # A closed space: the refusal stores a PendingReturn; its task is lost (on_commit not run).
    Patient.objects.filter(pk=cast.paul_patient.pk).update(space_state=Patient.SpaceState.CLOSED)
    with pytest.raises(DeliveryRefused):
        pro_send(cast.alice_box, cast.alice, cast.paul_patient.address)
    pending = PendingReturn.objects.get()
    assert pending.status == PendingReturn.Status.PENDING
    make_due(PendingReturn)
    for _ in range(2):  # a second sweep finds nothing to do
        with django_capture_on_commit_callbacks(execute=True):
            run_beat_job("patients.tasks.sweep_automatic_returns")
    pending.refresh_from_db()
    assert pending.status == PendingReturn.Status.SENT and pending.sent_at is not None
    returns = inbox_of(cast.alice_box).filter(message__from_address=system_address())
    assert returns.count() == 1


def test_a_lost_test_address_acknowledgement_is_sent_by_the_sweeper_once(cast, django_capture_on_commit_callbacks):
    """The test address's answer is a PendingReturn row like an automatic return: its task lost
    (a flushed broker, a broker down), the returns' sweeper sends it, once."""
    from patients import policy

    with publishing_to(DOWN_BROKER), django_capture_on_commit_callbacks(execute=True):
        pro_send(cast.cardio, cast.bob, policy.test_address(), subject="TEST messagerie", text="Ceci est un TEST.")
    pending = PendingReturn.objects.get()
    assert (pending.code, pending.status) == ("test_address", PendingReturn.Status.PENDING)
    assert pending.sender == cast.cardio.address
    make_due(PendingReturn)
    for _ in range(2):  # a second sweep finds nothing to do
        with django_capture_on_commit_callbacks(execute=True):
            run_beat_job("patients.tasks.sweep_automatic_returns")
    pending.refresh_from_db()
    assert pending.status == PendingReturn.Status.SENT
    acks = inbox_of(cast.cardio).filter(message__subject__startswith="Accusé de réception")
    assert acks.count() == 1 and acks.get().message.envelope_from == ""


def test_broker_down_at_send_time_the_user_sees_success_and_the_sweepers_deliver(
    cast, client, mail_peer, settings, django_capture_on_commit_callbacks
):
    """The message is committed, then queueing its tasks fails: the page still says "sent"; the
    relay and notification sweepers deliver once the broker is back."""
    TrustedDomain.objects.create(name="autre-operateur.mssante.fr")
    client.force_login(cast.alice)
    url = reverse("webmail:compose")
    with publishing_to(DOWN_BROKER), django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = client.post(
            url,
            {
                "sender": cast.alice_box.pk,
                "to": f"{cast.paul_patient.address}, dr.externe@autre-operateur.mssante.fr",
                "subject": "Résultats",
                "body": "Bonjour, voici vos résultats.",
            },
        )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert callbacks  # the enqueue ran, and failed quietly
    outbox = Outbox.objects.get()
    assert outbox.status == Outbox.Status.PENDING
    assert Notification.objects.get().status == Notification.Status.PENDING
    assert inbox_of(cast.paul_box).count() == 1
    # The broker is back (tasks run in process here); the sweepers find the rows.
    settings.RELAY_SWEEP_GRACE_SECONDS = 0
    make_due(Notification)
    with django_capture_on_commit_callbacks(execute=True):
        run_beat_job("patients.tasks.sweep_notifications")
        run_beat_job("mailboxes.tasks.sweep_outbox")
    assert Notification.objects.get().status == Notification.Status.SENT
    assert Outbox.objects.get().status == Outbox.Status.SENT
    subjects = sorted(r.rcpt_tos[0] for r in mail_peer.handler.received)
    assert subjects == ["dr.externe@autre-operateur.mssante.fr", "paul.perso@exemple.org"]
