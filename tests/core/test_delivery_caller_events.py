"""A caller's own audit events written with the next delivery (`events_with_next_delivery`,
issue 10: the API's call event): linked into the delivery's chain right after its events,
inserted in its transaction, once per block, and left to the caller when nothing is written."""

import pytest
from django.db import transaction

from audit.chain import verify
from audit.models import AuditEvent
from mailboxes.compose import send_from_mailbox
from mailboxes.delivery import DeliveryRefused, events_with_next_delivery
from mailboxes.fanout import send_one_per_patient

pytestmark = pytest.mark.django_db


class Rollback(Exception):
    pass


def call_event(**fields):
    return {"action": "api.call", "actor_label": "api-key:7", "object_type": "apikey", "object_id": "7", **fields}


def test_the_events_follow_the_delivery_s_own_in_its_chain(cast):
    with events_with_next_delivery([call_event(outcome="201", ip="127.0.0.1")]) as call:
        result = send_from_mailbox(cast.alice_box, cast.alice, to=[cast.charlie_box.address], subject="s", text="t")
    assert call.written
    own = list(AuditEvent.objects.filter(message_id=result.message.pk).order_by("seq"))
    event = AuditEvent.objects.get(action="api.call")
    assert [e.action for e in own] == [AuditEvent.Action.SUBMITTED, AuditEvent.Action.DELIVERED]
    assert event.chain_id == own[-1].chain_id and event.seq == own[-1].seq + 1
    assert event.prev_hash == own[-1].hash
    assert (event.outcome, event.ip, event.object_id, event.message_id) == ("201", "127.0.0.1", "7", None)
    assert verify().ok


def test_written_once_for_several_deliveries_of_the_block(cast, settings):
    # One patient, one message is the patient policy's rule (`own_copies`): the real one here.
    settings.PATIENT_POLICY = "patients.policy.PatientPolicy"
    with transaction.atomic(), events_with_next_delivery([call_event()]) as call:
        outcome = send_one_per_patient(
            cast.alice_box,
            cast.alice,
            to=[cast.paul_box.address, cast.pauline_box.address],
            subject="s",
            text="t",
            source="webmail",
        )
    assert call.written and len(outcome.results) == 2
    assert AuditEvent.objects.filter(action="api.call").count() == 1
    assert verify().ok


def test_a_refused_delivery_leaves_them_to_the_caller(cast):
    with events_with_next_delivery([call_event()]) as call, pytest.raises(DeliveryRefused):
        send_from_mailbox(cast.alice_box, cast.alice, to=["x@inconnu.mssante.fr"], subject="s", text="t")
    assert not call.written
    assert not AuditEvent.objects.filter(action="api.call").exists()


def test_rolled_back_with_the_caller_s_transaction_and_none_outside_a_block(cast):
    with pytest.raises(Rollback), transaction.atomic(), events_with_next_delivery([call_event()]):
        send_from_mailbox(cast.alice_box, cast.alice, to=[cast.charlie_box.address], subject="s", text="t")
        raise Rollback
    assert not AuditEvent.objects.filter(action="api.call").exists()
    send_from_mailbox(cast.alice_box, cast.alice, to=[cast.charlie_box.address], subject="s", text="t")
    assert not AuditEvent.objects.filter(action="api.call").exists()
    assert verify().ok
