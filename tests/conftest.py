"""The test cast (STYLE.md §7), shared by every test:

- Dr Alice MARTIN, cardiologist at CH des Trois Pics: nominative `alice.martin@`, responsible and
  member of the organisational box `cardiologie@`;
- Bob LEROY, secretary, member of `cardiologie@` (no nominative box);
- Dr Charlie DURAND, GP at Clinique du Lac (another structure): nominative `charlie.durand@`;
- Paul LAMBERT and Pauline ROUX, two patients with active spaces;
- Ada, the administrator (superuser).
"""

from types import SimpleNamespace

import pytest
from django.db import connection

from tests.factories import (
    PASSWORD,
    DomainFactory,
    ProfessionalFactory,
    StructureFactory,
    UserFactory,
    make_patient,
    nominative_mailbox,
    organisational_mailbox,
)


def pytest_report_header(config):
    from django.conf import settings

    db = settings.DATABASES["default"]
    broker = settings.CELERY_BROKER_URL or "none (tasks in process)"
    return [
        f"database: {db['ENGINE'].rsplit('.', 1)[-1]} {db.get('HOST') or ''} {db['NAME']}",
        f"celery broker: {broker}",
    ]


@pytest.fixture(autouse=True)
def _clear_cache():
    # allauth keeps login rate-limit counters in the cache: never let them leak between tests.
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def password():
    return PASSWORD


@pytest.fixture
def cast(db):
    troispics = StructureFactory(name="Centre hospitalier des Trois Pics")
    lac = StructureFactory(name="Clinique du Lac")
    d_troispics = DomainFactory(name="ch-troispics.mssante.fr", structure=troispics)
    d_lac = DomainFactory(name="clinique-du-lac.mssante.fr", structure=lac)

    alice = ProfessionalFactory(
        user=UserFactory(username="alice", first_name="Alice", last_name="Martin"),
        first_name="Alice",
        last_name="Martin",
        structure=troispics,
        specialty="cardiologie",
    )
    charlie = ProfessionalFactory(
        user=UserFactory(username="charlie", first_name="Charlie", last_name="Durand"),
        first_name="Charlie",
        last_name="Durand",
        structure=lac,
    )
    bob_user = UserFactory(username="bob", first_name="Bob", last_name="Leroy")
    alice_box = nominative_mailbox(alice, d_troispics)
    charlie_box = nominative_mailbox(charlie, d_lac)
    cardio = organisational_mailbox(
        "cardiologie",
        d_troispics,
        responsible=alice,
        members=[alice.user, bob_user],
        display_name="Service de cardiologie — CH des Trois Pics",
    )
    paul = make_patient("Paul", "Lambert", sex="1")
    pauline = make_patient("Pauline", "Roux", sex="2")
    ada = UserFactory(username="ada", is_staff=True, is_superuser=True)
    return SimpleNamespace(
        troispics=troispics,
        lac=lac,
        d_troispics=d_troispics,
        d_lac=d_lac,
        alice=alice.user,
        alice_pro=alice,
        alice_box=alice_box,
        bob=bob_user,
        cardio=cardio,
        charlie=charlie.user,
        charlie_pro=charlie,
        charlie_box=charlie_box,
        paul=paul.user,
        paul_patient=paul,
        paul_box=paul.mailbox,
        pauline=pauline.user,
        pauline_patient=pauline,
        pauline_box=pauline.mailbox,
        ada=ada,
    )


@pytest.fixture
def db_vendor(db):
    return connection.vendor
