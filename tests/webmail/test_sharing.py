"""Shared organisational boxes: claim, assign to a member, done; visible to every member;
each action leaves an audit event."""

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from mailboxes.models import Entry

pytestmark = pytest.mark.django_db


def act(client, entry, action, **data):
    return client.post(reverse("webmail:message_action", args=[entry.pk]), {"action": action, **data}, follow=True)


def test_claim_assign_done_visible_to_all_members(cast, client, received):
    client.force_login(cast.bob)
    act(client, received, "claim")
    received.refresh_from_db()
    assert received.assigned_to == cast.bob

    client.force_login(cast.alice)
    html = client.get(reverse("webmail:message", args=[received.pk])).content.decode()
    assert "Attribué à Bob Leroy" in html
    act(client, received, "assign", assignee=cast.alice.pk)
    received.refresh_from_db()
    assert received.assigned_to == cast.alice
    act(client, received, "done")
    received.refresh_from_db()
    assert received.done_at is not None and received.done_by == cast.alice

    client.force_login(cast.bob)
    inbox_html = client.get(reverse("webmail:mailbox", args=[cast.cardio.pk]), follow=True).content.decode()
    assert "traité" in inbox_html and "→ Alice" in inbox_html
    act(client, received, "undone")
    received.refresh_from_db()
    assert received.done_at is None

    actions = list(
        AuditEvent.objects.filter(
            message_id=received.message_id, action__in=[AuditEvent.Action.ASSIGNED, AuditEvent.Action.DONE]
        )
        .values_list("actor__username", "action", "detail")
        .order_by("id")
    )
    assert actions == [
        ("bob", AuditEvent.Action.ASSIGNED, {"assigned_to": cast.bob.pk}),
        ("alice", AuditEvent.Action.ASSIGNED, {"assigned_to": cast.alice.pk}),
        ("alice", AuditEvent.Action.DONE, {}),
        ("bob", AuditEvent.Action.DONE, {}),
    ]


def test_assigning_to_a_non_member_is_refused(cast, client, received):
    client.force_login(cast.alice)
    response = act(client, received, "assign", assignee=cast.charlie.pk)
    assert "Choisissez un membre" in response.content.decode()
    received.refresh_from_db()
    assert received.assigned_to is None


def test_nominative_box_has_no_assignment(cast, client, send):
    result = send(cast.charlie_box, cast.charlie, to=[cast.alice_box.address])
    entry = Entry.objects.get(mailbox=cast.alice_box, message=result.message)
    client.force_login(cast.alice)
    response = act(client, entry, "claim")
    assert "boîte partagée" in response.content.decode()
    entry.refresh_from_db()
    assert entry.assigned_to is None
