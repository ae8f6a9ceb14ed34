"""The audit trail in the admin (RULES.md §5): read-only, never deleted by hand (retention does
that), filtered by action and date, searched by ids. It shows ids and codes only, never content."""

from django.contrib import admin
from django.db.models import Q

from audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    show_full_result_count = False
    list_per_page = 100
    list_display = [
        "at",
        "action",
        "actor",
        "actor_label",
        "object_type",
        "object_id",
        "mailbox_id",
        "message_id",
        "outcome",
    ]
    list_select_related = ["actor"]
    list_filter = ["action", "outcome", "at", "object_type"]
    search_fields = ["object_id"]
    search_help_text = (
        "Recherche exacte : identifiant d'objet, de BAL, de message, ou identifiant de connexion de l'auteur."
    )
    date_hierarchy = "at"

    def get_search_results(self, request, queryset, search_term):
        # Exact matches on indexed ids, so that a search stays fast on millions of rows.
        term = search_term.strip()
        if not term:
            return queryset, False
        query = Q(object_id=term) | Q(actor__username=term) | Q(actor_label=term)
        if term.isdigit():
            query |= Q(mailbox_id=int(term)) | Q(message_id=int(term))
        return queryset.filter(query), False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
