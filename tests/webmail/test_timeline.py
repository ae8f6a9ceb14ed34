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


@pytest.mark.django_db(transaction=True)
def test_a_failed_relay_attempt_shows_its_reason_and_the_next_try(cast, client, settings):
    """Issue 16 item 5: "en attente de relais", "Motif —" said nothing. The relay to another
    operator (a real SMTP sink on 127.0.0.1) answers 451; the sender reads why, and when the
    next attempt is due."""
    from django.utils import timezone
    from django.utils.formats import date_format

    from mailboxes.models import Outbox, TrustedDomain
    from tests.transport.conftest import _sink

    TrustedDomain.objects.create(name="autre-operateur.mssante.fr")
    sinks = _sink(settings)
    sink = next(sinks)
    try:
        settings.RELAY_RETRY_BASE_SECONDS = 900
        sink.handler.data_replies = ["451 4.7.1 Greylisted, please try again later"]
        client.force_login(cast.alice)
        response = client.post(
            reverse("webmail:compose"),
            {
                "sender": cast.alice_box.pk,
                "to": "dr.externe@autre-operateur.mssante.fr",
                "subject": "Compte rendu",
                "body": "Bonjour.",
            },
        )
        assert response.status_code == 302
        outbox = Outbox.objects.get()
        assert (outbox.status, outbox.attempts) == ("pending", 1)
        html = client.get(response["Location"]).content.decode()
    finally:
        sinks.close()
    assert "en attente de relais" in html
    assert (
        "tentative n° 1 échouée : le serveur du destinataire a répondu "
        "« 451 4.7.1 Greylisted, please try again later » (refus temporaire)"
    ) in html.replace("&#x27;", "'").replace("&quot;", '"')
    moment = timezone.localtime(outbox.next_attempt_at)
    assert f"Prochain essai : le {date_format(moment, 'j F Y')} à {moment.hour} h {moment:%M}" in html
    assert "Motif" in html and "<td>—</td>" not in html.split("delivery-states", 1)[1].split("</table>", 1)[0]


def test_relay_errors_read_in_french():
    from webmail.timeline import relay_error_text

    assert relay_error_text("ConnectionRefusedError") == "relais injoignable (ConnectionRefusedError)"
    assert "RELAY_HOST" in relay_error_text("no relay configured (RELAY_HOST)")
    assert "connexion chiffrée" in relay_error_text("SSLCertVerificationError")
    assert relay_error_text("") == "raison inconnue"


def test_the_webmail_and_the_api_read_one_history(cast, send):
    """mailboxes.delivery.history: each event tied to the recipient it concerns, the same for
    the webmail's timeline and the API's status. An event of the sender's box that names no
    delivery (here a relay step) is not the sender's own delivery when she wrote to herself
    too; someone opening the message is not a read receipt."""
    from api.views import message_status
    from audit.events import record
    from audit.models import AuditEvent
    from mailboxes.delivery import message_history
    from webmail.timeline import timeline

    result = send(cast.alice_box, cast.alice, to=[cast.alice_box.address, cast.charlie_box.address], subject="Suivi")
    message = result.message
    record(AuditEvent.Action.RELAYED, actor_label="system", message_id=message.pk, mailbox_id=cast.alice_box.pk)
    record(AuditEvent.Action.READ, actor=cast.charlie, message_id=message.pk, mailbox_id=cast.charlie_box.pk)
    history = message_history(message, [AuditEvent.Action.DELIVERED, AuditEvent.Action.RELAYED])
    delivered = {i.delivery.address for i in history.events if i.event.action == AuditEvent.Action.DELIVERED}
    assert delivered == {cast.alice_box.address, cast.charlie_box.address}
    [relayed] = [i for i in history.events if i.event.action == AuditEvent.Action.RELAYED]
    assert relayed.delivery is None
    assert not [i for i in history.events if i.event.action == AuditEvent.Action.READ]

    status = {r["address"]: [step["event"] for step in r["timeline"]] for r in message_status(message)["recipients"]}
    assert status == {
        cast.alice_box.address: ["submitted", "delivered"],
        cast.charlie_box.address: ["submitted", "delivered"],
    }
    sent = Entry.objects.filter(mailbox=cast.alice_box, message=message).first()
    steps = timeline(sent)["steps"]
    assert sorted(s.recipients for s in steps if s.label == "Distribué") == sorted(status)
    assert not [s for s in steps if s.label.startswith("Lu")]
