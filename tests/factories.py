"""factory-boy factories and number generators that produce valid French identifiers."""

import datetime
import random

import factory
from django.contrib.auth import get_user_model

from mailboxes.identifiers import ins_key, luhn_valid
from mailboxes.models import Domain, Mailbox, Membership, Professional, Structure
from patients.enrolment import enrol_patient

PASSWORD = "motdepasse-de-test-42"


def with_luhn_key(body: str) -> str:
    for digit in "0123456789":
        if luhn_valid(body + digit):
            return body + digit
    raise AssertionError("unreachable")


def make_rpps(seq: int) -> str:
    return with_luhn_key(f"1000{seq:06d}")


def make_finess(seq: int) -> str:
    return with_luhn_key(f"75{seq:06d}")


def make_siren(seq: int) -> str:
    return with_luhn_key(f"8{seq:07d}")


def make_ins(sex: str = "1", year: int = 58, month: int = 3, dept: str = "75", seq: int = 1) -> str:
    body = f"{sex}{year:02d}{month:02d}{dept}{(seq // 1000) % 1000:03d}{seq % 1000:03d}"
    return f"{body}{ins_key(body):02d}"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@exemple.fr")
    password = factory.django.Password(PASSWORD)


class StructureFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Structure

    name = factory.Sequence(lambda n: f"Centre hospitalier n°{n}")
    kind = Structure.Kind.HOSPITAL
    finess = factory.Sequence(lambda n: make_finess(n + 1))


class DomainFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Domain
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"ch-{n}.mssante.fr")
    structure = factory.SubFactory(StructureFactory)


class ProfessionalFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Professional

    user = factory.SubFactory(UserFactory)
    civility = Professional.Civility.DR
    first_name = "Jean"
    last_name = factory.Sequence(lambda n: f"Dupont{n}")
    profession = Professional.Profession.MEDECIN
    rpps = factory.Sequence(lambda n: make_rpps(n + 1))


def nominative_mailbox(professional: Professional, domain: Domain, **kwargs) -> Mailbox:
    from mailboxes.identifiers import ascii_slug

    address = f"{ascii_slug(professional.first_name)}.{ascii_slug(professional.last_name)}@{domain.name}"
    box = Mailbox(
        kind=Mailbox.Kind.NOMINATIVE,
        address=address,
        domain=domain,
        structure=domain.structure,
        owner=professional,
        display_name=professional.display_name,
        **kwargs,
    )
    box.full_clean()
    box.save()
    return box


def organisational_mailbox(local: str, domain: Domain, responsible: Professional, members=(), **kwargs) -> Mailbox:
    box = Mailbox(
        kind=Mailbox.Kind.ORGANISATIONAL,
        address=f"{local}@{domain.name}",
        domain=domain,
        structure=domain.structure,
        responsible=responsible,
        **kwargs,
    )
    box.full_clean()
    box.save()
    for user in members:
        Membership.objects.create(mailbox=box, user=user)
    return box


_ins_seq = iter(range(1, 10**6))


def make_patient(first_names="Paul", birth_name="Lambert", sex="1", user=None, **fields):
    seq = next(_ins_seq)
    ins = make_ins(sex=sex, year=random.randint(30, 99), month=random.randint(1, 12), seq=seq)
    if user is None:
        user = UserFactory(username=f"patient{seq}-{first_names.lower()}")
    return enrol_patient(
        ins=ins,
        user=user,
        first_names=first_names,
        birth_name=birth_name,
        birth_date=datetime.date(1958, 3, 14),
        sex="M" if sex == "1" else "F",
        notification_email=f"{first_names.lower()}.perso@exemple.org",
        **fields,
    )
