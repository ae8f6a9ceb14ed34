"""Conversations with patients in the reading pane: the patient's name with the address, the
open/closed state and the "close the conversation" action (the patient side's panel and flow)."""

import pytest
from django.urls import reverse

from mailboxes.models import Entry, Message

pytestmark = pytest.mark.django_db


def test_panel_shows_state_and_closing_sends_fin(cast, client, send):
    result = send(cast.cardio, cast.bob, to=[cast.paul_patient.address], subject="Consignes avant l'examen")
    sent = Entry.objects.get(mailbox=cast.cardio, message=result.message)
    client.force_login(cast.bob)
    url = reverse("webmail:message", args=[sent.pk])
    html = client.get(url).content.decode()
    assert 'data-testid="pro-conversation-panel"' in html
    assert "Paul LAMBERT" in html and cast.paul_patient.address in html
    assert 'data-state="open"' in html

    close_url = reverse("patients:pro_close_conversation", args=[cast.cardio.pk, cast.paul_patient.pk])
    assert close_url in html
    confirm = client.get(close_url, {"next": url})
    assert "[FIN]" in confirm.content.decode()  # asks first
    client.post(close_url, {"next": url, "confirm": "on"})
    fin = Message.objects.get(sender_mailbox=cast.cardio, subject="[FIN]")
    assert [r["address"] for r in fin.to] == [cast.paul_patient.address]
    assert 'data-state="closed"' in client.get(url).content.decode()


def test_no_panel_between_professionals(cast, client, received):
    client.force_login(cast.bob)
    html = client.get(reverse("webmail:message", args=[received.pk])).content.decode()
    assert "pro-conversation-panel" not in html
