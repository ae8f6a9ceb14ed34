"""A real Celery worker on Redis, killed with SIGKILL in the middle of a relay: nothing is lost,
the message goes out at least once with the same Message-ID (issue 3 item 6).
"""

import os
import signal

import pytest
from django.core.management import call_command

from mailboxes.compose import send_from_mailbox
from mailboxes.models import Delivery, Outbox, TrustedDomain
from tests.transport.conftest import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PEER = "autre-operateur.mssante.fr"
EXTERNAL = f"dr.externe@{PEER}"


def outbox_status(pk):
    return Outbox.objects.values_list("status", flat=True).get(pk=pk)


def test_worker_killed_mid_relay_then_the_message_still_goes_out(cast, sink, redis_broker, start_worker, settings):
    TrustedDomain.objects.create(name=PEER)
    sink.handler.delay = 30  # the peer is slow to answer the end of DATA
    relay_env = {"RELAY_HOST": sink.host, "RELAY_PORT": str(sink.port), "RELAY_RETRY_BASE_SECONDS": "1"}
    first = start_worker(queue=redis_broker.queue, **relay_env)

    message = send_from_mailbox(
        cast.alice_box, cast.alice, to=[EXTERNAL], subject="Résultats", text="Bonjour, voici les résultats."
    ).message
    outbox = Outbox.objects.get(message=message)
    assert sink.handler.data_started.wait(timeout=20), first.output()
    assert outbox_status(outbox.pk) == "sending"

    os.kill(first.proc.pid, signal.SIGKILL)
    first.proc.wait(timeout=10)
    assert outbox_status(outbox.pk) == "sending"  # the worker died holding the row

    # The sweeper (here the cron command, publishing to Redis) puts the row back in line and
    # another worker sends it; the peer now answers at once, first with a temporary refusal
    # (the worker retries through Celery with a countdown), then with 250.
    sink.handler.delay = 0
    sink.handler.data_replies = ["451 4.3.0 Busy, try again"]
    settings.RELAY_SENDING_TIMEOUT_SECONDS = 0
    settings.RELAY_SWEEP_GRACE_SECONDS = 0
    call_command("relay_sweep")
    assert outbox_status(outbox.pk) == "pending"
    second = start_worker(queue=redis_broker.queue, **relay_env)
    wait_until(lambda: outbox_status(outbox.pk) == "sent", timeout=20)

    outbox.refresh_from_db()
    assert outbox.attempts == 3
    received = sink.handler.received
    assert len(received) == 3
    assert {r.message_id for r in received} == {message.message_id}
    assert all(r.rcpt_tos == [EXTERNAL] for r in received)
    assert Delivery.objects.get(message=message, address=EXTERNAL).status == "relayed"
    assert "retry: Retry in 2s" in second.output()  # backoff 1 s × 2^(attempt 2 − 1)
