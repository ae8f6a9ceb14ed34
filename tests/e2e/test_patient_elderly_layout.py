"""An elderly patient's pages at 320 px, with the text at 200 %, and with only a keyboard on a
desktop (1366x768), in Chromium: no page scrolls sideways, every control is large enough to tap
(44 px, checkboxes 24 px; the account's security pages too), a file field is whole on screen and
says which files are chosen, every keyboard stop shows a ring that stands out (3:1) in reading
order, and the whole round (read, reply with the medical profile, sign out) works from the keyboard."""

import datetime

import pytest

from health_record.api import save_document
from mailboxes.compose import send_from_mailbox
from tests.e2e.patient_pages import patient_page_urls
from tests.e2e.test_patient_elderly import replies_from_paul, results_from_alice

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


# --- Every page at 320 px, and at 320 px with the text at 200 % -------------------------------

SIDEWAYS_JS = """() => {
  const width = window.innerWidth;
  if (document.documentElement.scrollWidth <= width) return [];
  return Array.from(document.querySelectorAll('main *'))
    .filter(el => el.getBoundingClientRect().right > width + 1 && !el.closest('.visually-hidden'))
    .map(el => el.tagName + ' ' + (el.innerText || '').trim().slice(0, 30));
}"""

# Controls a finger must hit: at least 44 px high, checkboxes at least 24 px; a link inside a
# sentence (a message's text, a paragraph) is exempt (WCAG 2.5.8 "inline").
SMALL_TARGETS_JS = """() => Array.from(document.querySelectorAll(
    'header a, header button, main a, main button, main input:not([type=hidden]), main select, main textarea, main summary'))
  .filter(el => el.offsetParent !== null && !el.closest('.message-body, .visually-hidden, .skip-link'))
  .filter(el => !(el.tagName === 'A' && el.parentElement.tagName === 'P' && !el.classList.contains('btn')
                  && !el.classList.contains('back-link') && el.parentElement.innerText.trim() !== el.innerText.trim()))
  .filter(el => {
    const r = el.getBoundingClientRect();
    const least = el.type === 'checkbox' || el.type === 'radio' ? 24 : 44;
    return r.height < least - 0.5 || r.width < (el.type === 'checkbox' ? 24 : 24) - 0.5;
  })
  .map(el => el.tagName + ' ' + (el.innerText || el.name || '').trim().slice(0, 30) + ' ' + Math.round(el.getBoundingClientRect().height))"""

# A file field (the reply's files, a document for the record): what a finger taps to choose a
# file is whole on the screen. Either the browser's input shows, and then nothing inside it (its
# button, "no file chosen") is cut off, or it is hidden from sight and a label of it, on screen
# and not cut off either, stands in for it (at least 44 px high). Boxes in CSS px.
FILE_PICKER_JS = """() => {
  const width = window.innerWidth;
  const whole = el => {
    const r = el.getBoundingClientRect();
    return r.width > 1 && r.height > 1 && r.left >= -0.5 && r.right <= width + 0.5
      && el.scrollWidth <= el.clientWidth + 1 && el.scrollHeight <= el.clientHeight + 1;
  };
  return Array.from(document.querySelectorAll('main input[type=file]')).flatMap(input => {
    const r = input.getBoundingClientRect();
    if (r.width > 1 && r.height > 1) {
      return whole(input) ? [] : [input.name + ' cut off: ' + Math.round(r.left) + '-' + Math.round(r.right)
        + ' showing ' + input.clientWidth + ' of ' + input.scrollWidth + ' px'];
    }
    const tap = Array.from(input.labels).filter(l => whole(l) && l.getBoundingClientRect().height >= 43.5);
    return tap.length ? [] : [input.name + ' hidden, and no label on screen to tap instead'];
  });
}"""


def patient_pages(cast):
    entry = results_from_alice(cast)
    send_from_mailbox(cast.cardio, cast.bob, to=[cast.paul_patient.address], subject="Rendez-vous", text="Bonjour.")
    document = save_document(
        cast.paul_patient,
        data=PDF,
        filename="compte-rendu.pdf",
        title="Compte rendu de consultation de cardiologie",
        date=datetime.date(2025, 3, 1),
        category="report",
        kind="health",
    )
    attachment = entry.message.attachments.get()
    return [*patient_page_urls(cast, entry, entry, attachment, document), "/dossier/profil/contacts/"]


def test_every_page_fits_320_px_even_with_text_at_200_percent_and_is_easy_to_tap(cast, login, live_server):
    urls = patient_pages(cast)
    page = login(cast.paul.username)
    page.set_viewport_size({"width": 320, "height": 640})
    sideways, small, cut_off = {}, {}, {}
    for url in urls:
        page.goto(live_server.url + url)
        if found := page.evaluate(SIDEWAYS_JS):
            sideways[f"100 % {url}"] = found
        if found := page.evaluate(SMALL_TARGETS_JS):
            small[url] = found
        # Text at 200 % (the browser's text-size setting): the root font size doubles.
        page.evaluate("document.documentElement.style.fontSize = '200%'")
        if found := page.evaluate(SIDEWAYS_JS):
            sideways[f"200 % {url}"] = found
        if found := page.evaluate(FILE_PICKER_JS):
            cut_off[url] = found
    assert sideways == {}
    assert small == {}
    # The file fields are on these pages, and whole at 200 %.
    assert any(url.endswith("/repondre") for url in urls) and "/dossier/documents/ajouter/" in urls
    assert cut_off == {}


def test_at_320_px_and_200_percent_the_file_button_chooses_files_and_says_which(cast, login, live_server):
    entry = results_from_alice(cast)
    page = login(cast.paul.username)
    page.set_viewport_size({"width": 320, "height": 640})
    page.goto(f"{live_server.url}/patient/message/{entry.pk}/repondre")
    page.evaluate("document.documentElement.style.fontSize = '200%'")
    # The input is named by its field's label (a screen reader says what it is for).
    assert page.get_by_label("Fichiers de mon appareil").get_attribute("name") == "files"
    button = page.get_by_test_id("file-button")
    button.scroll_into_view_if_needed()
    box = button.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 320 and box["height"] >= 44, box
    chosen = page.locator("[data-role=file-summary]")
    assert chosen.inner_text() == "Aucun fichier choisi"
    # A tap on the button opens the chooser; the names chosen are written under it.
    with page.expect_file_chooser() as chooser:
        button.click()
    chooser.value.set_files(
        [
            {"name": "ordonnance-du-docteur.pdf", "mimeType": "application/pdf", "buffer": PDF},
            {"name": "carte-vitale.png", "mimeType": "image/png", "buffer": b"\x89PNG\r\n\x1a\n"},
        ]
    )
    assert chosen.inner_text() == "Fichiers choisis : ordonnance-du-docteur.pdf, carte-vitale.png"
    box = chosen.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 320
    # From the keyboard: the input is the stop, its ring shows on the button, Space opens the chooser.
    page.focus("input[name=files]")
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.name") == "files"
    ring = button.evaluate("el => [getComputedStyle(el).outlineStyle, parseFloat(getComputedStyle(el).outlineWidth)]")
    assert ring[0] != "none" and ring[1] >= 2, ring
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Space")
    chooser.value.set_files([{"name": "bilan.pdf", "mimeType": "application/pdf", "buffer": PDF}])
    assert chosen.inner_text() == "Fichier choisi : bilan.pdf"
    # What Chromium gives a screen reader: a button named by both labels, the file as its value,
    # the formats and sizes allowed as its description.
    nodes = page.context.new_cdp_session(page).send("Accessibility.getFullAXTree")["nodes"]
    [field] = [
        (n["name"]["value"], n.get("value", {}).get("value"), n.get("description", {}).get("value", ""))
        for n in nodes
        if n.get("role", {}).get("value") == "button"
        and "Fichiers de mon appareil" in n.get("name", {}).get("value", "")
    ]
    assert field[:2] == ("Fichiers de mon appareil Choisir des fichiers", "bilan.pdf"), field
    assert field[2].startswith("PDF, JPG, PNG, RTF ou TIFF uniquement"), field


# --- Only a keyboard, on a desktop ------------------------------------------------------------

# The focused element, whether its ring shows, and the ring's contrast with the page behind it.
FOCUS_JS = """() => {
  const el = document.activeElement;
  const style = getComputedStyle(el);
  const lum = (rgb) => {
    const [r, g, b] = rgb.match(/\\d+(\\.\\d+)?/g).slice(0, 3).map(Number).map(v => v / 255)
      .map(v => v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4));
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  let back = el.parentElement;
  while (back && getComputedStyle(back).backgroundColor.replace(/\\s/g, '') === 'rgba(0,0,0,0)') back = back.parentElement;
  const behind = back ? getComputedStyle(back).backgroundColor : 'rgb(255, 255, 255)';
  const [hi, lo] = [lum(style.outlineColor), lum(behind)].sort((a, b) => b - a);
  return {
    name: (el.name || el.innerText || el.value || el.id || el.tagName).trim().slice(0, 40),
    ring: style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2,
    contrast: Math.round(((hi + 0.05) / (lo + 0.05)) * 10) / 10,
    top: el.getBoundingClientRect().top + window.scrollY,
  };
}"""


def tab(page):
    page.keyboard.press("Tab")
    return page.evaluate(FOCUS_JS)


def test_with_only_a_keyboard_paul_reads_replies_with_his_profile_and_signs_out(cast, login, live_server, page):
    entry = results_from_alice(cast)
    login(cast.paul.username)
    page.set_viewport_size({"width": 1366, "height": 768})
    page.goto(f"{live_server.url}/patient/")

    # The first stop skips to the content; every stop shows a ring that stands out (≥ 3:1).
    first = tab(page)
    assert first["name"] == "Aller au contenu" and first["ring"]
    stops = [first]
    for _ in range(20):
        stops.append(tab(page))
        if stops[-1]["name"].startswith("Dr Alice MARTIN"):
            break
    assert stops[-1]["name"].startswith("Dr Alice MARTIN"), [s["name"] for s in stops]
    assert [s["name"] for s in stops if not s["ring"] or s["contrast"] < 3] == []
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/patient/echange/{entry.pk}/")

    # On the exchange: the stops go down the page, past the documents, to "Répondre".
    stops = []
    for _ in range(20):
        stops.append(tab(page))
        if stops[-1]["name"] == "Répondre":
            break
    names = [s["name"] for s in stops]
    assert any(n.startswith("Télécharger") and "resultats-bilan.pdf" in n for n in names), names
    assert names[-1] == "Répondre", names
    # Each document's links say which file, and that "Afficher" opens another tab.
    assert page.get_by_role("link", name="Afficher resultats-bilan.pdf (s'ouvre dans un nouvel onglet)").count() == 1
    main_stops = stops[names.index("Mes messages") :]
    assert [s["top"] for s in main_stops] == sorted(s["top"] for s in main_stops)
    assert [s["name"] for s in stops if not s["ring"] or s["contrast"] < 3] == []
    page.keyboard.press("Enter")
    page.wait_for_url("**/repondre")

    # The reply: text, then the profile box (Space ticks it), then the files, then "Envoyer".
    stops = []
    for _ in range(20):
        stops.append(tab(page))
        if stops[-1]["name"] == "text":
            break
    page.keyboard.type("Bonjour Docteur, voici mon profil médical.")
    profile = tab(page)
    assert profile["name"] == "include_profile" and profile["ring"] and profile["contrast"] >= 3
    page.keyboard.press("Space")
    assert page.is_checked("input[name=include_profile]")
    assert tab(page)["name"] == "files"
    send = tab(page)
    assert send["name"] == "Envoyer" and send["ring"] and send["contrast"] >= 3
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/patient/echange/{entry.pk}/")
    [reply] = replies_from_paul(cast)
    assert reply.text_body.strip() == "Bonjour Docteur, voici mon profil médical."
    assert [a.content_type for a in reply.attachments.all()] == ["application/pdf"]

    # Signing out, still from the keyboard: the button is reached and shows its ring.
    for _ in range(15):
        stop = tab(page)
        if stop["name"] == "Se déconnecter":
            break
    assert stop["name"] == "Se déconnecter" and stop["ring"] and stop["contrast"] >= 3
    page.keyboard.press("Enter")
    page.wait_for_url("**/comptes/login/")


def test_the_sign_in_page_is_easy_to_tap_on_a_small_phone(cast, live_server, page, password):
    page.set_viewport_size({"width": 320, "height": 640})
    page.goto(f"{live_server.url}/comptes/login/")
    assert page.evaluate(SIDEWAYS_JS) == []
    assert page.evaluate(SMALL_TARGETS_JS) == []
    page.evaluate("document.documentElement.style.fontSize = '200%'")
    assert page.evaluate(SIDEWAYS_JS) == []
    page.fill("input[name=login]", cast.paul.username)
    page.fill("input[name=password]", password)
    page.get_by_role("button", name="Se connecter").click()
    page.wait_for_url("**/patient/")


def test_the_account_security_pages_are_easy_to_tap_too(cast, login, live_server):
    page = login(cast.paul.username)
    page.set_viewport_size({"width": 320, "height": 640})
    page.goto(f"{live_server.url}/comptes/2fa/")
    heights = page.evaluate(
        "() => Array.from(document.querySelectorAll('header a, header button')).map(el => "
        "[el.innerText.trim(), Math.round(el.getBoundingClientRect().height)])"
    )
    assert [name for name, height in heights if height < 44] == [], heights

    def check(name):
        """The page's controls are 44 px targets; nothing goes sideways, the text at 200 % too."""
        page.wait_for_load_state()
        assert page.evaluate(SMALL_TARGETS_JS) == [], name
        assert page.evaluate(SIDEWAYS_JS) == [], name
        page.evaluate("document.documentElement.style.fontSize = '200%'")
        assert page.evaluate(SIDEWAYS_JS) == [], name
        page.evaluate("document.documentElement.style.fontSize = ''")

    check("second factor off")
    assert page.get_by_role("link", name="Activer").is_visible()
    # With the second factor and the recovery codes: more actions on the page.
    from allauth.mfa.models import Authenticator
    from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes

    Authenticator.objects.create(user=cast.paul, type=Authenticator.Type.TOTP, data={"secret": "JBSWY3DPEHPK3PXP"})
    RecoveryCodes.activate(cast.paul)
    page.goto(f"{live_server.url}/comptes/2fa/")
    check("second factor on")
    # Turning it off asks for the password first: that page too.
    page.get_by_role("link", name="Désactiver").click()
    page.wait_for_url("**/reauthenticate/**")
    check("password asked again")
