"""`manage.py seed_demo` (issue 2 §8): the demo setting, idempotent, with working printed logins."""

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone

from mailboxes.access import mailboxes_for_user
from mailboxes.models import Mailbox, Structure
from patients.management.commands.seed_demo import DEMO_LOGINS
from patients.models import Patient, PharmacyDispensation


def seed():
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def addresses(username):
    user = get_user_model().objects.get(username=username)
    return set(mailboxes_for_user(user).values_list("address", flat=True))


@pytest.mark.django_db
def test_seed_demo_builds_the_demo_setting_and_is_idempotent():
    out = seed()
    counts = {
        m.__name__: m.objects.count() for m in (Structure, Mailbox, Patient, PharmacyDispensation, get_user_model())
    }
    again = seed()
    assert {
        m.__name__: m.objects.count() for m in (Structure, Mailbox, Patient, PharmacyDispensation, get_user_model())
    } == counts
    assert "0 créé(s), 0 modifié(s)" in again

    assert Structure.objects.get(finess="380780015").name == "Centre hospitalier des Trois Pics"
    assert Structure.objects.get(finess="382001238").kind == Structure.Kind.PHARMACY
    app = Mailbox.objects.get(address="envois_automatiques_noreply@ch-troispics.mssante.fr")
    assert app.kind == Mailbox.Kind.APPLICATIVE
    assert app.return_mailbox.address == "admissions@ch-troispics.mssante.fr"
    assert addresses("alice") == {"alice.martin@ch-troispics.mssante.fr", "cardiologie@ch-troispics.mssante.fr"}
    assert addresses("bob") == {"cardiologie@ch-troispics.mssante.fr"}
    assert addresses("hugo") == {
        "hugo.bernard@ch-troispics.mssante.fr",
        "admissions@ch-troispics.mssante.fr",
        "envois_automatiques_noreply@ch-troispics.mssante.fr",
    }
    assert addresses("claire") == {"officine@pharmacie-du-marche.mssante.fr"}
    assert addresses("admin") == set()
    assert get_user_model().objects.get(username="admin").is_superuser

    patients = Patient.objects.order_by("birth_name")
    assert [p.space_state for p in patients] == ["active", "active", "closed"]
    assert all(p.user and p.user.email and p.notification_email and p.mailbox_id for p in patients)
    dispensation = PharmacyDispensation.objects.get()
    assert dispensation.patient.ins == "158037511204568"
    assert (timezone.localdate() - dispensation.dispensed_on).days < 365

    # The printed table: every demo login, with a password that works.
    for who, username, password, _ in DEMO_LOGINS:
        assert f"{username}  " in out and password in out, who
        assert get_user_model().objects.get(username=username).check_password(password), username


def test_demo_messages_are_delivered_once_through_the_delivery_path(db):
    from mailboxes.models import Entry, Message

    call_command("seed_demo", stdout=io.StringIO())
    call_command("seed_demo", stdout=io.StringIO())

    assert Message.objects.filter(message_id__startswith="<demo-").count() == 4
    paul_inbox = Entry.objects.filter(mailbox__address="158037511204568@patient.mssante.fr", folder__role="inbox")
    assert paul_inbox.count() == 1
    convocation = paul_inbox.get().message
    assert convocation.mdn_requested_to == "cardiologie@ch-troispics.mssante.fr"
    assert convocation.attachments.get().content_type == "application/pdf"
    # The sender keeps a copy in Sent, as for any message.
    assert (
        Entry.objects.filter(mailbox__address="cardiologie@ch-troispics.mssante.fr", folder__role="sent").count() == 1
    )
