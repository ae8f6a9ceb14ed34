"""A hospital secretary's whole working session on the automation pages, in Chromium at a desk's
1366 px and a phone's 375 px: create a model, send a convocation, upload a list with faults and
read its check, start, pause, resume, and read the report. On every page: nothing scrolls
sideways, and what the page says is French."""

import re

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from automation import campaign_sending, campaigns
from automation.models import Campaign, Convocation, MessageModel
from tests.automation.conftest import in_days, patients, service  # noqa: F401 - fixture
from tests.automation.test_campaigns import to_csv
from tests.e2e.test_automation_phone import focus_by_tab
from tests.e2e.test_patient_layout import OVERFLOW_JS
from tests.factories import make_patient

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SENTENCE = re.compile(r"^[A-ZÀÂÉÈÊÎÔÛÇ«].*\.$", re.DOTALL)


# Words of a table cell broken over two lines (« Cardiolo|gie »); an address or another token
# longer than 25 characters may break anywhere.
SPLIT_WORDS_JS = """() => {
  const out = [];
  document.querySelectorAll('main table').forEach(table => {
    const walker = document.createTreeWalker(table, NodeFilter.SHOW_TEXT);
    let node;
    while ((node = walker.nextNode())) {
      const words = /\\S+/g;
      let m;
      while ((m = words.exec(node.data))) {
        if (m[0].length > 25) continue;
        const range = document.createRange();
        range.setStart(node, m.index);
        range.setEnd(node, m.index + m[0].length);
        const tops = new Set(Array.from(range.getClientRects()).map(r => Math.round(r.top)));
        if (tops.size > 1) out.push(m[0]);
      }
    }
  });
  return out;
}"""


def _fits(page, seen: dict, name: str) -> None:
    page.wait_for_load_state("networkidle")
    found = page.evaluate(OVERFLOW_JS) + page.evaluate(SPLIT_WORDS_JS)
    if found:
        seen[name] = found


def _create_a_model(page, live_server, service, seen):  # noqa: F811
    page.goto(live_server.url + reverse("automation:index"))
    page.get_by_role("link", name="Nouveau modèle").click()
    _fits(page, seen, "nouveau modèle")
    page.select_option("#id_mailbox", str(service.app.pk))
    page.fill("#id_service", "Cardiologie")
    page.fill("#id_name", "Rappel de bilan")
    page.select_option("#id_kind", MessageModel.Kind.OTHER)
    page.fill("#id_subject", "Votre bilan de contrôle")
    page.fill("#id_body", "Bonjour {{ civilite }} {{ nom_usage }},\nmerci de prendre rendez-vous.\n{{ signature }}")
    page.get_by_role("button", name="Créer le modèle").click()
    expect(page.locator(".flash-success")).to_have_text("Modèle enregistré.")
    _fits(page, seen, "modèle")
    assert MessageModel.objects.filter(name="Rappel de bilan", mailbox=service.app).exists()


def _send_a_convocation(page, live_server, service, seen):  # noqa: F811
    page.goto(live_server.url + reverse("automation:index"))
    page.get_by_role("link", name="Nouvelle convocation").click()
    _fits(page, seen, "nouvelle convocation")
    page.select_option("#id_model", label=f"Cardiologie — Convocation ({service.app.address})")
    page.fill("#id_ins", service.cast.paul_patient.ins)
    page.fill("#id_date", in_days(15).date().isoformat())
    page.fill("#id_time", "10:30")
    page.fill("#id_lieu", "Hôpital de jour, bâtiment B")
    page.get_by_role("button", name="Envoyer la convocation").click()
    expect(page.locator(".flash-success")).to_have_text("Convocation envoyée avec son invitation agenda.")
    _fits(page, seen, "convocation")
    assert Convocation.objects.filter(patient=service.cast.paul_patient).count() == 1


def _upload_a_list_with_faults(page, live_server, service, seen):  # noqa: F811
    people = patients(3, prefix="Liste")
    closed = make_patient("Close", "Espace", space_state="closed")
    date = in_days(21).strftime("%d/%m/%Y")
    rows = [[p.ins, date, "09:30", "Hall B"] for p in people]
    rows += [
        [people[0].ins[:-2] + f"{(int(people[0].ins[-2:]) + 1) % 97:02d}", date, "09:30", "Hall B"],  # line 5
        ["", date, "09:30", "Hall B"],  # line 6: no INS
        [closed.ins, date, "09:30", "Hall B"],  # line 7: closed space
        [people[1].ins, date, "09:30", "Hall B"],  # line 8: duplicate of line 3
    ]
    data = to_csv(rows, headers=["INS", "Date", "Heure", "Lieu"], encoding="utf-8")
    page.goto(live_server.url + reverse("automation:index"))
    page.get_by_role("link", name="Nouvel envoi à partir d'une liste").click()
    _fits(page, seen, "nouvelle liste")
    page.select_option("#id_model", label=f"Cardiologie — Convocation ({service.app.address})")
    page.set_input_files("#id_file", files=[{"name": "bilans.csv", "mimeType": "text/csv", "buffer": data}])
    page.get_by_role("button", name="Lire la liste").click()
    page.get_by_role("button", name="Vérifier la liste").click()
    expect(page.get_by_test_id("check-summary")).to_be_visible()
    _fits(page, seen, "vérification")
    assert "· 7 lignes · fichier UTF-8 ·" in page.inner_text("body")
    assert page.get_by_test_id("check-summary").inner_text() == "Lignes prêtes à partir : 3 · lignes refusées : 4."
    table = page.get_by_test_id("problems")
    reasons = {}
    for row in table.locator("tbody tr").all():
        number = row.locator("td").first.inner_text()
        cell = row.locator("td").nth(1)
        items = cell.locator("li")
        reasons[number] = [i.inner_text() for i in items.all()] if items.count() else [cell.inner_text()]
    assert sorted(reasons) == ["5", "6", "7", "8"]
    assert reasons["6"] == ["Le matricule INS manque sur cette ligne."]
    assert reasons["8"] == ["Doublon : ce patient figure déjà ligne 3."]
    # One form for every reason of the table: a short sentence, capital first, full stop last.
    assert [r for rs in reasons.values() for r in rs if not SENTENCE.match(r)] == []


def test_a_secretary_works_through_the_automation_pages(service, page, login, live_server, width):  # noqa: F811
    page.set_viewport_size({"width": width, "height": 812})
    login(service.cast.bob.username)
    seen = {}
    page.goto(live_server.url + reverse("automation:index"))
    _fits(page, seen, "accueil")
    _create_a_model(page, live_server, service, seen)
    _send_a_convocation(page, live_server, service, seen)
    _upload_a_list_with_faults(page, live_server, service, seen)

    page.get_by_test_id("start").click()
    expect(page.locator(".flash-success")).to_have_text("Envoi lancé : 3 messages partent en arrière-plan.")
    _fits(page, seen, "envoi")
    page.get_by_role("button", name="Mettre en pause").click()
    expect(page.get_by_test_id("progress")).to_contain_text("En pause.")
    campaign = Campaign.objects.get()
    assert campaign.status == Campaign.Status.PAUSED
    campaign_sending.sweep()  # a paused list sends nothing
    page.reload()
    expect(page.get_by_test_id("progress")).to_contain_text("0 message traité sur 3")
    page.get_by_role("button", name="Reprendre l'envoi").click()
    expect(page.get_by_role("button", name="Mettre en pause")).to_be_visible()
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SENDING
    campaign_sending.sweep()  # the embedded scheduler's run
    # htmx polls the progress; once the list is done the page reloads itself into the report.
    page.get_by_test_id("report-sent").wait_for(timeout=15000)
    _fits(page, seen, "rapport")
    assert page.get_by_test_id("report-sent").inner_text() == "3"
    assert page.get_by_test_id("report-refused").inner_text() == "4"
    assert "7 lignes dans la liste · 4 lignes refusées à la vérification (non envoyées)." in page.inner_text("body")
    assert seen == {}


def test_leaving_the_model_editor_with_unsaved_changes_asks_first(service, page, login, live_server):  # noqa: F811
    """The back link of the model editor dropped a text being written without a word: leaving
    with unsaved changes asks (the browser's « Quitter la page ? »); saving does not."""
    model = service.models[MessageModel.Kind.WELCOME]
    url = live_server.url + reverse("automation:model", args=[model.pk])
    page.set_viewport_size({"width": 1366, "height": 900})
    login(service.cast.bob.username)
    page.goto(url)
    asked = []

    def answer(dialog):
        asked.append(dialog.type)
        dialog.dismiss()

    page.on("dialog", answer)
    page.get_by_role("link", name="← Envois automatisés").click()  # nothing typed: leaves
    expect(page.get_by_role("heading", name="Envois automatisés", exact=True)).to_be_visible()
    assert asked == []
    page.goto(url)
    page.click("#id_body")
    page.keyboard.press("End")
    page.keyboard.type(" Texte en cours.")
    page.get_by_role("link", name="← Envois automatisés").click(no_wait_after=True)
    expect(page.locator("#id_body")).to_have_value(re.compile("Texte en cours."))
    assert asked == ["beforeunload"] and page.url == url
    page.get_by_role("button", name="Enregistrer une nouvelle version").click()
    expect(page.locator(".flash-success")).to_have_text("Modèle enregistré (version 2).")
    assert asked == ["beforeunload"]
    assert "Texte en cours." in model.current.body


@pytest.fixture(params=[1366, 375])
def width(request):
    return request.param


def test_a_list_is_paused_resumed_and_cancelled_by_keyboard_alone(service, page, login, live_server):  # noqa: F811
    """On a phone, by Tab and Enter only: pause, resume, then cancel the rest (asked first)."""
    people = patients(2, prefix="Clavier")
    model = service.models[MessageModel.Kind.CONVOCATION]
    date = in_days(20).strftime("%d/%m/%Y")
    data = to_csv([[p.ins, date, "10:00"] for p in people], headers=["INS", "Date", "Heure"])
    campaign = campaigns.create_campaign(model, filename="clavier.csv", data=data, user=service.cast.bob)
    campaigns.apply_mapping(campaign, {"ins": "INS", "date_rdv": "Date", "heure_rdv": "Heure"}, service.cast.bob)
    campaigns.start(campaign, service.cast.bob)
    page.set_viewport_size({"width": 375, "height": 812})
    login(service.cast.bob.username)
    page.goto(live_server.url + reverse("automation:campaign", args=[campaign.pk]))

    for button, then in (
        ("Mettre en pause", Campaign.Status.PAUSED),
        ("Reprendre l'envoi", Campaign.Status.SENDING),
    ):
        focus_by_tab(page, button)
        with page.expect_navigation():
            page.keyboard.press("Enter")
        campaign.refresh_from_db()
        assert campaign.status == then
    focus_by_tab(page, "Annuler les envois restants")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "2 messages ne sont pas encore partis" in page.get_by_role("alertdialog").inner_text()
    focus_by_tab(page, "Oui, annuler les envois restants", presses=20)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    expect(page.locator(".flash-success")).to_have_text("Envois annulés : 2 messages ne partiront pas.")
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.CANCELLED
