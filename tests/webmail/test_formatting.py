"""Formatted writing (issue 16 item 18): the editor's HTML is cleaned with nh3 like received HTML
and sent as multipart/alternative with a plain-text part derived from it; without HTML (no
script) the message stays plain text."""

from email import policy
from email.parser import BytesParser

import pytest
from django.urls import reverse

from mailboxes.formatting import composed_bodies, text_from_html
from mailboxes.models import Entry, Message
from mailboxes.store import read_raw

pytestmark = pytest.mark.django_db

WORD_LIKE = (
    '<html xmlns:o="urn:schemas-microsoft-com:office:office"><head><style>p.MsoNormal{color:red}</style>'
    '<script>alert("x")</script></head><body><p class="MsoNormal" style="margin:0cm;font-family:Calibri">'
    "Bonjour <b>Dr Durand</b>,<o:p></o:p></p><ul><li>ECG normal</li><li>Écho à prévoir</li></ul>"
    '<p>Voir <a href="https://www.has-sante.fr/fiche" onclick="steal()">la fiche HAS</a>'
    ' et <a href="javascript:alert(1)">ceci</a>.</p><img src="https://tracker.example/p.gif"></body></html>'
)


def test_text_part_keeps_every_word_item_and_link():
    text = text_from_html(
        "<div>Bonjour <b>Dr Durand</b>,</div><div><br></div><ol><li>ECG</li><li>Écho</li></ol>"
        '<div>Voir <a href="https://www.has-sante.fr/fiche">la fiche</a>.</div><blockquote>cité</blockquote>'
    )
    assert text == "Bonjour Dr Durand,\n\n1. ECG\n2. Écho\nVoir la fiche <https://www.has-sante.fr/fiche>.\n> cité"


def test_signature_separator_keeps_its_space():
    assert text_from_html("<div>Merci.</div><div>-- </div><div>Dr Alice MARTIN</div>") == "Merci.\n-- \nDr Alice MARTIN"


def test_html_is_cleaned_like_received_html():
    text, html = composed_bodies("ignored", WORD_LIKE)
    for dropped in ("<script", "alert", "style=", "class=", "onclick", "javascript:", "<style", "MsoNormal", "<o:p"):
        assert dropped not in html, dropped
    assert "<b>Dr Durand</b>" in html and "<li>ECG normal</li>" in html
    assert 'href="https://www.has-sante.fr/fiche"' in html
    assert text.startswith("Bonjour Dr Durand,")
    assert "- Écho à prévoir" in text and "la fiche HAS <https://www.has-sante.fr/fiche>" in text


def test_without_html_the_text_goes_alone():
    assert composed_bodies("Bonjour", "") == ("Bonjour", None)
    assert composed_bodies("Bonjour", "<script>x</script>") == ("Bonjour", None)


def parts_of(message):
    parsed = BytesParser(policy=policy.default).parsebytes(read_raw(message))
    return parsed, {part.get_content_type(): part.get_content() for part in parsed.walk() if not part.is_multipart()}


def test_compose_with_html_sends_multipart_alternative(cast, client):
    client.force_login(cast.alice)
    response = client.post(
        reverse("webmail:compose"),
        {
            "sender": cast.alice_box.pk,
            "to": cast.charlie_box.address,
            "subject": "Avis formaté",
            "body": "texte du navigateur (remplacé par celui tiré du HTML)",
            "body_html": WORD_LIKE,
        },
    )
    assert response.status_code == 302
    message = Message.objects.get(subject="Avis formaté")
    parsed, parts = parts_of(message)
    assert parsed.get_content_type() == "multipart/alternative"
    assert "<b>Dr Durand</b>" in parts["text/html"] and "<script" not in parts["text/html"]
    assert "- ECG normal" in parts["text/plain"]
    assert message.html_body and "Dr Durand" in message.text_body
    assert Entry.objects.filter(mailbox=cast.charlie_box, message=message).exists()


def test_draft_keeps_the_formatting(cast, client):
    client.force_login(cast.alice)
    html = "<div>À <i>relire</i></div><ul><li>point 1</li></ul>"
    saved = client.post(
        reverse("webmail:draft_save"),
        {"sender": cast.alice_box.pk, "subject": "Brouillon formaté", "body": "", "body_html": html},
    ).json()
    page = client.get(reverse("webmail:compose"), {"brouillon": saved["draft"]})
    assert page.context["form"].initial["body_html"].strip() == html
    assert "point 1" in page.context["form"].initial["body"]
