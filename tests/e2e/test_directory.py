"""The directory in Chromium: recipient completion in the composer with the keyboard (arrows,
Enter), liste rouge never offered, and the search page at 1366 and 375 px without horizontal
scrolling, driven by the keyboard."""

import re

import pytest

from directory.importer import import_extract
from mailboxes.models import Mailbox
from tests.directory.conftest import row, write_rows

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def directory(tmp_path, cast):
    rows = [
        row(
            address="helene.lefevre@medecin.mssante.fr",
            last="LEFÈVRE",
            first="Hélène",
            demat="O",
            structure="CLINIQUE DU PARC DES ALPES ET DU GRÉSIVAUDAN, SITE NORD-EST",
            specialty=("SM54", "Cardiologie et maladies vasculaires"),
        ),
        row(address="paul.lefevreau@medecin.mssante.fr", last="LEFEVREAU", first="Paul", demat="N"),
        row(
            address="jean-pierre.dartagnan-de-la-tour-montclar@chirurgien-dentiste.mssante.fr",
            last="D'ARTAGNAN",
            first="Jean-Pierre",
            profession=("40", "Chirurgien-Dentiste"),
        ),
    ]
    import_extract(write_rows(tmp_path / "directory.txt", rows))
    Mailbox.objects.filter(pk=cast.charlie_box.pk).update(unlisted=True)


def test_completion_in_the_composer_with_the_keyboard(directory, cast, login, live_server):
    page = login("alice")
    page.goto(f"{live_server.url}/pro/ecrire/")
    to = page.locator("#id_to")
    to.click()
    requests = []
    page.on("request", lambda request: requests.append(request) if "/annuaire/completion/" in request.url else None)
    to.press_sequentially("lefè", delay=30)
    options = page.locator("#to-suggestions [role=option]")
    options.first.wait_for()
    assert options.count() == 2
    assert "Ne souhaite plus de papier" in options.first.inner_text()
    assert "CLINIQUE DU PARC" in options.first.inner_text()
    assert to.get_attribute("aria-expanded") == "true"
    assert all(r.method == "POST" and "lef" not in r.url for r in requests)
    assert len(requests) <= 2  # debounced: not one request per keystroke
    to.press("ArrowDown")
    to.press("ArrowDown")
    assert to.get_attribute("aria-activedescendant") == "id_to-listbox-1"
    to.press("Enter")
    assert to.input_value() == "paul.lefevreau@medecin.mssante.fr, "
    assert page.url.endswith("/pro/ecrire/")  # Enter picked, it did not submit
    assert options.count() == 0
    # The second recipient completes the last part only; liste rouge is never offered.
    to.press_sequentially("durand", delay=30)
    page.wait_for_selector("#to-suggestions p.muted")
    assert cast.charlie_box.address not in page.inner_text("#to-suggestions")
    to.fill("")
    cc = page.locator("#id_cc")
    cc.press_sequentially("service de card", delay=30)
    page.locator("#cc-suggestions [role=option]").first.wait_for()
    cc.press("ArrowDown")
    cc.press("Enter")
    assert cc.input_value() == f"{cast.cardio.address}, "


@pytest.mark.parametrize("width", [1366, 375])
def test_search_page_by_keyboard_without_horizontal_scroll(directory, cast, login, live_server, width):
    page = login("alice")
    page.set_viewport_size({"width": width, "height": 800})
    page.goto(f"{live_server.url}/annuaire/")
    page.keyboard.type("lefevre")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/annuaire/\?r=[\w-]+$"))
    assert "lefevre" not in page.url
    results = page.locator(".directory-result")
    assert results.count() == 2
    assert "Ne souhaite plus de papier" in results.first.inner_text()
    assert "Accepte encore le papier" in results.nth(1).inner_text()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.keyboard.press("/")
    page.keyboard.press("ArrowDown")
    assert page.evaluate("document.activeElement.classList.contains('result-write')")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/pro/ecrire/\?a="))
    assert page.locator("#id_to").input_value() == "paul.lefevreau@medecin.mssante.fr"
    page.goto(f"{live_server.url}/annuaire/")
    page.keyboard.type("dartagnan")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/annuaire/\?r="))
    assert page.locator(".directory-result").count() == 1
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_enter_in_an_open_suggestion_list_never_sends_the_message(directory, cast, login, live_server):
    """A secretary types a name and presses Enter before choosing: the message must not go (nor
    the composer be submitted with a half-typed recipient)."""
    page = login("alice")
    page.goto(f"{live_server.url}/pro/ecrire/")
    page.fill("#id_subject", "Compte rendu")
    # A submission of the composer is seen as it happens: the form's submit event fires during
    # the Enter key's own dispatch, which `press` waits for (no waiting for nothing to happen).
    page.evaluate(
        """() => {
        window.submissions = 0;
        document.getElementById("id_to").form.addEventListener("submit", (event) => {
          window.submissions += 1;
          event.preventDefault();
        });
      }"""
    )
    to = page.locator("#id_to")
    to.press_sequentially("lefè", delay=30)
    page.locator("#to-suggestions [role=option]").first.wait_for()
    to.press("Enter")
    assert page.evaluate("() => window.submissions") == 0
    assert to.input_value() == "lefè"
    assert page.locator("#to-suggestions [role=option]").count() == 2  # still there to choose from
    # No suggestion left (the answer came: nothing matches) and a whole address typed: Enter
    # still does not send the message.
    to.press("Escape")
    to.fill("personne.inconnue@ch-lac.mssante.fr")
    page.locator("#to-suggestions", has_text="Aucune correspondance").wait_for(state="attached")
    to.press("Enter")
    assert page.evaluate("() => window.submissions") == 0
    # What the page does submit is still seen: the form goes when asked.
    page.evaluate("() => document.getElementById('id_to').form.requestSubmit()")
    assert page.evaluate("() => window.submissions") == 1


def test_an_answer_for_an_older_term_is_never_shown_after_a_newer_keystroke(directory, cast, login, live_server):
    """The answer to "lef" arrives after "lefe" was typed but before its own request leaves (the
    pause): it must not be shown (nor picked) as if it answered what the field now says."""
    page = login("alice")
    page.goto(f"{live_server.url}/pro/ecrire/")
    page.evaluate(
        """() => {
        const real = window.fetch;
        window.held = [];
        window.fetch = (url, options) => {
          const body = String(options && options.body);
          const answer = real(url, options);
          if (body !== "q=lef") return answer;
          return new Promise((resolve, reject) => {
            window.held.push(() => answer.then((r) => options.signal && options.signal.aborted
              ? reject(new DOMException("aborted", "AbortError")) : resolve(r), reject));
          });
        };
      }"""
    )
    to = page.locator("#id_to")
    to.press_sequentially("lef", delay=20)
    for _ in range(100):  # the page's CSP forbids wait_for_function's eval: poll instead
        if page.evaluate("() => window.held.length") == 1:
            break
        page.wait_for_timeout(20)
    assert page.evaluate("() => window.held.length") == 1
    shown = page.evaluate(
        """async () => {
        const to = document.getElementById("id_to");
        to.value = "lefe";
        to.dispatchEvent(new Event("input", { bubbles: true }));
        window.held[0]();
        await new Promise((r) => setTimeout(r, 60));  // well inside the 180 ms pause
        return document.querySelectorAll("#to-suggestions [role=option]").length;
      }"""
    )
    assert shown == 0
    page.locator("#to-suggestions [role=option]").first.wait_for()  # then "lefe" is answered
    assert page.locator("#to-suggestions [role=option]").count() == 2


def test_a_screen_reader_hears_one_line_per_answer_not_the_whole_list(directory, cast, login, live_server):
    """What is announced (the live regions' text) at each answer is one short line: how many
    suggestions and how to choose, or "no match"; the list itself is not a live region (it was,
    and every keystroke had the whole list read again), it is read option by option with the
    arrows through `aria-activedescendant`."""
    page = login("alice")
    page.goto(f"{live_server.url}/pro/ecrire/")
    to = page.locator("#id_to")
    status = page.locator("#to-suggestions + [role=status]")
    to.press_sequentially("lefè", delay=30)
    page.locator("#to-suggestions [role=option]").first.wait_for()
    assert status.inner_text() == "2 destinataires proposés, flèches haut et bas pour choisir, Entrée pour ajouter."
    live = page.locator("[aria-live]:has([role=option]), [role=status]:has([role=option])")
    assert live.count() == 0  # no live region holds the options
    assert "to-suggestions" not in (to.get_attribute("aria-describedby") or "")
    to.press("ArrowDown")
    assert page.locator("#" + to.get_attribute("aria-activedescendant")).inner_text().startswith("PER")
    to.fill("")
    to.press_sequentially("durand", delay=30)
    page.locator("#to-suggestions p.muted").wait_for()
    assert status.inner_text() == "Aucune correspondance dans l'annuaire."
