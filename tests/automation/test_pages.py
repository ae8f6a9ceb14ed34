"""The automation pages through the Django test client: who reaches what (404 for "not yours"),
the model editor and its preview, a convocation sent, moved and cancelled from its page, the
whole campaign journey, and the patient's upcoming appointments with "add to my calendar"."""

import csv
import html
import io
import re

import icalendar
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from audit.models import AuditEvent
from automation import campaign_sending, convocations, fields
from automation.forms import RescheduleForm
from automation.models import Campaign, Convocation, MessageModel
from mailboxes.models import Entry
from patients import policy
from patients.models import Patient
from tests.automation.conftest import convocation_of_paul, in_days, patients
from tests.factories import make_ins, make_patient

pytestmark = pytest.mark.django_db


def test_only_members_of_the_box_reach_its_models_campaigns_and_convocations(service, client):
    cast = service.cast
    model = service.models[MessageModel.Kind.CONVOCATION]
    convocation = convocations.create_convocation(
        model=model, patient=cast.paul_patient, starts_at=in_days(9), user=cast.bob, values={"lieu": "Hall"}
    )
    urls = [
        reverse("automation:model", args=[model.pk]),
        reverse("automation:convocation", args=[convocation.pk]),
    ]
    client.force_login(cast.bob)
    assert all(client.get(u).status_code == 200 for u in urls)
    for outsider in (cast.charlie, cast.paul):
        client.force_login(outsider)
        assert all(client.get(u).status_code == 404 for u in urls)
        assert client.post(reverse("automation:convocation_cancel", args=[convocation.pk])).status_code == 404
    client.force_login(cast.paul)
    assert client.get(reverse("automation:index")).status_code == 404
    convocation.refresh_from_db()
    assert convocation.status == Convocation.Status.SCHEDULED


def test_model_editor_refuses_unknown_fields_saves_versions_and_previews(service, client):
    cast = service.cast
    model = service.models[MessageModel.Kind.WELCOME]
    client.force_login(cast.bob)
    url = reverse("automation:model", args=[model.pk])
    form = client.get(url).context["form"]
    data = {k: v for k, v in form.initial.items() if v is not None}
    data["body"] = data["body"] + "\nÀ bientôt {{ prenom_patient }}"
    response = client.post(url, data)
    assert response.status_code == 400 and "{{ prenom_patient }}" in response.content.decode()
    data["body"] = data["body"].replace("{{ prenom_patient }}", "{{ prenom }}")
    data["default_lien_portail"] = "https://portail.ch-troispics.example"
    assert client.post(url, data).status_code == 302
    model.refresh_from_db()
    assert model.current.number == 2 and model.defaults["lien_portail"].startswith("https://")
    preview = client.post(
        reverse("automation:model_preview", args=[model.pk]), {"subject": data["subject"], "body": data["body"]}
    ).content.decode()
    assert "Bonjour Mme EXEMPLE" in preview and "portail.ch-troispics.example" in preview
    assert "À bientôt Camille" in preview


def test_a_standing_attachment_chosen_with_a_refused_text_is_named_to_choose_again(service, client):
    """Found in the browser: a model refused for an unknown field came back with its text but
    without the leaflet just chosen, and nothing said so. The page names the file to choose again."""
    cast = service.cast
    client.force_login(cast.bob)
    before = MessageModel.objects.count()
    leaflet = SimpleUploadedFile("consignes à jeun.pdf", b"%PDF-1.4\n%%EOF\n", content_type="application/pdf")
    data = {
        "mailbox": service.app.pk,
        "service": "Cardiologie",
        "name": "Consignes échographie",
        "kind": MessageModel.Kind.PREPARATION,
        "reminder_days": "",
        "subject": "Votre échographie",
        "body": "Bonjour {{ nom }},\nvenez à jeun depuis minuit.",
        "attachments": leaflet,
    }
    response = client.post(reverse("automation:model_create"), data)
    page = html.unescape(response.content.decode())
    assert response.status_code == 400 and "{{ nom }}" in page
    assert "Le fichier « consignes à jeun.pdf » n'a pas été enregistré : choisissez-le de nouveau." in page
    assert "venez à jeun depuis minuit." in page  # the typed text stays
    assert MessageModel.objects.count() == before

    model = service.models[MessageModel.Kind.WELCOME]
    form = client.get(reverse("automation:model", args=[model.pk])).context["form"]
    edit = {k: v for k, v in form.initial.items() if v is not None}
    edit["body"] += "\n{{ inconnu }}"
    edit["attachments"] = [
        SimpleUploadedFile("plan.pdf", b"%PDF-1.4\n%%EOF\n", content_type="application/pdf"),
        SimpleUploadedFile("acces.png", b"\x89PNG\r\n\x1a\n", content_type="image/png"),
    ]
    page = html.unescape(client.post(reverse("automation:model", args=[model.pk]), edit).content.decode())
    assert "Les fichiers « plan.pdf », « acces.png » n'ont pas été enregistrés : choisissez-les de nouveau." in page
    model.refresh_from_db()
    assert model.current.number == 1 and not model.current.attachments.exists()


def test_convocation_page_send_move_cancel(service, client):
    cast = service.cast
    client.force_login(cast.bob)
    model = service.models[MessageModel.Kind.CONVOCATION]
    day = in_days(15)
    response = client.post(
        reverse("automation:convocation_create"),
        {
            "model": model.pk,
            "ins": " ".join([cast.paul_patient.ins[:1], cast.paul_patient.ins[1:]]),
            "date": day.strftime("%Y-%m-%d"),
            "time": "11:45",
            "duration": 45,
            "lieu": "Salle 3",
        },
    )
    convocation = Convocation.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse(
        "automation:convocation", args=[convocation.pk]
    )
    # The first invitation says its state only (the iCalendar SEQUENCE is not the secretary's word).
    assert _state(client, convocation) == "prévue"
    assert convocation.duration_minutes == 45 and convocation.place == "Salle 3"
    moved = in_days(16)
    client.post(
        reverse("automation:convocation", args=[convocation.pk]), {"date": moved.strftime("%Y-%m-%d"), "time": "08:00"}
    )
    convocation.refresh_from_db()
    assert convocation.sequence == 1 and convocation.starts_at.date() == moved.date()
    assert _state(client, convocation) == "prévue (déplacée : mise à jour n° 1 envoyée au patient)"
    # "Annuler le rendez-vous" first asks (the patient will get a cancellation): nothing leaves yet.
    cancel_url = reverse("automation:convocation_cancel", args=[convocation.pk])
    asked = client.post(cancel_url)
    assert asked.status_code == 200 and "Annuler le rendez-vous ?" in asked.content.decode()
    assert "Oui, annuler le rendez-vous" in asked.content.decode()
    convocation.refresh_from_db()
    assert convocation.status == Convocation.Status.SCHEDULED
    assert Entry.objects.filter(mailbox=cast.paul_box).count() == 2
    assert not AuditEvent.objects.filter(action="convocation.cancelled").exists()
    client.post(cancel_url, {"confirm": "on"})
    convocation.refresh_from_db()
    assert convocation.status == Convocation.Status.CANCELLED
    assert Entry.objects.filter(mailbox=cast.paul_box).count() == 3
    assert AuditEvent.objects.filter(action="convocation.cancelled", actor=cast.bob).count() == 1
    assert _state(client, convocation) == "annulée"


def _state(client, convocation) -> str:
    """The « État » of the convocation page, as read (tags dropped)."""
    page = html.unescape(client.get(reverse("automation:convocation", args=[convocation.pk])).content.decode())
    cell = page.split('data-testid="convocation-state">', 1)[1].split("</dd>", 1)[0]
    return re.sub(r"<[^>]+>", "", cell).strip()


def test_convocation_form_names_the_problem(service, client):
    client.force_login(service.cast.bob)
    response = client.post(
        reverse("automation:convocation_create"),
        {
            "model": service.models[MessageModel.Kind.CONVOCATION].pk,
            "ins": "158037511204567",
            "date": "2099-01-01",
            "time": "10:00",
            "duration": 30,
        },
    )
    assert response.status_code == 400 and "clé" in response.content.decode()
    assert not Convocation.objects.exists()


def test_a_convocation_in_the_past_is_refused_and_nothing_leaves(service, client):
    """Found in the browser: a date three days ago was accepted and the patient was summoned to
    it. Creating or moving a convocation to a moment already past is refused, named, on the form."""
    cast = service.cast
    client.force_login(cast.bob)
    model = service.models[MessageModel.Kind.CONVOCATION]
    past = in_days(-3, 9, 30)
    data = {"model": model.pk, "ins": cast.paul_patient.ins, "date": past.strftime("%Y-%m-%d"), "time": "09:30"}
    response = client.post(reverse("automation:convocation_create"), {**data, "duration": 30, "lieu": "Salle 3"})
    html = response.content.decode()
    assert response.status_code == 400
    assert f"Le rendez-vous du {fields.appointment_values(past)['date_rdv']} à 9 h 30 est déjà passé" in html
    assert 'value="Salle 3"' in html  # what was typed stays
    assert not Convocation.objects.exists() and not Entry.objects.filter(mailbox=cast.paul_box).exists()

    convocation = convocations.create_convocation(
        model=model, patient=cast.paul_patient, starts_at=in_days(8), user=cast.bob, values={"lieu": "Hall"}
    )
    moved = client.post(
        reverse("automation:convocation", args=[convocation.pk]),
        {"date": past.strftime("%Y-%m-%d"), "time": "09:30"},
    )
    assert moved.status_code == 400 and "est déjà passé" in moved.content.decode()
    convocation.refresh_from_db()
    assert convocation.sequence == 0 and convocation.starts_at == in_days(8)
    assert Entry.objects.filter(mailbox=cast.paul_box).count() == 1
    assert not AuditEvent.objects.filter(action="convocation.rescheduled").exists()


def test_reminders_say_in_french_why_they_will_not_leave(service, client):
    """Found in the browser: "J-7 : … — sans objet (past)", the code of the reason."""
    cast = service.cast
    convocation = convocations.create_convocation(
        model=service.models[MessageModel.Kind.CONVOCATION],
        patient=cast.paul_patient,
        starts_at=in_days(3),
        user=cast.bob,
        values={"lieu": "Hall"},
    )
    client.force_login(cast.bob)
    html = client.get(reverse("automation:convocation", args=[convocation.pk])).content.decode()
    assert "sans objet (moment déjà passé)" in html and "(past)" not in html
    client.post(reverse("automation:convocation_cancel", args=[convocation.pk]), {"confirm": "on"})
    html = client.get(reverse("automation:convocation", args=[convocation.pk])).content.decode()
    assert "sans objet (rendez-vous annulé)" in html and "(cancelled)" not in html


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        ("patients.xlsx", b"PK\x03\x04\x14\x00\x06\x00" + bytes(range(256)) * 4, "classeur de tableur"),
        ("patients.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(200), "classeur de tableur"),
        ("liste.pdf", b"%PDF-1.4\n1 0 obj<<>>endobj\n%%EOF\n", "n'est pas une liste CSV"),
        ("photo.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(30), "n'est pas une liste CSV"),
        ("unicode.csv", "INS;Date\n158037511204568;01/01/2099\n".encode("utf-16"), "UTF-16"),
    ],
)
def test_a_file_that_is_not_a_csv_list_is_refused_by_what_it_is(service, client, name, data, expected):
    """Found in the browser: a PDF became a "list" of one column named "%PDF-1.4", an Excel file
    was "a list without patients". Nothing is kept; the message says what to do."""
    client.force_login(service.cast.bob)
    model = service.models[MessageModel.Kind.CONVOCATION]
    upload = SimpleUploadedFile(name, data, content_type="application/octet-stream")
    response = client.post(reverse("automation:campaign_create"), {"model": model.pk, "file": upload})
    assert response.status_code == 400 and expected in html.unescape(response.content.decode())
    assert not Campaign.objects.exists()


def test_the_list_upload_marks_its_required_fields_the_file_included(service, client):
    """The shared file picker (templates/_file_picker.html) keeps the star the automation forms
    put on a required field's label, beside the other fields' stars."""
    client.force_login(service.cast.bob)
    page = client.get(reverse("automation:campaign_create")).content.decode()
    assert re.search(
        r'<label for="id_file">Liste des patients \(CSV\) <span aria-hidden="true">\*</span></label>', page
    )
    assert re.search(r'<label for="id_model">[^<]+ <span aria-hidden="true">\*</span></label>', page)


def test_cancelling_a_list_asks_first_and_says_what_stopped(service, client):
    cast = service.cast
    campaign, _page = _send_a_list(service, client, 3)
    cancel = reverse("automation:campaign_control", args=[campaign.pk, "annuler"])

    asked = client.post(cancel).content.decode()
    assert "Annuler les envois restants ?" in asked and "3 messages ne sont pas encore partis" in asked
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SENDING
    assert not AuditEvent.objects.filter(action="campaign.cancelled").exists()

    response = client.post(cancel, {"confirm": "on"}, follow=True)
    assert "Envois annulés : 3 messages ne partiront pas." in response.content.decode()
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.CANCELLED
    assert AuditEvent.objects.get(action="campaign.cancelled").actor == cast.bob
    campaign_sending.sweep()  # the scheduler finds nothing left to send
    assert not Entry.objects.filter(mailbox__kind="PAT").exists()


def test_campaign_journey_through_the_pages(service, client):
    cast = service.cast
    people = patients(4)
    client.force_login(cast.bob)
    model = service.models[MessageModel.Kind.CONVOCATION]
    date = in_days(20).strftime("%d/%m/%Y")
    lines = ["INS,Date,Heure,Lieu"] + [f"{p.ins},{date},10:00,Hall B" for p in people] + ["123,01/01/2099,10:00,x"]
    upload = SimpleUploadedFile("jour.csv", "\n".join(lines).encode(), content_type="text/csv")
    response = client.post(reverse("automation:campaign_create"), {"model": model.pk, "file": upload})
    campaign = Campaign.objects.get()
    page = reverse("automation:campaign", args=[campaign.pk])
    assert response["Location"] == page
    mapping = {"ins": "INS", "date_rdv": "Date", "heure_rdv": "Heure", "lieu": "Lieu"}
    client.post(reverse("automation:campaign_mapping", args=[campaign.pk]), mapping)
    html = client.get(page).content.decode()
    assert "Lignes prêtes à partir : 4 · lignes refusées : 1" in html
    assert f"{people[0].display_name} &lt;{people[0].address}&gt;" in html and "invitation.ics" in html
    assert "Envoyer 4 messages" in html
    client.post(reverse("automation:campaign_control", args=[campaign.pk, "envoyer"]))
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SENDING
    progress = client.get(reverse("automation:campaign_progress", args=[campaign.pk]))
    assert (
        'hx-trigger="every 2s"' in progress.content.decode() and "0 message traité sur 4" in progress.content.decode()
    )
    campaign_sending.sweep()  # the embedded scheduler's run
    progress = client.get(reverse("automation:campaign_progress", args=[campaign.pk]))
    # Over: the page's body becomes the report in place (its live region stays to say so).
    assert (progress["HX-Retarget"], progress["HX-Reselect"], progress["HX-Reswap"]) == (
        "#campaign-body",
        "#campaign-body",
        "outerHTML",
    )
    assert 'id="campaign-body"' in progress.content.decode()
    assert (
        "Envoi terminé, le rapport est affiché : 4 envoyés, 0 retour automatique, 0 échec." in progress.content.decode()
    )
    html = client.get(page).content.decode()
    assert "Télécharger le rapport" in html
    # The report counts the line refused at the check: 5 lines, 4 sent, 1 refused (not a lost one).
    assert "5 lignes dans la liste · 1 ligne refusée à la vérification (non envoyée)." in html
    assert 'data-testid="report-refused">1<' in html and 'data-testid="report-sent">4<' in html
    report = client.get(reverse("automation:campaign_report", args=[campaign.pk]))
    assert report["Content-Type"].startswith("text/csv") and report.content.decode("utf-8-sig").count("\r\n") == 6
    assert AuditEvent.objects.filter(action="campaign.report_downloaded", actor=cast.bob).exists()


def test_patient_sees_upcoming_convocations_and_adds_them_to_the_calendar(service, client):
    cast = service.cast
    model = service.models[MessageModel.Kind.CONVOCATION]
    convocation = convocations.create_convocation(
        model=model, patient=cast.paul_patient, starts_at=in_days(9, 15, 15), user=cast.bob, values={"lieu": "Hall"}
    )
    client.force_login(cast.paul)
    html = client.get(reverse("patients:inbox")).content.decode()
    ics_url = reverse("automation_patient:convocation_ics", args=[convocation.pk])
    assert "Mes prochains rendez-vous" in html and ics_url in html and "15 h 15" in html
    response = client.get(ics_url)
    calendar = icalendar.Calendar.from_ical(response.content)
    (event,) = calendar.walk("VEVENT")
    assert calendar["METHOD"] == "PUBLISH" and str(event["UID"]).startswith(str(convocation.uid))
    assert AuditEvent.objects.filter(action="convocation.downloaded", actor=cast.paul).exists()
    client.force_login(cast.pauline)
    assert client.get(ics_url).status_code == 404
    assert "Mes prochains rendez-vous" not in client.get(reverse("patients:inbox")).content.decode()
    client.force_login(cast.bob)
    assert client.get(ics_url).status_code == 404


def _send_a_list(service, client, count: int) -> tuple[Campaign, str]:
    """Upload, map and start a list of `count` lines; returns the campaign, still sending, and
    the page shown after the start."""
    people = patients(count, prefix="Compte")
    client.force_login(service.cast.bob)
    model = service.models[MessageModel.Kind.CONVOCATION]
    date = in_days(20).strftime("%d/%m/%Y")
    lines = ["INS;Date;Heure;Lieu"] + [f"{p.ins};{date};10:00;Hall B" for p in people]
    upload = SimpleUploadedFile("jour.csv", "\n".join(lines).encode(), content_type="text/csv")
    client.post(reverse("automation:campaign_create"), {"model": model.pk, "file": upload})
    campaign = Campaign.objects.get()
    mapping = {"ins": "INS", "date_rdv": "Date", "heure_rdv": "Heure", "lieu": "Lieu"}
    client.post(reverse("automation:campaign_mapping", args=[campaign.pk]), mapping)
    started = client.post(reverse("automation:campaign_control", args=[campaign.pk, "envoyer"]), follow=True)
    return campaign, html.unescape(started.content.decode())


def _counts(page: str) -> tuple[str, str]:
    """The progress bar's label and its counts line, as read on the page."""
    text = html.unescape(page)
    label = text.split('<label for="progress-bar">', 1)[1].split("</label>", 1)[0]
    counts = text.split('data-testid="progress-counts">', 1)[1].split("</span>", 1)[0]
    return label, counts


@pytest.mark.parametrize(
    ("count", "started", "before", "after"),
    [
        (
            1,
            ("Envoi lancé : 1 message part en arrière-plan.", " · 1 ligne · fichier "),
            ("0 message traité sur 1", "0 envoyé, 0 retour automatique, 0 échec, 1 à envoyer."),
            ("1 message traité sur 1", "1 envoyé, 0 retour automatique, 0 échec, 0 à envoyer."),
        ),
        (
            3,
            ("Envoi lancé : 3 messages partent en arrière-plan.", " · 3 lignes · fichier "),
            ("0 message traité sur 3", "0 envoyé, 0 retour automatique, 0 échec, 3 à envoyer."),
            ("3 messages traités sur 3", "3 envoyés, 0 retour automatique, 0 échec, 0 à envoyer."),
        ),
    ],
)
def test_send_progress_speaks_french_plurals_for_zero_one_and_many(service, client, count, started, before, after):
    campaign, page = _send_a_list(service, client, count)
    assert all(text in page for text in started)
    assert _counts(client.get(reverse("automation:campaign_progress", args=[campaign.pk])).content.decode()) == before
    campaign_sending.sweep()
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.DONE
    assert _counts(client.get(reverse("automation:campaign", args=[campaign.pk])).content.decode()) == after


def test_the_check_table_names_every_fault_of_a_line_at_once(service, client):
    """A line with a short INS, an impossible date and an impossible time says all three; a known
    patient's line with a bad date and a bad time says both (and no « champ manquant »)."""
    person = patients(1, prefix="Fautes")[0]
    client.force_login(service.cast.bob)
    model = service.models[MessageModel.Kind.CONVOCATION]
    lines = ["INS;Date;Heure;Lieu", "123;31/02/2027;25:00;Hall B", f"{person.ins};31/02/2027;25:00;Hall B"]
    upload = SimpleUploadedFile("jour.csv", "\n".join(lines).encode(), content_type="text/csv")
    client.post(reverse("automation:campaign_create"), {"model": model.pk, "file": upload})
    campaign = Campaign.objects.get()
    mapping = {"ins": "INS", "date_rdv": "Date", "heure_rdv": "Heure", "lieu": "Lieu"}
    client.post(reverse("automation:campaign_mapping", args=[campaign.pk]), mapping)
    page = html.unescape(client.get(reverse("automation:campaign", args=[campaign.pk])).content.decode())
    table = page.split('data-testid="problems">', 1)[1].split("</table>", 1)[0]
    reasons = {}
    for tr in table.split("<tr><td>")[1:]:
        number, cell = tr.split("</td><td>", 1)
        reasons[number] = [item.split("</li>")[0] for item in cell.split("<li>")[1:]]
    date = "Date illisible « 31/02/2027 » : écrivez-la jj/mm/aaaa."
    time = "Heure illisible « 25:00 » : écrivez-la hh:mm."
    ins = "Le matricule INS compte 15 caractères (13 + une clé de 2 chiffres) ; « 123 » en compte 3."
    assert reasons == {"2": [ins, date, time], "3": [date, time]}
    assert Campaign.objects.get().lines.filter(status="invalid").count() == 2


def test_the_index_says_what_became_of_each_list(service, client):
    """A list left before its check, one checked and left, one abandoned before its start and
    one cancelled during its send: four states, none of them « à valider » forever."""
    people = patients(1, prefix="Index")
    client.force_login(service.cast.bob)
    model = service.models[MessageModel.Kind.CONVOCATION]
    date = in_days(20).strftime("%d/%m/%Y")
    mapping = {"ins": "INS", "date_rdv": "Date", "heure_rdv": "Heure", "lieu": "Lieu"}
    csv_text = f"INS;Date;Heure;Lieu\n{people[0].ins};{date};10:00;Hall B".encode()
    ids = {}
    for name in ("laissee", "verifiee", "abandonnee", "annulee"):
        upload = SimpleUploadedFile(f"{name}.csv", csv_text, content_type="text/csv")
        client.post(reverse("automation:campaign_create"), {"model": model.pk, "file": upload})
        ids[name] = Campaign.objects.get(filename=f"{name}.csv").pk
        if name != "laissee":
            client.post(reverse("automation:campaign_mapping", args=[ids[name]]), mapping)
    client.post(reverse("automation:campaign_control", args=[ids["abandonnee"], "annuler"]), {"confirm": "on"})
    client.post(reverse("automation:campaign_control", args=[ids["annulee"], "envoyer"]))
    client.post(reverse("automation:campaign_control", args=[ids["annulee"], "annuler"]), {"confirm": "on"})

    page = html.unescape(client.get(reverse("automation:index")).content.decode())
    states = {
        re.search(r">(\w+)\.csv<", item).group(1): re.search(r'<span class="badge">([^<]*)</span>', item).group(1)
        for item in page.split("<li>")
        if ".csv</a>" in item
    }
    assert states == {
        "laissee": "colonnes à choisir",
        "verifiee": "vérifiée, pas encore envoyée",
        "abandonnee": "abandonnée",
        "annulee": "annulée",
    }
    abandoned = html.unescape(client.get(reverse("automation:campaign", args=[ids["abandonnee"]])).content.decode())
    assert 'data-testid="campaign-status">abandonnée<' in abandoned


def test_the_report_names_in_french_why_a_line_did_not_leave(service, client):
    """The report's « motif » column read `space_closed` for a line returned at the send: it
    says the patient policy's sentence, as the check table says its own."""
    people = patients(2, prefix="Motif")
    client.force_login(service.cast.bob)
    model = service.models[MessageModel.Kind.WELCOME]
    lines = ["INS", *[p.ins for p in people], "123"]
    upload = SimpleUploadedFile("accueil.csv", "\n".join(lines).encode(), content_type="text/csv")
    client.post(reverse("automation:campaign_create"), {"model": model.pk, "file": upload})
    campaign = Campaign.objects.get()
    client.post(reverse("automation:campaign_mapping", args=[campaign.pk]), {"ins": "INS"})
    # Between the check and the send, the second patient closes their space.
    Patient.objects.filter(pk=people[1].pk).update(space_state="closed")
    client.post(reverse("automation:campaign_control", args=[campaign.pk, "envoyer"]))
    campaign_sending.sweep()
    text = client.get(reverse("automation:campaign_report", args=[campaign.pk])).content.decode("utf-8-sig")
    by_line = {row[0]: row for row in csv.reader(io.StringIO(text), delimiter=";")}
    assert by_line["2"][4:6] == ["envoyé", ""]
    assert by_line["3"][4:6] == ["retour automatique", policy.refusal_text("space_closed")]
    assert by_line["4"][4] == "ligne refusée" and by_line["4"][5].startswith("Le matricule INS compte 15 caractères")
    assert "space_closed" not in text and "closed_space" not in text


def test_a_list_without_a_line_to_send_says_what_to_do(service, client):
    """Every line refused at the check: no start button, and a sentence instead of nothing."""
    client.force_login(service.cast.bob)
    model = service.models[MessageModel.Kind.WELCOME]
    upload = SimpleUploadedFile("vide.csv", b"INS\n123\n\n456\n", content_type="text/csv")
    client.post(reverse("automation:campaign_create"), {"model": model.pk, "file": upload})
    campaign = Campaign.objects.get()
    client.post(reverse("automation:campaign_mapping", args=[campaign.pk]), {"ins": "INS"})
    page = html.unescape(client.get(reverse("automation:campaign", args=[campaign.pk])).content.decode())
    assert 'data-testid="start"' not in page
    nothing = page.split('data-testid="nothing-to-send">', 1)[1].split("</p>", 1)[0]
    assert nothing.startswith("Aucune ligne ne peut partir : corrigez le fichier, puis déposez-le de nouveau.")
    assert reverse("automation:campaign_create") in nothing


def test_a_check_with_more_refused_lines_than_shown_says_so(service, client):
    client.force_login(service.cast.bob)
    model = service.models[MessageModel.Kind.WELCOME]
    data = "\n".join(["INS"] + [f"{n}" for n in range(1, 503)]).encode()
    upload = SimpleUploadedFile("longue.csv", data, content_type="text/csv")
    client.post(reverse("automation:campaign_create"), {"model": model.pk, "file": upload})
    campaign = Campaign.objects.get()
    client.post(reverse("automation:campaign_mapping", args=[campaign.pk]), {"ins": "INS"})
    page = html.unescape(client.get(reverse("automation:campaign", args=[campaign.pk])).content.decode())
    assert page.count("<tr><td>") == 500
    cut = page.split('data-testid="problems-cut">', 1)[1].split("</p>", 1)[0]
    assert cut == (
        "Le tableau montre les 500 premières des 502 lignes refusées : corrigez-les, puis déposez le fichier "
        "de nouveau pour voir les suivantes."
    )


SENTENCE = re.compile(r"^[A-ZÀÂÉÈÊÎÔÛÇ].*\.$", re.DOTALL)


def test_every_reason_of_the_check_table_is_a_short_sentence(service, client):
    """The check table mixed « matricule INS absent » and « doublon : … » with the INS's and the
    patient policy's full sentences: every reason is now a short sentence, capital first, full
    stop last, as the page shows it."""
    people = patients(2, prefix="Phrase")
    closed = make_patient("Close", "Phrase", space_state="closed")
    future, past = in_days(20).strftime("%d/%m/%Y"), in_days(-3).strftime("%d/%m/%Y")
    wrong_key = people[0].ins[:-2] + f"{(int(people[0].ins[-2:]) + 1) % 97:02d}"
    lines = [
        "INS;Date;Heure",
        f"{people[0].ins};{future};10:00",  # 2: leaves
        f";{future};10:00",  # 3: no INS
        f"123;{future};10:00",  # 4: too short
        f"ABCDEFGHIJKLMNO;{future};10:00",  # 5: not a NIR
        f"{wrong_key};{future};10:00",  # 6: wrong key
        f"{make_ins(sex='1', year=44, month=1, seq=990001)};{future};10:00",  # 7: nobody
        f"{closed.ins};{future};10:00",  # 8: space closed
        f"{people[0].ins};{future};11:00",  # 9: twice
        f"{people[1].ins};;",  # 10: no date, no time
        f"{people[1].ins};31/02/2027;midi",  # 11: unreadable
        f"{people[1].ins};{past};10:00",  # 12: past
    ]
    client.force_login(service.cast.bob)
    model = service.models[MessageModel.Kind.CONVOCATION]
    upload = SimpleUploadedFile("phrases.csv", "\n".join(lines).encode(), content_type="text/csv")
    client.post(reverse("automation:campaign_create"), {"model": model.pk, "file": upload})
    campaign = Campaign.objects.get()
    client.post(
        reverse("automation:campaign_mapping", args=[campaign.pk]),
        {"ins": "INS", "date_rdv": "Date", "heure_rdv": "Heure"},
    )
    page = html.unescape(client.get(reverse("automation:campaign", args=[campaign.pk])).content.decode())
    table = page.split('data-testid="problems">', 1)[1].split("</table>", 1)[0]
    reasons = {}
    for tr in table.split("<tr><td>")[1:]:
        number, cell = tr.split("</td><td>", 1)
        cell = cell.split("</td></tr>", 1)[0]
        reasons[int(number)] = [i.split("</li>")[0] for i in cell.split("<li>")[1:]] or [cell]
    assert sorted(reasons) == list(range(3, 13))
    assert reasons[3] == ["Le matricule INS manque sur cette ligne."]
    assert reasons[7] == ["Aucun patient n'est connu avec ce matricule INS."]
    assert reasons[8] == [policy.refusal_text("space_closed")]
    assert reasons[9] == ["Doublon : ce patient figure déjà ligne 2."]
    assert reasons[10] == ["La date du rendez-vous manque.", "L'heure du rendez-vous manque."]
    assert reasons[11] == [
        "Date illisible « 31/02/2027 » : écrivez-la jj/mm/aaaa.",
        "Heure illisible « midi » : écrivez-la hh:mm.",
    ]
    assert [r for found in reasons.values() for r in found if not SENTENCE.match(r)] == []


def test_cancelling_a_paused_list_offers_to_keep_it_paused(service, client):
    """« Non, continuer l'envoi » under a paused list promised a send that going back does not
    resume: the way back says the list stays paused."""
    campaign, _page = _send_a_list(service, client, 2)
    client.post(reverse("automation:campaign_control", args=[campaign.pk, "pause"]))
    asked = html.unescape(
        client.post(reverse("automation:campaign_control", args=[campaign.pk, "annuler"])).content.decode()
    )
    assert "Non, garder la liste en pause" in asked and "continuer l'envoi" not in asked
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.PAUSED


def test_the_convocation_page_says_how_long_the_appointment_lasts(service, client):
    """The duration typed on the form (« Durée (minutes) ») was nowhere on the convocation's page."""
    cast = service.cast
    convocation = convocations.create_convocation(
        model=service.models[MessageModel.Kind.CONVOCATION],
        patient=cast.paul_patient,
        starts_at=in_days(9),
        user=cast.bob,
        values={"lieu": "Hall"},
        duration_minutes=45,
    )
    client.force_login(cast.bob)
    page = client.get(reverse("automation:convocation", args=[convocation.pk])).content.decode()
    assert '<dt>Durée</dt><dd data-testid="convocation-duration">45 minutes</dd>' in page


def test_the_convocation_pages_write_the_time_as_the_message_does(service, client):
    """The secretary reads "9 h 05" on the pages, as in the convocation the patient received;
    the move form's `<input type=time>` keeps its machine value, "09:05"."""
    cast = service.cast
    starts_at = in_days(15, 9, 5)
    convocation = convocation_of_paul(service, starts_at)
    message = Entry.objects.get(mailbox=cast.paul_box).message
    assert "9 h 05" in message.text_body
    when = f"{fields.appointment_values(starts_at)['date_rdv']} à 9 h 05"
    client.force_login(cast.bob)
    page = html.unescape(client.get(reverse("automation:convocation", args=[convocation.pk])).content.decode())
    assert f"Convocation du {when}" in page
    assert "09:05" not in page
    # The move form's time field still writes (and reads) the machine value.
    field = RescheduleForm(initial={"time": starts_at.time()})["time"]
    assert 'type="time"' in str(field) and 'value="09:05"' in str(field)
    assert RescheduleForm({"date": starts_at.date().isoformat(), "time": "09:05"}).is_valid()
    index = html.unescape(client.get(reverse("automation:index")).content.decode())
    assert when in index
