"""The rules of RULES.md §1–2 on structures, domains, professionals, patients and mailboxes:
each refusal carries a French message on the field at fault."""

import datetime

import pytest
from django.core.exceptions import ValidationError

from mailboxes.models import Domain, Mailbox, Professional, Structure
from patients.models import Patient


def errors_of(obj, exclude=()) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as info:
        obj.full_clean(exclude=list(exclude))
    return info.value.message_dict


# --- mailboxes ----------------------------------------------------------------------------------


def test_nominative_address_must_be_first_name_dot_last_name_of_the_holder(cast):
    wrong = Mailbox(kind=Mailbox.Kind.NOMINATIVE, address="a.martin@ch-troispics.mssante.fr", owner=cast.alice_pro)
    message = " ".join(errors_of(wrong)["address"])
    assert "prénom.nom" in message and "alice.martin@" in message


def test_nominative_homonyms_take_a_number(cast):
    homonym = Mailbox(
        kind=Mailbox.Kind.NOMINATIVE, address="Alice.Martin2@ch-troispics.mssante.fr", owner=cast.alice_pro
    )
    homonym.full_clean()
    assert homonym.address == "alice.martin2@ch-troispics.mssante.fr"
    assert homonym.domain == cast.d_troispics and homonym.structure == cast.troispics


def test_nominative_box_needs_a_holder_and_only_it_has_one(cast):
    assert "owner" in errors_of(Mailbox(kind=Mailbox.Kind.NOMINATIVE, address="jean.dupont@ch-troispics.mssante.fr"))
    org = Mailbox(
        kind=Mailbox.Kind.ORGANISATIONAL,
        address="diabete@ch-troispics.mssante.fr",
        responsible=cast.alice_pro,
        owner=cast.alice_pro,
    )
    assert "Seule une BAL nominative" in " ".join(errors_of(org)["owner"])


def test_organisational_box_needs_a_responsible_professional(cast):
    org = Mailbox(kind=Mailbox.Kind.ORGANISATIONAL, address="diabete@ch-troispics.mssante.fr")
    assert "responsabilité d'un professionnel" in " ".join(errors_of(org)["responsible"])


def test_applicative_box_without_a_return_box_is_refused(cast):
    app = Mailbox(kind=Mailbox.Kind.APPLICATIVE, address="envois_automatiques_noreply@ch-troispics.mssante.fr")
    assert "BAL organisationnelle qui reçoit les réponses" in " ".join(errors_of(app)["return_mailbox"])


def test_applicative_return_box_must_be_organisational(cast):
    app = Mailbox(
        kind=Mailbox.Kind.APPLICATIVE,
        address="envois_automatiques_noreply@ch-troispics.mssante.fr",
        return_mailbox=cast.alice_box,
    )
    assert "doit être une BAL organisationnelle" in " ".join(errors_of(app)["return_mailbox"])
    app.return_mailbox = cast.cardio
    app.full_clean()


def test_only_applicative_boxes_have_a_return_box(cast):
    org = Mailbox(
        kind=Mailbox.Kind.ORGANISATIONAL,
        address="diabete@ch-troispics.mssante.fr",
        responsible=cast.alice_pro,
        return_mailbox=cast.cardio,
    )
    assert "return_mailbox" in errors_of(org)


def test_address_on_a_domain_not_hosted_here(cast):
    org = Mailbox(kind=Mailbox.Kind.ORGANISATIONAL, address="contact@ailleurs.mssante.fr", responsible=cast.alice_pro)
    assert "n'est pas hébergé ici" in " ".join(errors_of(org)["address"])


@pytest.mark.parametrize("local", ["josé", "contact..urgent", "-contact", "con tact"])
def test_local_part_conventions(cast, local):
    org = Mailbox(
        kind=Mailbox.Kind.ORGANISATIONAL, address=f"{local}@ch-troispics.mssante.fr", responsible=cast.alice_pro
    )
    assert "address" in errors_of(org)


def test_professional_boxes_stay_off_the_patient_domain(cast):
    org = Mailbox(kind=Mailbox.Kind.ORGANISATIONAL, address="contact@patient.mssante.fr", responsible=cast.alice_pro)
    assert "réservé aux patients" in " ".join(errors_of(org)["address"])


def test_patient_box_is_a_valid_ins_on_the_patient_domain(db):
    Mailbox(kind=Mailbox.Kind.PATIENT, address="158037511204568@patient.mssante.fr").full_clean()
    Mailbox(kind=Mailbox.Kind.PATIENT, address="272112A00402165@patient.mssante.fr".lower()).full_clean()
    wrong_key = Mailbox(kind=Mailbox.Kind.PATIENT, address="158037511204569@patient.mssante.fr")
    assert "clé ne correspond pas" in " ".join(errors_of(wrong_key)["address"])
    wrong_domain = Mailbox(kind=Mailbox.Kind.PATIENT, address="158037511204568@ch-troispics.mssante.fr")
    assert "patient.mssante.fr" in " ".join(errors_of(wrong_domain)["address"])


def test_address_must_have_one_at_sign(db):
    assert "partie-locale@domaine" in " ".join(
        errors_of(Mailbox(kind=Mailbox.Kind.ORGANISATIONAL, address="contact"))["address"]
    )


# --- structures, domains, professionals, patients -------------------------------------------------


def test_structure_needs_an_identifier_and_a_consistent_siret(db):
    assert "FINESS, son SIRET ou son SIREN" in " ".join(errors_of(Structure(name="Sans numéro"))["__all__"])
    mismatch = Structure(name="CH", siren="732829320", siret="26380001300017")
    assert "commencer par le SIREN" in " ".join(errors_of(mismatch)["siret"])
    assert "clé de contrôle" in " ".join(errors_of(Structure(name="CH", finess="380780016"))["finess"])
    Structure(name="CH", finess="380780015", siren="263800013", siret="26380001300017").full_clean()


def test_domain_must_be_under_mssante_fr(cast):
    assert "mssante.fr" in " ".join(errors_of(Domain(name="ch-troispics.fr", structure=cast.troispics))["name"])
    assert "patients" in " ".join(errors_of(Domain(name="patient.mssante.fr", structure=cast.troispics))["name"])
    domain = Domain(name="CH-Nouveau.MSSante.fr", structure=cast.troispics)
    domain.full_clean()
    assert domain.name == "ch-nouveau.mssante.fr"


def test_professional_identification(db):
    anonymous = Professional(first_name="Jean", last_name="Dupont", profession="medecin")
    assert "RPPS" in " ".join(errors_of(anonymous, exclude=["user"])["__all__"])
    bad_rpps = Professional(first_name="Jean", last_name="Dupont", profession="medecin", rpps="10003456787")
    assert "clé de contrôle" in " ".join(errors_of(bad_rpps, exclude=["user"])["rpps"])
    intern = Professional(first_name="Jean", last_name="Dupont", profession="medecin", local_identifier=" INT-42 ")
    intern.full_clean(exclude=["user"])
    assert intern.local_identifier == "INT-42"


def test_patient_ins_key_and_sex_are_checked(db):
    patient = Patient(
        ins="158037511204569", birth_name="Lambert", first_names="Paul", birth_date=datetime.date(1958, 3, 14), sex="M"
    )
    assert "clé ne correspond pas" in " ".join(errors_of(patient, exclude=["mailbox", "user"])["ins"])
    patient.ins = "158037511204568"
    patient.sex = "F"
    assert "premier chiffre" in " ".join(errors_of(patient, exclude=["mailbox", "user"])["sex"])
