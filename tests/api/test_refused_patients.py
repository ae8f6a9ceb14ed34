"""What a hospital's software is told about each patient of one call (issue 10 §1), through
HTTP with a real key: a patient refused among several, a message model to an address that has
no patient behind it."""

from django.conf import settings

from mailboxes.models import Entry, Message
from patients.models import Patient

WRONG_KEY = "158037511204569"  # a NIR whose two-digit key is wrong (…68 is right)
UNKNOWN = "248047500001435"  # a valid INS that no patient of this product holds


def patient_address(ins: str) -> str:
    return f"{ins}@{settings.PATIENT_DOMAIN}"


def outcomes(body: dict) -> dict:
    return {r["address"]: (r["outcome"], r.get("code")) for r in body["recipients"]}


def test_every_patient_refused_among_several_is_in_the_answer(cast, api):
    """Several patients, one message each: a copy refused (closed space, wrong INS key, no such
    patient) is said in `recipients`, with its code and reason, next to the delivered ones."""
    Patient.objects.filter(pk=cast.pauline_patient.pk).update(space_state=Patient.SpaceState.CLOSED)
    wrong, unknown = patient_address(WRONG_KEY), patient_address(UNKNOWN)
    response = api.call.post(
        "/api/v1/messages",
        {
            "to": [cast.paul_box.address, cast.pauline_box.address, wrong, unknown],
            "subject": "Information",
            "text": "Bonjour.",
        },
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert outcomes(body) == {
        cast.paul_box.address: ("delivered", None),
        cast.pauline_box.address: ("refused", "space_closed"),
        wrong: ("refused", "wrong_ins"),
        unknown: ("refused", "patient_not_found"),
    }
    assert all(r["reason"] for r in body["recipients"] if r["outcome"] == "refused")
    # Only Paul's copy exists; the answer's messages are the stored ones.
    assert [m["id"] for m in body["messages"]] == [body["id"]]
    held_by = set(Entry.objects.filter(message_id=body["id"]).values_list("mailbox_id", flat=True))
    assert held_by == {api.box.pk, cast.paul_box.pk}
    assert not Entry.objects.filter(mailbox=cast.pauline_box, message__subject="Information").exists()
    assert Message.objects.filter(subject="Information").count() == 1


def identity_model(box):
    from automation.authoring import create_model

    return create_model(
        mailbox=box,
        service="Admissions",
        name="Accueil",
        subject="Votre venue",
        body="Bonjour {{ civilite }} {{ nom_usage }}, nous vous attendons.",
    )


def test_a_model_to_an_address_without_a_patient_says_which_and_why(cast, api):
    """A message model to a patient address nobody holds is refused as the address is (wrong
    INS key, no such patient), with the address, not as 'fields without value' naming the
    identity fields; nothing is sent."""
    model = identity_model(api.box)
    for ins, code in ((WRONG_KEY, "wrong_ins"), (UNKNOWN, "patient_not_found")):
        response = api.call.post("/api/v1/messages", {"to": [patient_address(ins)], "model": model.pk, "fields": {}})
        assert response.status_code == 422, response.content
        assert response["Content-Type"] == "application/problem+json"
        problem = response.json()
        assert problem["code"] == code and "{{" not in problem["detail"]
        assert outcomes(problem) == {patient_address(ins): ("refused", code)}
    assert not Message.objects.filter(subject="Votre venue").exists()


def test_a_model_to_several_patients_sends_to_those_who_exist(cast, api):
    """Among several patients, one whose address nobody holds does not stop the others (as a
    closed space does not): Paul gets his message, the answer says why the other got none."""
    model = identity_model(api.box)
    unknown = patient_address(UNKNOWN)
    response = api.call.post(
        "/api/v1/messages", {"to": [cast.paul_box.address, unknown], "model": model.pk, "fields": {}}
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert outcomes(body) == {cast.paul_box.address: ("delivered", None), unknown: ("refused", "patient_not_found")}
    message = Message.objects.get(subject="Votre venue")
    assert "LAMBERT" in message.text_body and UNKNOWN not in message.text_body + str(message.to)
    assert Entry.objects.filter(mailbox=cast.paul_box, message=message).exists()


def test_a_model_still_names_the_fields_a_known_patient_lacks(cast, api):
    from automation.authoring import create_model

    model = create_model(
        mailbox=api.box, service="Admissions", name="Consignes", subject="Consignes", body="{{ consignes }}"
    )
    response = api.call.post(
        "/api/v1/messages",
        {"to": [cast.paul_box.address, patient_address(UNKNOWN)], "model": model.pk, "fields": {}},
    )
    assert response.status_code == 422 and response.json()["code"] == "model_fields_missing"
    assert "{{ consignes }}" in response.json()["detail"]
    assert not Message.objects.filter(subject="Consignes").exists()
