"""Issue 15 items 6 and 7 on the patient side, through the pages: the test address from the
webmail composer, answered with the null envelope sender; the read receipt a patient's opening
sends (`manual-action/MDN-sent-automatically; displayed`, `Original-Recipient` only when the
original had one)."""

import pytest
from django.urls import reverse

from mailboxes.delivery import send_message
from mailboxes.models import Message, TrustedDomain
from patients import policy
from tests.patients.conftest import inbox_of, pro_send, raw_from

pytestmark = pytest.mark.django_db(transaction=True)

PEER = "autre-operateur.mssante.fr"


def test_test_address_is_usable_from_the_webmail_composer(cast, client):
    client.force_login(cast.alice)
    response = client.post(
        reverse("webmail:compose"),
        {
            "sender": cast.alice_box.pk,
            "to": policy.test_address(),
            "subject": "TEST messagerie",
            "body": "Ceci est un TEST.",
        },
        follow=True,
    )
    assert response.status_code == 200
    ack = Message.objects.get(entries__mailbox=cast.alice_box, from_address=policy.system_address())
    assert ack.subject.startswith("Accusé de réception")
    assert ack.envelope_from == ""  # RFC 3834: automatic answers leave with the null sender


def _mdn_raw(alice_box) -> bytes:
    mdn = Message.objects.get(is_report=True, report_type="disposition-notification")
    with mdn.raw.open("rb") as fh:
        return fh.read()


def test_patient_receipt_is_manual_action_without_invented_original_recipient(cast, client):
    sent = pro_send(cast.alice_box, cast.alice, cast.paul_patient.address, request_mdn=True).message
    entry = inbox_of(cast.paul_box).get(message=sent)
    client.force_login(cast.paul)
    assert client.get(f"/patient/message/{entry.pk}/").status_code == 200
    raw = _mdn_raw(cast.alice_box)
    assert b"Disposition: manual-action/MDN-sent-automatically; displayed" in raw
    assert b"Original-Recipient" not in raw
    assert f"Final-Recipient: rfc822;{cast.paul_patient.address}".encode() in raw


def test_patient_receipt_copies_the_original_recipient_when_there_was_one(cast, client, settings):
    settings.TRUST_ALL_MSSANTE = False
    TrustedDomain.objects.create(name=PEER)
    # A professional of another operator who wrote first is allowed; the message asks a receipt
    # and carries the Original-Recipient field its MTA added (RFC 8098 §2.3).
    sender = f"dr.externe@{PEER}"
    raw = raw_from(
        sender,
        cast.paul_patient.address,
        headers={
            "Disposition-Notification-To": sender,
            "Original-Recipient": f"rfc822;{cast.paul_patient.address}",
        },
    )
    send_message(raw, envelope_from=sender, envelope_to=[cast.paul_patient.address], source="smtp")
    entry = inbox_of(cast.paul_box).get()
    client.force_login(cast.paul)
    assert client.get(f"/patient/message/{entry.pk}/").status_code == 200
    raw = _mdn_raw(cast.alice_box)
    assert f"Original-Recipient: rfc822;{cast.paul_patient.address}".encode() in raw
    assert b"manual-action/MDN-sent-automatically; displayed" in raw
