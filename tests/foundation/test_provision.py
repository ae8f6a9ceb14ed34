"""`manage.py provision FILE` (issue 2 §7): the documented example loads, a second run changes
nothing, every error is reported with its place in the file, and on error nothing is written."""

import copy
import io
from pathlib import Path

import pytest
import yaml
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from mailboxes.models import Domain, Mailbox, Membership, Professional, Structure, TrustedDomain
from mailboxes.provisioning import ProvisioningError, load_file, provision
from patients.models import Patient, PharmacyDispensation

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
MODELS = [
    Structure,
    Domain,
    TrustedDomain,
    get_user_model(),
    Professional,
    Mailbox,
    Membership,
    Patient,
    PharmacyDispensation,
]


def state():
    return {model.__name__: model.objects.count() for model in MODELS}


def run(path, *args):
    out, err = io.StringIO(), io.StringIO()
    call_command("provision", str(path), *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.mark.parametrize("name", ["provision.yaml", "provision.json"])
def test_the_documented_example_loads_and_a_second_run_changes_nothing(db, name, django_capture_on_commit_callbacks):
    before = state()
    with django_capture_on_commit_callbacks(execute=True):
        out, _ = run(EXAMPLES / name)
    assert "structures: 2 créé(s), 0 modifié(s), 0 inchangé(s)" in out
    assert "mailboxes: 5 créé(s)" in out
    after_first = state()
    assert {name: after_first[name] - before[name] for name in before} == {
        "Structure": 2,
        "Domain": 2,
        "TrustedDomain": 1,
        "User": 6,  # one admin, four professionals, one patient (the other has no account)
        "Professional": 4,
        "Mailbox": 7,  # 5 professional boxes + 2 patient inboxes
        "Membership": 4,
        "Patient": 2,
        "PharmacyDispensation": 1,
    }
    app = Mailbox.objects.get(address="comptes-rendus_noreply@clinique-du-lac.mssante.fr")
    assert (
        app.kind == Mailbox.Kind.APPLICATIVE and app.return_mailbox.address == "orthopedie@clinique-du-lac.mssante.fr"
    )
    assert app.structure.finess == "740780028"
    assert Mailbox.objects.get(address="orthopedie@clinique-du-lac.mssante.fr").quota_bytes == 5 * 1024**3
    corsican = Patient.objects.get(ins="185122B05512323")
    assert corsican.mailbox.kind == Mailbox.Kind.PATIENT and corsican.user.username == "antoine.paoli"
    charlotte = Professional.objects.get(rpps="10001112225")
    assert charlotte.user.check_password("Mot-de-passe-initial-2026")
    assert get_user_model().objects.get(username="dsi.lac").is_superuser

    out, _ = run(EXAMPLES / name)
    assert state() == after_first
    assert " 0 créé(s), 0 modifié(s)" in out and "créé(s), 0 modifié(s), 2 inchangé(s)" in out
    for line in out.splitlines()[:-1]:
        assert " 0 créé(s), 0 modifié(s)" in line, line


def test_accounts_without_password_get_an_invitation_to_choose_one(
    db, client, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        run(EXAMPLES / "provision.yaml")
    recipients = sorted(m.to[0] for m in mailoutbox)
    # julien.moreau has send_password_reset: false; charlotte.dubois has an initial password.
    assert recipients == [
        "antoine.paoli@exemple.org",
        "dsi@clinique-du-lac.example",
        "etienne.roche@pharmacie-des-alpes.example",
        "ines.garnier@clinique-du-lac.example",
    ]
    ines = get_user_model().objects.get(username="ines.garnier")
    assert not ines.has_usable_password()
    mail = next(m for m in mailoutbox if m.to == ["ines.garnier@clinique-du-lac.example"])
    link = next(line for line in mail.body.splitlines() if "/comptes/password/reset/key/" in line)
    response = client.get(link.split("127.0.0.1:8000", 1)[1], follow=True)
    assert response.status_code == 200
    new_password = "Un-nouveau-mot-de-passe-2026"
    response = client.post(response.redirect_chain[-1][0], {"password1": new_password, "password2": new_password})
    assert response.status_code == 302
    ines.refresh_from_db()
    assert ines.check_password(new_password)


def test_an_update_is_counted_and_the_initial_password_is_never_reapplied(db):
    data = load_file(EXAMPLES / "provision.yaml")
    provision(copy.deepcopy(data))
    charlotte = get_user_model().objects.get(username="charlotte.dubois")
    charlotte.set_password("Choisi-par-elle-2026")
    charlotte.save()
    data["mailboxes"][2]["display_name"] = "Orthopédie et traumatologie"
    report = provision(data)
    assert report.counts["mailboxes"] == {"updated": 1, "unchanged": 4}
    assert (
        Mailbox.objects.get(address="orthopedie@clinique-du-lac.mssante.fr").display_name
        == "Orthopédie et traumatologie"
    )
    charlotte.refresh_from_db()
    assert charlotte.check_password("Choisi-par-elle-2026")


def test_dry_run_checks_everything_and_writes_nothing(db):
    before = state()
    out, _ = run(EXAMPLES / "provision.yaml", "--dry-run")
    assert "professionals: 4 créé(s)" in out and "rien n'a été écrit" in out
    assert state() == before


BROKEN = """
structures:
  - name: Clinique du Lac
    finess: "740780029"
  - name: Centre de santé
    siren: "732829320"
domains:
  - name: centre-sante.mssante.fr
    structure: "732829320"
  - name: clinique-du-lac.mssante.fr
    structure: "740780029"
professionals:
  - rpps: "10001112225"
    first_name: Charlotte
    last_name: Dubois
    profession: medecin
    structure: "732829320"
  - rpps: "10001112226"
    first_name: Hervé
    last_name: Petit
    profession: medecin
  - adeli: "74123456"
    first_name: Inès
    last_name: Garnier
    profession: infirmier
    grade: cadre
mailboxes:
  - address: c.dubois@centre-sante.mssante.fr
    kind: nominative
    owner: "10001112225"
  - address: envois_noreply@centre-sante.mssante.fr
    kind: applicative
  - address: accueil@centre-sante.mssante.fr
    kind: organisational
    responsible: "10001112226"
  - address: contact@clinique-du-lac.mssante.fr
    kind: organisational
    responsible: "10001112225"
patients:
  - ins: "158037511204569"
    birth_name: Lambert
    first_names: Paul
    birth_date: 1958-03-14
  - ins: "272112A00402165"
    birth_name: Santoni
    first_names: Marie-Ange
    birth_date: "le 23 novembre"
"""


def test_every_error_is_reported_with_its_place_and_nothing_is_written(db, tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN, encoding="utf-8")
    before = state()
    with pytest.raises(ProvisioningError) as info:
        provision(load_file(path))
    errors = info.value.errors
    text = "\n".join(errors)

    def has(prefix, *words):
        assert any(e.startswith(prefix) and all(w in e for w in words) for e in errors), (prefix, words, text)

    has("structures[0].finess: ", "FINESS", "clé de contrôle")
    has("domains[1].structure: ", "740780029", "en erreur plus haut")
    has("professionals[1].rpps: ", "RPPS", "clé de contrôle")
    has("professionals[2].adeli: ", "ADELI", "9 caractères")
    has("professionals[2].grade: ", "champ inconnu")
    has("mailboxes[0].address: ", "prénom.nom", "charlotte.dubois@")
    has("mailboxes[1].return_mailbox: ", "BAL organisationnelle qui reçoit les réponses")
    has("mailboxes[2].responsible: ", "10001112226", "en erreur plus haut")
    has("mailboxes[3].address: ", "clinique-du-lac.mssante.fr", "n'est pas hébergé")
    has("patients[0].ins: ", "clé ne correspond pas")
    has("patients[1].birth_date: ", "AAAA-MM-JJ")
    assert state() == before

    err = io.StringIO()
    with pytest.raises(CommandError, match="rien n'a été écrit"):
        call_command("provision", str(path), stdout=io.StringIO(), stderr=err)
    assert "mailboxes[1].return_mailbox: " in err.getvalue()
    assert state() == before
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.PROVISIONED).exists()


def test_a_successful_run_leaves_one_audit_event_with_counts_only(db):
    provision(load_file(EXAMPLES / "provision.yaml"))
    event = AuditEvent.objects.get(action=AuditEvent.Action.PROVISIONED)
    assert event.actor_label == "provision"
    assert event.detail["patients"] == {"created": 2}
    assert "Paoli" not in str(event.detail) and "185122B05512323" not in str(event.detail)


def test_references_resolve_to_rows_already_in_the_database(cast):
    data = {
        "mailboxes": [
            {
                "address": "envois_automatiques_noreply@ch-troispics.mssante.fr",
                "kind": "applicative",
                "return_mailbox": "cardiologie@ch-troispics.mssante.fr",
            },
            {"address": "diabete@ch-troispics.mssante.fr", "kind": "ORG", "responsible": cast.alice_pro.rpps},
        ],
        "memberships": [{"mailbox": "diabete@ch-troispics.mssante.fr", "user": "bob"}],
        "dispensations": [
            {
                "patient": cast.paul_patient.ins,
                "pharmacy_mailbox": "cardiologie@ch-troispics.mssante.fr",
                "dispensed_on": "2026-10-01",
            }
        ],
    }
    with pytest.raises(ProvisioningError) as info:
        provision(data)
    # The hospital's service is not a pharmacy: the only error.
    assert info.value.errors == [
        "dispensations[0].pharmacy_mailbox: une délivrance se rattache à la BAL organisationnelle d'une officine "
        "(structure de type pharmacy)."
    ]
    del data["dispensations"]
    report = provision(data)
    assert report.counts["mailboxes"]["created"] == 2
    assert Membership.objects.filter(mailbox__address="diabete@ch-troispics.mssante.fr", user=cast.bob).exists()


def test_malformed_files_are_reported_with_their_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("structures:\n  - name: CH\n    finess: [\n", encoding="utf-8")
    with pytest.raises(ProvisioningError, match=r"ligne \d+"):
        load_file(path)
    json_path = tmp_path / "bad.json"
    json_path.write_text('{"structures": [}', encoding="utf-8")
    with pytest.raises(ProvisioningError, match=r"ligne 1, colonne 17"):
        load_file(json_path)


def test_unknown_sections_and_wrong_shapes(db):
    with pytest.raises(ProvisioningError) as info:
        provision({"structure": [], "domains": {"name": "x"}, "patients": ["158037511204568"]})
    assert info.value.errors[0].startswith("structure: section inconnue")
    assert "domains: une liste d'éléments est attendue." in info.value.errors
    assert "patients[0]: un dictionnaire de champs est attendu." in info.value.errors


def test_the_example_json_is_the_yaml_example(db):
    assert load_file(EXAMPLES / "provision.json") == yaml.safe_load(
        (EXAMPLES / "provision.yaml")
        .read_text(encoding="utf-8")
        .replace("1985-12-04", "'1985-12-04'")
        .replace("1990-01-17", "'1990-01-17'")
        .replace("2026-09-30", "'2026-09-30'")
    )


def test_an_unquoted_number_that_lost_its_leading_zero_gets_a_hint(db, tmp_path):
    path = tmp_path / "unquoted.yaml"
    path.write_text("structures:\n  - name: CH de l'Ain\n    finess: 010123453\n", encoding="utf-8")
    with pytest.raises(ProvisioningError) as info:
        provision(load_file(path))
    # YAML reads 010123453 as an octal integer; quoted, "010123453" is a valid FINESS.
    [error] = info.value.errors
    assert error.startswith("structures[0].finess: Un numéro FINESS compte 9 chiffres")
    assert "entre guillemets" in error
    path.write_text('structures:\n  - name: CH de l\'Ain\n    finess: "010123453"\n', encoding="utf-8")
    assert provision(load_file(path)).counts["structures"]["created"] == 1
