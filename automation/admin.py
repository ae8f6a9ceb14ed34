"""Admin of automation: read-mostly views for support (the pages are where secretaries work)."""

from django.contrib import admin

from automation.models import Campaign, Convocation, MessageModel, ModelVersion, Reminder


class VersionInline(admin.TabularInline):
    model = ModelVersion
    extra = 0
    fields = ("number", "subject", "created_by", "created_at")
    readonly_fields = fields
    can_delete = False


@admin.register(MessageModel)
class MessageModelAdmin(admin.ModelAdmin):
    list_display = ("name", "service", "mailbox", "kind", "is_appointment", "is_active")
    list_filter = ("kind", "is_appointment", "is_active")
    list_select_related = ("mailbox",)
    search_fields = ("name", "service", "mailbox__address")
    raw_id_fields = ("mailbox",)
    inlines = [VersionInline]


@admin.register(Convocation)
class ConvocationAdmin(admin.ModelAdmin):
    list_display = ("id", "starts_at", "service", "mailbox", "status", "sequence")
    list_filter = ("status",)
    list_select_related = ("mailbox",)
    raw_id_fields = ("model", "version", "mailbox", "patient", "message", "created_by")
    readonly_fields = ("uid", "sequence")


@admin.register(Reminder)
class ReminderAdmin(admin.ModelAdmin):
    list_display = ("id", "convocation", "days_before", "due_at", "status", "reason")
    list_filter = ("status",)
    raw_id_fields = ("convocation", "message")


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = ("id", "filename", "model", "mailbox", "status", "created_at", "finished_at")
    list_filter = ("status",)
    list_select_related = ("model", "mailbox")
    raw_id_fields = ("model", "version", "mailbox", "created_by")
    exclude = ("source",)  # the list itself (INS): not shown in the admin
