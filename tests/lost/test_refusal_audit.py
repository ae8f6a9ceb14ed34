"""Refusals are recorded whatever the caller does (issue 15 item 15): the patient's composer wraps
the send in a transaction that a refusal rolls back; the refusal's audit event stays."""

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from mailboxes.models import Mailbox
from tests.patients.conftest import _real_policy, inbox_of, pro_send  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_refused_reply_from_the_patient_page_leaves_its_audit_event(cast, client):
    sent = pro_send(cast.alice_box, cast.alice, cast.paul_patient.address).message
    entry = inbox_of(cast.paul_box).get(message=sent)
    Mailbox.objects.filter(pk=cast.alice_box.pk).update(quota_bytes=0)  # the doctor's box is full
    client.force_login(cast.paul)
    response = client.post(reverse("patients:reply", args=[entry.pk]), {"text": "Merci, bien reçu."})
    assert response.status_code == 400
    assert "Votre texte est conservé" in response.content.decode()
    assert inbox_of(cast.alice_box).count() == 0
    refused = AuditEvent.objects.filter(action=AuditEvent.Action.REFUSED, actor=cast.paul)
    assert [(e.outcome, e.detail["source"]) for e in refused] == [("over_quota", "patient")]
    # The trail stays a valid chain with the event written after the rollback.
    from audit.chain import verify

    assert verify().breaks == []
