"""What a hospital's software sees, after the call, of a patient refused among several
(issue p25): the `201`, the automatic return that arrives later in the box, and
`GET /messages/{id}`, all through HTTP with a real key. Every refusal is tied to an identifier
the caller got back: the refused copy's Message-ID, which the return names in `In-Reply-To`."""

import pytest
from django.conf import settings

from patients.models import Patient

WRONG_KEY = "158037511204569"  # a NIR whose two-digit key is wrong
UNKNOWN = "248047500001435"  # a valid INS that no patient of this product holds


def patient_address(ins: str) -> str:
    return f"{ins}@{settings.PATIENT_DOMAIN}"


@pytest.fixture
def closed_pauline(cast):
    Patient.objects.filter(pk=cast.pauline_patient.pk).update(space_state=Patient.SpaceState.CLOSED)


def send(api, to, capture):
    with capture(execute=True):  # the automatic returns leave after the call's commit
        response = api.call.post("/api/v1/messages", {"to": to, "subject": "Information", "text": "Bonjour."})
    return response


def returns_in_box(api) -> list[dict]:
    listing = api.call.get(f"/api/v1/boxes/{api.box.address}/messages", {"folder": "inbox"})
    assert listing.status_code == 200, listing.content
    return [m for m in listing.json()["results"] if m["from_address"].startswith("ne-pas-repondre@")]


def by_address(recipients) -> dict:
    return {r["address"]: r for r in recipients}


def test_the_return_for_a_refused_patient_names_a_message_id_the_201_gave(
    cast, api, closed_pauline, django_capture_on_commit_callbacks
):
    response = send(
        api,
        [cast.alice_box.address, cast.paul_box.address, cast.pauline_box.address],
        django_capture_on_commit_callbacks,
    )
    assert response.status_code == 201, response.content
    body = response.json()
    recipients = by_address(body["recipients"])
    refused = recipients[cast.pauline_box.address]
    assert (refused["outcome"], refused["code"], refused["message"]) == ("refused", "space_closed", None)
    # The copies that were stored: each recipient names the message that carries it.
    copies = {m["id"]: m["message_id"] for m in body["messages"]}
    for address in (cast.alice_box.address, cast.paul_box.address):
        assert copies[recipients[address]["message"]] == recipients[address]["message_id"]
    # The refused copy's Message-ID is none of the stored copies', and it is what the return cites.
    assert refused["message_id"] and refused["message_id"] not in copies.values()
    [automatic_return] = returns_in_box(api)
    assert automatic_return["in_reply_to"] == refused["message_id"]
    assert cast.pauline_box.address in automatic_return["text"]


def test_get_of_the_answered_message_tells_every_recipient_the_201_told(
    cast, api, closed_pauline, django_capture_on_commit_callbacks
):
    wrong, unknown = patient_address(WRONG_KEY), patient_address(UNKNOWN)
    to = [cast.alice_box.address, cast.paul_box.address, cast.pauline_box.address, wrong, unknown]
    response = send(api, to, django_capture_on_commit_callbacks)
    assert response.status_code == 201, response.content
    body = response.json()
    status = api.call.get(response["Location"])
    assert status.status_code == 200, status.content
    told = by_address(status.json()["recipients"])
    assert set(told) == set(to)
    expected = {
        cast.alice_box.address: "delivered",
        cast.paul_box.address: "delivered",
        cast.pauline_box.address: "bounced",
        wrong: "bounced",
        unknown: "bounced",
    }
    assert {a: r["status"] for a, r in told.items()} == expected
    for item in body["recipients"]:
        seen = told[item["address"]]
        assert (seen["code"] or None, seen["message"], seen["message_id"]) == (
            item.get("code"),
            item["message"],
            item["message_id"],
        )
        if item["outcome"] == "refused":
            assert seen["reason"] == item["reason"]
            assert [step["event"] for step in seen["timeline"]] == ["submitted", "refused"]
    # Paul's state is read in his own copy, and moves with it (the message is read).
    assert told[cast.paul_box.address]["message"] != body["id"]
    # Each return of the three refusals cites the Message-ID GET gives for its address.
    cited = {m["in_reply_to"] for m in returns_in_box(api)}
    assert cited == {told[a]["message_id"] for a in (cast.pauline_box.address, wrong, unknown)}


def test_patients_only_the_first_copy_tells_the_refused_one(
    cast, api, closed_pauline, django_capture_on_commit_callbacks
):
    response = send(api, [cast.paul_box.address, cast.pauline_box.address], django_capture_on_commit_callbacks)
    assert response.status_code == 201, response.content
    body = response.json()
    told = by_address(api.call.get(f"/api/v1/messages/{body['id']}").json()["recipients"])
    assert told[cast.pauline_box.address]["code"] == "space_closed"
    assert (
        told[cast.pauline_box.address]["message_id"]
        == by_address(body["recipients"])[cast.pauline_box.address]["message_id"]
    )
    assert told[cast.paul_box.address]["message"] == body["id"]


def test_every_patient_refused_the_problem_gives_the_message_id_the_return_cites(
    cast, api, closed_pauline, django_capture_on_commit_callbacks
):
    unknown = patient_address(UNKNOWN)
    response = send(api, [cast.pauline_box.address, unknown], django_capture_on_commit_callbacks)
    assert response.status_code == 422, response.content
    problem = by_address(response.json()["recipients"])
    assert all(r["message"] is None and r["message_id"] for r in problem.values())
    cited = {m["in_reply_to"] for m in returns_in_box(api)}
    assert cited == {r["message_id"] for r in problem.values()}


def test_the_answers_with_a_refused_patient_are_as_the_openapi_document_says(cast, api, closed_pauline, client):
    from openapi_schema_validator import OAS30Validator

    from tests.api.test_documented_contract import strict
    from tests.api.test_openapi import inline

    document = client.get("/api/v1/openapi.json").json()
    components = document["components"]["schemas"]

    def schema_of(path, method, code, media="application/json"):
        content = document["paths"][path][method]["responses"][code]["content"][media]
        return OAS30Validator(strict(inline(content["schema"], components)))

    sent = api.call.post(
        "/api/v1/messages",
        {"to": [cast.alice_box.address, cast.paul_box.address, cast.pauline_box.address], "subject": "S", "text": "T"},
    )
    assert sent.status_code == 201
    schema_of("/api/v1/messages", "post", "201").validate(sent.json())
    status = api.call.get(sent["Location"])
    schema_of("/api/v1/messages/{message_id}", "get", "200").validate(status.json())
    problem = api.call.post("/api/v1/messages", {"to": [cast.pauline_box.address], "subject": "S", "text": "T"})
    assert problem.status_code == 422
    schema_of("/api/v1/messages", "post", "422", "application/problem+json").validate(problem.json())
    fields = document["components"]["schemas"]["RecipientOutcome"]["properties"]
    assert "In-Reply-To" in fields["message_id"]["description"]


def test_the_webhook_reports_the_refused_copy_with_the_message_id_its_return_cites(
    cast, api, closed_pauline, django_capture_on_commit_callbacks
):
    import json

    from api.models import ApiKey
    from tests.api.test_queue_and_webhooks import Receiver, check_signature

    receiver = Receiver()
    try:
        ApiKey.objects.filter(pk=api.key.pk).update(webhook_url=receiver.url)
        api.key.refresh_from_db()
        to = [cast.alice_box.address, cast.paul_box.address, cast.pauline_box.address]
        response = send(api, to, django_capture_on_commit_callbacks)
        assert response.status_code == 201, response.content
        body = response.json()
        received = receiver.wait_for(3)
    finally:
        receiver.server.shutdown()
    for headers, raw in received:
        check_signature(api.key.webhook_secret, headers, raw)
    events = {json.loads(raw)["data"]["recipient"]: json.loads(raw) for _headers, raw in received}
    assert {a: e["event"] for a, e in events.items()} == {
        cast.alice_box.address: "message.delivered",
        cast.paul_box.address: "message.delivered",
        cast.pauline_box.address: "message.bounced",
    }
    refused = by_address(body["recipients"])[cast.pauline_box.address]
    assert events[cast.pauline_box.address]["data"] == {
        "message": body["id"],
        "recipient": cast.pauline_box.address,
        "status": "bounced",
        "code": "space_closed",
        "message_id": refused["message_id"],
    }
    [automatic_return] = returns_in_box(api)
    assert automatic_return["in_reply_to"] == events[cast.pauline_box.address]["data"]["message_id"]
