"""Every MSS-C rule of RULES.md §3, allowed and refused, through the one delivery path."""

import datetime

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from mailboxes.delivery import DeliveryRefused, send_message
from mailboxes.models import Delivery, Mailbox, TrustedDomain
from mailboxes.patient_domain import Envelope
from patients import policy
from patients.models import Block, Conversation, Patient, PharmacyDispensation
from patients.policy import is_closing_subject
from tests.factories import make_ins
from tests.patients.conftest import inbox_of, patient_send, pro_send, raw_from, system_messages_in

pytestmark = pytest.mark.django_db


# --- Who initiates ----------------------------------------------------------------------------


@pytest.mark.parametrize("box_name", ["alice_box", "cardio", "applicative"])
def test_any_pro_box_kind_may_write_first(cast, applicative, box_name):
    box = applicative if box_name == "applicative" else getattr(cast, box_name)
    result = pro_send(box, cast.alice if box_name != "applicative" else None, cast.paul_patient.address)
    assert cast.paul_box in result.delivered
    assert Conversation.objects.get(mailbox=box, patient=cast.paul_patient).state == Conversation.State.OPEN


def test_patient_may_not_write_first_to_a_pro(cast):
    with pytest.raises(DeliveryRefused) as refused:
        patient_send(cast.paul_patient, cast.charlie_box.address, subject="Bonjour")
    assert refused.value.code == "patient_may_not_initiate"
    assert not inbox_of(cast.charlie_box).exists()


def test_patient_replies_to_a_box_that_wrote(cast):
    sent = pro_send(cast.alice_box, cast.alice, cast.paul_patient.address).message
    result = patient_send(cast.paul_patient, cast.alice_box.address, in_reply_to=sent)
    assert cast.alice_box in result.delivered
    reply = result.message
    assert reply.in_reply_to == sent.message_id


def test_patient_opens_a_new_conversation_with_a_box_that_wrote_before(cast):
    pro_send(cast.cardio, cast.bob, cast.paul_patient.address)
    result = patient_send(cast.paul_patient, cast.cardio.address, subject="Nouvelle question")
    assert cast.cardio in result.delivered
    # ... but not with another box of the same structure that never wrote.
    with pytest.raises(DeliveryRefused) as refused:
        patient_send(cast.paul_patient, cast.alice_box.address, subject="Question")
    assert refused.value.code == "patient_may_not_initiate"


def test_patient_reply_to_an_applicative_box_goes_to_its_return_box(cast, applicative):
    sent = pro_send(applicative, None, cast.paul_patient.address, subject="Convocation").message
    result = patient_send(cast.paul_patient, cast.cardio.address, in_reply_to=sent)
    assert cast.cardio in result.delivered


def test_never_patient_to_patient(cast):
    pro_send(cast.alice_box, cast.alice, cast.paul_patient.address)
    with pytest.raises(DeliveryRefused) as refused:
        patient_send(cast.paul_patient, cast.pauline_patient.address)
    assert refused.value.code == "patient_to_patient"
    assert not inbox_of(cast.pauline_box).exists()


def test_mixed_recipients_patient_and_pro(cast):
    result = pro_send(cast.alice_box, cast.alice, [cast.paul_patient.address, cast.charlie_box.address])
    assert set(result.delivered) == {cast.paul_box, cast.charlie_box}


# --- Pharmacy exception -------------------------------------------------------------------------


def test_patient_writes_first_to_a_pharmacy_that_dispensed_within_a_year(cast, pharmacy):
    PharmacyDispensation.objects.create(
        patient=cast.paul_patient,
        pharmacy_mailbox=pharmacy.box,
        dispensed_on=timezone.localdate() - datetime.timedelta(days=200),
    )
    result = patient_send(cast.paul_patient, pharmacy.box.address, subject="Mon ordonnance")
    assert pharmacy.box in result.delivered


def test_pharmacy_dispensation_older_than_a_year_does_not_count(cast, pharmacy):
    PharmacyDispensation.objects.create(
        patient=cast.paul_patient,
        pharmacy_mailbox=pharmacy.box,
        dispensed_on=timezone.localdate() - datetime.timedelta(days=400),
    )
    with pytest.raises(DeliveryRefused) as refused:
        patient_send(cast.paul_patient, pharmacy.box.address, subject="Mon ordonnance")
    assert refused.value.code == "patient_may_not_initiate"


def test_dispensation_of_another_patient_does_not_count(cast, pharmacy):
    PharmacyDispensation.objects.create(
        patient=cast.pauline_patient, pharmacy_mailbox=pharmacy.box, dispensed_on=timezone.localdate()
    )
    with pytest.raises(DeliveryRefused):
        patient_send(cast.paul_patient, pharmacy.box.address, subject="Mon ordonnance")


def test_a_non_pharmacy_organisational_box_is_not_the_exception(cast):
    # A dispensation row pointing at a hospital box (bad import) opens nothing.
    PharmacyDispensation.objects.create(
        patient=cast.paul_patient, pharmacy_mailbox=cast.cardio, dispensed_on=timezone.localdate()
    )
    with pytest.raises(DeliveryRefused) as refused:
        patient_send(cast.paul_patient, cast.cardio.address)
    assert refused.value.code == "patient_may_not_initiate"


def test_record_dispensations_command(cast, pharmacy, tmp_path):
    from django.core.management import call_command

    csv_file = tmp_path / "delivrances.csv"
    today = timezone.localdate().isoformat()
    csv_file.write_text(f"ins;adresse;date\n{cast.paul_patient.ins};{pharmacy.box.address};{today}\n")
    call_command("record_dispensations", str(csv_file))
    assert PharmacyDispensation.objects.filter(patient=cast.paul_patient, pharmacy_mailbox=pharmacy.box).exists()


# --- Closing with [FIN] -------------------------------------------------------------------------


@pytest.mark.parametrize("subject", ["[FIN]", "FIN", " fin ", "[fin]", "Fin"])
def test_closing_subjects(subject):
    assert is_closing_subject(subject)


@pytest.mark.parametrize("subject", ["Fin de traitement", "Re: [FIN]", "FIN.", "[FIN] suite", "FINESS", ""])
def test_subjects_that_close_nothing(subject):
    assert not is_closing_subject(subject)


def test_fin_closes_then_writing_again_reopens(cast):
    first = pro_send(cast.alice_box, cast.alice, cast.paul_patient.address).message
    pro_send(cast.alice_box, cast.alice, cast.paul_patient.address, subject="[FIN]", text="Fin de l'échange.")
    conversation = Conversation.objects.get(mailbox=cast.alice_box, patient=cast.paul_patient)
    assert conversation.state == Conversation.State.CLOSED
    assert AuditEvent.objects.filter(action="conversation.closed", object_id=str(conversation.pk)).exists()
    with pytest.raises(DeliveryRefused) as refused:
        patient_send(cast.paul_patient, cast.alice_box.address, in_reply_to=first)
    assert refused.value.code == "conversation_closed"
    with pytest.raises(DeliveryRefused):
        patient_send(cast.paul_patient, cast.alice_box.address, subject="Nouvelle question")

    pro_send(cast.alice_box, cast.alice, cast.paul_patient.address, subject="Nouvel épisode de soins")
    conversation.refresh_from_db()
    assert conversation.state == Conversation.State.OPEN
    assert AuditEvent.objects.filter(action="conversation.reopened", object_id=str(conversation.pk)).exists()
    assert cast.alice_box in patient_send(cast.paul_patient, cast.alice_box.address, in_reply_to=first).delivered


def test_the_exchange_opens_and_goes_on_in_one_statement_and_a_closed_one_is_left_alone(cast):
    """`patients.policy.open_or_go_on`: the first message opens the exchange, the next moves its
    last message's time (one row), a closed exchange is not touched (the long way reopens it)."""
    from patients.policy import open_or_go_on

    earlier = timezone.now() - datetime.timedelta(hours=2)
    assert open_or_go_on(cast.cardio, cast.paul_box, earlier)
    opened = Conversation.objects.get(mailbox=cast.cardio, patient=cast.paul_patient)
    assert (opened.state, opened.opened_at, opened.last_message_at) == ("open", earlier, earlier)

    later = earlier + datetime.timedelta(hours=1)
    assert open_or_go_on(cast.cardio, cast.paul_box, later)
    assert Conversation.objects.filter(mailbox=cast.cardio, patient=cast.paul_patient).count() == 1
    opened.refresh_from_db()
    assert (opened.opened_at, opened.last_message_at) == (earlier, later)

    Conversation.objects.filter(pk=opened.pk).update(state=Conversation.State.CLOSED)
    assert not open_or_go_on(cast.cardio, cast.paul_box, timezone.now())
    opened.refresh_from_db()
    assert (opened.state, opened.last_message_at) == ("closed", later)
    # A box that is no patient's: nothing written.
    assert not open_or_go_on(cast.cardio, cast.alice_box, timezone.now())
    assert not Conversation.objects.filter(mailbox=cast.cardio).exclude(pk=opened.pk).exists()


def test_fin_de_traitement_closes_nothing(cast):
    pro_send(cast.alice_box, cast.alice, cast.paul_patient.address, subject="Fin de traitement")
    assert Conversation.objects.get(mailbox=cast.alice_box, patient=cast.paul_patient).state == "open"
    assert cast.alice_box in patient_send(cast.paul_patient, cast.alice_box.address).delivered


def test_closing_one_box_leaves_the_others_open(cast):
    pro_send(cast.alice_box, cast.alice, cast.paul_patient.address)
    pro_send(cast.cardio, cast.bob, cast.paul_patient.address)
    pro_send(cast.alice_box, cast.alice, cast.paul_patient.address, subject="FIN")
    assert cast.cardio in patient_send(cast.paul_patient, cast.cardio.address).delivered


def test_close_conversation_action_sends_fin_and_names_the_actor(cast):
    from patients.conversation import close_conversation, conversation_for

    pro_send(cast.cardio, cast.bob, cast.paul_patient.address)
    message = close_conversation(cast.cardio, cast.paul_patient, cast.bob)
    assert message.subject == "[FIN]"
    assert conversation_for(cast.cardio, cast.paul_patient).state == "closed"
    event = AuditEvent.objects.get(action="conversation.closed", message_id=message.pk)
    assert event.actor == cast.bob


# --- Blocks -------------------------------------------------------------------------------------


def test_blocked_pro_gets_a_plain_not_delivered_and_no_automatic_return(cast):
    from patients.policy import system_address

    pro_send(cast.alice_box, cast.alice, cast.paul_patient.address)
    Block.objects.create(patient=cast.paul_patient, mailbox=cast.alice_box)
    with pytest.raises(DeliveryRefused) as refused:
        pro_send(cast.alice_box, cast.alice, cast.paul_patient.address, subject="Rappel")
    assert refused.value.code == "blocked"
    assert refused.value.reason == "Message non distribué."
    assert "bloqu" not in refused.value.reason.lower()
    assert not inbox_of(cast.alice_box).filter(message__from_address=system_address()).exists()
    assert inbox_of(cast.paul_box).count() == 1
    # Another box of the same structure still reaches the patient.
    assert cast.paul_box in pro_send(cast.cardio, cast.bob, cast.paul_patient.address).delivered


def test_blocked_recipient_among_others_is_bounced_alone(cast):
    from patients.conversation import delivery_states

    Block.objects.create(patient=cast.paul_patient, mailbox=cast.alice_box)
    result = pro_send(cast.alice_box, cast.alice, [cast.paul_patient.address, cast.pauline_patient.address])
    assert result.delivered == [cast.pauline_box]
    delivery = Delivery.objects.get(message=result.message, address=cast.paul_patient.address)
    assert delivery.status == Delivery.Status.BOUNCED
    states = {s["address"]: s for s in delivery_states(result.message)}
    # One text per refusal code: the panel says what the SMTP refusal says, nothing about a block.
    assert states[cast.paul_patient.address]["reason"] == "Message non distribué."
    assert "Paul LAMBERT" in states[cast.paul_patient.address]["label"]


def test_unblock_lets_messages_through_again(cast):
    from patients.space import block_mailbox, unblock_mailbox

    block = block_mailbox(cast.paul_patient, cast.alice_box, cast.paul)
    with pytest.raises(DeliveryRefused):
        pro_send(cast.alice_box, cast.alice, cast.paul_patient.address)
    unblock_mailbox(cast.paul_patient, block, cast.paul)
    assert cast.paul_box in pro_send(cast.alice_box, cast.alice, cast.paul_patient.address).delivered
    assert AuditEvent.objects.filter(action="patient.blocked").exists()
    assert AuditEvent.objects.filter(action="patient.unblocked").exists()


def test_a_blocked_professional_of_another_operator_is_refused_until_unblocked(cast):
    """RULES.md §3: the patient blocks chosen professionals, whatever operator hosts them."""
    from patients.space import block_correspondent, unblock_mailbox

    TrustedDomain.objects.create(name="autre-operateur.mssante.fr")
    outside = "Dr.Externe@autre-operateur.mssante.fr"

    def from_outside(subject):
        raw = raw_from(outside, cast.paul_patient.address, subject=subject, from_name="Dr Externe")
        return send_message(raw, envelope_from=outside, envelope_to=[cast.paul_patient.address], source="smtp")

    from_outside("Bilan")
    [entry] = inbox_of(cast.paul_box)
    block = block_correspondent(cast.paul_patient, entry, cast.paul)
    assert block.address == outside.lower() and block.mailbox is None
    with pytest.raises(DeliveryRefused) as refused:
        from_outside("Rappel")
    assert refused.value.code == "blocked" and refused.value.reason == "Message non distribué."
    assert (
        not policy.PatientPolicy()
        .decide_recipient(
            Envelope(outside.upper(), None, "", 0, "<x@autre-operateur.mssante.fr>"), cast.paul_patient.address
        )
        .deliver
    )
    assert inbox_of(cast.paul_box).count() == 1 and not system_messages_in(cast.paul_box).exists()
    # Another professional of that operator, and every box hosted here, still reach the patient.
    other = "dr.autre@autre-operateur.mssante.fr"
    raw = raw_from(other, cast.paul_patient.address)
    assert send_message(raw, envelope_from=other, envelope_to=[cast.paul_patient.address], source="smtp").delivered
    assert cast.paul_box in pro_send(cast.alice_box, cast.alice, cast.paul_patient.address).delivered
    unblock_mailbox(cast.paul_patient, block, cast.paul)
    assert cast.paul_box in from_outside("Nouvel épisode").delivered


# --- Addresses and spaces -------------------------------------------------------------------------


def test_wrong_ins_key_is_refused_before_any_lookup(cast, django_assert_max_num_queries):
    from patients.policy import PatientPolicy

    ins = cast.paul_patient.ins
    wrong = ins[:13] + f"{(int(ins[13:]) + 1) % 97:02d}"
    envelope = Envelope(
        sender_address=cast.alice_box.address, sender_mailbox=cast.alice_box, subject="", size=10, message_id="<x@y>"
    )
    with django_assert_max_num_queries(0):
        decision = PatientPolicy().decide_recipient(envelope, f"{wrong}@patient.mssante.fr")
    assert (decision.deliver, decision.code, decision.automatic_return) == (False, "wrong_ins", True)


@pytest.mark.parametrize(
    "state,code",
    [
        (Patient.SpaceState.CLOSED, "space_closed"),
        (Patient.SpaceState.NOT_CREATED, "patient_not_found"),
        (Patient.SpaceState.OPPOSED, "patient_not_found"),
    ],
)
def test_space_states(cast, state, code):
    Patient.objects.filter(pk=cast.paul_patient.pk).update(space_state=state)
    with pytest.raises(DeliveryRefused) as refused:
        pro_send(cast.alice_box, cast.alice, cast.paul_patient.address)
    assert refused.value.code == code


def test_unknown_ins_is_patient_not_found(cast):
    with pytest.raises(DeliveryRefused) as refused:
        pro_send(cast.alice_box, cast.alice, f"{make_ins(sex='2', seq=999)}@patient.mssante.fr")
    assert refused.value.code == "patient_not_found"


def test_ins_qualification_policy_is_a_setting(cast, settings):
    Patient.objects.filter(pk=cast.paul_patient.pk).update(ins_qualified=False)
    settings.INS_REQUIRE_QUALIFIED = False
    assert cast.paul_box in pro_send(cast.alice_box, cast.alice, cast.paul_patient.address).delivered
    settings.INS_REQUIRE_QUALIFIED = True
    with pytest.raises(DeliveryRefused) as refused:
        pro_send(cast.alice_box, cast.alice, cast.paul_patient.address)
    assert refused.value.code == "ins_not_qualified"
    # A qualified INS is unaffected.
    assert cast.pauline_box in pro_send(cast.alice_box, cast.alice, cast.pauline_patient.address).delivered


def test_closed_space_cannot_send(cast):
    from patients.space import close_space

    pro_send(cast.alice_box, cast.alice, cast.paul_patient.address)
    close_space(cast.paul_patient, cast.paul)
    with pytest.raises(DeliveryRefused) as refused:
        patient_send(cast.paul_patient, cast.alice_box.address)
    assert refused.value.code == "space_closed"


def test_external_pro_via_send_message_then_patient_replies(cast):
    """A pro of another operator (no local box) writes; the patient may answer; FIN closes."""
    TrustedDomain.objects.create(name="autre-operateur.mssante.fr")
    external = "dr.externe@autre-operateur.mssante.fr"
    result = send_message(
        raw_from(external, cast.paul_patient.address, from_name="Dr Externe"),
        envelope_from=external,
        envelope_to=[cast.paul_patient.address],
        source="smtp",
    )
    assert result.delivered == [cast.paul_box]
    reply = patient_send(cast.paul_patient, external, in_reply_to=result.message)
    assert reply.queued == [external]
    send_message(
        raw_from(external, cast.paul_patient.address, subject="[FIN]"),
        envelope_from=external,
        envelope_to=[cast.paul_patient.address],
        source="smtp",
    )
    with pytest.raises(DeliveryRefused) as refused:
        patient_send(cast.paul_patient, external)
    assert refused.value.code == "conversation_closed"


def test_display_names(cast):
    from patients.display import patient_label, sender_name

    message = pro_send(cast.cardio, cast.bob, cast.paul_patient.address).message
    assert sender_name(message) == "Service de cardiologie — CH des Trois Pics"
    Mailbox.objects.filter(pk=cast.charlie_box.pk).update(display_name="")
    cast.charlie_box.refresh_from_db()
    bare = pro_send(cast.charlie_box, cast.charlie, cast.paul_patient.address).message
    assert sender_name(bare) == "charlie.durand"
    assert patient_label(cast.paul_patient.address) == f"Paul LAMBERT <{cast.paul_patient.address}>"
    assert patient_label(cast.alice_box.address) == cast.alice_box.address


def test_a_pro_message_notifies_the_patient_and_moves_the_exchange_in_one_statement(cast, db_vendor):
    """`patients.policy.notify_of_pro_message`, which the delivery path calls for a pro message
    to a patient's box: the patient's notification and the exchange's upsert, one statement on
    PostgreSQL (two elsewhere); a closed exchange takes the long way and is reopened, audited."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from patients.models import Notification
    from patients.policy import notify_of_pro_message

    message = pro_send(cast.alice_box, cast.alice, cast.paul_patient.address).message
    notifications = Notification.objects.filter(entry__message=message, entry__mailbox=cast.paul_box)
    assert notifications.count() == 1
    conversation = Conversation.objects.get(mailbox=cast.alice_box, patient=cast.paul_patient)
    before = conversation.last_message_at
    notifications.delete()  # the delivery's own, so that the same message can be told again
    with CaptureQueriesContext(connection) as queries:
        notify_of_pro_message(message, cast.paul_box, from_system=False)
    assert len(queries) == (1 if db_vendor == "postgresql" else 2)
    assert notifications.count() == 1
    conversation.refresh_from_db()
    assert conversation.state == Conversation.State.OPEN and conversation.last_message_at > before

    notifications.delete()
    Conversation.objects.filter(pk=conversation.pk).update(state=Conversation.State.CLOSED)
    notify_of_pro_message(message, cast.paul_box, from_system=False)
    conversation.refresh_from_db()
    assert notifications.count() == 1 and conversation.state == Conversation.State.OPEN
    assert AuditEvent.objects.filter(action="conversation.reopened", object_id=str(conversation.pk)).exists()
    # A box that is no patient's: no notification, no exchange.
    notify_of_pro_message(message, cast.alice_box, from_system=False)
    assert not Notification.objects.filter(entry__mailbox=cast.alice_box).exists()
    assert not Conversation.objects.filter(mailbox=cast.alice_box).exclude(pk=conversation.pk).exists()


def test_own_copies_one_patient_one_message_whoever_wrote_the_headers():
    """`own_copies` (RULES.md §3: a patient never sees another patient's address): the patients
    that get a copy of their own, from what the headers name and who receives the message."""
    a, b = "155017500001042@patient.mssante.fr", "248067500000279@patient.mssante.fr"
    pro = "alice.martin@ch-troispics.mssante.fr"
    assert policy.own_copies([a, pro], [a, pro]) == []  # one patient and professionals: as written
    assert policy.own_copies([a, b, pro], [a, b, pro]) == [a, b]
    assert policy.own_copies([a], [a, b]) == [a, b]  # b a blind copy: b must not see a
    assert policy.own_copies([a, b.upper()], [a]) == [a]  # one transaction per recipient
    assert policy.own_copies([pro], [pro]) == []
