"""Usage statistics against a seeded history with known counts: the daily aggregate, the pages
(charts with their tables, CSV of each table), the monthly operator indicators."""

import csv
import datetime
import io
import re
from unittest import mock

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from audit.events import record
from audit.models import AuditEvent
from mailboxes.compose import send_from_mailbox
from mailboxes.models import Delivery, Message
from operations.charts import CHAR_WIDTH
from operations.indicators import indicator_rows
from operations.models import DailyStat
from operations.statistics import Scope, aggregate_day, series
from tests.factories import make_ins

TODAY = timezone.localdate()
D1 = TODAY - datetime.timedelta(days=3)
D2 = TODAY - datetime.timedelta(days=2)


def at(day, hour=10):
    return timezone.make_aware(datetime.datetime.combine(day, datetime.time(hour)))


def send_on(day, *args, hour=10, **kwargs):
    with mock.patch("django.utils.timezone.now", return_value=at(day, hour)):
        return send_from_mailbox(*args, **kwargs)


@pytest.fixture
def history(cast, settings):
    """D1: Alice writes to Charlie (another structure), cardiologie (hers), Paul (patient) and a
    professional of another operator (relayed, then bounced); Paul reads it 2 h later. Alice signs
    in twice, someone fails once. D2: Charlie writes to Alice; Paul answers Alice. Today: Alice
    writes to an unknown patient (automatic return)."""
    from mailboxes.models import TrustedDomain

    TrustedDomain.objects.create(name="autre-operateur.mssante.fr")
    first = send_on(
        D1,
        cast.alice_box,
        cast.alice,
        to=[
            cast.charlie_box.address,
            cast.cardio.address,
            cast.paul_patient.address,
            "dr.x@autre-operateur.mssante.fr",
        ],
        subject="Compte rendu",
        text="Bonjour",
    )
    Delivery.objects.filter(address="dr.x@autre-operateur.mssante.fr").update(status="bounced", reason="smtp_550")
    with mock.patch("django.utils.timezone.now", return_value=at(D1, 12)):
        Delivery.objects.filter(address=cast.paul_patient.address).update(status="read", updated_at=timezone.now())
    for hour in (8, 14):
        record(AuditEvent.Action.LOGIN, actor=cast.alice, at=at(D1, hour))
    record(AuditEvent.Action.LOGIN_FAILED, actor_label="inconnu", at=at(D2, 9))
    send_on(D2, cast.charlie_box, cast.charlie, to=[cast.alice_box.address], subject="Avis", text="Réponse")
    send_on(
        D2,
        cast.paul_box,
        cast.paul,
        to=[cast.alice_box.address],
        subject="Re: Compte rendu",
        text="Merci",
        in_reply_to=first.message,
        source="patient",
    )
    unknown = f"{make_ins(sex='1')}@{settings.PATIENT_DOMAIN}"
    send_on(TODAY, cast.alice_box, cast.alice, to=[unknown, cast.cardio.address], subject="Convocation", text="RDV")
    call_command("aggregate_stats", "--since", D1.isoformat())
    return cast


def value(metric, day=None, **scope) -> int:
    rows = DailyStat.objects.filter(metric=metric, **scope)
    if day:
        rows = rows.filter(day=day)
    return sum(rows.values_list("value", flat=True))


def test_daily_aggregate_has_the_known_counts(history):
    cast = history
    box = {"mailbox_id": cast.alice_box.pk}
    assert value("sent", D1, **box) == 1 and value("sent_source_webmail", D1, **box) == 1
    assert value("recipients_internal", D1, **box) == 1  # cardiologie, same structure
    assert value("recipients_hosted", D1, **box) == 1  # Charlie, another structure hosted here
    assert value("recipients_patient", D1, **box) == 1
    assert value("recipients_external", D1, **box) == 1
    assert value("relay_failed", D1, **box) == 1
    assert value("read_receipts", D1, **box) == 1 and value("read_delay_le_4h", D1, **box) == 1
    assert value("received_hosted", D2, **box) == 1 and value("received_patient", D2, **box) == 1
    assert value("received", D2, **box) == 2
    assert value("sent_source_patient", D2) == 1
    assert value("return_patient_not_found", TODAY, **box) == 1
    assert value("sign_ins", D1, structure_id=cast.troispics.pk) == 2
    assert value("sign_in_failures", D2, structure_id__isnull=True) == 1
    assert value("active", D1, **box) == 1 and value("active", D2, **box) == 0
    # Every day's rows are replaced, never added twice.
    before = DailyStat.objects.count()
    aggregate_day(D1)
    assert DailyStat.objects.count() == before


def test_weekly_and_structure_scopes_add_days_up(history):
    cast = history
    periods, table = series(Scope(structure_id=cast.troispics.pk), D1, TODAY, "month")
    total_sent = sum(table["sent"].values())
    assert total_sent == 2  # Alice's two messages (Charlie is in another structure)
    periods, table = series(Scope(), D1, TODAY, "day")
    assert periods[0] == D1 and periods[-1] == TODAY and len(periods) == 4
    assert table["sent"][D2] == 2 and table["sent"][TODAY] == 1


def test_statistics_page_pairs_each_chart_with_its_table_and_exports_csv(history, client):
    cast = history
    client.force_login(cast.ada)
    url = reverse("operations:statistics")
    page = client.get(url, {"du": D1.isoformat(), "au": TODAY.isoformat()})
    assert page.status_code == 200
    tables = {t["id"]: t for t in page.context["tables"]}
    messages = tables["messages"]
    assert messages["columns"] == ["Période", "envoyés", "reçus"]
    # sent: 1 + 2 + 1; received: 3 (D1) + 2 (D2) + 1 (today; the automatic return leaves after commit)
    assert messages["rows"][-1] == ["Total", 4, 6]
    html = page.content.decode()
    assert html.count("<svg") == len(tables) and 'role="img"' in html
    returns = tables["retours"]["rows"]
    assert ["aucun espace à cette adresse", 1] in returns
    reads = tables["accuses"]
    assert reads["rows"][0][1:] == [1, "moins de 4 heures"]
    csv_response = client.get(url, {"du": D1.isoformat(), "au": TODAY.isoformat(), "csv": "destinataires"})
    rows = list(csv.reader(io.StringIO(csv_response.content.decode("utf-8-sig")), delimiter=";"))
    assert rows[0] == ["Période", "même structure", "autres structures de l'opérateur", "autres opérateurs", "patients"]
    # Hosted: Charlie (D1), Charlie to Alice and Paul to Alice (D2); patients: Paul and the unknown INS.
    assert rows[-1] == ["Total", "2", "3", "1", "2"]
    box_page = client.get(url, {"bal": cast.charlie_box.address, "du": D1.isoformat(), "au": TODAY.isoformat()})
    assert {t["id"]: t for t in box_page.context["tables"]}["messages"]["rows"][-1] == ["Total", 1, 1]


def test_statistics_pages_are_for_staff_only(history, client):
    client.force_login(history.alice)
    assert client.get(reverse("operations:statistics")).status_code == 302
    assert client.get(reverse("operations:indicators")).status_code == 302


def test_monthly_operator_indicators(history, client):
    cast = history
    month = D1.strftime("%Y-%m")
    rows = {r["structure"]: r for r in indicator_rows(month)}
    troispics = rows["Centre hospitalier des Trois Pics"]
    assert troispics["bal_nominatives_actives"] == 1 and troispics["bal_organisationnelles_actives"] == 1
    if D1.month == TODAY.month:  # all of the seeded history falls in this month
        assert troispics["messages_envoyes"] == 2
        assert troispics["destinataires_patients"] == 2
        assert troispics["dont_autres_operateurs"] == 1
        assert troispics["connexions"] == 2
        assert rows["TOTAL"]["echecs_connexion"] == 1
    client.force_login(cast.ada)
    response = client.get(reverse("operations:indicators"), {"mois": month})
    assert response.status_code == 200 and response["Content-Disposition"].endswith(f'{month}.csv"')
    header = response.content.decode("utf-8-sig").splitlines()[0].split(";")
    assert header[:3] == ["mois", "structure", "finess"] and "bal_utilisees" in header
    assert AuditEvent.objects.filter(action="statistics.exported", object_id=month).exists()
    assert client.get(reverse("operations:indicators"), {"mois": "2026-13"}).status_code == 400


def test_the_aggregate_is_scheduled(settings):
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "operations.tasks.aggregate_statistics" in tasks


def test_messages_table_counts_match_the_store(history):
    # Cross-check the aggregate against the rows themselves (no page-time scanning, but the
    # numbers must be the store's).
    assert (
        sum(DailyStat.objects.filter(metric="sent").values_list("value", flat=True))
        == Message.objects.filter(is_report=False, auto_submitted=False).count()
    )


def test_campaign_outcomes_are_counted_per_sending_box_and_shown(cast, client, settings):
    """Lines of a campaign by outcome: sent on the day their message left, a failed line (no
    message) on the day of its campaign's last progress; the statistics page shows the table."""
    from automation.models import Campaign, CampaignLine, MessageModel
    from operations.statistics import aggregate_day

    model = MessageModel.objects.create(mailbox=cast.cardio, service="Cardiologie", name="Rappel")
    campaign = Campaign.objects.create(
        model=model, mailbox=cast.cardio, status=Campaign.Status.DONE, last_progress_at=at(D2, 9)
    )
    message = send_on(D1, cast.cardio, cast.bob, to=[cast.paul_patient.address], subject="Rappel", text="x").message
    CampaignLine.objects.create(campaign=campaign, number=2, status="sent", sent_at=at(D1), message=message)
    CampaignLine.objects.create(campaign=campaign, number=3, status="sent", sent_at=at(D2), message=message)
    CampaignLine.objects.create(campaign=campaign, number=4, status="failed")
    CampaignLine.objects.create(campaign=campaign, number=5, status="invalid")
    aggregate_day(D1)
    aggregate_day(D2)
    assert value("campaign_sent", D1, mailbox_id=cast.cardio.pk) == 1
    assert value("campaign_sent", D2, mailbox_id=cast.cardio.pk) == 1
    assert value("campaign_failed", D2, mailbox_id=cast.cardio.pk) == 1
    assert value("campaign_failed", D1) == 0 and value("campaign_invalid") == 0
    assert value("campaign_sent", structure_id=cast.cardio.structure_id) == 2

    cast.alice.is_staff = True
    cast.alice.save()
    client.force_login(cast.alice)
    exported = client.get(
        reverse("operations:statistics"), {"du": D1.isoformat(), "au": D2.isoformat(), "csv": "campagnes"}
    )
    lines = exported.content.decode("utf-8-sig").splitlines()
    assert lines[0] == "Période;envoyées;retours automatiques;échecs"
    assert lines[-1] == "Total;2;0;1"
    page = client.get(reverse("operations:statistics"), {"du": D1.isoformat(), "au": D2.isoformat()}).content.decode()
    assert "issue des lignes" in page and "apparaîtront ici" not in page


def test_sources_are_named_in_french_in_the_table_and_the_legend(history, client):
    """« Messages envoyés par origine »: French labels (mailboxes.delivery.SOURCE_LABELS), never
    the codes, and every legend entry inside the chart (a sixth one wraps to a second row)."""
    client.force_login(history.ada)
    page = client.get(reverse("operations:statistics"), {"du": D1.isoformat(), "au": TODAY.isoformat()})
    labels = [
        "messagerie web",
        "passerelle SMTP",
        "logiciel de messagerie",
        "API",
        "patients",
        "envois automatiques",
    ]
    sources = {t["id"]: t for t in page.context["tables"]}["sources"]
    assert sources["columns"] == ["Période", *labels]
    # The four messages sent (messages table): three from the webmail, one from a patient.
    assert (sources["rows"][-1][1], sources["rows"][-1][5]) == (3, 1)
    svg = str(sources["chart"])
    width = int(re.search(r'viewBox="0 0 (\d+) (\d+)"', svg).group(1))
    legend = [
        (float(x), text) for x, text in re.findall(r'<text x="([\d.]+)" y="[\d.]+" fill="[^"]+">([^<]+)</text>', svg)
    ]
    assert [text for _x, text in legend] == labels
    assert all(x + len(text) * CHAR_WIDTH <= width for x, text in legend)  # 12 px text
    html = page.content.decode()
    assert ">system<" not in html and ">webmail<" not in html and ">smtp<" not in html


def test_automatic_returns_are_named_by_their_french_reason_not_their_code(history, client):
    """« Retours automatiques par motif » read the stored codes (`space_closed`, `too_large`…):
    the page and its CSV name each reason as the patient policy does (`Refusal.label`)."""
    cast = history
    first = Message.objects.filter(subject="Compte rendu").get()
    Delivery.objects.filter(message=first, address=cast.paul_patient.address).update(
        status="returned", reason="space_closed"
    )
    Delivery.objects.filter(message=first, address=cast.charlie_box.address).update(
        status="returned", reason="too_large"
    )
    Delivery.objects.filter(message=first, address=cast.cardio.address).update(status="returned", reason="")
    call_command("aggregate_stats", "--since", D1.isoformat())
    cast.alice.is_staff = True
    cast.alice.save()
    client.force_login(cast.alice)
    url = reverse("operations:statistics")
    html = client.get(url, {"du": D1.isoformat(), "au": TODAY.isoformat()}).content.decode()
    section = html.split('aria-labelledby="h-retours"', 1)[1].split("</section>", 1)[0]
    cells = re.findall(r'<th scope="row">([^<]*)</th><td>(\d+)</td>', section)
    assert sorted(cells) == [
        ("aucun espace à cette adresse", "1"),
        ("espace clôturé par le patient", "1"),
        ("message de plus de 25 Mo", "1"),
        ("motif non enregistré", "1"),
    ]
    for code in ("space_closed", "too_large", "patient_not_found", "inconnu"):
        assert code not in section
    exported = client.get(url, {"du": D1.isoformat(), "au": TODAY.isoformat(), "csv": "retours"})
    lines = exported.content.decode("utf-8-sig").splitlines()
    assert lines[0] == "motif;nombre" and "espace clôturé par le patient;1" in lines


def test_a_period_without_automatic_returns_says_so(cast, client):
    cast.alice.is_staff = True
    cast.alice.save()
    client.force_login(cast.alice)
    html = client.get(reverse("operations:statistics")).content.decode()
    section = html.split('aria-labelledby="h-retours"', 1)[1].split("</section>", 1)[0]
    assert '<th scope="row">aucun retour automatique sur la période</th><td>0</td>' in section


def test_every_read_delay_is_said_in_words_with_its_unit():
    """The median read delay read « moins de 4h », « moins de 1j »: each bucket is said in full."""
    from operations.statistics import READ_DELAY_BUCKETS
    from operations.views import BUCKET_LABELS

    labels = [BUCKET_LABELS[name] for _limit, name in READ_DELAY_BUCKETS]
    assert labels == [
        "moins de 15 minutes",
        "moins d'une heure",
        "moins de 4 heures",
        "moins d'un jour",
        "moins de 3 jours",
        "moins de 7 jours",
        "plus de 7 jours",
    ]
