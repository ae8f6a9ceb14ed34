"""A message whose `Reply-To:` names another address, in Chromium at 1366×768 and on a 375×812
phone: the reading pane shows « Répondre à » under the sender, "Répondre" opens the composer
addressed there and says why; neither page scrolls sideways, and at 768 px high the body still
starts above the fold."""

import re

import pytest

from mailboxes.delivery import send_message
from mailboxes.models import Entry, TrustedDomain
from tests.e2e.test_webmail_layout import VIEWPORTS, WIDTH
from tests.patients.conftest import raw_from

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SOFTWARE = "envois-automatiques-noreply@autre-operateur.mssante.fr"
TEAM = "secretariat.cardiologie@autre-operateur.mssante.fr"
NAMED_TEAM = f"Secrétariat de cardiologie <{TEAM}>"  # as shown and proposed, its display name kept


@pytest.fixture
def from_software(cast):
    """A report sent to Alice by an applicative box of another operator, replies asked to its
    secretariat, as it arrives over SMTP."""
    TrustedDomain.objects.create(name="autre-operateur.mssante.fr")
    raw = raw_from(
        SOFTWARE,
        cast.alice_box.address,
        subject="Compte rendu d'échographie",
        body="Bonjour,\nvoici le compte rendu.\n",
        from_name="CH Externe",
        headers={"Reply-To": f"Secrétariat de cardiologie <{TEAM}>"},
    )
    message = send_message(raw, envelope_from=SOFTWARE, envelope_to=[cast.alice_box.address], source="smtp").message
    return Entry.objects.get(mailbox=cast.alice_box, message=message)


@pytest.mark.parametrize(("width", "height"), VIEWPORTS)
def test_reply_to_is_shown_and_the_reply_goes_there(cast, from_software, login, live_server, width, height):
    page = login("alice")
    page.set_viewport_size({"width": width, "height": height})
    page.goto(f"{live_server.url}/pro/message/{from_software.pk}/")
    line = page.locator("dl.meta dt:text-is('Répondre à') + dd")
    assert line.inner_text() == NAMED_TEAM
    assert line.is_visible()
    assert page.locator("dl.meta dt:text-is('De') + dd").inner_text() == f"CH Externe <{SOFTWARE}>"
    measured = page.evaluate(WIDTH)
    assert measured["scroll"] <= measured["inner"] + 1, measured
    if height == 768:  # the extra line keeps the body above the fold (test_webmail_layout)
        top = page.evaluate("() => document.querySelector('.text-body').getBoundingClientRect().top")
        assert top + 3 * 20 < height, top

    page.get_by_role("link", name="Répondre", exact=True).click()
    page.wait_for_url(re.compile(r"/pro/ecrire/\?reponse="))
    assert page.input_value("#id_to") == NAMED_TEAM
    note = page.locator("#to-reply-to")
    assert note.is_visible()
    assert note.inner_text() == (
        f"« Répondre à » : l'expéditeur, {SOFTWARE}, demande que les réponses aillent à {NAMED_TEAM} ; "
        "c'est le destinataire proposé."
    )
    assert "to-reply-to" in page.get_attribute("#id_to", "aria-describedby")
    measured = page.evaluate(WIDTH)
    assert measured["scroll"] <= measured["inner"] + 1, measured
