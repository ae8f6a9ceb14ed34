"""The monthly operator indicators (issue 14 item 2), one CSV row per structure plus a total.

Columns (docs/operations.md repeats them for the people who receive the file):

| column | meaning |
| --- | --- |
| `mois` | the month, `AAAA-MM` |
| `structure` | the structure's name; `TOTAL` for the whole service |
| `finess` | its FINESS number (empty when none) |
| `bal_<kind>_actives`, `bal_<kind>_desactivees` | boxes of each kind (`nominatives`, `organisationnelles`, `applicatives`) active or deactivated on the day of the export |
| `bal_utilisees` | boxes on which someone acted at least once in the month |
| `messages_envoyes`, `messages_recus` | messages sent from, and received in, the structure's boxes |
| `destinataires_meme_structure` | recipients of those messages inside the same structure |
| `destinataires_espace_de_confiance` | recipients at another structure of this operator or at another MSSanté operator (inside the trust space, outside the structure) |
| `dont_autres_operateurs` | of which at other MSSanté operators (relayed) |
| `destinataires_patients` | recipients who are patients (Mon espace santé) |
| `recus_hors_structure` | messages received from outside the structure (other structures, operators, patients) |
| `recus_de_patients` | of which from patients |
| `connexions`, `echecs_connexion` | sign-ins and failed sign-ins of the structure's professionals (the total row adds patients, administrators and unknown logins) |
"""

import csv
import datetime
import io
from collections import defaultdict

from django.db.models import Count, Q

from mailboxes.models import Mailbox, Structure
from operations.models import DailyStat

KINDS = [
    (Mailbox.Kind.NOMINATIVE, "nominatives"),
    (Mailbox.Kind.ORGANISATIONAL, "organisationnelles"),
    (Mailbox.Kind.APPLICATIVE, "applicatives"),
]
METRICS = {
    "messages_envoyes": ["sent"],
    "messages_recus": ["received"],
    "destinataires_meme_structure": ["recipients_internal"],
    "destinataires_espace_de_confiance": ["recipients_hosted", "recipients_external"],
    "dont_autres_operateurs": ["recipients_external"],
    "destinataires_patients": ["recipients_patient"],
    "recus_hors_structure": ["received_hosted", "received_external", "received_patient"],
    "recus_de_patients": ["received_patient"],
    "connexions": ["sign_ins"],
    "echecs_connexion": ["sign_in_failures"],
}
COLUMNS = (
    ["mois", "structure", "finess"]
    + [f"bal_{name}_{state}" for _kind, name in KINDS for state in ("actives", "desactivees")]
    + ["bal_utilisees"]
    + list(METRICS)
)


def month_bounds(month: str) -> tuple[datetime.date, datetime.date]:
    first = datetime.date.fromisoformat(f"{month}-01")
    last = (first.replace(day=28) + datetime.timedelta(days=4)).replace(day=1) - datetime.timedelta(days=1)
    return first, last


def indicator_rows(month: str) -> list[dict]:
    first, last = month_bounds(month)
    stats = DailyStat.objects.filter(day__gte=first, day__lte=last)
    sums = defaultdict(lambda: defaultdict(int))
    for structure_id, metric, value in stats.values_list("structure_id", "metric", "value"):
        sums[structure_id][metric] += value
        sums["total"][metric] += value
    used = defaultdict(set)
    for structure_id, box in stats.filter(metric="active").values_list("structure_id", "mailbox_id"):
        used[structure_id].add(box)
        used["total"].add(box)
    boxes = defaultdict(lambda: defaultdict(int))
    counted = Mailbox.objects.exclude(kind=Mailbox.Kind.PATIENT).values("structure_id", "kind", "is_active")
    for row in counted.annotate(n=Count("id")):
        for key in (row["structure_id"], "total"):
            boxes[key][(row["kind"], row["is_active"])] += row["n"]

    def row_for(key, name, finess) -> dict:
        row = {"mois": month, "structure": name, "finess": finess}
        for kind, label in KINDS:
            row[f"bal_{label}_actives"] = boxes[key][(kind, True)]
            row[f"bal_{label}_desactivees"] = boxes[key][(kind, False)]
        row["bal_utilisees"] = len(used[key])
        for column, metrics in METRICS.items():
            row[column] = sum(sums[key][m] for m in metrics)
        return row

    structures = Structure.objects.filter(Q(mailboxes__isnull=False) | Q(pk__in=[k for k in sums if k != "total"]))
    rows = [row_for(s.pk, s.name, s.finess) for s in structures.distinct().order_by("name")]
    rows.append(row_for("total", "TOTAL", ""))
    return rows


def indicators_csv(month: str) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, delimiter=";")
    writer.writeheader()
    writer.writerows(indicator_rows(month))
    return "\ufeff" + out.getvalue()
