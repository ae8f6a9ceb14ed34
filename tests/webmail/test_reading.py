"""The reading pane: sandboxed HTML with its own CSP, headers on demand, attachments with sizes,
print, the `.eml` link, and the "opened" audit event."""

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from mailboxes.models import EntryView, Message

pytestmark = pytest.mark.django_db

HOSTILE = (
    '<p>Bonjour</p><script>fetch("http://127.0.0.1:9/x")</script>'
    '<img src="http://127.0.0.1:9/pixel.png" onerror="alert(1)">'
    '<a href="javascript:alert(2)">clic</a>'
)


def test_reading_pane_shows_message_attachments_and_links(cast, client, received):
    client.force_login(cast.bob)
    response = client.get(reverse("webmail:message", args=[received.pk]))
    html = response.content.decode()
    assert "Adressage de M. Lambert" in html
    assert "je vous adresse M. Lambert" in html
    assert "courrier-adressage.pdf" in html
    assert "2,0\xa0Ko" in html
    assert reverse("mailboxes:message_eml", args=[received.pk]) in html
    assert reverse("webmail:message_print", args=[received.pk]) in html
    assert "?inline=1" in html  # PDF preview


def test_opening_records_who_read_it(cast, client, received):
    client.force_login(cast.bob)
    client.get(reverse("webmail:message", args=[received.pk]))
    assert EntryView.objects.filter(entry=received, user=cast.bob).exists()
    event = AuditEvent.objects.get(action=AuditEvent.Action.READ, actor=cast.bob)
    assert event.message_id == received.message_id and event.mailbox_id == cast.cardio.pk
    client.force_login(cast.alice)
    html = client.get(reverse("webmail:message", args=[received.pk])).content.decode()
    assert "Bob Leroy" in html  # Alice sees that Bob read it


def test_html_body_goes_in_a_sandboxed_frame_with_a_strict_policy(cast, client, send):
    result = send(cast.charlie_box, cast.charlie, to=[cast.alice_box.address], subject="HTML", html=HOSTILE)
    entry = result.message.entries.get(mailbox=cast.alice_box)
    client.force_login(cast.alice)
    page = client.get(reverse("webmail:message", args=[entry.pk])).content.decode()
    assert 'sandbox="allow-popups allow-popups-to-escape-sandbox"' in page
    assert "allow-scripts" not in page and "allow-same-origin" not in page
    assert "<script>fetch" not in page  # the body is not in the page itself
    body = client.get(reverse("webmail:message_body", args=[entry.pk]))
    csp = body["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "img-src data:;" in csp and "script-src" not in csp
    assert body["X-Frame-Options"] == "SAMEORIGIN"
    content = body.content.decode()
    assert "<script" not in content and "onerror" not in content and "javascript:" not in content
    with_images = client.get(reverse("webmail:message_body", args=[entry.pk]), {"images": "1"})
    assert "img-src data: https: http:" in with_images["Content-Security-Policy"]


def test_headers_on_demand_and_print(cast, client, received):
    client.force_login(cast.bob)
    html = client.get(reverse("webmail:message_headers", args=[received.pk])).content.decode()
    assert "Message-ID" in html and received.message.message_id.strip("<>") in html
    partial = client.get(reverse("webmail:message_headers", args=[received.pk]), HTTP_HX_REQUEST="true")
    assert b"<html" not in partial.content and b"Message-ID" in partial.content
    printed = client.get(reverse("webmail:message_print", args=[received.pk])).content.decode()
    assert "je vous adresse M. Lambert" in printed and "data-print" in printed


def test_text_body_is_escaped(cast, client, send):
    result = send(cast.charlie_box, cast.charlie, to=[cast.alice_box.address], text="<b>gras</b> <script>x</script>")
    entry = result.message.entries.get(mailbox=cast.alice_box)
    client.force_login(cast.alice)
    html = client.get(reverse("webmail:message", args=[entry.pk])).content.decode()
    assert "&lt;script&gt;x&lt;/script&gt;" in html


def test_patient_sender_is_shown_with_their_name(cast, client, received):
    message = received.message
    Message.objects.filter(pk=message.pk).update(from_address=cast.paul_patient.address, from_name="")
    client.force_login(cast.bob)
    html = client.get(reverse("webmail:message", args=[received.pk])).content.decode()
    assert "Paul LAMBERT" in html and cast.paul_patient.address in html


OTHER_OPERATOR = "autre-operateur.mssante.fr"
SOFTWARE = f"envois-auto@{OTHER_OPERATOR}"
REPLY_TO_LINE = "<dt>Répondre à</dt>"


@pytest.fixture
def from_software(cast):
    """received(reply_to=None, from_name="CH Externe") -> the entry, in Alice's inbox, of a
    message that an applicative box of another operator sent through the SMTP path."""
    from mailboxes.delivery import send_message
    from mailboxes.models import TrustedDomain
    from tests.patients.conftest import raw_from

    TrustedDomain.objects.create(name=OTHER_OPERATOR)

    def received(reply_to=None, from_name="CH Externe"):
        headers = {"Reply-To": reply_to} if reply_to else {}
        raw = raw_from(SOFTWARE, cast.alice_box.address, from_name=from_name, headers=headers)
        to = [cast.alice_box.address]
        message = send_message(raw, envelope_from=SOFTWARE, envelope_to=to, source="smtp").message
        return message.entries.get(mailbox=cast.alice_box)

    return received


def reading_pane(client, entry) -> str:
    return client.get(reverse("webmail:message", args=[entry.pk])).content.decode()


def test_a_reply_to_that_names_someone_else_is_shown_under_the_sender(cast, client, from_software):
    """Like Thunderbird and Roundcube: « Répondre à » when the message asks replies elsewhere."""
    entry = from_software(f"Secrétariat de cardiologie <secretariat@{OTHER_OPERATOR}>")
    client.force_login(cast.alice)
    html = reading_pane(client, entry)
    sender = html.index("<dt>De</dt>")
    line = html.index(
        f"{REPLY_TO_LINE}<dd><strong>Secrétariat de cardiologie</strong> &lt;secretariat@{OTHER_OPERATOR}&gt;</dd>"
    )
    assert sender < line < html.index("<dt>Date</dt>")


def test_the_printed_message_shows_the_reply_to_too(cast, client, from_software):
    """What is printed and filed on paper says where replies go, as the screen does."""
    client.force_login(cast.alice)
    asked = from_software(f"Secrétariat <secretariat@{OTHER_OPERATOR}>")
    printed = client.get(reverse("webmail:message_print", args=[asked.pk])).content.decode()
    assert f"{REPLY_TO_LINE}<dd>Secrétariat &lt;secretariat@{OTHER_OPERATOR}&gt;</dd>" in printed
    plain = client.get(reverse("webmail:message_print", args=[from_software().pk])).content.decode()
    assert "<dt>De</dt>" in plain and REPLY_TO_LINE not in plain


def test_no_reply_to_line_without_one_or_when_it_is_the_sender(cast, client, received, from_software):
    client.force_login(cast.alice)
    assert REPLY_TO_LINE not in reading_pane(client, from_software())
    assert REPLY_TO_LINE not in reading_pane(client, from_software(f"Envois <{SOFTWARE.upper()}>"))
    client.force_login(cast.bob)
    assert REPLY_TO_LINE not in reading_pane(client, received)


def test_the_reply_to_line_is_text_never_markup(cast, client, from_software):
    """The address of `Reply-To:`, however odd, and its display name (mailboxes 0011) are escaped
    like the sender's name; a name that looks like an address or markup is not shown at all
    (`display_name`: it could pass for another address)."""
    hostile = from_software(f'"<script>alert(1)</script>"@{OTHER_OPERATOR}', from_name='"Dr \\"Jo\\" & Cie"')
    named = from_software(f'"Secrétariat \\"Cardio\\" <b>gras</b>" <secretariat@{OTHER_OPERATOR}>')
    quoted = from_software(f'"Secrétariat \\"Cardio\\" & Cie" <secretariat@{OTHER_OPERATOR}>')
    client.force_login(cast.alice)
    html = reading_pane(client, hostile)
    assert f"{REPLY_TO_LINE}<dd>&lt;&quot;&lt;script&gt;alert(1)&lt;/script&gt;&quot;@{OTHER_OPERATOR}&gt;</dd>" in html
    assert "<script>alert(1)" not in html
    assert "<strong>Dr &quot;Jo&quot; &amp; Cie</strong>" in html
    html = reading_pane(client, named)
    assert f"{REPLY_TO_LINE}<dd>&lt;secretariat@{OTHER_OPERATOR}&gt;</dd>" in html
    assert "<b>gras</b>" not in html
    html = reading_pane(client, quoted)
    expected = "<strong>Secrétariat &quot;Cardio&quot; &amp; Cie</strong>"
    assert f"{REPLY_TO_LINE}<dd>{expected} &lt;secretariat@{OTHER_OPERATOR}&gt;</dd>" in html
