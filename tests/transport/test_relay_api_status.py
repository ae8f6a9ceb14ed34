"""What hospital software sees of a recipient at another operator (docs/api.md): the DPI sends
through the API to a local patient and a professional of another operator; the relay hands the
message to that operator's server (an aiosmtpd sink on loopback); `GET /api/v1/messages/{id}`
then says `relayed` with a `relayed` step in that recipient's timeline, and the webhook's
`message.delivered` names that recipient and its status (it named no one before: the relay's
event concerns every recipient of one SMTP transaction)."""

import json

import pytest

from api.models import ApiKey, WebhookDelivery
from mailboxes.models import Mailbox, TrustedDomain
from tests.api.conftest import Api, make_key
from tests.api.test_queue_and_webhooks import Receiver, check_signature

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PEER = "autre-operateur.mssante.fr"
FIRST, SECOND = f"dr.externe@{PEER}", f"dr.autre@{PEER}"


@pytest.fixture
def dpi(cast, client, settings):
    settings.PATIENT_POLICY = "patients.policy.PatientPolicy"
    TrustedDomain.objects.create(name=PEER)
    box = Mailbox(
        kind=Mailbox.Kind.APPLICATIVE,
        address="dpi_noreply@ch-troispics.mssante.fr",
        domain=cast.d_troispics,
        return_mailbox=cast.cardio,
    )
    box.full_clean()
    box.save()
    receiver = Receiver()
    key, secret = make_key(box, webhook_url=receiver.url)
    try:
        yield key, Api(client, secret), receiver
    finally:
        receiver.server.shutdown()


def test_a_relayed_recipient_is_relayed_in_the_status_and_the_webhook(cast, dpi, sink):
    key, api, receiver = dpi
    sent = api.post(
        "/api/v1/messages", {"to": [cast.paul_box.address, FIRST, SECOND], "subject": "CR", "text": "Bonjour."}
    )
    assert sent.status_code == 201, sent.content
    outcomes = {r["address"]: r["outcome"] for r in sent.json()["recipients"]}
    assert outcomes == {cast.paul_box.address: "delivered", FIRST: "queued", SECOND: "queued"}
    [got] = sink.handler.received  # one SMTP transaction for both recipients of the operator
    assert sorted(got.rcpt_tos) == [SECOND, FIRST]

    status = api.get(sent["Location"])
    assert status.status_code == 200
    recipients = {r["address"]: r for r in status.json()["recipients"]}
    for address in (FIRST, SECOND):
        assert recipients[address]["status"] == "relayed"
        assert [step["event"] for step in recipients[address]["timeline"]] == ["submitted", "relayed"]
        assert {step["recipient"] for step in recipients[address]["timeline"]} == {address}
    assert [s["event"] for s in recipients[cast.paul_box.address]["timeline"]] == ["submitted", "delivered"]

    bodies = [json.loads(body) for _headers, body in receiver.wait_for(3)]
    delivered = sorted((b["data"]["recipient"], b["data"]["status"]) for b in bodies)
    assert delivered == sorted([(cast.paul_box.address, "delivered"), (FIRST, "relayed"), (SECOND, "relayed")])
    assert {b["event"] for b in bodies} == {"message.delivered"}
    assert all(b["data"]["message"] == sent.json()["id"] for b in bodies)
    key = ApiKey.objects.get(pk=key.pk)
    for headers, body in receiver.received:
        check_signature(key.webhook_secret, headers, body)
    assert WebhookDelivery.objects.filter(api_key=key).count() == 3


def test_a_recipient_the_operator_refuses_for_good_bounces_by_name(cast, dpi, sink):
    key, api, receiver = dpi
    sink.handler.rcpt_replies[SECOND] = "550 5.1.1 No such user"
    sent = api.post("/api/v1/messages", {"to": [FIRST, SECOND], "subject": "CR", "text": "Bonjour."})
    assert sent.status_code == 201, sent.content
    recipients = {r["address"]: r for r in api.get(sent["Location"]).json()["recipients"]}
    assert recipients[FIRST]["status"] == "relayed"
    assert [s["event"] for s in recipients[FIRST]["timeline"]] == ["submitted", "relayed"]
    assert recipients[SECOND]["status"] == "bounced" and recipients[SECOND]["code"] == "smtp_550"
    assert [s["event"] for s in recipients[SECOND]["timeline"]] == ["submitted", "bounced"]
    bodies = {b["event"]: b["data"] for b in (json.loads(body) for _h, body in receiver.wait_for(2))}
    assert bodies["message.delivered"] == {"message": sent.json()["id"], "recipient": FIRST, "status": "relayed"}
    assert bodies["message.bounced"] == {
        "message": sent.json()["id"],
        "recipient": SECOND,
        "status": "bounced",
        "code": "smtp_550",
    }


def test_a_long_address_is_relayed_and_its_webhook_still_names_it(cast, dpi, sink):
    """An address longer than the webhook's reference column (a 64-character local part) still
    gets its event: it was lost to a database error once the relay's event named recipients."""
    key, api, receiver = dpi
    long_address = "a" * 64 + f"@{PEER}"
    sent = api.post("/api/v1/messages", {"to": [long_address, FIRST], "subject": "CR", "text": "Bonjour."})
    assert sent.status_code == 201, sent.content
    recipients = {r["address"]: r["status"] for r in api.get(sent["Location"]).json()["recipients"]}
    assert recipients == {long_address: "relayed", FIRST: "relayed"}
    bodies = [json.loads(body)["data"] for _headers, body in receiver.wait_for(2)]
    assert sorted(b["recipient"] for b in bodies) == sorted([long_address, FIRST])
    assert {b["status"] for b in bodies} == {"relayed"}
    refs = set(WebhookDelivery.objects.filter(api_key=key).values_list("subject_ref", flat=True))
    assert len(refs) == 2 and all(len(ref) <= 80 for ref in refs)
