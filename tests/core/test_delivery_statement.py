"""The delivery's one PostgreSQL statement (mailboxes/delivery/statement.py, issue 17): each
part's rows travel as one JSON parameter, so that a delivery to many boxes stays under the 50
parameters for which psycopg keeps the converted query, and the values read back as built."""

import datetime
import json

import pytest
from django.db import connection
from django.utils import timezone

from audit.models import AuditEvent
from mailboxes.delivery import send_message
from mailboxes.delivery.statement import DeliveryStatement, NotJson, json_value
from mailboxes.delivery.writing import MESSAGE_TEXTS
from mailboxes.models import Delivery, Entry, Message
from tests.core.conftest import PEER_SENDER, raw_message

pytestmark = pytest.mark.django_db


def test_child_rows_are_one_parameter_per_part():
    message = Message(pk=1, message_id="<a@b>", from_address="x@y", sha256="0" * 64, raw="raw/00/x.eml")
    now = timezone.now()
    entries = [Entry(mailbox_id=i, message_id=1, folder_id=i, received_at=now) for i in range(1, 21)]
    deliveries = [Delivery(pk=i, message_id=1, address=f"b{i}@x", status="delivered") for i in range(1, 21)]
    one = DeliveryStatement()
    one.insert(Message, [message], with_pk=True, as_text=MESSAGE_TEXTS)
    assert len(one.params) == 3  # each body as it is, then the JSON of the rest of the row
    assert one.params[:2] == ["", ""]
    one.insert(Entry, entries, with_pk=False)
    one.insert(Delivery, deliveries, with_pk=True)
    assert len(one.params) == 5 <= 50
    assert "jsonb_populate_recordset" in one.parts[1] and "ORDER BY r.ordinality" in one.parts[1]


def test_json_values_are_what_postgresql_reads():
    at = datetime.datetime(2026, 11, 30, 6, 45, 1, 250, tzinfo=datetime.UTC)
    entry = Entry(mailbox_id=3, message_id=1, folder_id=4, received_at=at, seen=True)
    fields = {f.name: f for f in Entry._meta.concrete_fields}
    assert json_value(fields["mailbox"], entry) == 3
    assert json_value(fields["seen"], entry) is True
    assert json_value(fields["mdn_sent_at"], entry) is None
    received = json_value(fields["received_at"], entry)
    parsed = datetime.datetime.fromisoformat(received)  # ISO text (SQLite's adapter: naive UTC)
    assert parsed.replace(tzinfo=parsed.tzinfo or datetime.UTC) == at
    event = AuditEvent(action="message.delivered", detail={"boxes": [1, 2], "note": "é"})
    detail = next(f for f in AuditEvent._meta.concrete_fields if f.name == "detail")
    assert json_value(detail, event) == {"boxes": [1, 2], "note": "é"}  # nested JSON, not a string


def test_a_value_json_cannot_carry_is_refused():
    from django.db import models

    field = models.BinaryField(name="blob")
    field.attname = field.column = "blob"

    class Row:
        blob = b"\x00\x01"

    with pytest.raises(NotJson):
        json_value(field, Row())


def test_a_delivery_to_many_boxes_reads_back_as_built(cast):
    """Twenty-odd rows in each part, on the database the suite runs on."""
    boxes = [cast.cardio, cast.alice_box, cast.charlie_box]
    raw = raw_message(
        to=[b.address for b in boxes], subject="Lot", attachments=[("cr.pdf", "application/pdf", b"%PDF-1.4 x")]
    )
    counts = []

    def count_params(execute, sql, params, many, context):
        counts.append((sql.split(None, 1)[0], len(params or ())))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count_params):
        result = send_message(raw, envelope_from=PEER_SENDER, envelope_to=[b.address for b in boxes], source="smtp")
    # psycopg keeps the converted text of a query of at most 50 parameters: the one statement
    # (PostgreSQL; SQLite writes one statement per table) has its rows as JSON.
    one_statement = [n for verb, n in counts if verb == "WITH"]
    assert len(one_statement) == (1 if connection.vendor == "postgresql" else 0)
    assert all(n <= 50 for n in one_statement), counts
    message = result.message
    entries = Entry.objects.filter(message=message)
    assert {e.mailbox_id for e in entries} == {b.pk for b in boxes}
    assert all(e.received_at is not None and not e.seen for e in entries)
    assert set(Delivery.objects.filter(message=message).values_list("address", flat=True)) == {b.address for b in boxes}
    events = list(AuditEvent.objects.filter(message_id=message.pk).order_by("id"))
    assert events and all(isinstance(e.detail, dict) for e in events)


def test_the_bodies_go_beside_the_json_and_read_back_as_sent(cast):
    """A message's bodies travel as text parameters (not escaped into the JSON of its row); the
    statement stays within what psycopg keeps converted (50 parameters, 4,096 bytes)."""
    body = 'Résultats : « normal » \\ "guillemets" \u00a0\n' + "ligne de compte rendu\n" * 2000
    raw = raw_message(to=[cast.alice_box.address], body=body)
    seen = []

    def record(execute, sql, params, many, context):
        seen.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        result = send_message(raw, envelope_from=PEER_SENDER, envelope_to=[cast.alice_box.address], source="smtp")
    stored = Message.objects.get(pk=result.message.pk)
    assert stored.text_body.replace("\r\n", "\n").rstrip("\n") == body.rstrip("\n")
    assert stored.html_body == ""
    if connection.vendor == "postgresql":
        [(sql, params)] = [(sql, params) for sql, params in seen if sql.startswith("WITH")]
        assert len(sql) <= 4096 and len(params) <= 50
        assert params[0] == stored.text_body  # the body as it is, not inside the JSON parameter
        assert "ligne de compte rendu" not in params[2]


def test_an_audit_event_with_an_ip_stays_in_the_json_and_reads_back():
    """The API's and the webmail's events carry the caller's IP: as text in the JSON (psycopg's
    `Inet` is not JSON), read back by PostgreSQL's `inet` as the same address."""
    events = [
        AuditEvent(at=timezone.now(), action="message.sent", ip=ip, detail={"n": n})
        for n, ip in enumerate(["192.0.2.7", "2001:db8::1", None])
    ]
    ip = next(f for f in AuditEvent._meta.concrete_fields if f.name == "ip")
    assert json_value(ip, events[0]) == "192.0.2.7"
    if connection.vendor != "postgresql":
        return
    one = DeliveryStatement()
    one.insert(AuditEvent, events, with_pk=False, return_ids=True)
    assert len(one.params) == 1
    one.run()
    stored = AuditEvent.objects.filter(pk__in=[e.pk for e in events]).order_by("pk")
    assert [(e.ip, e.detail) for e in stored] == [("192.0.2.7", {"n": 0}), ("2001:db8::1", {"n": 1}), (None, {"n": 2})]


def test_plain_fields_give_what_the_orm_would_write():
    """json_value's shortcut (PLAIN_FIELDS) returns, for every column of the delivery's rows, the
    value the field's own pre_save + get_db_prep_save give; a value of another type (a choices
    member, a bool in an integer column) takes the field's own path."""
    from mailboxes.delivery.statement import plain_type
    from mailboxes.models import Attachment, Outbox

    now = timezone.now()
    rows = [
        Message(pk=7, message_id="<a@b>", from_address="x@y", subject="Sujet é", sha256="0" * 64, raw="r.eml", size=10),
        Entry(mailbox_id=3, message_id=7, folder_id=4, received_at=now, seen=True),
        Delivery(pk=2, message_id=7, address="b@x", status=Delivery.Status.DELIVERED),
        Attachment(message_id=7, filename="cr.pdf", content_type="application/pdf", size=3),
        Outbox(pk=5, message_id=7, domain="z.fr", recipients=["c@z.fr"]),
        AuditEvent(at=now, action="message.sent", mailbox_id=3, message_id=7, ip="192.0.2.1", detail={}),
    ]
    shortcut = 0
    for row in rows:
        for f in type(row)._meta.concrete_fields:
            expected = f.get_db_prep_save(f.pre_save(row, True), connection)
            if plain_type(f) is not None and type(getattr(row, f.attname)) is plain_type(f):
                shortcut += 1
                # (PostgreSQL's BigIntegerField wraps its value in psycopg's Int8, an int: the same JSON)
                assert json.dumps(json_value(f, row)) == json.dumps(expected), f
    assert shortcut >= 20
    status = next(f for f in Delivery._meta.concrete_fields if f.name == "status")
    assert json_value(status, rows[2]) == "delivered"
    size = next(f for f in Message._meta.concrete_fields if f.name == "size")
    rows[0].size = True
    assert json.dumps(json_value(size, rows[0])) == "1"
