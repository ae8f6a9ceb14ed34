"""The recipients' query of the delivery path (`mailboxes.delivery.planning.local_boxes`): model
instances of the active boxes asked for, with the query's other columns as attributes, the same
boxes and values as `Mailbox.objects.raw` of that query gives (issue 17)."""

from django.db import connection

from mailboxes.delivery import send_message
from mailboxes.delivery.planning import LOCAL_BOXES_SQL, local_boxes
from mailboxes.models import BoxRule, Folder, Forwarding, Mailbox
from tests.core.conftest import PEER_SENDER, raw_message

LOADED = ["id", "kind", "address", "quota_bytes", "used_bytes", "max_message_bytes", "display_name"]
EXTRAS = ["inbox_folder_id", "already_delivered", "may_have_settings"]


def as_raw(addresses, message_id=None):
    sql = LOCAL_BOXES_SQL.format(addresses=", ".join(["%s"] * len(addresses)))
    return list(Mailbox.objects.raw(sql, [Folder.Role.INBOX.value, message_id, *addresses]))


def values(box) -> dict:
    return {name: getattr(box, name) for name in LOADED + EXTRAS}


def test_local_boxes_are_mailboxes_loaded_from_the_database_with_the_querys_columns(cast):
    cast.cardio.is_active = False
    cast.cardio.save(update_fields=["is_active"])
    asked = [cast.alice_box.address, cast.cardio.address, "personne@ch-troispics.mssante.fr", cast.charlie_box.address]
    boxes = sorted(local_boxes(asked), key=lambda box: box.pk)
    assert [box.address for box in boxes] == sorted([cast.alice_box.address, cast.charlie_box.address])
    for box in boxes:
        assert type(box) is Mailbox
        assert box == Mailbox.objects.get(pk=box.pk)
        assert not box._state.adding and box._state.db == connection.alias
        stored = Mailbox.objects.get(pk=box.pk)
        assert {name: getattr(box, name) for name in LOADED} == {name: getattr(stored, name) for name in LOADED}
        assert box.get_deferred_fields() == {f.attname for f in Mailbox._meta.concrete_fields} - set(LOADED)
        assert box.inbox_folder_id == Folder.objects.get(mailbox=box, role=Folder.Role.INBOX).pk
        assert not box.already_delivered and not box.may_have_settings
        assert box.signature == stored.signature  # a deferred field loads on access
    assert sorted(map(values, boxes), key=str) == sorted(map(values, as_raw(asked)), key=str)


def test_local_boxes_say_which_box_holds_the_message_id_and_which_may_have_settings(cast):
    message_id = "<deja-recu@autre-operateur.mssante.fr>"
    raw = raw_message(message_id=message_id)
    send_message(raw, envelope_from=PEER_SENDER, envelope_to=[cast.alice_box.address], source="smtp")
    BoxRule.objects.create(mailbox=cast.charlie_box, field="subject", contains="urgent", enabled=True)
    Forwarding.objects.create(mailbox=cast.cardio, address="ailleurs@clinique-du-lac.mssante.fr", enabled=False)
    asked = [cast.alice_box.address, cast.charlie_box.address, cast.cardio.address]
    boxes = {box.address: box for box in local_boxes(asked, message_id)}
    assert {address: bool(box.already_delivered) for address, box in boxes.items()} == {
        cast.alice_box.address: True,
        cast.charlie_box.address: False,
        cast.cardio.address: False,
    }
    assert {address: bool(box.may_have_settings) for address, box in boxes.items()} == {
        cast.alice_box.address: False,
        cast.charlie_box.address: True,
        cast.cardio.address: False,
    }
    # Without a Message-ID, nothing is a duplicate; the values are raw()'s for the same query.
    assert not any(box.already_delivered for box in local_boxes(asked))
    expected = sorted(map(values, as_raw(asked, message_id)), key=str)
    assert sorted(map(values, boxes.values()), key=str) == expected
