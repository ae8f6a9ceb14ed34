"""Message models (issue 9 item 2): named fields, optional parts, versions, standing
attachments, the shipped models (the pre-admission one with every field of RULES.md §4)."""

import pytest
from django.core.exceptions import ValidationError

from automation import authoring, fields, sending
from automation.models import MessageModel
from automation.standard_models import STANDARD_MODELS, install_standard_models

pytestmark = pytest.mark.django_db

# RULES.md §4: the pre-admission model's fields, each by the name it has here.
PRE_ADMISSION_FIELDS = {
    "civilite",  # title
    "nom_usage",  # usage name
    "nom_naissance",  # birth name
    "date_rdv",
    "heure_rdv",
    "service",
    "structure",
    "adresse_structure",
    "motif",  # reason
    "titre_professionnel",
    "nom_professionnel",
    "documents_a_renvoyer",  # profile and documents to send back
    "pieces_administratives",
    "lien_portail",  # optional portal link
    "consignes",  # special instructions
    "suite_visite",  # what follows the visit
    "telephone_aide",  # help line
    "confirmation",  # optional confirmation notice
    "signature",
}


def test_render_fills_fields_and_drops_optional_parts_without_value():
    text = "Bonjour {{ civilite }} {{nom_usage}},\n[[Portail : {{ lien_portail }}\n]]Fin."
    assert fields.render(text, {"civilite": "Mme", "nom_usage": "ROUX"}) == "Bonjour Mme ROUX,\nFin."
    assert "Portail : https://p.example" in fields.render(text, {"lien_portail": "https://p.example"})
    assert fields.missing({"civilite": "M."}, text) == ["nom_usage"]
    assert fields.unknown_fields("{{ nom }} {{ civilite }} {{ date_rendez_vous }}") == ["nom", "date_rendez_vous"]


def test_pre_admission_model_uses_every_field_of_rules_section_4(service):
    spec = next(s for s in STANDARD_MODELS if s["kind"] == MessageModel.Kind.PRE_ADMISSION)
    used = set(fields.fields_in(spec["subject"], spec["body"]))
    assert PRE_ADMISSION_FIELDS <= used
    body = spec["body"]
    for words in ("profil médical", "documents", "carte Vitale", "complémentaire", "médecin traitant"):
        assert words in body or words in spec["defaults"]["pieces_administratives"]
    # The optional parts are optional: a model without portal link or instructions still renders.
    assert "lien_portail" not in fields.required_fields(spec["subject"], body)
    assert "consignes" not in fields.required_fields(spec["subject"], body)


def test_standard_models_are_installed_once_with_a_first_version(service):
    kinds = set(service.models)
    assert kinds == {s["kind"] for s in STANDARD_MODELS}
    assert install_standard_models(service.app, "Cardiologie") == []
    for model in service.models.values():
        assert model.current.number == 1
        assert not fields.unknown_fields(model.current.subject, model.current.body)
    assert service.models[MessageModel.Kind.PRE_ADMISSION].reminder_days == [7, 1]


def test_unknown_field_is_refused_by_name(service):
    with pytest.raises(ValidationError) as error:
        authoring.create_model(
            mailbox=service.app, service="Radiologie", name="Essai", subject="RDV {{ date }}", body="{{ nom }}"
        )
    assert "{{ date }}" in str(error.value) and "{{ nom }}" in str(error.value)
    assert not MessageModel.objects.filter(name="Essai").exists()


def test_editing_writes_a_new_version_and_keeps_the_attachments(service, cast):
    model = service.models[MessageModel.Kind.PREPARATION]
    first = model.current
    second = authoring.save_version(
        model,
        subject=first.subject,
        body=first.body + "\nÀ bientôt.",
        user=cast.bob,
        add_attachments=[("fiche.pdf", "application/pdf", b"%PDF-1.4 fiche")],
    )
    assert second.number == 2 and second.attachments.count() == 1
    same = authoring.save_version(model, subject=second.subject, body=second.body, user=cast.bob)
    assert same.pk == second.pk
    third = authoring.save_version(model, subject="Préparation — {{ date_rdv }}", body=second.body, user=cast.bob)
    assert third.number == 3 and [a.filename for a in third.attachments.all()] == ["fiche.pdf"]
    first.refresh_from_db()
    assert first.body != third.body  # the old version is unchanged
    assert sending.AttachmentCache().get(third) == [("fiche.pdf", "application/pdf", b"%PDF-1.4 fiche")]


def test_compose_for_a_patient_reports_missing_fields(service, cast):
    version = service.models[MessageModel.Kind.DOCUMENT_REQUEST].current
    composed = sending.compose(version, cast.paul_patient, {})
    assert composed.missing == ["date_rdv"]
    composed = sending.compose(version, cast.paul_patient, {"date_rdv": "12/05/2027"})
    assert composed.missing == []
    assert composed.text.startswith("Bonjour M. LAMBERT,")
    assert "12/05/2027" in composed.subject and "Cardiologie" in composed.text
    assert "{{" not in composed.text and "[[" not in composed.text


def test_install_command_installs_the_standard_models_once(service, cast):
    import io

    from django.core.management import CommandError, call_command

    out = io.StringIO()
    call_command("install_message_models", service.admissions.address, "Admissions", stdout=out)
    assert "6 modèle(s) créé(s)" in out.getvalue()
    call_command("install_message_models", service.admissions.address, "Admissions", stdout=out)
    assert "0 modèle(s) créé(s)" in out.getvalue()
    assert MessageModel.objects.filter(mailbox=service.admissions).count() == 6
    with pytest.raises(CommandError):
        call_command("install_message_models", cast.paul_box.address, "Admissions")


def test_editing_a_model_is_one_action_a_refused_text_changes_nothing(service):
    """`authoring.edit_model` saves the model's own fields and its new version together: a text
    naming an unknown field is refused, and the name, the service, the reminders and the
    versions stay as they were, in the database and in the object the page shows."""
    model = service.models[MessageModel.Kind.CONVOCATION]
    before = (model.name, model.service, list(model.reminder_days), model.versions.count(), model.current.body)
    with pytest.raises(ValidationError) as refused:
        authoring.edit_model(
            model,
            name="Convocation renommée",
            service="Neurologie",
            reminder_days=[3],
            subject="Votre rendez-vous",
            body="Bonjour {{ prenom_du_patient }}",
            user=service.cast.bob,
        )
    assert "Champ inconnu : {{ prenom_du_patient }}" in " ".join(refused.value.messages)
    assert (model.name, model.service, list(model.reminder_days)) == before[:3]
    model.refresh_from_db()
    assert (model.name, model.service, list(model.reminder_days), model.versions.count(), model.current.body) == before

    version = authoring.edit_model(
        model,
        name="Convocation renommée",
        service="Neurologie",
        subject="Votre rendez-vous",
        body="Bonjour {{ prenom }}",
    )
    model.refresh_from_db()
    assert (model.name, model.service, version.number) == ("Convocation renommée", "Neurologie", before[3] + 1)
