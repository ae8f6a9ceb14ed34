"""Every change the functional administrator makes in the admin leaves an audit event (RULES.md
§5): an addition, a change, a deletion, and each custom action of every registered admin. The
event names the administrator, the object type and id and what kind of change it was, never a
value typed in the form."""

import pytest
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Group
from django.urls import reverse

from audit.models import AuditEvent
from mailboxes.models import TrustedDomain
from patients.models import Block
from tests.foundation.test_admin_crawl import admin_url, one_of_everything, registered_models

pytestmark = pytest.mark.django_db

DETAIL_KEYS = {"change", "fields", "action"}


@pytest.fixture
def admin_client(client, cast):
    client.force_login(cast.ada)
    return client


def admin_events(**filters):
    return AuditEvent.objects.filter(action=AuditEvent.Action.ADMIN_CHANGE, **filters)


def test_adding_in_the_admin_is_audited(admin_client, cast):
    response = admin_client.post(
        reverse("admin:mailboxes_trusteddomain_add"), {"name": "partenaire.mssante.fr", "source": "manual"}
    )
    assert response.status_code == 302
    domain = TrustedDomain.objects.get(name="partenaire.mssante.fr")
    event = admin_events(object_type="trusteddomain").get()
    assert event.actor == cast.ada and event.object_id == str(domain.pk)
    assert event.detail == {"change": "added"}


def test_changing_in_the_admin_is_audited_with_field_names_only(admin_client, cast):
    group = Group.objects.create(name="Secrétariat")
    response = admin_client.post(reverse("admin:auth_group_change", args=[group.pk]), {"name": "Secrétariat médical"})
    assert response.status_code == 302
    event = admin_events(object_type="group").get()
    assert event.actor == cast.ada and event.object_id == str(group.pk)
    assert event.detail == {"change": "changed", "fields": ["Nom"]}
    assert "médical" not in str(event.detail)


def test_deleting_in_the_admin_is_audited_without_the_patient(admin_client, cast):
    block = Block.objects.create(patient=cast.paul_patient, mailbox=cast.cardio)
    response = admin_client.post(reverse("admin:patients_block_delete", args=[block.pk]), {"post": "yes"})
    assert response.status_code == 302 and not Block.objects.filter(pk=block.pk).exists()
    event = admin_events(object_type="block").get()
    assert event.actor == cast.ada and event.object_id == str(block.pk)
    assert event.detail == {"change": "deleted"}
    assert cast.paul_patient.ins not in str(event.detail) and "Lambert" not in str(event.detail)
    page = admin_client.get(reverse("admin:audit_auditevent_change", args=[event.pk])).content.decode()
    assert "modification : suppression" in page and ">blocage<" in page


def test_every_admin_action_is_audited(admin_client, cast, rf):
    """Each custom action of every registered admin, on one object: at least one event by the
    administrator about that object (through `log_change`, or the event of the function the
    action calls). Deleting a selection is `test_admin.py`'s."""
    one_of_everything(cast)
    request = rf.get("/admin/")
    request.user = cast.ada
    silent = []
    for model in registered_models():
        model_admin = admin.site.get_model_admin(model)
        obj = model_admin.get_queryset(request).order_by("pk").first()
        for name in model_admin.get_actions(request):
            if name == "delete_selected":
                continue
            latest = AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
            response = admin_client.post(
                admin_url(model, "changelist"), {"action": name, ACTION_CHECKBOX_NAME: [obj.pk], "index": 0}
            )
            assert response.status_code == 302, (model._meta.label, name)
            new = AuditEvent.objects.filter(pk__gt=latest, actor=cast.ada)
            about = [e for e in new if e.object_id == str(obj.pk) or e.mailbox_id == obj.pk]
            if not about:
                silent.append(f"{model._meta.label}: {name}")
            for event in about:
                assert set(event.detail) <= DETAIL_KEYS, event.detail
    assert silent == []
