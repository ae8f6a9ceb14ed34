"""Django admin for the operator's data (issue 2 §6): structures, hosted and trusted domains,
professionals, mailboxes and their members.

Fast on large tables (select_related, autocomplete, no full count); actions call the functions of
`mailboxes/provisioning.py` that the commands use; every change leaves an audit event through the
admin log (audit/signals.py). Model `clean()` errors (RULES.md §2) show on the form.
"""

from django.conf import settings
from django.contrib import admin, messages
from django.db.models import Count
from django.template.defaultfilters import filesizeformat

from mailboxes.activation import deactivate_mailboxes, reactivate_mailboxes
from mailboxes.models import Domain, Mailbox, Membership, Professional, Structure, TrustedDomain


class FastAdmin(admin.ModelAdmin):
    show_full_result_count = False
    list_per_page = 50


class DomainInline(admin.TabularInline):
    model = Domain
    extra = 0
    fields = ["name"]
    show_change_link = True


@admin.register(Structure)
class StructureAdmin(FastAdmin):
    list_display = ["name", "kind", "finess", "siret", "siren"]
    list_filter = ["kind"]
    search_fields = ["name", "=finess", "=siret", "=siren"]
    fieldsets = [
        (None, {"fields": ["name", "kind"]}),
        ("Identifiants", {"fields": ["finess", "siret", "siren"], "description": "Au moins un des trois."}),
        ("Coordonnées", {"fields": ["address", "phone"]}),
    ]
    inlines = [DomainInline]


@admin.register(Domain)
class DomainAdmin(FastAdmin):
    list_display = ["name", "structure", "mailbox_count"]
    list_select_related = ["structure"]
    search_fields = ["name", "structure__name"]
    list_filter = ["structure__kind"]
    autocomplete_fields = ["structure"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_mailbox_count=Count("mailboxes"))

    @admin.display(description="BAL", ordering="_mailbox_count")
    def mailbox_count(self, obj):
        return obj._mailbox_count


@admin.register(TrustedDomain)
class TrustedDomainAdmin(FastAdmin):
    list_display = ["name", "source", "updated_at"]
    list_filter = ["source"]
    search_fields = ["name"]


@admin.register(Professional)
class ProfessionalAdmin(FastAdmin):
    list_display = ["display_name", "profession", "rpps", "adeli", "local_identifier", "structure", "user"]
    list_select_related = ["structure", "user"]
    list_filter = ["profession", "structure__kind"]
    search_fields = ["last_name", "first_name", "=rpps", "=adeli", "=local_identifier", "user__username"]
    autocomplete_fields = ["structure"]
    raw_id_fields = ["user"]
    fieldsets = [
        (None, {"fields": ["civility", "first_name", "last_name", "profession", "specialty", "structure"]}),
        (
            "Identification",
            {
                "fields": ["rpps", "adeli", "local_identifier"],
                "description": "RPPS (11 chiffres) ou ADELI (9) ; à défaut (interne, secrétaire), un identifiant "
                "local sous la responsabilité du chef de la structure.",
            },
        ),
        ("Compte et préférences", {"fields": ["user", "dematerialisation", "notify_patient_replies"]}),
    ]

    @admin.display(description="nom affiché", ordering="last_name")
    def display_name(self, obj):
        return obj.display_name


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ["user"]
    fields = ["user", "role", "created_at"]
    readonly_fields = ["created_at"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user")


@admin.register(Mailbox)
class MailboxAdmin(FastAdmin):
    list_display = ["address", "kind", "display_name", "structure", "is_active", "unlisted"]
    list_select_related = ["structure"]
    list_filter = ["kind", "is_active", "unlisted", "structure__kind"]
    search_fields = ["address", "display_name"]
    autocomplete_fields = ["domain", "structure", "owner", "responsible", "return_mailbox"]
    readonly_fields = ["used_bytes", "last_used_at", "created_at"]
    inlines = [MembershipInline]
    actions = ["deactivate", "reactivate"]
    fieldsets = [
        (None, {"fields": ["kind", "address", "display_name", "domain", "structure"]}),
        (
            "Responsabilité",
            {
                "fields": ["owner", "responsible", "return_mailbox"],
                "description": "Nominative : un titulaire (adresse prénom.nom). Organisationnelle : un professionnel "
                "responsable. Applicative : une BAL organisationnelle de retour.",
            },
        ),
        ("Annuaire", {"fields": ["unlisted", "is_preferred", "is_active", "signature"]}),
        ("Capacité", {"fields": ["quota_bytes", "max_message_bytes", "used_bytes", "last_used_at", "created_at"]}),
    ]

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        """Say which default a 0 stands for (Mailbox.save applies it): issue 16 item 12."""
        formfield = super().formfield_for_dbfield(db_field, request, **kwargs)
        defaults = {
            "quota_bytes": settings.MAILBOX_DEFAULT_QUOTA,
            "max_message_bytes": settings.MAILBOX_MAX_MESSAGE_BYTES,
        }
        if db_field.name in defaults and formfield is not None:
            formfield.help_text = (
                f"En octets. 0 ou vide : la valeur par défaut de l'opérateur, {filesizeformat(defaults[db_field.name])} "
                f"({defaults[db_field.name]} octets), est appliquée à l'enregistrement."
            )
        return formfield

    def save_model(self, request, obj, form, change):
        defaulted = [
            (label, name)
            for name, label in (("quota_bytes", "Quota"), ("max_message_bytes", "Taille maximale d'un message"))
            if not form.cleaned_data.get(name)
        ]
        super().save_model(request, obj, form, change)
        for label, name in defaulted:
            self.message_user(
                request,
                f"{label} laissé à 0 : la valeur par défaut, {filesizeformat(getattr(obj, name))}, a été appliquée.",
                messages.INFO,
            )

    def get_readonly_fields(self, request, obj=None):
        # A patient inbox is created and named with its patient (patients admin, enrol_patient).
        if obj is not None and obj.kind == Mailbox.Kind.PATIENT:
            return [*self.readonly_fields, "kind", "address", "domain", "owner", "responsible", "return_mailbox"]
        return self.readonly_fields

    def formfield_for_choice_field(self, db_field, request, **kwargs):
        if db_field.name == "kind":
            kwargs["choices"] = [c for c in Mailbox.Kind.choices if c[0] != Mailbox.Kind.PATIENT]
        return super().formfield_for_choice_field(db_field, request, **kwargs)

    @admin.action(description="Désactiver les BAL sélectionnées")
    def deactivate(self, request, queryset):
        count = deactivate_mailboxes(list(queryset), actor=request.user)
        self.message_user(request, f"{count} BAL désactivée(s).", messages.SUCCESS)

    @admin.action(description="Réactiver les BAL sélectionnées")
    def reactivate(self, request, queryset):
        count = reactivate_mailboxes(list(queryset), actor=request.user)
        self.message_user(request, f"{count} BAL réactivée(s).", messages.SUCCESS)


@admin.register(Membership)
class MembershipAdmin(FastAdmin):
    list_display = ["mailbox", "user", "role", "created_at"]
    list_select_related = ["mailbox", "user"]
    list_filter = ["role", "mailbox__kind"]
    search_fields = ["mailbox__address", "user__username", "user__email"]
    autocomplete_fields = ["mailbox"]
    raw_id_fields = ["user"]
