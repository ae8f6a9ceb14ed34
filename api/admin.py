"""Admin of API keys (issue 10 §2): a key is created here and shown once, on the page that
follows its creation (never stored in clear, never in a message cookie or a log); revoked by an
action that takes effect at the next call. The webhook's state and the reason it was switched
off are shown in the list, and each key's expiry, in bold when it comes within 30 days."""

import datetime

from django.contrib import admin, messages
from django.db import models
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html

from api.models import EXPIRES_SOON_DAYS, ApiKey, ReturnReply, WebhookDelivery, default_expiry
from api.webhooks import enqueue


class ExpiryFilter(admin.SimpleListFilter):
    title = "expiration"
    parameter_name = "expiration"

    def lookups(self, request, model_admin):
        return [
            ("expired", "expirées"),
            ("soon", f"expirent dans les {EXPIRES_SOON_DAYS} jours"),
            ("later", "expirent plus tard"),
        ]

    def queryset(self, request, queryset):
        now = timezone.now()
        soon = now + datetime.timedelta(days=EXPIRES_SOON_DAYS)
        if self.value() == "expired":
            return queryset.filter(expires_at__lte=now)
        if self.value() == "soon":
            return queryset.filter(expires_at__gt=now, expires_at__lte=soon)
        if self.value() == "later":
            return queryset.filter(expires_at__gt=soon)
        return queryset


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "mailbox",
        "prefix",
        "scopes_label",
        "expiry_state",
        "revoked_at",
        "last_used_at",
        "webhook_state",
    ]
    list_filter = [ExpiryFilter, "can_send", "can_read", "webhook_enabled"]
    search_fields = ["name", "=prefix", "mailbox__address"]
    list_select_related = ["mailbox"]
    raw_id_fields = ["mailbox"]
    show_full_result_count = False
    readonly_fields = ["prefix", "created_at", "last_used_at", "revoked_at", "webhook_failures", "created_by"]
    fields = [
        "mailbox",
        "name",
        "can_send",
        "can_read",
        "allowed_ips",
        "client_cert_fingerprint",
        "rate_per_minute",
        "expires_at",
        "webhook_url",
        "webhook_enabled",
        "webhook_failures",
        "webhook_disabled_reason",
        "prefix",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    actions = ["revoke_keys", "enable_webhooks"]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    @admin.display(description="portées")
    def scopes_label(self, obj):
        return ", ".join(obj.scopes) or "—"

    @admin.display(description="expiration", ordering="expires_at")
    def expiry_state(self, obj):
        """« expirée le … », « expire dans 12 jours (le …) » in bold for a key that expires within
        EXPIRES_SOON_DAYS days (time to make the next key), else the date."""
        if obj.expires_at is None:
            return "—"
        when = date_format(timezone.localtime(obj.expires_at), "SHORT_DATETIME_FORMAT")
        left = obj.expires_at - timezone.now()
        if left <= datetime.timedelta(0):
            return format_html('<strong class="api-key-expired">expirée le {}</strong>', when)
        if left <= datetime.timedelta(days=EXPIRES_SOON_DAYS):
            days = left.days
            soon = "expire dans moins d'un jour" if days < 1 else f"expire dans {days} jour{'s' if days > 1 else ''}"
            return format_html('<strong class="api-key-expires-soon">⚠ {} (le {})</strong>', soon, when)
        return f"le {when}"

    @admin.display(description="webhook")
    def webhook_state(self, obj):
        if not obj.webhook_url:
            return "—"
        if obj.webhook_enabled:
            return "actif"
        return f"désactivé : {obj.webhook_disabled_reason}"

    def save_model(self, request, obj, form, change):
        if obj.expires_at is None:  # left blank: the default lifetime from now
            obj.expires_at = default_expiry()
        if not change:
            obj.created_by = request.user
            self._issued_key = obj.issue()
        if change and "webhook_enabled" in form.changed_data and obj.webhook_enabled:
            obj.webhook_failures = 0
            obj.webhook_disabled_reason = ""
        super().save_model(request, obj, form, change)

    def response_add(self, request, obj, post_url_continue=None):
        return TemplateResponse(
            request,
            "api/admin_key_created.html",
            {**self.admin_site.each_context(request), "key": obj, "secret": self._issued_key, "opts": self.opts},
        )

    @admin.action(description="Révoquer les clés choisies")
    def revoke_keys(self, request, queryset):
        for key in queryset.filter(revoked_at__isnull=True):
            key.revoke()
            self.log_change(request, key, "clé révoquée")
        messages.success(request, "Clés révoquées : elles sont refusées dès le prochain appel.")

    @admin.action(description="Réactiver le webhook des clés choisies")
    def enable_webhooks(self, request, queryset):
        keys = list(queryset)
        queryset.update(webhook_enabled=True, webhook_failures=0, webhook_disabled_reason="")
        for key in keys:
            self.log_change(request, key, "webhook réactivé")
        messages.success(request, "Webhooks réactivés.")


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ["id", "api_key", "event", "status", "attempts", "next_attempt_at", "last_error"]
    list_filter = ["status", "event"]
    list_select_related = ["api_key"]
    raw_id_fields = ["api_key"]
    show_full_result_count = False
    readonly_fields = [f.name for f in WebhookDelivery._meta.fields]
    actions = ["retry_now"]

    def has_add_permission(self, request):
        return False  # a delivery is made by the event it reports (api/webhooks.py), never by hand

    @admin.action(description="Renvoyer maintenant")
    def retry_now(self, request, queryset):
        for delivery in queryset:
            WebhookDelivery.objects.filter(pk=delivery.pk).exclude(status="sent").update(status="pending")
            enqueue(delivery.pk)
            self.log_change(request, delivery, "renvoi demandé")
        messages.success(request, "Renvoi demandé.")


@admin.register(ReturnReply)
class ReturnReplyAdmin(admin.ModelAdmin):
    list_display = ["id", "mailbox", "status", "matched_by", "created_at", "filed_at"]
    list_filter = ["status"]
    list_select_related = ["mailbox"]
    raw_id_fields = ["mailbox", "entry", "message", "original", "applicative", "patient", "filed_by", "filed_by_key"]
    show_full_result_count = False
