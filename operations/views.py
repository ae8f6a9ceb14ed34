"""Operations pages: liveness/readiness/metrics for machines, the administrators' dashboard and
the usage statistics for people (staff only). Views parse and answer; numbers come from
operations.health, operations.metrics and operations.statistics."""

import csv
import datetime
import hmac
import io

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache

from audit.events import record
from audit.models import AuditEvent
from directory.models import ImportRun
from mailboxes.delivery import SOURCE_LABELS, refusal_text
from mailboxes.models import Mailbox, Structure, TrustedDomain
from operations import statistics as stats
from operations.charts import bar_chart, category_chart
from operations.health import readiness
from operations.indicators import indicators_csv
from operations.metrics import queue_stats
from operations.metrics import render as render_metrics
from operations.selftest import last_whitelist_import
from patients.policy import refusal_label

GRANULARITIES = {"jour": ("day", 30), "semaine": ("week", 12 * 7), "mois": ("month", 365)}
DELIVERY_STATUSES = [
    ("delivered", "distribués"),
    ("relayed", "relayés"),
    ("queued", "en attente de relais"),
    ("read", "lus"),
    ("bounced", "non distribués"),
    ("returned", "retours automatiques"),
]


@never_cache
def healthz(request):
    """Liveness: the process answers. Touches nothing else."""
    return HttpResponse("ok", content_type="text/plain")


@never_cache
def readyz(request):
    code, body = readiness()
    return JsonResponse(body, status=code, json_dumps_params={"ensure_ascii": False})


@never_cache
def metrics(request):
    token = settings.METRICS_TOKEN
    if token:
        sent = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(sent.encode(), token.encode()):
            return HttpResponse("jeton requis", status=401, content_type="text/plain")
    payload, content_type = render_metrics()
    return HttpResponse(payload, content_type=content_type)


def directory_freshness() -> dict:
    """The national directory's imports (directory.models.ImportRun): the last one that went
    through, and the latest attempt when it did not (refused file, failure)."""
    last_done = ImportRun.objects.filter(status=ImportRun.Status.DONE).order_by("-started_at", "-pk").first()
    latest = ImportRun.objects.order_by("-started_at", "-pk").first()
    failed = latest if latest and latest.status in (ImportRun.Status.REFUSED, ImportRun.Status.FAILED) else None
    return {
        "last": last_done.finished_at or last_done.started_at if last_done else None,
        "failed": failed,
    }


@staff_member_required
def dashboard(request):
    code, health = readiness()
    whitelist = TrustedDomain.objects.filter(source=TrustedDomain.Source.WHITELIST)
    context = {
        "health": health,
        "health_code": code,
        "nav": "dashboard",
        "traffic": _traffic_rows(stats.today_traffic()),
        "queues": queue_stats(),
        "whitelist_last": last_whitelist_import(),
        "whitelist_count": whitelist.count(),
        "directory": directory_freshness(),
        "boxes": Mailbox.objects.filter(is_active=True).exclude(kind=Mailbox.Kind.PATIENT).count(),
    }
    return render(request, "operations/dashboard.html", context)


TRAFFIC = [
    (AuditEvent.Action.SUBMITTED, "messages soumis"),
    (AuditEvent.Action.DELIVERED, "distributions dans une BAL hébergée"),
    (AuditEvent.Action.RELAYED, "envois relayés vers d'autres opérateurs"),
    (AuditEvent.Action.REFUSED, "refus"),
    (AuditEvent.Action.BOUNCED, "non-distributions"),
    (AuditEvent.Action.READ, "lectures"),
    (AuditEvent.Action.LOGIN, "connexions"),
    (AuditEvent.Action.LOGIN_FAILED, "échecs de connexion"),
]


def _traffic_rows(counts: dict) -> list[tuple[str, int]]:
    return [(label, counts.get(action, 0)) for action, label in TRAFFIC]


def _parse_scope(request) -> tuple[stats.Scope, str]:
    box = (request.GET.get("bal") or "").strip().lower()
    if box:
        found = Mailbox.objects.filter(address=box).exclude(kind=Mailbox.Kind.PATIENT).first()
        if found is None and box.isdigit():
            found = Mailbox.objects.filter(pk=int(box)).exclude(kind=Mailbox.Kind.PATIENT).first()
        if found is None:
            raise Http404("BAL inconnue")
        return stats.Scope(structure_id=found.structure_id, mailbox_id=found.pk), found.address
    structure = request.GET.get("structure") or ""
    if structure.isdigit():
        found = Structure.objects.filter(pk=int(structure)).first()
        if found is None:
            raise Http404("structure inconnue")
        return stats.Scope(structure_id=found.pk), found.name
    return stats.Scope(), "tout le service"


def _parse_dates(request, span: int) -> tuple[datetime.date, datetime.date]:
    today = timezone.localdate()

    def day(name, default):
        try:
            return datetime.date.fromisoformat(request.GET.get(name) or "")
        except ValueError:
            return default

    last = day("au", today)
    first = day("du", last - datetime.timedelta(days=span - 1))
    if first > last:
        first, last = last, first
    return first, min(last, first + datetime.timedelta(days=3 * 366))


def _label(period: datetime.date, granularity: str) -> str:
    if granularity == "month":
        return period.strftime("%m/%Y")
    if granularity == "week":
        return f"sem. {period:%d/%m}"
    return period.strftime("%d/%m")


def statistics_tables(scope, first, last, granularity) -> list[dict]:
    periods, table = stats.series(scope, first, last, granularity)
    labels = [_label(p, granularity) for p in periods]

    def line(metric):
        return [table.get(metric, {}).get(p, 0) for p in periods]

    def by_period(table_id, title, columns, chart_columns=None):
        lines = [(name, line(metric) if isinstance(metric, str) else metric) for name, metric in columns]
        rows = [[labels[i]] + [values[i] for _name, values in lines] for i in range(len(periods))]
        rows.append(["Total"] + [sum(values) for _name, values in lines])
        chosen = [lines[i] for i in (chart_columns or range(len(lines)))]
        return {
            "id": table_id,
            "title": title,
            "columns": ["Période"] + [name for name, _metric in columns],
            "rows": rows,
            "chart": bar_chart(f"chart-{table_id}", title, labels, chosen),
        }

    recipients = [
        ("même structure", "recipients_internal"),
        ("autres structures de l'opérateur", "recipients_hosted"),
        ("autres opérateurs", "recipients_external"),
        ("patients", "recipients_patient"),
    ]
    active = stats.active_boxes(scope, first, last, granularity)
    box_count = stats.boxes_in_scope(scope).count()
    active_line = [active.get(p, 0) for p in periods]
    reads = [
        {name: table.get(f"read_delay_le_{name}", {}).get(p, 0) for _limit, name in stats.READ_DELAY_BUCKETS}
        for p in periods
    ]
    tables = [
        by_period("messages", "Messages envoyés et reçus", [("envoyés", "sent"), ("reçus", "received")]),
        by_period("destinataires", "Destinataires des messages envoyés", recipients),
        by_period(
            "sources",
            "Messages envoyés par origine",
            [(str(label), f"sent_source_{s}") for s, label in SOURCE_LABELS.items()],
        ),
        by_period(
            "distribution",
            "Devenir des envois (par destinataire)",
            [(n, f"delivery_{s}") for s, n in DELIVERY_STATUSES],
        ),
        by_period(
            "echecs-relais",
            "Échecs de relais vers d'autres opérateurs",
            [("échecs définitifs", "relay_failed"), ("échecs temporaires (nouvel essai)", "relay_deferred")],
        ),
        by_period("accuses", "Accusés de lecture", [("accusés reçus", "read_receipts")]),
        by_period(
            "bal",
            "BAL actives et inactives",
            [("actives", active_line), ("sans activité", [max(box_count - a, 0) for a in active_line])],
        ),
        by_period("connexions", "Connexions", [("connexions", "sign_ins"), ("échecs", "sign_in_failures")]),
        by_period(
            "campagnes",
            "Campagnes d'envoi : issue des lignes",
            [
                ("envoyées", "campaign_sent"),
                ("retours automatiques", "campaign_returned"),
                ("échecs", "campaign_failed"),
            ],
        ),
    ]
    _add_median_read_delay(tables[5], reads)
    tables.append(_returns_table(table))
    return tables


def _add_median_read_delay(read_table: dict, reads: list[dict]) -> None:
    """The read-receipts table gains the median delay of each period and of the total."""
    read_table["columns"].append("délai médian")
    for i, row in enumerate(read_table["rows"][:-1]):
        row.append(_bucket_label(stats.median_bucket(reads[i])))
    totals = {name: sum(r[name] for r in reads) for _limit, name in stats.READ_DELAY_BUCKETS}
    read_table["rows"][-1].append(_bucket_label(stats.median_bucket(totals)))


def _returns_table(table: dict) -> dict:
    """Automatic returns by reason over the whole period, most frequent first, each reason
    named in French (`return_reason_label`), never by its code."""
    returns = sorted(
        (
            (return_reason_label(metric.removeprefix("return_")), sum(values.values()))
            for metric, values in table.items()
            if metric.startswith("return_")
        ),
        key=lambda item: -item[1],
    )
    return {
        "id": "retours",
        "title": "Retours automatiques par motif",
        "columns": ["motif", "nombre"],
        "rows": [[reason, count] for reason, count in returns] or [["aucun retour automatique sur la période", 0]],
        "chart": category_chart("chart-retours", "Retours automatiques par motif", "retours", returns),
    }


def return_reason_label(code: str) -> str:
    """The French name of the reason of an automatic return (`Delivery.reason`): the patient
    policy's label for its codes, the delivery path's summary for another code."""
    if code == "inconnu":  # a return stored without its reason (operations.statistics)
        return "motif non enregistré"
    return refusal_label(code) or refusal_text(code)


# The read-delay buckets (operations.statistics.READ_DELAY_BUCKETS) as a person says them.
BUCKET_LABELS = {
    "": "—",
    "15min": "moins de 15 minutes",
    "1h": "moins d'une heure",
    "4h": "moins de 4 heures",
    "1j": "moins d'un jour",
    "3j": "moins de 3 jours",
    "7j": "moins de 7 jours",
    "plus": "plus de 7 jours",
}


def _bucket_label(name: str) -> str:
    return BUCKET_LABELS[name]


@staff_member_required
def statistics(request):
    granularity_name = request.GET.get("pas") if request.GET.get("pas") in GRANULARITIES else "jour"
    granularity, span = GRANULARITIES[granularity_name]
    scope, scope_label = _parse_scope(request)
    first, last = _parse_dates(request, span)
    tables = statistics_tables(scope, first, last, granularity)
    wanted = request.GET.get("csv")
    if wanted:
        table = next((t for t in tables if t["id"] == wanted), None)
        if table is None:
            raise Http404("tableau inconnu")
        return _csv_response(table, f"statistiques-{table['id']}-{first}-{last}.csv")
    context = {
        "tables": tables,
        "scope_label": scope_label,
        "first": first,
        "last": last,
        "granularity": granularity_name,
        "granularities": list(GRANULARITIES),
        "structures": Structure.objects.order_by("name").values_list("pk", "name"),
        "query": request.GET.urlencode(),
        "selected_structure": request.GET.get("structure", ""),
        "selected_box": request.GET.get("bal", ""),
        "nav": "statistics",
    }
    return render(request, "operations/statistics.html", context)


def _csv_response(table: dict, filename: str) -> HttpResponse:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";")
    writer.writerow(table["columns"])
    writer.writerows(table["rows"])
    response = HttpResponse("\ufeff" + out.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@staff_member_required
def indicators(request):
    month = request.GET.get("mois") or (timezone.localdate().replace(day=1) - datetime.timedelta(days=1)).strftime(
        "%Y-%m"
    )
    try:
        datetime.date.fromisoformat(f"{month}-01")
    except ValueError:
        return HttpResponse("mois attendu au format AAAA-MM", status=400, content_type="text/plain; charset=utf-8")
    record(
        AuditEvent.Action.STATISTICS_EXPORTED,
        actor=request.user,
        object_type="indicators",
        object_id=month,
        request=request,
    )
    response = HttpResponse(indicators_csv(month), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="indicateurs-operateur-{month}.csv"'
    return response
