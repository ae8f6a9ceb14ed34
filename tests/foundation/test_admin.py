"""The Django admin (issue 2 §6): every page answers, with a bounded number of queries; model
rules show on the forms; actions call the shared functions; every change leaves an audit event."""

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from mailboxes.models import Mailbox, Membership
from patients.models import Patient
from tests.factories import organisational_mailbox

CHANGELISTS = [
    "accounts_user",
    "mailboxes_structure",
    "mailboxes_domain",
    "mailboxes_trusteddomain",
    "mailboxes_professional",
    "mailboxes_mailbox",
    "mailboxes_membership",
    "patients_patient",
    "patients_pharmacydispensation",
    "patients_block",
    "patients_conversation",
    "audit_auditevent",
]


@pytest.fixture
def admin_client(client, cast):
    client.force_login(cast.ada)
    return client


@pytest.mark.parametrize("name", CHANGELISTS)
def test_every_changelist_answers_and_searches(admin_client, name):
    url = reverse(f"admin:{name}_changelist")
    assert admin_client.get(url).status_code == 200
    assert admin_client.get(url, {"q": "martin"}).status_code == 200


def test_change_pages_answer(admin_client, cast):
    for name, obj in [
        ("mailboxes_mailbox", cast.cardio),
        ("mailboxes_mailbox", cast.paul_box),
        ("mailboxes_professional", cast.alice_pro),
        ("mailboxes_structure", cast.troispics),
        ("patients_patient", cast.paul_patient),
    ]:
        assert admin_client.get(reverse(f"admin:{name}_change", args=[obj.pk])).status_code == 200, name


def test_the_mailbox_list_costs_the_same_queries_for_many_rows(admin_client, cast, django_assert_max_num_queries):
    url = reverse("admin:mailboxes_mailbox_changelist")
    for n in range(40):
        organisational_mailbox(f"service{n}", cast.d_troispics, responsible=cast.alice_pro, members=[cast.bob])
    with django_assert_max_num_queries(12):
        assert admin_client.get(url).status_code == 200
    with django_assert_max_num_queries(12):
        assert admin_client.get(reverse("admin:mailboxes_membership_changelist")).status_code == 200


def mailbox_form(**fields):
    data = {
        "kind": "ORG",
        "address": "",
        "display_name": "",
        "quota_bytes": "0",
        "max_message_bytes": "0",
        "is_active": "on",
        "signature": "",
        "memberships-TOTAL_FORMS": "0",
        "memberships-INITIAL_FORMS": "0",
    }
    data.update(fields)
    return data


def test_an_applicative_box_without_return_box_is_refused_on_the_form(admin_client, cast):
    url = reverse("admin:mailboxes_mailbox_add")
    response = admin_client.post(url, mailbox_form(kind="APP", address="envois_noreply@ch-troispics.mssante.fr"))
    assert response.status_code == 200
    assert "toujours associée à une BAL organisationnelle qui reçoit les réponses" in response.content.decode()
    assert not Mailbox.objects.filter(address="envois_noreply@ch-troispics.mssante.fr").exists()

    response = admin_client.post(
        url, mailbox_form(kind="APP", address="envois_noreply@ch-troispics.mssante.fr", return_mailbox=cast.cardio.pk)
    )
    assert response.status_code == 302
    created = Mailbox.objects.get(address="envois_noreply@ch-troispics.mssante.fr")
    assert created.domain == cast.d_troispics and created.structure == cast.troispics


def test_a_nominative_address_not_matching_its_holder_is_refused_on_the_form(admin_client, cast):
    response = admin_client.post(
        reverse("admin:mailboxes_mailbox_add"),
        mailbox_form(kind="PER", address="dr.martin@ch-troispics.mssante.fr", owner=cast.alice_pro.pk),
    )
    assert response.status_code == 200
    assert "alice.martin@" in response.content.decode()


def test_a_patient_box_cannot_be_made_by_hand(admin_client, cast):
    response = admin_client.post(
        reverse("admin:mailboxes_mailbox_add"), mailbox_form(kind="PAT", address="158037511204568@patient.mssante.fr")
    )
    assert response.status_code == 200
    assert not Mailbox.objects.filter(address="158037511204568@patient.mssante.fr").exists()


def professional_form(**fields):
    data = {"civility": "dr", "first_name": "Hugo", "last_name": "Bernard", "profession": "medecin", "specialty": ""}
    data.update(fields)
    return data


def test_an_invalid_rpps_is_refused_on_the_form(admin_client, cast):
    response = admin_client.post(reverse("admin:mailboxes_professional_add"), professional_form(rpps="10007654328"))
    assert response.status_code == 200
    assert (
        "Le numéro RPPS « 10007654328 » est invalide : sa clé de contrôle ne correspond pas."
        in response.content.decode()
    )
    response = admin_client.post(reverse("admin:mailboxes_professional_add"), professional_form(rpps="10007654329"))
    assert response.status_code == 302


def patient_form(**fields):
    data = {
        "ins": "158037511204568",
        "ins_qualified": "on",
        "birth_name": "Lambert",
        "usage_name": "",
        "first_names": "Paul Henri",
        "birth_date": "1958-03-14",
        "sex": "M",
        "notification_email": "paul.lambert@exemple.org",
        "space_state": "active",
    }
    data.update(fields)
    return data


def test_creating_a_patient_in_the_admin_creates_the_inbox(admin_client, cast):
    response = admin_client.post(reverse("admin:patients_patient_add"), patient_form(ins="158037511204569"))
    assert response.status_code == 200
    assert "clé ne correspond pas" in response.content.decode()

    response = admin_client.post(reverse("admin:patients_patient_add"), patient_form())
    assert response.status_code == 302
    patient = Patient.objects.get(ins="158037511204568")
    assert patient.mailbox.kind == Mailbox.Kind.PATIENT
    assert patient.mailbox.address == "158037511204568@patient.mssante.fr"
    assert patient.mailbox.display_name == "Paul LAMBERT"
    event = AuditEvent.objects.get(action="admin.change", object_type="patient", object_id=str(patient.pk))
    assert event.actor == cast.ada and event.detail == {"change": "added"}


def test_an_admin_change_leaves_an_audit_event_without_values(admin_client, cast):
    url = reverse("admin:mailboxes_professional_change", args=[cast.alice_pro.pk])
    data = professional_form(
        first_name="Alice",
        last_name="Martin",
        rpps=cast.alice_pro.rpps,
        specialty="rythmologie",
        structure=cast.troispics.pk,
        user=cast.alice.pk,
    )
    assert admin_client.post(url, data).status_code == 302
    event = AuditEvent.objects.get(action="admin.change", object_type="professional")
    assert event.actor == cast.ada
    assert event.object_id == str(cast.alice_pro.pk)
    assert event.detail["change"] == "changed" and event.detail["fields"] == ["Spécialité"]
    assert "rythmologie" not in str(event.detail)


def test_deleting_a_selection_leaves_one_event_per_object(admin_client, cast):
    ids = list(Membership.objects.filter(mailbox=cast.cardio).values_list("pk", flat=True))
    assert len(ids) == 2
    response = admin_client.post(
        reverse("admin:mailboxes_membership_changelist"),
        {"action": "delete_selected", "_selected_action": ids, "post": "yes"},
    )
    assert response.status_code == 302
    assert not Membership.objects.filter(pk__in=ids).exists()
    events = AuditEvent.objects.filter(action="admin.change", object_type="membership")
    assert sorted(events.values_list("object_id", flat=True)) == sorted(str(i) for i in ids)
    assert all(e.detail == {"change": "deleted"} and e.actor_id == cast.ada.pk for e in events)


def test_deactivate_action_cuts_access_and_is_traced(admin_client, cast):
    from mailboxes.access import mailboxes_for_user

    response = admin_client.post(
        reverse("admin:mailboxes_mailbox_changelist"), {"action": "deactivate", "_selected_action": [cast.cardio.pk]}
    )
    assert response.status_code == 302
    cast.cardio.refresh_from_db()
    assert not cast.cardio.is_active
    assert not mailboxes_for_user(cast.bob).exists()
    event = AuditEvent.objects.get(action="admin.change", mailbox_id=cast.cardio.pk)
    assert event.actor == cast.ada and event.detail == {"change": "deactivated"}

    admin_client.post(
        reverse("admin:mailboxes_mailbox_changelist"), {"action": "reactivate", "_selected_action": [cast.cardio.pk]}
    )
    assert mailboxes_for_user(cast.bob).get() == cast.cardio


def test_close_space_action(admin_client, cast):
    response = admin_client.post(
        reverse("admin:patients_patient_changelist"),
        {"action": "close_space", "_selected_action": [cast.paul_patient.pk]},
    )
    assert response.status_code == 302
    cast.paul_patient.refresh_from_db()
    assert cast.paul_patient.space_state == Patient.SpaceState.CLOSED and cast.paul_patient.space_closed_at
    event = AuditEvent.objects.get(action=AuditEvent.Action.SPACE_CLOSED, object_id=str(cast.paul_patient.pk))
    assert event.actor == cast.ada


def test_the_audit_trail_is_read_only_and_searchable_by_id(admin_client, cast):
    event = AuditEvent.objects.create(
        action="message.read", mailbox_id=cast.alice_box.pk, message_id=4242, object_type="entry", object_id="77"
    )
    other = AuditEvent.objects.create(
        action="message.read", mailbox_id=cast.charlie_box.pk, message_id=1, object_type="entry", object_id="78"
    )
    changelist = reverse("admin:audit_auditevent_changelist")
    assert admin_client.get(reverse("admin:audit_auditevent_add")).status_code == 403
    assert admin_client.post(reverse("admin:audit_auditevent_delete", args=[event.pk])).status_code == 403
    detail = admin_client.get(reverse("admin:audit_auditevent_change", args=[event.pk]))
    assert detail.status_code == 200 and 'name="_save"' not in detail.content.decode()

    def listed(**params):
        return set(admin_client.get(changelist, params).context["cl"].result_list)

    assert listed(q="4242") == {event}
    assert listed(q=str(cast.charlie_box.pk)) >= {other}
    assert event not in listed(q="78")
    assert listed(action="message.read") == {event, other}
    assert listed(q="ada") == set(AuditEvent.objects.filter(actor=cast.ada))


def test_changing_a_patient_keeps_the_inbox_in_step(admin_client, cast):
    patient = cast.paul_patient
    url = reverse("admin:patients_patient_change", args=[patient.pk])
    data = patient_form(
        ins=patient.ins,
        birth_name="Lambert",
        usage_name="Lambert-Roux",
        first_names="Paul",
        birth_date=patient.birth_date.isoformat(),
        sex="M",
        space_state="closed",
        user=cast.paul.pk,
    )
    response = admin_client.post(url, data)
    assert response.status_code == 302
    patient.refresh_from_db()
    # The space state is read-only on the form: only the action (`close_space`, audited) closes it.
    assert patient.space_state == Patient.SpaceState.ACTIVE and patient.space_closed_at is None
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.SPACE_CLOSED).exists()
    assert Patient.objects.filter(ins=patient.ins).count() == 1
    patient.mailbox.refresh_from_db()
    assert patient.mailbox.display_name == "Paul LAMBERT-ROUX"
    event = AuditEvent.objects.get(action="admin.change", object_type="patient", object_id=str(patient.pk))
    assert event.detail["change"] == "changed" and "Lambert-Roux" not in str(event.detail)


def test_the_audit_list_costs_the_same_queries_for_many_rows(admin_client, cast, django_assert_max_num_queries):
    AuditEvent.objects.bulk_create(
        [
            AuditEvent(action="message.read", actor=cast.alice, mailbox_id=cast.alice_box.pk, message_id=n)
            for n in range(300)
        ]
    )
    with django_assert_max_num_queries(10):
        response = admin_client.get(reverse("admin:audit_auditevent_changelist"))
    assert response.status_code == 200 and len(response.context["cl"].result_list) == 100


def test_a_new_patient_cannot_be_created_closed_and_the_state_is_read_only_after(admin_client, cast):
    response = admin_client.post(reverse("admin:patients_patient_add"), patient_form(space_state="closed"))
    assert response.status_code == 200 and not Patient.objects.filter(ins="158037511204568").exists()
    assert "space_state" in response.context["adminform"].form.errors
    page = admin_client.get(reverse("admin:patients_patient_change", args=[cast.paul_patient.pk]))
    assert "space_state" not in page.context["adminform"].form.fields
    assert 'value="close_space"' in admin_client.get(reverse("admin:patients_patient_changelist")).content.decode()
