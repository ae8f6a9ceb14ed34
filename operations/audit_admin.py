"""The audit trail in the admin (RULES.md §5; issue 14 item 3).

Read-only (no add, change or delete: the rows are append-only, audit/models.py). Stored rows
keep ids only; this view resolves them at display time — the actor's name and login, the box's
address — so the trail stays free of names while an auditor still reads it. It lives here, above
`mailboxes`, because `audit` sits below it and may not import it. French column headers; filters
by actor, box, message, action and dates; a CSV export of the filtered rows for the
data-protection officer, itself recorded as an audit event.
"""

import csv
import datetime
import json
from functools import cache

from django.apps import apps
from django.contrib import admin
from django.db.models import OuterRef, Q, Subquery
from django.http import StreamingHttpResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html

from audit.events import record
from audit.models import AuditEvent, AuditSeal
from mailboxes.models import Mailbox
from mailboxes.templatetags.mss_format import fr_precise
from mssante.admin_helpers import ReadOnlyAdminMixin


class InputFilter(admin.SimpleListFilter):
    """A filter typed in a text field rather than picked from a list (there are too many boxes)."""

    template = "admin/input_filter.html"

    def lookups(self, request, model_admin):
        return ((None, None),)  # a filter needs one lookup to be shown

    def choices(self, changelist):
        # The other filters of the page, kept as hidden fields of the small form.
        yield {
            "query_parts": [
                (key, value) for key, value in changelist.get_filters_params().items() if key != self.parameter_name
            ]
        }


class ActorFilter(InputFilter):
    title = "auteur (identifiant de connexion ou libellé système)"
    parameter_name = "auteur"

    def queryset(self, request, queryset):
        term = (self.value() or "").strip()
        if not term:
            return queryset
        query = Q(actor__username=term) | Q(actor_label=term)
        if term.isdigit():
            query |= Q(actor_id=int(term))
        return queryset.filter(query)


class MailboxFilter(InputFilter):
    title = "boîte aux lettres (adresse ou numéro)"
    parameter_name = "boite"

    def queryset(self, request, queryset):
        term = (self.value() or "").strip().lower()
        if not term:
            return queryset
        if term.isdigit():
            return queryset.filter(mailbox_id=int(term))
        box_id = Mailbox.objects.filter(address=term).values_list("pk", flat=True).first()
        return queryset.filter(mailbox_id=box_id) if box_id else queryset.none()


class MessageFilter(InputFilter):
    title = "message (numéro)"
    parameter_name = "message"

    def queryset(self, request, queryset):
        term = (self.value() or "").strip()
        if not term:
            return queryset
        return queryset.filter(message_id=int(term)) if term.isdigit() else queryset.none()


class DateFromFilter(InputFilter):
    title = "à partir du (AAAA-MM-JJ)"
    parameter_name = "du"

    def queryset(self, request, queryset):
        day = _date(self.value())
        return queryset.filter(at__date__gte=day) if day else queryset


class DateToFilter(InputFilter):
    title = "jusqu'au (AAAA-MM-JJ)"
    parameter_name = "au"

    def queryset(self, request, queryset):
        day = _date(self.value())
        return queryset.filter(at__date__lte=day) if day else queryset


def _date(value):
    try:
        return datetime.date.fromisoformat((value or "").strip())
    except ValueError:
        return None


class ActionFilter(admin.SimpleListFilter):
    title = "action"
    parameter_name = "action"

    def lookups(self, request, model_admin):
        return [(value, f"{label} ({value})") for value, label in AuditEvent.Action.choices]

    def queryset(self, request, queryset):
        return queryset.filter(action=self.value()) if self.value() else queryset


def actor_display(event) -> str:
    if event.actor_id is None:
        return event.actor_label or "—"
    if event.actor is None:
        return f"compte n° {event.actor_id} (supprimé)"
    name = event.actor.get_full_name()
    return f"{name} ({event.actor.username})" if name else event.actor.username


# Object types that are not a model (the others are named by their model's verbose name).
OBJECT_TYPES = {
    "absence": "message d'absence",
    "indicators": "indicateurs",
    "pending_return": "retour en attente",
    "provisioning": "provisionnement",
    "returnqueue": "file des réponses",
    "selftest": "auto-test",
}


# The words of an admin change's detail (audit/signals.py, mailboxes/activation.py), in French.
DETAIL_WORDS = {
    "change": "modification",
    "fields": "champs",
    "action": "action",
    "added": "ajout",
    "changed": "modification",
    "deleted": "suppression",
    "activated": "réactivation",
    "deactivated": "désactivation",
}


def detail_display(detail) -> str:
    """An event's detail as « modification : suppression » lines; the JSON of any other key's
    value as stored (codes, counts, ids)."""
    if not detail:
        return "—"
    if not isinstance(detail, dict):
        return _json(detail)
    lines = []
    for key, value in detail.items():
        if isinstance(value, list):
            shown = ", ".join(str(item) for item in value)
        elif isinstance(value, str):
            shown = DETAIL_WORDS.get(value, value) if key == "change" else value
        else:
            shown = json.dumps(value, sort_keys=True, ensure_ascii=False)
        lines.append(f"{DETAIL_WORDS.get(key, key)} : {shown}")
    return "\n".join(lines)


@cache
def object_type_label(code: str) -> str:
    """The French name of a stored object type (`mailbox` → « boîte aux lettres »); the code
    itself when it names nothing known. The stored code stays in the CSV export."""
    if code in OBJECT_TYPES:
        return OBJECT_TYPES[code]
    for model in apps.get_models():
        if model._meta.model_name == code:
            return str(model._meta.verbose_name)
    return code


EXPORT_COLUMNS = [
    ("id", "numéro"),
    ("at", "date et heure"),
    ("action", "action"),
    ("action_label", "libellé de l'action"),
    ("actor_id", "compte"),
    ("actor", "auteur"),
    ("object_type", "type d'objet"),
    ("object_id", "objet"),
    ("mailbox_id", "BAL"),
    ("mailbox_address", "adresse de la BAL"),
    ("message_id", "message"),
    ("outcome", "résultat"),
    ("detail", "détail"),
    ("ip", "adresse IP"),
    ("chain", "chaîne"),
    ("seq", "rang"),
    ("prev_hash", "empreinte précédente"),
    ("hash", "empreinte"),
]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    show_full_result_count = False
    list_per_page = 100
    list_display = ["when", "action_display", "actor_column", "mailbox_column", "message_column", "object_column"]
    list_display += ["outcome_column", "ip_column"]
    list_select_related = ["actor"]
    list_filter = [ActorFilter, MailboxFilter, MessageFilter, ActionFilter, DateFromFilter, DateToFilter, "outcome"]
    search_fields = ["object_id"]
    search_help_text = (
        "Recherche exacte : identifiant d'objet, de BAL, de message, ou identifiant de connexion de l'auteur."
    )
    date_hierarchy = "at"
    change_list_template = "admin/audit/auditevent/change_list.html"
    fields = ["at", "action", "actor", "actor_label", "object_type_column", "object_id", "mailbox_id", "message_id"]
    fields += ["outcome", "detail_column", "ip", "chain", "seq", "prev_hash", "hash"]
    readonly_fields = fields

    def get_queryset(self, request):
        address = Mailbox.objects.filter(pk=OuterRef("mailbox_id")).values("address")[:1]
        return super().get_queryset(request).annotate(mailbox_address=Subquery(address))

    def get_search_results(self, request, queryset, search_term):
        # Exact matches on indexed ids, so that a search stays fast on millions of rows.
        term = search_term.strip()
        if not term:
            return queryset, False
        query = Q(object_id=term) | Q(actor__username=term) | Q(actor_label=term)
        if term.isdigit():
            query |= Q(mailbox_id=int(term)) | Q(message_id=int(term))
        return queryset.filter(query), False

    @admin.display(description="date et heure", ordering="at")
    def when(self, event):
        return fr_precise(event.at)

    @admin.display(description="action", ordering="action")
    def action_display(self, event):
        return event.action_label

    @admin.display(description="auteur")
    def actor_column(self, event):
        return actor_display(event)

    @admin.display(description="boîte aux lettres")
    def mailbox_column(self, event):
        if event.mailbox_id is None:
            return "—"
        return event.mailbox_address or f"BAL n° {event.mailbox_id} (supprimée)"

    @admin.display(description="message")
    def message_column(self, event):
        return f"n° {event.message_id}" if event.message_id else "—"

    @admin.display(description="objet")
    def object_column(self, event):
        kind = object_type_label(event.object_type)
        return f"{kind} n° {event.object_id}" if event.object_id else (kind or "—")

    @admin.display(description="détail")
    def detail_column(self, event):
        return detail_display(event.detail)

    @admin.display(description="type d'objet")
    def object_type_column(self, event):
        return object_type_label(event.object_type) or "—"

    @admin.display(description="résultat", ordering="outcome")
    def outcome_column(self, event):
        return event.outcome

    @admin.display(description="adresse IP")
    def ip_column(self, event):
        return event.ip or "—"

    def get_urls(self):
        export = path("export/", self.admin_site.admin_view(self.export_view), name="audit_auditevent_export")
        return [export, *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "export_query": request.GET.urlencode()}
        return super().changelist_view(request, extra_context)

    def export_view(self, request):
        """Every row the current filters select, as CSV (UTF-8 with BOM, `;`, for a spreadsheet),
        with the resolved names and the hashes, so the chain can be checked from the file."""
        if not self.has_view_permission(request):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied
        changelist = self.get_changelist_instance(request)
        queryset = changelist.get_queryset(request).select_related("actor").order_by("at", "id")
        record(
            AuditEvent.Action.AUDIT_EXPORTED,
            actor=request.user,
            object_type="auditevent",
            detail={"filters": sorted(request.GET.keys()), "rows": queryset.count()},
            request=request,
        )
        response = StreamingHttpResponse(_csv_rows(queryset), content_type="text/csv; charset=utf-8")
        stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
        response["Content-Disposition"] = f'attachment; filename="traces-{stamp}.csv"'
        return response


class _Echo:
    def write(self, value):
        return value


def _csv_rows(queryset):
    writer = csv.writer(_Echo(), delimiter=";")
    yield "\ufeff" + writer.writerow([label for _key, label in EXPORT_COLUMNS])
    for event in queryset.iterator(chunk_size=2000):
        values = {
            "id": event.pk,
            "at": timezone.localtime(event.at).isoformat(),
            "action": event.action,
            "action_label": event.action_label,
            "actor_id": event.actor_id or "",
            "actor": actor_display(event),
            "object_type": event.object_type,
            "object_id": event.object_id,
            "mailbox_id": event.mailbox_id or "",
            "mailbox_address": event.mailbox_address or "",
            "message_id": event.message_id or "",
            "outcome": event.outcome,
            "detail": _json(event.detail),
            "ip": event.ip or "",
            "chain": event.chain_id or "",
            "seq": event.seq or "",
            "prev_hash": event.prev_hash,
            "hash": event.hash,
        }
        yield writer.writerow([values[key] for key, _label in EXPORT_COLUMNS])


def _json(value) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False) if value else ""


@admin.register(AuditSeal)
class AuditSealAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["day_column", "events", "chain_count", "short_hash", "sealed_at", "purged_at"]
    readonly_fields = ["day", "chains", "events", "prev_hash", "hash", "sealed_at", "purged_at"]

    @admin.display(description="jour", ordering="day")
    def day_column(self, seal):
        return date_format(seal.day, "SHORT_DATE_FORMAT")

    @admin.display(description="chaînes")
    def chain_count(self, seal):
        return len(seal.chains)

    @admin.display(description="empreinte")
    def short_hash(self, seal):
        return format_html("<code>{}</code>", seal.hash)


def export_url(query: str) -> str:
    url = reverse("admin:audit_auditevent_export")
    return f"{url}?{query}" if query else url
