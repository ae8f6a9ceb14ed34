"""Chaos in CI (issue 15 item 18): a worker killed with SIGKILL in the middle of a send, the
broker's Redis database flushed with work queued, the relay target stopped, and the database cut
under the SMTP gateway. Nothing acknowledged is lost and nothing is sent twice — for the relay,
notifications and automatic returns alike.

"Sent once" is counted where it matters: by the peer, which counts a message only when its 250
reached a live connection (tests/chaos/conftest.py), and in the boxes, by Message-ID.
"""

import os
import signal
import smtplib
from email.message import EmailMessage
from email.utils import make_msgid

import pytest

from mailboxes.delivery import DeliveryRefused
from mailboxes.models import Entry, Outbox, TrustedDomain
from patients.models import Notification, Patient, PendingReturn
from patients.policy import system_address
from tests.chaos.conftest import run_sweepers, wait_until
from tests.patients.conftest import inbox_of, pro_send

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PEER_DOMAIN = "autre-operateur.mssante.fr"
EXTERNAL = f"dr.externe@{PEER_DOMAIN}"


def scenario(cast):
    """One message relayed to another operator and notified to a patient, and one refused for a
    closed space (an automatic return). Returns what to look for."""
    TrustedDomain.objects.get_or_create(name=PEER_DOMAIN)
    Patient.objects.filter(pk=cast.pauline_patient.pk).update(space_state=Patient.SpaceState.CLOSED)
    sent = pro_send(cast.alice_box, cast.alice, [EXTERNAL, cast.paul_patient.address], subject="Résultats").message
    with pytest.raises(DeliveryRefused):
        pro_send(cast.alice_box, cast.alice, cast.pauline_patient.address, subject="Rendez-vous")
    notification = Notification.objects.get(entry__message=sent)
    return sent, notification


def all_done() -> bool:
    return (
        not Outbox.objects.exclude(status=Outbox.Status.SENT).exists()
        and not Notification.objects.exclude(status=Notification.Status.SENT).exists()
        and not PendingReturn.objects.exclude(status=PendingReturn.Status.SENT).exists()
        and Outbox.objects.exists()
        and PendingReturn.objects.exists()
    )


def notification_message_id(notification) -> str:
    return f"<notification.{notification.pk}.{notification.created_at:%Y%m%d%H%M%S}@patient.mssante.fr>"


def assert_each_once(cast, peer, sent, notification):
    assert peer.handler.acked(sent.message_id) == 1, peer.handler.acknowledged
    assert peer.handler.acked(notification_message_id(notification)) == 1, peer.handler.acknowledged
    returns = inbox_of(cast.alice_box).filter(message__from_address=system_address())
    assert returns.count() == 1
    assert PendingReturn.objects.get().status == PendingReturn.Status.SENT


def wait_all_done(*workers, timeout=45):
    try:
        wait_until(all_done, timeout=timeout, interval=0.1)
    except AssertionError:
        rows = {
            "outbox": list(Outbox.objects.values("status", "attempts", "last_error")),
            "notifications": list(Notification.objects.values("status", "attempts", "last_error")),
            "returns": list(PendingReturn.objects.values("status", "attempts", "last_error")),
        }
        logs = "\n".join(w.output()[-3000:] for w in workers)
        raise AssertionError(f"not all sent: {rows}\n{logs}") from None


def test_a_worker_killed_mid_send_loses_nothing_and_sends_nothing_twice(cast, peer, worker_env, start_worker, settings):
    peer.handler.delay = 120  # the peer sits on the end of DATA: the worker is caught mid-send
    first = start_worker(**worker_env)
    sent, notification = scenario(cast)
    assert peer.handler.data_started.wait(timeout=30), first.output()[-3000:]
    os.kill(first.proc.pid, signal.SIGKILL)
    first.proc.wait(timeout=10)
    in_flight = Outbox.objects.filter(status="sending").count() + Notification.objects.filter(status="sending").count()
    assert in_flight == 1  # the killed worker held one row
    assert peer.handler.acknowledged == []  # and got no 250 for it

    peer.handler.delay = 0
    run_sweepers(settings)  # beat: the row of the dead worker, and tasks lost with it
    second = start_worker(**worker_env)
    wait_all_done(first, second)
    assert_each_once(cast, peer, sent, notification)


def test_a_flushed_broker_loses_nothing(cast, peer, worker_env, chaos_broker, start_worker, settings):
    sent, notification = scenario(cast)
    assert chaos_broker.client.llen(chaos_broker.queue) == 3  # relay, notification, return
    chaos_broker.client.flushdb()  # Redis restarted without persistence, or flushed by mistake
    worker = start_worker(**worker_env)
    assert not all_done()
    run_sweepers(settings)
    wait_all_done(worker)
    assert_each_once(cast, peer, sent, notification)


def test_the_relay_target_stopped_then_back_loses_nothing(cast, peer, worker_env, start_worker, settings):
    peer.stop()
    worker = start_worker(**worker_env)
    sent, notification = scenario(cast)

    def both_failed_once():
        outbox = Outbox.objects.get()
        notification.refresh_from_db()
        return outbox.attempts >= 1 and outbox.last_error and notification.attempts >= 1 and notification.last_error

    wait_until(both_failed_once, timeout=30, interval=0.1)
    assert Outbox.objects.get().status in ("pending", "sending")
    assert Notification.objects.get().status in ("pending", "sending")
    peer.start()  # the relay is back on the same port: the retries with backoff find it
    wait_all_done(worker)
    assert_each_once(cast, peer, sent, notification)


def inbound(n: int, message_id: str, to: str) -> bytes:
    mail = EmailMessage()
    mail["From"] = EXTERNAL
    mail["To"] = to
    mail["Subject"] = f"Compte rendu {n}"
    mail["Message-ID"] = message_id
    mail.set_content("Bonjour,\nvoici le compte rendu.\n")
    return mail.as_bytes()


def test_the_database_cut_under_the_gateway_loses_nothing_acknowledged(
    cast, database_cut, start_gateway_process, chaos_broker
):
    """A peer sends 30 messages; the database goes away after the 10th and comes back after the
    20th. The gateway answers 4xx (never 250) while it is away; the peer sends again what was
    not acknowledged, as a real MTA does. At the end every message is in the box exactly once."""
    TrustedDomain.objects.get_or_create(name=PEER_DOMAIN)
    env, cut = database_cut
    port = start_gateway_process({**env, "CELERY_BROKER_URL": chaos_broker.url, "SMTPD_DECISION_CACHE_SECONDS": "0"})
    ids = [make_msgid(domain=PEER_DOMAIN) for _ in range(30)]
    acknowledged, refused = set(), 0

    def send(n: int) -> bool:
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
                client.sendmail(EXTERNAL, [cast.alice_box.address], inbound(n, ids[n], cast.alice_box.address))
        except (smtplib.SMTPException, OSError):
            return False
        acknowledged.add(ids[n])
        return True

    for n in range(30):
        if n == 10:
            cut.cut()
        if n == 20:
            cut.restore()
        if not send(n):
            refused += 1
    assert refused >= 10 - 1  # the cut was real: the gateway acknowledged nothing meanwhile

    def all_acknowledged():
        for n in range(30):
            if ids[n] not in acknowledged:
                send(n)
        return len(acknowledged) == 30

    wait_until(all_acknowledged, timeout=60, interval=0.2)
    for message_id in ids:
        stored = Entry.objects.filter(
            mailbox=cast.alice_box, message__message_id__in=[message_id, message_id.strip("<>")]
        )
        assert stored.count() == 1, message_id
