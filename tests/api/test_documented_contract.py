"""What docs/api.md and the OpenAPI document promise an integrator (a DPI) about headers and
problem members, checked over HTTP as the integrator sees them: `Location` on a `201` (also
when replayed), the response headers and the `limit` bounds in the document, and every member
of a problem answer named by the document's Problem schema."""

import pytest
from openapi_schema_validator import OAS30Validator

from tests.api.test_openapi import inline


@pytest.fixture
def document(client, db):
    return client.get("/api/v1/openapi.json").json()


def strict(schema):
    """The schema with every object closed (`additionalProperties: false`): an answer's member
    the document does not name fails, as an integrator's generated client would drop it."""
    if isinstance(schema, dict):
        closed = {k: strict(v) for k, v in schema.items()}
        if closed.get("type") == "object" and "properties" in closed and "additionalProperties" not in closed:
            closed["additionalProperties"] = False
        return closed
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


def problem_schema(document):
    return strict(inline({"$ref": "#/components/schemas/Problem"}, document["components"]["schemas"]))


def test_a_201_says_where_the_sent_message_is_and_a_replay_says_it_again(cast, api):
    body = {"to": [cast.alice_box.address], "subject": "Compte rendu", "text": "Bonjour."}
    sent = api.call.post("/api/v1/messages", body, headers={"Idempotency-Key": "dpi-loc-1"})
    assert sent.status_code == 201, sent.content
    assert sent["Location"] == f"/api/v1/messages/{sent.json()['id']}"
    assert "Idempotent-Replayed" not in sent
    status = api.call.get(sent["Location"])
    assert status.status_code == 200 and status.json()["id"] == sent.json()["id"]
    assert status.json()["recipients"][0]["status"] == "delivered"
    again = api.call.post("/api/v1/messages", body, headers={"Idempotency-Key": "dpi-loc-1"})
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert again["Location"] == sent["Location"] and again.json() == sent.json()


def test_a_problem_has_no_location(cast, api):
    refused = api.call.post("/api/v1/messages", {"to": ["x@inconnu.fr"], "subject": "S", "text": "T"})
    assert refused.status_code == 422 and "Location" not in refused


def test_the_document_names_the_headers_an_integrator_reads(document):
    send = document["paths"]["/api/v1/messages"]["post"]["responses"]
    assert {"Location", "Idempotent-Replayed"} <= set(send["201"]["headers"])
    for code in ("409", "429", "503"):
        assert "Retry-After" in send[code]["headers"], code
    for template, item in document["paths"].items():
        for method, operation in item.items():
            assert "Retry-After" in operation["responses"]["429"]["headers"], (method, template)
    for template in ("/api/v1/boxes/{box}/messages", "/api/v1/boxes/{box}/replies"):
        (limit,) = [p for p in document["paths"][template]["get"]["parameters"] if p["name"] == "limit"]
        assert limit["schema"] == {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}, template


def test_a_daily_limit_problem_is_the_documented_problem(cast, api, settings, document):
    """`429 daily_limit_reached` carries `remaining_today` and `daily_limit` (docs/api.md): the
    Problem schema names them, and the French detail counts in French."""
    from automation.authoring import create_model

    model = create_model(mailbox=api.box, service="Cardiologie", name="Rappel", subject="Examen", body="Bonjour.")
    settings.AUTOMATION_DAILY_LIMIT = 1
    assert api.call.post("/api/v1/messages", {"to": [cast.paul_box.address], "model": model.pk}).status_code == 201
    over = api.call.post("/api/v1/messages", {"to": [cast.pauline_box.address], "model": model.pk})
    assert over.status_code == 429 and over["Content-Type"] == "application/problem+json"
    problem = over.json()
    assert (problem["code"], problem["remaining_today"], problem["daily_limit"]) == ("daily_limit_reached", 0, 1)
    assert "peut encore envoyer 0 message aujourd'hui (limite quotidienne : 1) : 1 demandé." in problem["detail"]
    assert int(over["Retry-After"]) > 0
    OAS30Validator(problem_schema(document)).validate(problem)


def test_a_nested_validation_error_is_the_documented_problem(cast, api, document):
    """`errors` keeps the fields' nesting; `detail` names the first field dotted."""
    over = api.call.post(
        "/api/v1/messages",
        {
            "to": [cast.alice_box.address, "pas-une-adresse"],
            "subject": "S",
            "text": "T",
            "attachments": [{"filename": "..", "content_base64": "AAAA"}],
        },
    )
    assert over.status_code == 422
    problem = over.json()
    assert problem["errors"] == {
        "to": {"1": ["Saisissez une adresse e-mail valide."]},
        "attachments": {"0": {"filename": ["Nom de fichier attendu."]}},
    }
    assert problem["detail"].startswith("to.1 : Saisissez une adresse e-mail valide.")
    assert "attachments.0.filename" in problem["detail"]
    OAS30Validator(problem_schema(document)).validate(problem)


def test_an_offset_whose_plus_the_query_string_ate_is_explained(cast, api):
    """`?since=…+01:00` copied into a URL reaches the server as `… 01:00`: the 422 says how to
    write the `+`; written `%2B`, the same date is read."""
    box = api.box.address
    eaten = api.call.client.get(f"/api/v1/boxes/{box}/messages?since=2026-12-01T10:00:00+01:00", **api.call.headers())
    assert eaten.status_code == 422
    assert eaten.json()["errors"] == {
        "since": ["Date ISO 8601 attendue : dans l'adresse, « + » se lit comme une espace ; écrivez %2B (ou Z en UTC)."]
    }
    written = api.call.client.get(
        f"/api/v1/boxes/{box}/messages?since=2026-12-01T10:00:00%2B01:00", **api.call.headers()
    )
    assert written.status_code == 200
    garbled = api.call.get(f"/api/v1/boxes/{box}/messages", {"since": "hier"})
    assert garbled.json()["errors"] == {"since": ["Date ISO 8601 attendue."]}
