"""Login accounts in the admin. Identity lives in Professional / Patient; this is the account."""

from allauth.account.admin import EmailAddressAdmin
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.socialaccount.admin import SocialAccountAdmin, SocialAppAdmin, SocialAppForm, SocialTokenAdmin
from allauth.socialaccount.models import SocialAccount, SocialApp, SocialToken
from django import forms
from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin as BaseGroupAdmin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.forms import AdminPasswordChangeForm, SetUnusablePasswordMixin
from django.contrib.auth.models import Group

from accounts.models import User

# --- Third-party models, in French (issue 16 item 12) --------------------------------------------
# allauth registers its models with English labels (its models carry no verbose names, and a
# migration of a third-party app is not ours to write). Their second factors are shown on the
# account they protect; the social-login models are registered again with French labels.


THIRD_PARTY_LABELS = {
    "user": "compte",
    "type": "type",
    "created_at": "créé le",
    "last_used_at": "dernière utilisation le",
    "settings": "réglages (JSON)",
    "uid": "identifiant chez le fournisseur",
    "app": "application",
    "account": "compte social",
    "sites": "sites",
}


class FrenchLabelsMixin:
    """Form labels of a third-party model in French, from THIRD_PARTY_LABELS."""

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        formfield = super().formfield_for_dbfield(db_field, request, **kwargs)
        if formfield is not None and db_field.name in THIRD_PARTY_LABELS:
            formfield.label = THIRD_PARTY_LABELS[db_field.name].capitalize()
        return formfield


class SecondFactorInline(FrenchLabelsMixin, admin.TabularInline):
    """The account's second factors (allauth MFA). Deleting them makes a professional who lost
    their phone set up two-factor authentication again at the next sign-in."""

    model = Authenticator
    verbose_name = "second facteur"
    verbose_name_plural = "double authentification (seconds facteurs)"
    extra = 0
    max_num = 0
    fields = ["kind", "created", "last_used"]
    readonly_fields = ["kind", "created", "last_used"]

    @admin.display(description="type")
    def kind(self, obj):
        return {"totp": "application d'authentification (TOTP)", "recovery_codes": "codes de secours"}.get(
            obj.type, obj.get_type_display()
        )

    @admin.display(description="créé le")
    def created(self, obj):
        return obj.created_at

    @admin.display(description="dernière utilisation le")
    def last_used(self, obj):
        return obj.last_used_at or "—"


# --- Permissions, in French --------------------------------------------------------------------
# Django stores each permission's name once, in English ("Can add social account"), when the
# model is migrated. The account and group forms name the four standard permissions from the
# model's French verbose name instead; a permission of another kind keeps its own name.

PERMISSION_ACTIONS = {"add": "ajouter", "change": "modifier", "delete": "supprimer", "view": "voir"}


def permission_label(permission) -> str:
    action, _, model_name = permission.codename.partition("_")
    model = permission.content_type.model_class()
    if model is not None and action in PERMISSION_ACTIONS and model_name == model._meta.model_name:
        return f"{permission.content_type} | peut {PERMISSION_ACTIONS[action]} : {model._meta.verbose_name}"
    return str(permission)


class PermissionChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj):
        return permission_label(obj)


class FrenchPermissionsMixin:
    def formfield_for_manytomany(self, db_field, request=None, **kwargs):
        if db_field.name in ("permissions", "user_permissions"):
            kwargs["form_class"] = PermissionChoiceField
            kwargs["queryset"] = db_field.remote_field.model.objects.select_related("content_type")
        return super().formfield_for_manytomany(db_field, request=request, **kwargs)


class FrenchAdminPasswordChangeForm(AdminPasswordChangeForm):
    """Django's form for an account's password, whose warning Django leaves in English."""

    usable_password_help_text = SetUnusablePasswordMixin.usable_password_help_text + (
        '<ul id="id_unusable_warning" class="messagelist"><li class="warning">'
        "Si vous la désactivez, le mot de passe actuel de ce compte sera perdu.</li></ul>"
    )


@admin.register(User)
class UserAdmin(FrenchPermissionsMixin, BaseUserAdmin):
    change_password_form = FrenchAdminPasswordChangeForm
    show_full_result_count = False
    list_display = ["username", "email", "first_name", "last_name", "is_staff", "is_active", "last_login"]
    search_fields = ["username", "email", "last_name"]
    inlines = [SecondFactorInline]


class GroupAdmin(FrenchPermissionsMixin, BaseGroupAdmin):
    pass


if admin.site.is_registered(Group):
    admin.site.unregister(Group)
admin.site.register(Group, GroupAdmin)


if admin.site.is_registered(Authenticator):
    admin.site.unregister(Authenticator)


class FrenchSocialAppForm(SocialAppForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["provider"].label = "Fournisseur"  # the form replaces the model's field


class FrenchSocialAppAdmin(FrenchLabelsMixin, SocialAppAdmin):
    form = FrenchSocialAppForm


class FrenchSocialAccountAdmin(FrenchLabelsMixin, SocialAccountAdmin):
    list_display = ("account_user", "account_uid", "provider")

    @admin.display(description="compte", ordering="user")
    def account_user(self, obj):
        return obj.user

    @admin.display(description="identifiant chez le fournisseur", ordering="uid")
    def account_uid(self, obj):
        return obj.uid


class FrenchSocialTokenAdmin(FrenchLabelsMixin, SocialTokenAdmin):
    list_display = ("token_app", "token_account", "expires_at")
    list_filter = ("app__provider", "expires_at")

    @admin.display(description="application")
    def token_app(self, obj):
        return obj.app

    @admin.display(description="compte social")
    def token_account(self, obj):
        return obj.account


for model, model_admin in (
    (SocialApp, FrenchSocialAppAdmin),
    (SocialAccount, FrenchSocialAccountAdmin),
    (SocialToken, FrenchSocialTokenAdmin),
):
    if admin.site.is_registered(model):
        admin.site.unregister(model)
    admin.site.register(model, model_admin)


class AuditedEmailAddressAdmin(EmailAddressAdmin):
    """allauth's admin of e-mail addresses, whose action leaves an audit event like every admin
    change (through the admin log, audit/signals.py)."""

    @admin.action(description=EmailAddressAdmin.make_verified.short_description)
    def make_verified(self, request, queryset):
        pending = list(queryset.filter(verified=False))
        super().make_verified(request, queryset)
        for address in EmailAddress.objects.filter(pk__in=[a.pk for a in pending], verified=True):
            self.log_change(request, address, "adresse vérifiée")


if admin.site.is_registered(EmailAddress):
    admin.site.unregister(EmailAddress)
admin.site.register(EmailAddress, AuditedEmailAddressAdmin)
