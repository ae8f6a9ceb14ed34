"""The audit trail in the admin: ids stored, names and addresses shown, French headers, filters,
the data-protection officer's CSV export (itself audited)."""

import csv
import io
from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from audit.events import record
from audit.models import AuditEvent

CHANGELIST = "admin:audit_auditevent_changelist"


def events(cast):
    read = record(AuditEvent.Action.READ, actor=cast.alice, mailbox_id=cast.alice_box.pk, message_id=4242, object_id=7)
    sent = record(AuditEvent.Action.SUBMITTED, actor=cast.bob, mailbox_id=cast.cardio.pk, message_id=99)
    old = record(
        AuditEvent.Action.READ,
        actor_label="smtp",
        mailbox_id=cast.charlie_box.pk,
        message_id=5,
        at=timezone.now() - timedelta(days=20),
    )
    return read, sent, old


def test_rows_show_names_and_addresses_resolved_at_display_time(admin_client, cast):
    read, _sent, _old = events(cast)
    page = admin_client.get(reverse(CHANGELIST)).content.decode()
    for header in ("Date et heure", "Action", "Auteur", "Boîte aux lettres", "Message", "Résultat", "Adresse IP"):
        assert header in page
    assert "Alice Martin (alice)" in page and cast.alice_box.address in page and "message lu" in page
    assert "Leroy (bob)" in page and cast.cardio.address in page
    # The stored row holds ids only.
    stored = AuditEvent.objects.filter(pk=read.pk).values().get()
    assert cast.alice_box.address not in str(stored) and "Martin" not in str(stored)


def test_filters_by_actor_box_message_action_and_dates(admin_client, cast):
    read, sent, old = events(cast)

    def listed(**params):
        return set(admin_client.get(reverse(CHANGELIST), params).context["cl"].result_list)

    assert listed(auteur="alice") == {read}
    assert listed(auteur="smtp") == {old}
    assert listed(boite=cast.cardio.address) == {sent}
    assert listed(boite=str(cast.charlie_box.pk)) == {old}
    assert listed(boite="personne@nulle-part.mssante.fr") == set()
    assert listed(message="4242") == {read}
    assert listed(action="message.submitted") == {sent}
    since = (timezone.localdate() - timedelta(days=1)).isoformat()
    assert listed(du=since, action="message.read") == {read}
    assert listed(au=(timezone.localdate() - timedelta(days=10)).isoformat()) == {old}


def test_the_export_holds_the_filtered_rows_with_hashes_and_is_itself_audited(admin_client, cast):
    read, sent, _old = events(cast)
    response = admin_client.get(reverse("admin:audit_auditevent_export"), {"action": "message.read", "auteur": "alice"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text), delimiter=";"))
    assert [r["numéro"] for r in rows] == [str(read.pk)]
    assert rows[0]["adresse de la BAL"] == cast.alice_box.address and rows[0]["empreinte"] == read.hash
    assert rows[0]["auteur"] == "Alice Martin (alice)"
    export = AuditEvent.objects.get(action=AuditEvent.Action.AUDIT_EXPORTED)
    assert export.actor.is_superuser and export.detail == {"filters": ["action", "auteur"], "rows": 1}
    assert export.ip == "127.0.0.1"


def test_the_export_is_for_administrators_only(client, cast, password):
    client.login(username="alice", password=password)
    response = client.get(reverse("admin:audit_auditevent_export"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.AUDIT_EXPORTED).exists()


def test_seals_are_listed_read_only(admin_client, cast):
    from audit.chain import seal_closed_days

    record(AuditEvent.Action.READ, at=timezone.now() - timedelta(days=2))
    seal_closed_days()
    page = admin_client.get(reverse("admin:audit_auditseal_changelist")).content.decode()
    assert "Jour" in page and "Empreinte" in page
    assert admin_client.get(reverse("admin:audit_auditseal_add")).status_code == 403
