"""The directory in the admin (French): each import with its date and counts, the last one first,
and a read-only look at the entries. Imports run from the command or the schedule, not from here."""

from django.contrib import admin
from django.utils.html import format_html_join

from directory.importer import summary_lines
from directory.models import Entry, ImportRun
from mssante.admin_helpers import ReadOnlyAdminMixin


@admin.register(ImportRun)
class ImportRunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    allow_delete = True  # an old run's report may be deleted
    list_display = [
        "started_at",
        "status",
        "source",
        "entries",
        "added",
        "changed",
        "removed",
        "rejected",
        "seconds",
        "error",  # why a run was refused or failed, readable from the list
    ]
    list_filter = ["status"]
    date_hierarchy = "started_at"
    readonly_fields = [f.name for f in ImportRun._meta.fields] + ["report"]
    fields = ["started_at", "finished_at", "status", "source", "report", "error", "phases", "samples"]

    @admin.display(description="compte rendu")
    def report(self, obj):
        return format_html_join("\n", "<div>{}</div>", ((line,) for line in summary_lines(obj)))


@admin.register(Entry)
class EntryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    show_full_result_count = False
    list_per_page = 50
    list_display = [
        "address",
        "kind",
        "source",
        "last_name",
        "first_name",
        "profession_label",
        "town",
        "dematerialisation",
    ]
    list_filter = ["source", "kind"]
    search_fields = ["=address"]
    readonly_fields = [f.name for f in Entry._meta.fields]
    raw_id_fields = ["mailbox"]
