"""The one delivery path: store once, enter N times, Sent, deliveries, outbox, audit, threads."""

import email
import hashlib

import pytest
from django.core.files.storage import default_storage
from django.db import connection

from audit.models import AuditEvent
from mailboxes import outbox
from mailboxes.compose import send_from_mailbox
from mailboxes.delivery import DeliveryRefused, send_message
from mailboxes.models import Attachment, Delivery, Entry, Folder, Mailbox, Message, Outbox, TrustedDomain
from tests.core.conftest import PEER, PEER_SENDER, raw_message


def test_message_to_four_local_boxes_is_stored_once_and_entered_in_each(cast, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        result = send_from_mailbox(
            cast.charlie_box,
            cast.charlie,
            to=[cast.alice_box.address, cast.cardio.address, cast.paul_box.address],
            cc=[cast.pauline_box.address],
            subject="Résultats",
            text="Bonjour, voici les résultats.",
            attachments=[("bilan.pdf", "application/pdf", b"%PDF-1.4 bilan")],
        )
    message = result.message
    assert Message.objects.count() == 1
    assert {b.pk for b in result.delivered} == {
        cast.alice_box.pk,
        cast.cardio.pk,
        cast.paul_box.pk,
        cast.pauline_box.pk,
    }
    inbox_entries = Entry.objects.filter(message=message, folder__role=Folder.Role.INBOX)
    assert sorted(inbox_entries.values_list("mailbox_id", flat=True)) == sorted(b.pk for b in result.delivered)
    assert not inbox_entries.filter(seen=True).exists()
    sent = Entry.objects.get(message=message, folder__role=Folder.Role.SENT)
    assert sent.mailbox_id == cast.charlie_box.pk and sent.seen
    assert Entry.objects.filter(message=message).count() == 5

    # Raw bytes kept once, identical to what was sent; attachment stored by content hash.
    with default_storage.open(message.raw.name, "rb") as handle:
        stored = handle.read()
    assert len(stored) == message.size
    assert stored.startswith(b"From: ") and b"Subject: =?utf-8?q?R=C3=A9sultats?=" in stored
    attachment = Attachment.objects.get(message=message)
    assert attachment.filename == "bilan.pdf" and attachment.size == len(b"%PDF-1.4 bilan")
    assert attachment.file.name == f"att/{attachment.sha256[:2]}/{attachment.sha256}"
    assert message.has_attachments

    statuses = dict(Delivery.objects.filter(message=message).values_list("address", "status"))
    assert statuses == {b.address: "delivered" for b in result.delivered}
    assert message.subject == "Résultats" and message.from_address == cast.charlie_box.address
    assert message.from_name == cast.charlie_box.display_name

    events = AuditEvent.objects.filter(message_id=message.pk)
    assert events.filter(action="message.submitted", actor=cast.charlie, mailbox_id=cast.charlie_box.pk).count() == 1
    assert set(events.filter(action="message.delivered").values_list("mailbox_id", flat=True)) == {
        b.pk for b in result.delivered
    }
    # Ids and codes only in the trail: no subject, no address.
    for event in events:
        assert "Résultats" not in str(event.detail) and "@" not in str(event.detail)

    for box in result.delivered + [cast.charlie_box]:
        box.refresh_from_db()
        assert box.used_bytes == message.size
    # Sending is a use of the box (AU-037 inactivity); receiving is not.
    assert cast.charlie_box.last_used_at is not None
    assert all(box.last_used_at is None for box in result.delivered)


def test_the_same_attachment_twice_is_one_stored_file(cast):
    pdf = b"%PDF-1.4 " + b"x" * 5000
    first = send_from_mailbox(
        cast.alice_box,
        cast.alice,
        to=[cast.charlie_box.address],
        subject="A",
        text="a",
        attachments=[("a.pdf", "application/pdf", pdf)],
    )
    second = send_from_mailbox(
        cast.alice_box,
        cast.alice,
        to=[cast.charlie_box.address],
        subject="B",
        text="b",
        attachments=[("ordonnance générée.pdf", "application/pdf", pdf)],
    )
    a = Attachment.objects.get(message=first.message)
    b = Attachment.objects.get(message=second.message)
    assert a.file.name == b.file.name and a.sha256 == b.sha256
    assert [a.filename, b.filename] == ["a.pdf", "ordonnance générée.pdf"]  # RFC 2231 round trip


def test_reply_threads_with_in_reply_to_and_references(cast):
    first = send_from_mailbox(
        cast.charlie_box, cast.charlie, to=[cast.alice_box.address], subject="Patient X", text="1"
    )
    reply = send_from_mailbox(
        cast.alice_box,
        cast.alice,
        to=[cast.charlie_box.address],
        subject="Re: Patient X",
        text="2",
        in_reply_to=first.message,
    )
    third = send_from_mailbox(
        cast.charlie_box,
        cast.charlie,
        to=[cast.alice_box.address],
        subject="Re: Patient X",
        text="3",
        in_reply_to=reply.message,
    )
    m1, m2, m3 = first.message, reply.message, third.message
    assert m1.message_id.endswith("@clinique-du-lac.mssante.fr>")
    assert m2.in_reply_to == m1.message_id and m2.references == m1.message_id
    assert m3.in_reply_to == m2.message_id and m3.references.split() == [m1.message_id, m2.message_id]
    with default_storage.open(m3.raw.name, "rb") as handle:
        raw = handle.read()
    headers = email.message_from_bytes(raw)
    assert headers["In-Reply-To"] == m2.message_id
    assert headers["References"].split() == [m1.message_id, m2.message_id]
    assert m1.thread_key == m2.thread_key == m3.thread_key == m1.message_id
    # The replied entry is flagged answered in the box that replied.
    assert Entry.objects.get(mailbox=cast.alice_box, message=m1).answered


def test_thread_of_an_unknown_parent_is_its_first_reference(cast):
    raw = raw_message(
        message_id="<child@clinique-du-lac.mssante.fr>",
        headers={"In-Reply-To": "<parent@x.mssante.fr>", "References": "<root@x.mssante.fr> <parent@x.mssante.fr>"},
    )
    result = send_message(
        raw,
        envelope_from=PEER_SENDER,
        envelope_to=["alice.martin@ch-troispics.mssante.fr"],
        source="smtp",
    )
    assert result.message.thread_key == "<root@x.mssante.fr>"
    alone = send_message(
        raw_message(message_id="<alone@clinique-du-lac.mssante.fr>"),
        envelope_from=PEER_SENDER,
        envelope_to=["alice.martin@ch-troispics.mssante.fr"],
        source="smtp",
    )
    assert alone.message.thread_key == "<alone@clinique-du-lac.mssante.fr>"


def test_inbound_smtp_message_has_no_sender_box_and_no_sent_entry(cast):
    raw = raw_message(
        headers={
            "X-MSS-INS": "1580375001001 12",
            "Disposition-Notification-To": PEER_SENDER,
        }
    )
    result = send_message(
        raw,
        envelope_from="Dr.Externe@Autre-Operateur.mssante.fr",
        envelope_to=["ALICE.MARTIN@ch-troispics.mssante.fr"],
        source="smtp",
    )
    message = result.message
    assert message.sender_mailbox is None and message.envelope_from == PEER_SENDER
    assert message.envelope_to == ["alice.martin@ch-troispics.mssante.fr"]
    assert list(Entry.objects.filter(message=message).values_list("mailbox_id", flat=True)) == [cast.alice_box.pk]
    assert message.x_mss_headers == {"x-mss-ins": "1580375001001 12"}
    assert message.mdn_requested_to == PEER_SENDER
    assert message.message_id == f"<cr-1@{PEER}>"


def test_external_recipients_are_queued_per_domain_and_relayed_after_commit(
    cast, monkeypatch, django_capture_on_commit_callbacks
):
    TrustedDomain.objects.create(name="ch-ailleurs.mssante.fr")
    TrustedDomain.objects.create(name="chu-loin.mssante.fr")
    enqueued = []
    monkeypatch.setattr(outbox, "enqueue", enqueued.append)  # the relay's queue
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        result = send_from_mailbox(
            cast.alice_box,
            cast.alice,
            to=[
                "a@ch-ailleurs.mssante.fr",
                "b@ch-ailleurs.mssante.fr",
                "c@chu-loin.mssante.fr",
                cast.charlie_box.address,
            ],
            subject="S",
            text="t",
        )
        assert enqueued == []  # nothing leaves before the commit
    for callback in callbacks:
        callback()
    outboxes = {o.domain: o for o in Outbox.objects.filter(message=result.message)}
    assert set(outboxes) == {"ch-ailleurs.mssante.fr", "chu-loin.mssante.fr"}
    assert outboxes["ch-ailleurs.mssante.fr"].recipients == ["a@ch-ailleurs.mssante.fr", "b@ch-ailleurs.mssante.fr"]
    assert sorted(enqueued) == sorted(o.pk for o in outboxes.values())
    submitted = AuditEvent.objects.get(message_id=result.message.pk, action=AuditEvent.Action.SUBMITTED)
    assert sorted(submitted.detail["outbox"]) == sorted(o.pk for o in outboxes.values())
    assert sorted(result.queued) == ["a@ch-ailleurs.mssante.fr", "b@ch-ailleurs.mssante.fr", "c@chu-loin.mssante.fr"]
    assert Delivery.objects.filter(message=result.message, status="queued").count() == 3
    assert [b.pk for b in result.delivered] == [cast.charlie_box.pk]


def test_mail_from_outside_is_never_relayed_to_another_operator(cast):
    TrustedDomain.objects.create(name="ch-ailleurs.mssante.fr")
    with pytest.raises(DeliveryRefused) as refused:
        send_message(
            raw_message(to=("x@ch-ailleurs.mssante.fr",)),
            envelope_from=PEER_SENDER,
            envelope_to=["x@ch-ailleurs.mssante.fr"],
            source="smtp",
        )
    assert refused.value.code == "not_hosted" and refused.value.smtp_code == 550
    assert Message.objects.count() == 0


def test_partial_refusal_delivers_the_others_and_records_the_bounce(cast):
    result = send_from_mailbox(
        cast.alice_box,
        cast.alice,
        to=["personne@ch-troispics.mssante.fr", cast.charlie_box.address],
        subject="S",
        text="t",
    )
    assert [b.pk for b in result.delivered] == [cast.charlie_box.pk]
    assert result.refused["personne@ch-troispics.mssante.fr"].code == "unknown_recipient"
    bounce = Delivery.objects.get(message=result.message, address="personne@ch-troispics.mssante.fr")
    assert (bounce.status, bounce.reason) == ("bounced", "unknown_recipient")
    event = AuditEvent.objects.get(action="message.refused", message_id=result.message.pk)
    assert event.outcome == "unknown_recipient" and event.detail["delivery"] == bounce.pk


def test_nothing_is_written_when_no_recipient_is_accepted(cast):
    with pytest.raises(DeliveryRefused) as refused:
        send_from_mailbox(cast.alice_box, cast.alice, to=["personne@ch-troispics.mssante.fr"], subject="S", text="t")
    assert refused.value.code == "unknown_recipient"
    assert "personne@ch-troispics.mssante.fr" in refused.value.refused
    assert (Message.objects.count(), Entry.objects.count(), Delivery.objects.count()) == (0, 0, 0)
    assert AuditEvent.objects.filter(action="message.refused", mailbox_id=cast.alice_box.pk, message_id=None).exists()


def test_inactive_box_neither_sends_nor_receives(cast):
    Mailbox.objects.filter(pk=cast.charlie_box.pk).update(is_active=False)
    with pytest.raises(DeliveryRefused) as refused:
        send_from_mailbox(cast.alice_box, cast.alice, to=[cast.charlie_box.address], subject="S", text="t")
    assert refused.value.code == "unknown_recipient"
    cast.charlie_box.refresh_from_db()
    with pytest.raises(DeliveryRefused):
        send_from_mailbox(cast.charlie_box, cast.charlie, to=[cast.alice_box.address], subject="S", text="t")


def test_patient_domain_policy_is_asked_and_told(cast, recording_policy):
    recording_policy.refuse = {cast.pauline_box.address: "space_closed"}
    result = send_from_mailbox(
        cast.alice_box,
        cast.alice,
        to=[cast.paul_box.address, cast.pauline_box.address, cast.charlie_box.address],
        subject="S",
        text="t",
    )
    message = result.message
    calls = recording_policy.calls
    assert ("decide_recipient", cast.paul_box.address, message.size) in calls
    assert ("refused", cast.pauline_box.address, message.pk, "space_closed") in calls
    assert ("after_delivery", message.pk, sorted([cast.paul_box.pk, cast.charlie_box.pk])) in calls
    returned = Delivery.objects.get(message=message, address=cast.pauline_box.address)
    assert (returned.status, returned.reason) == ("returned", "space_closed")

    # A patient box sending: every recipient goes through decide_patient_sender.
    recording_policy.calls.clear()
    reply = send_from_mailbox(
        cast.paul_box,
        cast.paul,
        to=[cast.alice_box.address],
        subject="Re: S",
        text="r",
        in_reply_to=message,
        source="patient",
    )
    assert ("decide_patient_sender", cast.alice_box.address, reply.message.size) in recording_policy.calls


def test_unknown_patient_and_wrong_ins_are_refused_with_automatic_return(cast, settings):
    from patients.models import PendingReturn
    from tests.factories import make_ins

    settings.PATIENT_POLICY = "patients.policy.PatientPolicy"  # the policy decides, delivery obeys
    unknown = f"{make_ins(seq=987654)}@patient.mssante.fr"
    wrong = "158037500100199@patient.mssante.fr"
    with pytest.raises(DeliveryRefused) as refused:
        send_from_mailbox(cast.alice_box, cast.alice, to=[unknown, wrong], subject="S", text="t")
    decisions = refused.value.refused
    assert decisions[unknown].code == "patient_not_found" and decisions[unknown].automatic_return
    assert decisions[wrong].code == "wrong_ins"
    # The policy was told (nothing stored) so that it sends its automatic returns.
    assert set(PendingReturn.objects.values_list("code", flat=True)) == {"patient_not_found", "wrong_ins"}
    assert Message.objects.count() == 0


def test_a_patient_address_without_an_active_box_is_unknown_to_the_neutral_policy(cast):
    with pytest.raises(DeliveryRefused) as refused:
        send_from_mailbox(cast.alice_box, cast.alice, to=["158037500100199@patient.mssante.fr"], subject="S", text="t")
    assert refused.value.code == "unknown_recipient"


def test_delivery_costs_a_handful_of_queries_whatever_the_number_of_recipients(cast):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    peer = PEER_SENDER
    # A first delivery warms the caches (trust domains outside a transaction, the policy, the templates).
    send_message(raw_message(message_id="<q0@x>"), envelope_from=peer, envelope_to=[cast.cardio.address], source="smtp")
    with CaptureQueriesContext(connection) as one:
        send_message(
            raw_message(message_id="<q1@x>"), envelope_from=peer, envelope_to=[cast.alice_box.address], source="smtp"
        )
    many = [cast.alice_box.address, cast.cardio.address, cast.paul_box.address, cast.pauline_box.address]
    with CaptureQueriesContext(connection) as four:
        send_message(raw_message(message_id="<q4@x>"), envelope_from=peer, envelope_to=many, source="smtp")
    # Incl. the test transaction's SAVEPOINT/RELEASE and 2 domain queries (no domain cache inside
    # a transaction): the recipients' query, then on PostgreSQL the ids reserved and the audit
    # chain's head taken in one round trip, and one statement for every row, the head's move and
    # the quota (issue 17: mailboxes/delivery/statement.py); elsewhere one statement per table (message, entries,
    # deliveries, audit events, the head's move, the quota UPDATE). The recipient boxes' own
    # settings (sorting rules, absence, forwarding: mailboxes/box_actions.py) cost nothing more
    # when they have none: the recipients' query says so (issue 17).
    expected = 7 if connection.vendor == "postgresql" else 12
    assert len(one) == expected, [q["sql"][:60] for q in one.captured_queries]
    assert not any("mailboxes_boxrule" in q["sql"] for q in one.captured_queries[3:])
    # Four boxes: their rows are locked in id order before the quota UPDATE (no deadlock between
    # two deliveries sharing boxes), one statement more whatever the number of boxes.
    assert len(four) == len(one) + 1
    locks = [q["sql"] for q in four.captured_queries if "FOR UPDATE" in q["sql"] and "mailboxes_mailbox" in q["sql"]]
    if connection.features.has_select_for_update:
        assert len(locks) == 1 and " ORDER BY " in locks[0]
    assert Delivery.objects.filter(message__message_id="<q4@x>", status=Delivery.Status.DELIVERED).count() == 4
    assert Entry.objects.filter(message__message_id="<q4@x>").count() == 4
    q4 = Message.objects.get(message_id="<q4@x>")
    assert AuditEvent.objects.filter(message_id=q4.pk, object_id=str(q4.pk)).count() == 5  # submitted + 4 delivered


def test_text_that_looks_like_sql_or_placeholders_is_stored_as_sent(cast):
    """Quotes, backslashes, `%` and `$` in what a message says stay text (every value is a bound
    parameter, whatever the binding mode of the database driver)."""
    subject = "100% %s %(x)s '; DROP TABLE x; -- \\ $1 $$"
    body = "Taux 50 % %s %(name)s $1 $$ '' \\ fin\n"
    result = send_message(
        raw_message(
            subject=subject, body=body, message_id="<sql@x>", attachments=[("a'%s.pdf", "application/pdf", b"%PDF")]
        ),
        envelope_from=PEER_SENDER,
        envelope_to=[cast.alice_box.address],
        source="smtp",
    )
    stored = Message.objects.get(pk=result.message.pk)
    assert (stored.subject, stored.text_body) == (subject, body)
    assert stored.attachments.get().filename == "a'%s.pdf"
    assert Entry.objects.filter(message=stored, mailbox=cast.alice_box).exists()


NASTY = [
    # NUL bytes and 8-bit garbage in headers, an unknown charset, broken base64, no Message-ID.
    b"From: Dr \xff\x00 <charlie.durand@autre-operateur.mssante.fr>\r\nTo: <a\x00b@x.fr>, alice.martin@ch-troispics"
    b'.mssante.fr\r\nSubject: caf\xe9 \x00\r\nX-MSS-INS: \xfe\x00\r\nContent-Type: multipart/mixed; boundary="z"\r\n\r\n'
    b"--z\r\nContent-Type: text/plain; charset=klingon\r\n\r\n\x00caf\xe9\r\n--z\r\nContent-Type: image/\x00png; "
    b'name="a\x00.png"\r\nContent-Transfer-Encoding: base64\r\nContent-ID: <\x00x>\r\n\r\n!!!AAAA=\r\n--z',
    # A report whose machine part carries NULs.
    b"From: <mailer-daemon@autre-operateur.mssante.fr>\r\nMessage-ID: <r\x00@x>\r\nContent-Type: multipart/report; "
    b'report-type="disposition-\x00notification"; boundary="r"\r\n\r\n--r\r\nContent-Type: message/disposition-notification'
    b"\r\n\r\nOriginal-Message-ID: <o\x00@x>\r\nFinal-Recipient: rfc822;\x00a@x\r\nDisposition: displayed\r\n--r--\r\n",
    # Deep nesting.
    b"From: a@autre-operateur.mssante.fr\r\n"
    + b"".join(f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n'.encode() for i in range(60))
    + b"Content-Type: text/plain\r\n\r\nfond\r\n",
]


@pytest.mark.parametrize("raw", NASTY, ids=["nul-and-8bit", "report-nul", "deep"])
def test_malformed_mime_is_stored_cleanly_through_the_real_path(cast, raw):
    result = send_message(
        raw,
        envelope_from=PEER_SENDER,
        envelope_to=[cast.alice_box.address],
        source="smtp",
    )
    message = Message.objects.get(pk=result.message.pk)
    assert message.size == len(raw) and message.message_id.startswith("<")
    with default_storage.open(message.raw.name, "rb") as handle:
        assert handle.read() == raw


def test_display_names_and_subjects_never_inject_header_lines(cast):
    """CR/LF in a box's display name (the sender's or the applicative box's return box) or in a
    subject never starts a new header line."""
    Mailbox.objects.filter(pk=cast.cardio.pk).update(display_name="Cardiologie\r\nBcc: espion@gmail.com")
    cast.cardio.refresh_from_db()
    app = Mailbox.objects.create(
        kind=Mailbox.Kind.APPLICATIVE,
        address="envois-noreply@ch-troispics.mssante.fr",
        domain=cast.d_troispics,
        return_mailbox=cast.cardio,
        display_name="DPI\nX-Injected: 1",
    )
    result = send_from_mailbox(
        app, None, to=[cast.charlie_box.address], subject="Convocation\r\nBcc: espion@gmail.com", text="t", source="api"
    )
    with default_storage.open(result.message.raw.name, "rb") as handle:
        headers = email.message_from_binary_file(handle)
    assert headers["Bcc"] is None and headers["X-Injected"] is None
    assert "Cardiologie Bcc: espion@gmail.com" in str(headers["Reply-To"])
    assert result.message.subject == "Convocation Bcc: espion@gmail.com"


def test_a_long_reference_chain_keeps_its_root(cast):
    ids = [f"<m{i}@clinique-du-lac.mssante.fr>" for i in range(30)]
    parent = Message.objects.create(
        message_id=ids[-1], references=" ".join(ids[:-1]), from_address=cast.charlie_box.address, sha256="0" * 64
    )
    Entry.objects.create(
        mailbox=cast.alice_box, message=parent, folder=cast.alice_box.folder("inbox"), received_at=parent.created_at
    )
    reply = send_from_mailbox(
        cast.alice_box, cast.alice, to=[cast.charlie_box.address], subject="Re", text="r", in_reply_to=parent
    )
    references = reply.message.references.split()
    assert len(references) == 20 and references[0] == ids[0] and references[-1] == ids[-1]
    assert reply.message.thread_key == ids[0]


def test_a_truncated_file_under_the_content_hash_is_never_reused(cast):
    """A write cut short (crash, or another process still writing) leaves a short file under the
    hash name: the next message carrying the same bytes stores them whole, never points at it."""
    import hashlib

    from django.core.files.base import ContentFile

    from mailboxes.store import attachment_name

    pdf = b"%PDF-1.4 " + b"z" * 20000
    name = attachment_name(hashlib.sha256(pdf).hexdigest())
    default_storage.save(name, ContentFile(pdf[:1000]))
    result = send_from_mailbox(
        cast.alice_box,
        cast.alice,
        to=[cast.charlie_box.address],
        subject="S",
        text="t",
        attachments=[("cr.pdf", "application/pdf", pdf)],
    )
    attachment = Attachment.objects.get(message=result.message)
    with default_storage.open(attachment.file.name, "rb") as handle:
        assert handle.read() == pdf
    with default_storage.open(result.message.raw.name, "rb") as handle:
        assert len(handle.read()) == result.message.size


def test_a_peers_retry_of_the_same_message_id_is_not_delivered_twice(cast):
    """A peer that lost our 250 sends the message again: the boxes that hold it get no second
    copy (no second count of the space either), the others still get theirs."""
    raw = raw_message(message_id="<retry-1@autre-operateur.mssante.fr>")
    first = send_message(raw, envelope_from=PEER_SENDER, envelope_to=[cast.alice_box.address], source="smtp")
    again = send_message(raw, envelope_from=PEER_SENDER, envelope_to=[cast.alice_box.address], source="smtp")
    assert again.message.pk == first.message.pk and again.delivered == []
    assert Message.objects.count() == 1 and Entry.objects.filter(mailbox=cast.alice_box).count() == 1
    assert Mailbox.objects.get(pk=cast.alice_box.pk).used_bytes == len(raw)

    more = send_message(
        raw, envelope_from=PEER_SENDER, envelope_to=[cast.alice_box.address, cast.cardio.address], source="smtp"
    )
    assert more.delivered == [cast.cardio]
    assert Entry.objects.filter(mailbox=cast.alice_box).count() == 1
    assert Entry.objects.filter(mailbox=cast.cardio).count() == 1


def test_mail_from_outside_is_stored_behind_its_trace_lines_with_chained_events_and_counted_space(cast):
    """Issue 17: the gateway's trace lines are written in front of the received bytes (never
    joined in memory), the stored file's hash and size are those of what is on disk, each box
    counts that size once, and the delivery's events (written with the rows in one statement on
    PostgreSQL) sit in an intact audit chain."""
    from audit.chain import verify
    from mailboxes.store import read_raw

    TrustedDomain.objects.get_or_create(name=PEER)
    raw = raw_message(to=(cast.alice_box.address, cast.cardio.address))
    trace = b"Return-Path: <" + PEER_SENDER.encode() + b">\r\nReceived: from mx.peer ([127.0.0.1]) by mx.test; x\r\n"
    result = send_message(
        raw,
        envelope_from=PEER_SENDER,
        envelope_to=[cast.alice_box.address, cast.cardio.address],
        source="smtp",
        trace=trace,
    )
    message = Message.objects.get(pk=result.message.pk)
    stored = read_raw(message)
    assert stored == trace + raw
    assert message.sha256 == hashlib.sha256(stored).hexdigest() and message.size == len(stored)
    for box in (cast.alice_box, cast.cardio):
        assert Mailbox.objects.get(pk=box.pk).used_bytes == box.used_bytes + len(stored)
    actions = sorted(AuditEvent.objects.filter(message_id=message.pk).values_list("action", "mailbox_id"), key=str)
    assert actions == sorted(
        [
            (AuditEvent.Action.DELIVERED, cast.alice_box.pk),
            (AuditEvent.Action.DELIVERED, cast.cardio.pk),
            (AuditEvent.Action.SUBMITTED, None),
        ],
        key=str,
    )
    assert Delivery.objects.filter(message=message, status=Delivery.Status.DELIVERED).count() == 2
    assert verify().ok


def test_the_events_sent_after_commit_carry_their_ids(cast, django_capture_on_commit_callbacks):
    """Receivers of `audit.chain.events_committed` (webhooks, metrics) get the committed rows
    with their ids, as `bulk_create` gave them, also when the delivery writes them in one
    statement (issue 17)."""
    from audit.chain import events_committed

    sent = []

    def receiver(sender, rows, **kwargs):
        sent.extend(rows)

    events_committed.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            result = send_message(
                raw_message(message_id="<ids@x>"),
                envelope_from=PEER_SENDER,
                envelope_to=[cast.alice_box.address, cast.cardio.address],
                source="smtp",
            )
    finally:
        events_committed.disconnect(receiver)
    stored = dict(AuditEvent.objects.filter(message_id=result.message.pk).values_list("pk", "hash"))
    assert len(sent) == 3 and {row.pk: row.hash for row in sent} == stored


def test_a_delivery_takes_the_free_chain_head_with_its_ids_or_opens_a_chain(transactional_db, cast, db_vendor):
    """On PostgreSQL a delivery locks a free audit chain head of the day in the round trip that
    reserves its rows' ids (audit.chain.free_head_value); when every head is held by another
    transaction it opens a chain of its own instead of waiting. The trail verifies either way."""
    import threading

    from audit.chain import verify
    from tests.foundation.test_audit_chain import hold_a_head

    def deliver(number):
        result = send_message(
            raw_message(message_id=f"<head{number}@x>"),
            envelope_from=PEER_SENDER,
            envelope_to=[cast.alice_box.address],
            source="smtp",
        )
        return list(AuditEvent.objects.filter(message_id=result.message.pk).values_list("chain_id", "seq"))

    first, second = deliver(1), deliver(2)
    assert len({chain for chain, _ in first + second}) == 1  # the free head, taken again
    assert min(seq for _, seq in second) == max(seq for _, seq in first) + 1
    if db_vendor == "postgresql":
        held, release, errors = threading.Event(), threading.Event(), []
        thread = threading.Thread(target=hold_a_head, args=("holds the head", held, release, errors))
        thread.start()
        assert held.wait(10)
        try:
            third = deliver(3)  # would wait for the other transaction without SKIP LOCKED
        finally:
            release.set()
            thread.join(10)
        assert not errors
        assert {chain for chain, _ in third} != {first[0][0]} and min(seq for _, seq in third) == 1
    assert verify().ok


def _recipients_query_plan(box_address: str, message_id: str) -> str:
    """The plan of the recipients' query (mailboxes.delivery.planning.LOCAL_BOXES_SQL) for one
    box, as the gateway runs it: on PostgreSQL the generic plan of the prepared statement (what
    a connection uses once the statement is prepared), on SQLite its query plan."""
    from mailboxes.delivery.planning import LOCAL_BOXES_SQL

    sql = LOCAL_BOXES_SQL.format(addresses="%s")
    params = [Folder.Role.INBOX.value, message_id, box_address]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            numbered = sql
            for number in range(1, len(params) + 1):
                numbered = numbered.replace("%s", f"${number}", 1)
            cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            cursor.execute(f"PREPARE recipients_plan(text, text, text) AS {numbered}")
            # EXECUTE is a utility statement: its arguments are literals, not bound parameters.
            cursor.execute("SELECT quote_literal(%s), quote_literal(%s), quote_literal(%s)", params)
            cursor.execute(f"EXPLAIN (FORMAT TEXT) EXECUTE recipients_plan({', '.join(cursor.fetchone())})")
            plan = "\n".join(row[0] for row in cursor.fetchall())
            cursor.execute("DEALLOCATE recipients_plan")
            return plan
        cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
        return "\n".join(str(row[-1]) for row in cursor.fetchall())


def test_the_recipients_query_finds_an_earlier_copy_without_reading_the_boxs_entries(cast):
    """Issue 17: whether a box already holds a Message-ID (a peer's retry) is looked up by that
    Message-ID and then in the box by its (box, message) key: the box's other entries are never
    read, however many it holds. Written as a join, the generic plan of the prepared statement
    read every entry of the box for each incoming message."""
    for n in range(30):
        raw = raw_message(message_id=f"<plan-{n}@autre-operateur.mssante.fr>")
        send_message(raw, envelope_from=PEER_SENDER, envelope_to=[cast.alice_box.address], source="smtp")
    assert Entry.objects.filter(mailbox=cast.alice_box).count() == 30
    plan = _recipients_query_plan(cast.alice_box.address, "<plan-3@autre-operateur.mssante.fr>")
    if connection.vendor == "postgresql":
        reads = [line for line in plan.splitlines() if " on mailboxes_entry " in line]
        by_key = [line for line in reads if "using entry_unique on" in line]
    else:
        reads = [line for line in plan.splitlines() if line.startswith(("SEARCH e ", "SCAN e"))]
        by_key = [line for line in reads if "(mailbox_id=? AND message_id=?)" in line]
    assert reads and by_key == reads, plan
