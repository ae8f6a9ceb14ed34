"""The display name of `Reply-To:` end to end (mailboxes 0011): a message that asks replies to go
to « Secrétariat cardio » shows that name in the reading pane's « Répondre à », proposes it in
the reply's To, and the reply leaves with it; an applicative box's return box, the Reply-To our
composer writes, is shown by its name too. Through the webmail's pages, asserting on their text.
"""

import re
from email import policy
from email.parser import BytesParser

import pytest
from django.urls import reverse

from mailboxes.compose import send_from_mailbox
from mailboxes.delivery import send_message
from mailboxes.models import Entry, Folder, Mailbox, Message, TrustedDomain
from tests.patients.conftest import raw_from

pytestmark = pytest.mark.django_db

OTHER_OPERATOR = "autre-operateur.mssante.fr"
SOFTWARE = f"envois-auto@{OTHER_OPERATOR}"
TEAM = f"secretariat@{OTHER_OPERATOR}"


@pytest.fixture
def asked(cast):
    """Alice's entry of a message from another operator's software whose replies go to a team."""
    TrustedDomain.objects.create(name=OTHER_OPERATOR)
    headers = {"Reply-To": f'"Secrétariat cardio" <{TEAM}>'}
    raw = raw_from(SOFTWARE, cast.alice_box.address, subject="Compte rendu", from_name="CH Externe", headers=headers)
    message = send_message(raw, envelope_from=SOFTWARE, envelope_to=[cast.alice_box.address], source="smtp").message
    return Entry.objects.get(mailbox=cast.alice_box, message=message)


def text_of(html: str) -> str:
    """The page's text, roughly as read on screen: tags dropped, entities of <, > and quotes back."""
    text = re.sub(r"<[^>]+>", " ", html).replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"')
    return " ".join(text.split())


def test_the_reading_pane_and_the_print_show_the_reply_to_name(cast, client, asked):
    client.force_login(cast.alice)
    page = text_of(client.get(reverse("webmail:message", args=[asked.pk])).content.decode())
    assert f"Répondre à Secrétariat cardio <{TEAM}>" in page
    printed = text_of(client.get(reverse("webmail:message_print", args=[asked.pk])).content.decode())
    assert f"Répondre à Secrétariat cardio <{TEAM}>" in printed


def test_the_reply_goes_to_the_named_reply_to_and_leaves_with_its_name(cast, client, asked):
    client.force_login(cast.alice)
    composer = client.get(reverse("webmail:compose"), {"reponse": asked.pk, "mode": "reply"}).content.decode()
    assert f'id="id_to" value="Secrétariat cardio &lt;{TEAM}&gt;"' in composer
    assert f"demande que les réponses aillent à Secrétariat cardio <{TEAM}>" in text_of(composer)
    response = client.post(
        reverse("webmail:compose"),
        {
            "sender": cast.alice_box.pk,
            "to": f"Secrétariat cardio <{TEAM}>",
            "subject": "RE : Compte rendu",
            "body": "Bien reçu.",
            "reply_to": asked.pk,
            "mode": "reply",
        },
    )
    assert response.status_code == 302
    reply = Message.objects.get(subject="RE : Compte rendu")
    assert reply.to == [{"address": TEAM, "name": "Secrétariat cardio"}]
    headers = BytesParser(policy=policy.default).parsebytes(reply.raw.open("rb").read(), headersonly=True)
    assert str(headers["To"]) == f"Secrétariat cardio <{TEAM}>"
    # The sent message's page names the team as the reply was addressed.
    sent = client.get(response["Location"]).content.decode()
    assert f"À Secrétariat cardio <{TEAM}>" in text_of(sent)


def test_a_reply_draft_keeps_the_name(cast, client, asked):
    client.force_login(cast.alice)
    client.post(
        reverse("webmail:compose"),
        {
            "sender": cast.alice_box.pk,
            "to": f"Secrétariat cardio <{TEAM}>",
            "subject": "RE : Compte rendu",
            "body": "À compléter.",
            "reply_to": asked.pk,
            "mode": "reply",
            "action": "draft",
        },
    )
    draft = Entry.objects.get(mailbox=cast.alice_box, is_draft=True)
    reopened = client.get(reverse("webmail:compose"), {"brouillon": draft.pk}).content.decode()
    assert f'id="id_to" value="Secrétariat cardio &lt;{TEAM}&gt;"' in reopened


def test_an_applicative_box_return_box_is_shown_by_its_name(cast, client):
    """The Reply-To our own composer writes (an applicative box's return box, RULES.md §2)."""
    software = Mailbox(
        kind=Mailbox.Kind.APPLICATIVE,
        address="envois_automatiques_noreply@ch-troispics.mssante.fr",
        domain=cast.d_troispics,
        return_mailbox=cast.cardio,
        display_name="CH des Trois Pics — envois automatiques",
    )
    software.full_clean()
    software.save()
    Mailbox.objects.filter(pk=cast.cardio.pk).update(display_name="Secrétariat de cardiologie")
    cast.cardio.refresh_from_db()
    software.return_mailbox = cast.cardio
    result = send_from_mailbox(software, None, to=[cast.alice_box.address], subject="Convocation", text="Bonjour.")
    entry = Entry.objects.get(mailbox=cast.alice_box, message=result.message, folder__role=Folder.Role.INBOX)
    client.force_login(cast.alice)
    page = text_of(client.get(reverse("webmail:message", args=[entry.pk])).content.decode())
    assert f"Répondre à Secrétariat de cardiologie <{cast.cardio.address}>" in page
    composer = client.get(reverse("webmail:compose"), {"reponse": entry.pk, "mode": "reply"}).content.decode()
    assert f'id="id_to" value="Secrétariat de cardiologie &lt;{cast.cardio.address}&gt;"' in composer
