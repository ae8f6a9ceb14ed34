"""Review fix: an automatic return's Celery task carries only a row id, never the patient's
address (it holds the INS) nor the professional's (often a name) — logs and the broker see ids
only (common rules; RULES.md §3 automatic returns)."""

import pytest

from mailboxes.delivery import DeliveryRefused
from patients import tasks
from patients.models import Patient
from tests.patients.conftest import pro_send, system_messages_in

pytestmark = pytest.mark.django_db(transaction=True)


def test_automatic_return_task_gets_an_id_and_still_sends_once(cast, monkeypatch):
    calls = []
    original_apply_async = tasks.send_automatic_return.apply_async

    def spy(args=None, kwargs=None, **options):
        calls.append((tuple(args or ()), kwargs or {}))
        return original_apply_async(args, kwargs, **options)

    # The policy queues the task by name (`celery.signature`): what reaches the task is spied here.
    monkeypatch.setattr(tasks.send_automatic_return, "apply_async", spy)
    Patient.objects.filter(pk=cast.paul_patient.pk).update(space_state=Patient.SpaceState.CLOSED)
    with pytest.raises(DeliveryRefused):
        pro_send(cast.alice_box, cast.alice, cast.paul_patient.address, subject="Bilan")
    assert len(calls) == 1
    args, kwargs = calls[0]
    assert kwargs == {} and len(args) == 1 and isinstance(args[0], int)
    text = repr(calls)
    assert cast.paul_patient.ins not in text and cast.alice_box.address not in text
    # The return arrived, and running the task again sends nothing more.
    assert system_messages_in(cast.alice_box).count() == 1
    from patients.models import PendingReturn

    pending = PendingReturn.objects.get(pk=args[0])
    assert pending.sent_at is not None and pending.code == "space_closed"
    tasks.send_automatic_return(args[0])
    assert system_messages_in(cast.alice_box).count() == 1
