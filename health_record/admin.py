"""The patient's record in the admin (RULES.md §5, least privilege): document metadata only,
read-only, for operations (storage, sizes). Titles, file names, contents, the medical profile
and measures are the patient's alone and are not shown here."""

from django.contrib import admin

from health_record.models import Document
from mssante.admin_helpers import ReadOnlyAdminMixin


@admin.register(Document)
class DocumentAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["id", "patient_id", "kind", "category", "content_type", "size", "date", "created_at"]
    list_filter = ["kind", "category", "content_type"]
    fields = ["id", "patient_id", "kind", "category", "content_type", "size", "sha256", "date", "created_at"]
    readonly_fields = fields
    search_fields = ["=id", "=patient__id"]
    show_full_result_count = False
