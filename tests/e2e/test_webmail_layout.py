"""Issue 16 item 4 (and the fold of item 13) in Chromium: no page of the professional webmail
scrolls sideways at 1366×768 or on a 375×812 phone — the message page with a patient in the
exchange panel and a delivery tracking table of long addresses included — and, at 768 px high,
the body of a message starts above the fold."""

import pytest

from mailboxes import compose
from mailboxes.models import Entry, Folder, TrustedDomain

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

VIEWPORTS = [(1366, 768), (375, 812)]
WIDTH = """() => {
    const doc = document.documentElement;
    const wide = [...document.querySelectorAll("body *")]
        .filter((el) => el.getBoundingClientRect().right > window.innerWidth + 1 && el.getClientRects().length)
        .slice(0, 5)
        .map((el) => el.tagName + "." + el.className + " " + Math.round(el.getBoundingClientRect().right));
    return {scroll: Math.max(doc.scrollWidth, document.body.scrollWidth), inner: window.innerWidth, wide};
}"""
EXTERNAL = "secretariat.medical.consultations.externes@centre-hospitalier-universitaire-exemple.mssante.fr"


@pytest.fixture
def mail(cast, settings):
    """What the pages show: a referral in the shared box (PDF), a message Alice sent to a
    patient and to a box of another operator still waiting for the relay, a trash, a folder."""
    settings.RELAY_HOST = ""  # the relay attempt fails: "en attente de relais" with its reason
    TrustedDomain.objects.create(name="centre-hospitalier-universitaire-exemple.mssante.fr")
    referral = compose.send_from_mailbox(
        cast.charlie_box,
        cast.charlie,
        to=[cast.cardio.address],
        subject="Adressage de M. Lambert pour échographie cardiaque de contrôle après remplacement valvulaire",
        text="Chère consœur,\nje vous adresse M. Lambert.\n" * 3,
        attachments=[("courrier-d-adressage-cardiologie-lambert-paul.pdf", "application/pdf", b"%PDF-1.4 x")],
    )
    sent = compose.send_from_mailbox(
        cast.alice_box,
        cast.alice,
        to=[cast.paul_patient.address, EXTERNAL],
        subject="Résultats de votre échographie",
        text="Bonjour,\nvos résultats sont normaux.\n",
        request_mdn=True,
    )
    to_trash = compose.send_from_mailbox(
        cast.charlie_box, cast.charlie, to=[cast.alice_box.address], subject="À supprimer", text="x"
    )
    trashed = Entry.objects.get(mailbox=cast.alice_box, message=to_trash.message)
    trashed.folder = cast.alice_box.folder(Folder.Role.TRASH)
    trashed.save()
    folder = Folder.objects.create(
        mailbox=cast.alice_box, role=Folder.Role.USER, name="Dossiers patients", position=100
    )
    return {
        "referral": Entry.objects.get(mailbox=cast.cardio, message=referral.message),
        "sent": Entry.objects.get(mailbox=cast.alice_box, message=sent.message),
        "trashed": trashed,
        "folder": folder,
    }


def webmail_pages(cast, mail):
    alice, cardio = cast.alice_box, cast.cardio
    sent, referral = mail["sent"].pk, mail["referral"].pk
    return [
        "/pro/",
        f"/pro/bal/{cardio.pk}/dossier/{cardio.folder(Folder.Role.INBOX).pk}/",
        f"/pro/bal/{alice.pk}/dossier/{alice.folder(Folder.Role.SENT).pk}/",
        f"/pro/message/{referral}/",
        f"/pro/message/{sent}/",
        f"/pro/message/{sent}/suivi/",
        f"/pro/message/{sent}/entetes/",
        f"/pro/message/{sent}/imprimer/",
        f"/pro/message/{mail['trashed'].pk}/supprimer/",
        f"/pro/bal/{alice.pk}/recherche/",
        f"/pro/bal/{alice.pk}/corbeille/vider/",
        f"/pro/bal/{alice.pk}/dossier/{mail['folder'].pk}/modifier/",
        f"/pro/bal/{alice.pk}/signature/",
        f"/pro/bal/{alice.pk}/absence/",
        f"/pro/bal/{alice.pk}/transfert/",
        f"/pro/bal/{alice.pk}/regles/",
        "/pro/ecrire/",
        f"/pro/ecrire/?reponse={referral}&mode=all",
        "/pro/aide/",
        "/pro/contacts/",
    ]


@pytest.mark.parametrize(("width", "height"), VIEWPORTS)
def test_no_webmail_page_scrolls_sideways(cast, mail, login, live_server, width, height):
    page = login("alice")
    page.set_viewport_size({"width": width, "height": height})
    too_wide = {}
    for path in webmail_pages(cast, mail):
        response = page.goto(f"{live_server.url}{path}")
        assert response.status == 200, path
        measured = page.evaluate(WIDTH)
        if measured["scroll"] > measured["inner"] + 1:
            too_wide[path] = measured
    # Search results too (POSTed, then shown at their token URL).
    page.goto(f"{live_server.url}/pro/bal/{cast.cardio.pk}/")
    page.fill("[data-search]", "Lambert")
    page.keyboard.press("Enter")
    page.wait_for_url("**/recherche/?r=*")
    measured = page.evaluate(WIDTH)
    if measured["scroll"] > measured["inner"] + 1:
        too_wide["search results"] = measured
    assert too_wide == {}


def test_message_body_starts_above_the_fold(cast, mail, login, live_server):
    """At 1366×768 the first lines of the message are visible without scrolling, for a message
    of a shared box and for a sent message with a patient and its tracking."""
    page = login("alice")
    page.set_viewport_size({"width": 1366, "height": 768})
    for entry in (mail["referral"], mail["sent"]):
        page.goto(f"{live_server.url}/pro/message/{entry.pk}/")
        top = page.evaluate("() => document.querySelector('.message-body, .text-body').getBoundingClientRect().top")
        assert top + 3 * 20 < 768, (entry.pk, top)
