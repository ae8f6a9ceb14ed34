"""A patient fills their medical profile, adds measures, sees the chart and downloads the PDF."""

import io
import re

import pypdf
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_patient_fills_profile_adds_measures_and_downloads_the_pdf(cast, login, live_server):
    page = login(cast.paul.username)
    page.goto(f"{live_server.url}/dossier/")
    assert page.get_by_role("heading", name="Mon profil médical", level=1).is_visible()

    # Allergies: one row.
    page.get_by_role("link", name="Modifier : Allergies et intolérances").click()
    page.get_by_label("Substance ou aliment").first.fill("Pénicilline")
    page.get_by_label("Réaction").first.fill("urticaire")
    page.get_by_role("button", name="Enregistrer").click()
    assert "Section « Allergies et intolérances » enregistrée." in page.locator(".flash").inner_text()
    assert "Pénicilline" in page.locator("#section-allergies").inner_text()

    # Trusted person.
    page.get_by_role("link", name="Modifier : Proches et personne de confiance").click()
    page.get_by_label("Nom et prénom").first.fill("Marie Lambert")
    page.get_by_label("Téléphone").first.fill("06 12 34 56 78")
    page.get_by_label("Personne de confiance").first.check()
    page.get_by_role("button", name="Enregistrer").click()
    assert "personne de confiance" in page.locator("#section-contacts").inner_text()

    # Measures: an implausible weight is refused, then three plausible ones.
    page.get_by_role("link", name="Mes mesures").first.click()
    page.get_by_label(re.compile(r"^Mesure")).select_option("weight")
    page.get_by_label(re.compile(r"^Date")).fill("2025-01-10")
    page.get_by_label(re.compile(r"^Valeur")).fill("700")
    page.get_by_role("button", name="Enregistrer la mesure").click()
    assert "n'est pas plausible" in page.locator("main").inner_text()
    for day, value in [("2025-01-10", "84,5"), ("2025-02-10", "83"), ("2025-03-10", "82,2")]:
        page.get_by_label(re.compile(r"^Mesure")).select_option("weight")
        page.get_by_label(re.compile(r"^Date")).fill(day)
        page.get_by_label(re.compile(r"^Valeur")).fill(value)
        page.get_by_role("button", name="Enregistrer la mesure").click()
        assert "Mesure « poids » enregistrée." in page.locator(".flash").inner_text()

    page.get_by_role("link", name="Mon profil médical").click()
    chart = page.locator("svg.measure-chart")
    chart.wait_for()  # the profile page has replaced the measures page (the click returns first)
    assert chart.count() == 1 and chart.is_visible()
    assert page.get_by_role("img", name="poids (kg) au fil du temps").count() == 1
    assert "82,2 kg" in page.locator(".profile-measures").inner_text()

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Télécharger mon profil médical (PDF)").click()
    download = download_info.value
    assert download.suggested_filename == "profil-medical-paul-lambert.pdf"
    data = open(download.path(), "rb").read()
    text = "\n".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(data)).pages).replace("\u00a0", " ")
    assert "Pénicilline" in text and "Marie Lambert" in text and "82,2 kg" in text and cast.paul_patient.ins in text


def test_patient_uploads_and_previews_a_document(cast, login, live_server, tmp_path):
    pdf_file = tmp_path / "compte-rendu.pdf"
    pdf_file.write_bytes(b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n")
    page = login(cast.paul.username)
    page.goto(f"{live_server.url}/dossier/documents/")
    page.get_by_role("link", name="Ajouter un document").click()
    page.get_by_label("Fichier").set_input_files(str(pdf_file))
    page.get_by_label("Titre").fill("Compte rendu de cardiologie")
    page.get_by_label("Date du document").fill("2025-03-01")
    page.get_by_label("Catégorie").select_option("report")
    page.get_by_role("button", name="Ajouter à mon dossier").click()
    page.get_by_role("heading", name="Compte rendu de cardiologie").wait_for()  # the document's page
    assert page.get_by_role("heading", name="Compte rendu de cardiologie").is_visible()
    assert page.locator("iframe[title='Aperçu : Compte rendu de cardiologie']").count() == 1
    page.get_by_role("link", name="Supprimer").click()
    page.get_by_role("button", name="Oui, supprimer le document").click()
    assert "Aucun document de santé" in page.locator("main").inner_text()
