"""Notifications through a real Celery worker on Redis (DB 4): the task is queued after commit
with only an id, the worker sends the e-mail (file backend), and a duplicate task sends nothing."""

import base64
import json

import pytest
import redis

from patients.models import Notification
from tests.celery_broker import broker_url, publishing_to
from tests.patients.conftest import pro_send
from tests.transport.conftest import finished, process_env, start_worker, wait_until  # noqa: F401 - fixtures

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

REDIS_URL = broker_url("patients", 4)


@pytest.fixture
def broker_db4():
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    try:
        with publishing_to(REDIS_URL):
            yield client
    finally:
        client.flushdb()
        client.close()


def test_worker_sends_the_notification_once(cast, broker_db4, start_worker, tmp_path):  # noqa: F811
    from patients.tasks import send_notification

    mail_dir = tmp_path / "mails"
    mail_dir.mkdir()
    worker = start_worker(CELERY_BROKER_URL=REDIS_URL, EMAIL_FILE_PATH=str(mail_dir))
    pro_send(cast.alice_box, cast.alice, cast.paul_patient.address, subject="SENTINEL-SUBJECT")
    notification = Notification.objects.get()
    try:
        wait_until(lambda: Notification.objects.get(pk=notification.pk).status == Notification.Status.SENT, timeout=20)
    except AssertionError:
        raise AssertionError(worker.output()[-3000:]) from None
    send_notification.delay(notification.pk)  # a duplicate delivery of the task
    files = wait_until(lambda: list(mail_dir.iterdir()), timeout=10)
    content = "".join(f.read_text() for f in files)
    assert "paul.perso@exemple.org" in content
    assert "SENTINEL" not in content
    wait_until(lambda: broker_db4.llen("celery") == 0, timeout=10)
    # The worker logged both runs of the task (the first and the duplicate) as finished.
    wait_until(lambda: finished(worker, "patients.tasks.send_notification") >= 2, timeout=20)
    assert sum(f.read_text().count("Message-ID:") for f in mail_dir.iterdir()) == 1


def queued_tasks(client) -> list[tuple[str, list]]:
    """(task name, args) of each task waiting in the broker's default queue."""
    tasks = []
    for raw in client.lrange("celery", 0, -1):
        message = json.loads(raw)
        args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        tasks.append((message["headers"]["task"], args))
    return tasks


def test_the_notifications_of_one_transaction_go_in_one_task(cast, broker_db4, start_worker, tmp_path):  # noqa: F811
    """A campaign's chunk is one transaction: its notifications are one published task carrying
    every id, and the worker sends each e-mail once."""
    from django.db import transaction

    with transaction.atomic():
        for subject in ("Convocation", "Rappel", "Consignes"):
            pro_send(cast.alice_box, cast.alice, cast.paul_patient.address, subject=subject)
    ids = sorted(Notification.objects.values_list("pk", flat=True))
    assert len(ids) == 3
    assert queued_tasks(broker_db4) == [("patients.tasks.send_notification", ids)]

    mail_dir = tmp_path / "mails"
    mail_dir.mkdir()
    worker = start_worker(CELERY_BROKER_URL=REDIS_URL, EMAIL_FILE_PATH=str(mail_dir))
    try:
        wait_until(lambda: Notification.objects.filter(status=Notification.Status.SENT).count() == 3, timeout=20)
    except AssertionError:
        raise AssertionError(worker.output()[-3000:]) from None
    wait_until(lambda: sum(f.read_text().count("Message-ID:") for f in mail_dir.iterdir()) == 3, timeout=10)


def test_a_temporary_failure_in_a_task_of_several_is_queued_again_alone(broker_db4, monkeypatch):
    """One notification of a batch that must wait (4xx) goes back to the broker on its own, with
    its backoff; the others are not sent again; a row that raises does not stop the rest."""
    from patients import notifications
    from patients.tasks import send_notification

    ran = []

    def fake_send(notification_id):
        ran.append(notification_id)
        if notification_id == 12:
            raise RuntimeError("a broken row")
        return 30 if notification_id == 11 else None

    monkeypatch.setattr(notifications, "send_notification", fake_send)
    send_notification(10, 11, 12, 13)
    assert ran == [10, 11, 12, 13]
    (raw,) = broker_db4.lrange("celery", 0, -1)
    message = json.loads(raw)
    assert queued_tasks(broker_db4) == [("patients.tasks.send_notification", [11])]
    assert message["headers"]["eta"]  # the countdown of its backoff
