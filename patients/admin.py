"""Django admin for Mon espace santé (issue 2 §6): patients with their inbox, pharmacy
dispensations, blocks and conversations.

A patient created here gets their inbox through `patients.enrolment.enrol_patient`, the same
function as `provision`; closing a space calls `patients.space.close_space`.
"""

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from mssante.admin_helpers import ReadOnlyAdminMixin
from patients.enrolment import enrol_patient
from patients.models import Block, Conversation, Patient, PharmacyDispensation
from patients.space import close_space

ENROLMENT_FIELDS = [
    "ins_qualified",
    "birth_name",
    "usage_name",
    "first_names",
    "birth_date",
    "sex",
    "notification_email",
    "space_state",
]


@admin.register(Patient)
class PatientAdmin(admin.ModelAdmin):
    show_full_result_count = False
    list_per_page = 50
    list_display = ["__str__", "display_name", "space_state", "ins_qualified", "mailbox_link", "created_at"]
    list_select_related = ["mailbox"]
    list_filter = ["space_state", "ins_qualified", "sex"]
    search_fields = ["=ins", "^birth_name", "^usage_name", "=user__username", "=notification_email"]
    raw_id_fields = ["user"]
    actions = ["close_space"]
    fieldsets = [
        (None, {"fields": ["ins", "ins_qualified", "user"]}),
        ("État civil", {"fields": ["birth_name", "usage_name", "first_names", "birth_date", "sex"]}),
        ("Espace", {"fields": ["notification_email", "space_state", "space_closed_at", "mailbox", "created_at"]}),
    ]

    def get_readonly_fields(self, request, obj=None):
        # The INS is the inbox address: it is fixed once the patient exists. The space state
        # changes only through actions that call the one function (`close_space`), which audits.
        fixed = ["mailbox", "space_closed_at", "created_at"]
        return [*fixed, "ins", "space_state"] if obj is not None else fixed

    def formfield_for_choice_field(self, db_field, request, **kwargs):
        if db_field.name == "space_state":
            # A new patient's space is not created, active or opposed; closing is an action.
            kwargs["choices"] = [c for c in Patient.SpaceState.choices if c[0] != Patient.SpaceState.CLOSED]
        return super().formfield_for_choice_field(db_field, request, **kwargs)

    @admin.display(description="nom affiché", ordering="birth_name")
    def display_name(self, obj):
        return obj.display_name

    @admin.display(description="messagerie")
    def mailbox_link(self, obj):
        if obj.mailbox_id is None:
            return "—"
        url = reverse("admin:mailboxes_mailbox_change", args=[obj.mailbox_id])
        return format_html('<a href="{}">BAL #{}</a>', url, obj.mailbox_id)

    def save_model(self, request, obj, form, change):
        fields = {name: getattr(obj, name) for name in ENROLMENT_FIELDS}
        if change:
            del fields["space_state"]  # read-only here: `close_space` changes it
        enrol_patient(ins=obj.ins, user=obj.user, instance=obj, **fields)

    @admin.action(description="Clôturer l'espace des patients sélectionnés")
    def close_space(self, request, queryset):
        closed = sum(close_space(patient, actor=request.user) for patient in queryset)
        self.message_user(request, f"{closed} espace(s) clôturé(s).", messages.SUCCESS)


@admin.register(PharmacyDispensation)
class PharmacyDispensationAdmin(admin.ModelAdmin):
    show_full_result_count = False
    list_display = ["__str__", "patient", "pharmacy_mailbox", "dispensed_on"]
    list_select_related = ["patient", "pharmacy_mailbox"]
    list_filter = ["dispensed_on"]
    search_fields = ["=patient__ins", "pharmacy_mailbox__address"]
    raw_id_fields = ["patient"]
    autocomplete_fields = ["pharmacy_mailbox"]
    date_hierarchy = "dispensed_on"


@admin.register(Block)
class BlockAdmin(admin.ModelAdmin):
    show_full_result_count = False
    list_display = ["__str__", "patient", "mailbox", "address", "created_at"]
    list_select_related = ["patient", "mailbox"]
    search_fields = ["=patient__ins", "mailbox__address", "=address"]
    raw_id_fields = ["patient"]
    autocomplete_fields = ["mailbox"]


@admin.register(Conversation)
class ConversationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only: conversations open and close through messages (`[FIN]`), never by hand."""

    show_full_result_count = False
    list_display = ["__str__", "mailbox", "patient", "state", "opened_at", "closed_at"]
    list_select_related = ["mailbox", "patient"]
    list_filter = ["state"]
    search_fields = ["=patient__ins", "mailbox__address"]
