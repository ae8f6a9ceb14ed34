"""Many deliveries from one box in one transaction of the caller (`many_in_one_transaction`, a
campaign's chunk, issue 9): the files are on stable storage and the sending box counted before
that transaction commits, once for the block."""

import pytest
from django.db import transaction

from mailboxes.compose import send_from_mailbox
from mailboxes.delivery import many_in_one_transaction
from mailboxes.delivery.writing import StoredFiles
from mailboxes.models import Mailbox, Message

pytestmark = pytest.mark.django_db


class Rollback(Exception):
    pass


def send(cast, subject):
    return send_from_mailbox(cast.charlie_box, cast.charlie, to=[cast.alice_box.address], subject=subject, text="t")


def test_the_files_are_waited_for_and_the_sender_counted_once_at_the_end_of_the_block(cast, monkeypatch):
    waited = []
    wait_durable = StoredFiles.wait_durable

    def recording_wait(files):
        waited.append(files.raw_name)
        wait_durable(files)

    monkeypatch.setattr(StoredFiles, "wait_durable", recording_wait)
    with transaction.atomic():
        with many_in_one_transaction(cast.charlie_box):
            results = [send(cast, f"Message {n}") for n in range(3)]
            # Nothing waited yet, the sender not counted yet; each recipient counted at once.
            assert waited == []
            assert Mailbox.objects.get(pk=cast.charlie_box.pk).used_bytes == 0
            sizes = [r.message.size for r in results]
            assert Mailbox.objects.get(pk=cast.alice_box.pk).used_bytes == sum(sizes)
        # The block's end, before the COMMIT: every file waited for, the SENT copies counted.
        assert waited == [r.message.raw.name for r in results]
        sender = Mailbox.objects.get(pk=cast.charlie_box.pk)
        assert sender.used_bytes == sum(sizes) and sender.last_used_at is not None


def test_a_message_rolled_back_inside_the_block_is_not_counted_for_the_sender(cast):
    with transaction.atomic():
        with many_in_one_transaction(cast.charlie_box):
            kept = send(cast, "Gardé")
            with pytest.raises(Rollback), transaction.atomic():
                send(cast, "Annulé")
                raise Rollback
    assert list(Message.objects.values_list("subject", flat=True)) == ["Gardé"]
    assert Mailbox.objects.get(pk=cast.charlie_box.pk).used_bytes == kept.message.size


def test_outside_the_block_a_delivery_counts_the_sender_itself(cast):
    result = send(cast, "Seul")
    assert Mailbox.objects.get(pk=cast.charlie_box.pk).used_bytes == result.message.size


@pytest.mark.django_db(transaction=True)
def test_the_block_needs_the_callers_transaction(cast):
    with pytest.raises(RuntimeError), many_in_one_transaction(cast.charlie_box):
        pass


def test_the_blocks_audit_rows_are_sent_in_one_signal_after_the_commit(cast, django_capture_on_commit_callbacks):
    """The receivers of `events_committed` (the API's hooks, the metrics) get the block's rows in
    one signal, those of a message rolled back inside the block left out."""
    from audit.chain import events_committed
    from audit.models import AuditEvent

    signals = []

    def receiver(sender, rows, **kwargs):
        signals.append(list(rows))

    events_committed.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            with transaction.atomic(), many_in_one_transaction(cast.charlie_box):
                kept = [send(cast, "Un"), send(cast, "Deux")]
                with pytest.raises(Rollback), transaction.atomic():
                    send(cast, "Annulé")
                    raise Rollback
            assert signals == []  # nothing before the COMMIT
    finally:
        events_committed.disconnect(receiver)
    assert len(signals) == 1
    stored = dict(AuditEvent.objects.filter(message_id__in=[r.message.pk for r in kept]).values_list("pk", "hash"))
    assert stored and {row.pk: row.hash for row in signals[0]} == stored
