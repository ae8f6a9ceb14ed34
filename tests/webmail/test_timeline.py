"""The delivery timeline of a sent message: submitted, delivered per recipient, returned with
its reason — from the Delivery rows and audit events of the delivery path."""

import pytest
from django.urls import reverse

from mailboxes.models import Entry
from tests.factories import make_ins

pytestmark = pytest.mark.django_db


def test_timeline_per_recipient(cast, client, send):
    unknown = f"{make_ins(seq=777)}@patient.mssante.fr"
    result = send(cast.alice_box, cast.alice, to=[cast.charlie_box.address, unknown], subject="Suivi")
    sent = Entry.objects.get(mailbox=cast.alice_box, message=result.message)
    client.force_login(cast.alice)
    html = client.get(reverse("webmail:message_timeline", args=[sent.pk])).content.decode()
    assert "Soumis" in html
    assert cast.charlie_box.address in html and "distribué" in html
    assert unknown in html
    reason = result.refused[unknown].code
    assert reason  # the delivery path refused the unknown patient with a code
    reading = client.get(reverse("webmail:message", args=[sent.pk])).content.decode()
    assert "Suivi de distribution" in reading


def test_received_message_has_no_timeline(cast, client, received):
    client.force_login(cast.bob)
    html = client.get(reverse("webmail:message", args=[received.pk])).content.decode()
    assert "Suivi de distribution" not in html
