"""The API's own data (issue 10): keys of software per box, idempotency records, the return-box
work queue and webhook deliveries.

- `ApiKey`: one per piece of software and box (applicative or organisational), created and
  revoked in the admin, shown once, kept as a SHA-256 of the secret (a random 32-byte secret
  needs no slow hash), with scopes, an optional IP allow-list, an optional client-certificate
  fingerprint (mutual TLS behind the reverse proxy) and an optional webhook.
- `IdempotencyRecord`: the first answer to an `Idempotency-Key`, replayed for 24 h.
- `ReturnReply`: a patient's reply that reached an organisational return box, matched to what
  the paired applicative box sent; "à traiter" until a member or the DPI files it.
- `WebhookDelivery`: one signed POST to a key's webhook, claimed by a conditional update.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

KEY_PREFIX = "mss"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def default_expiry() -> datetime.datetime:
    """When a key made now expires: `API_KEY_LIFETIME_DAYS` (365) days from now."""
    return timezone.now() + datetime.timedelta(days=settings.API_KEY_LIFETIME_DAYS)


# The admin's key list marks keys that expire within this many days.
EXPIRES_SOON_DAYS = 30


class ApiKey(models.Model):
    class Scope(models.TextChoices):
        SEND = "send", "envoyer"
        READ = "read", "lire"

    mailbox = models.ForeignKey(
        "mailboxes.Mailbox", on_delete=models.CASCADE, related_name="api_keys", verbose_name="boîte aux lettres"
    )
    name = models.CharField("logiciel", max_length=120, help_text="Le logiciel qui utilise la clé (DPI, SIL…).")
    prefix = models.CharField("préfixe", max_length=16, unique=True, editable=False)
    secret_hash = models.CharField(max_length=64, editable=False, verbose_name="empreinte du secret")
    can_send = models.BooleanField("portée « envoyer »", default=True)
    can_read = models.BooleanField("portée « lire »", default=True)
    allowed_ips = models.TextField(
        "adresses IP autorisées",
        blank=True,
        help_text="Une adresse ou un réseau (CIDR) par ligne ; vide : toutes.",
    )
    client_cert_fingerprint = models.CharField(
        "empreinte SHA-256 du certificat client",
        max_length=95,
        blank=True,
        help_text="TLS mutuel : l'empreinte que le proxy inverse transmet (docs/api.md). Vide : pas de certificat exigé.",
    )
    rate_per_minute = models.PositiveIntegerField(
        "appels par minute", default=0, help_text="0 : la limite par défaut (API_RATE_PER_MINUTE)."
    )
    webhook_url = models.URLField("URL du webhook", blank=True)
    webhook_secret = models.CharField(max_length=64, blank=True, editable=False, verbose_name="secret des webhooks")
    webhook_enabled = models.BooleanField("webhook actif", default=True)
    webhook_failures = models.PositiveIntegerField("échecs consécutifs du webhook", default=0)
    webhook_disabled_reason = models.CharField("raison de la désactivation du webhook", max_length=300, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name="créé par",
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name="créé le")
    last_used_at = models.DateTimeField(null=True, blank=True, verbose_name="dernière utilisation le")
    revoked_at = models.DateTimeField("révoquée le", null=True, blank=True)
    # Blank in the admin's form: the default is taken at saving (`ApiKeyAdmin.save_model`).
    expires_at = models.DateTimeField(
        "expire le",
        default=default_expiry,
        blank=True,
        db_index=True,
        help_text="Après cette date, la clé est refusée (401 key_expired). Vide : dans API_KEY_LIFETIME_DAYS "
        "jours (365 par défaut) à partir de l'enregistrement.",
    )

    class Meta:
        verbose_name = "clé d'API"
        verbose_name_plural = "clés d'API"
        ordering = ["mailbox_id", "name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and not self.is_expired

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def scopes(self) -> list[str]:
        return [s for s, on in (("send", self.can_send), ("read", self.can_read)) if on]

    def networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [ipaddress.ip_network(line.strip(), strict=False) for line in self.allowed_ips.split() if line.strip()]

    def ip_allowed(self, ip: str | None) -> bool:
        networks = self.networks()
        if not networks:
            return True
        try:
            address = ipaddress.ip_address(ip or "")
        except ValueError:
            return False
        return any(address in network for network in networks)

    def clean(self):
        try:
            self.networks()
        except ValueError as exc:
            raise ValidationError({"allowed_ips": f"Réseau invalide : {exc}"}) from None
        if self.mailbox_id and self.mailbox.kind not in ("APP", "ORG"):
            raise ValidationError({"mailbox": "Une clé d'API appartient à une BAL applicative ou organisationnelle."})
        self.client_cert_fingerprint = normalise_fingerprint(self.client_cert_fingerprint)

    def issue(self) -> str:
        """Give the key a new secret; returns the full key, shown once and never stored."""
        self.prefix = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        full = f"{KEY_PREFIX}_{self.prefix}_{secret}"
        self.secret_hash = hash_secret(full)
        if not self.webhook_secret:
            self.webhook_secret = secrets.token_hex(32)
        return full

    def revoke(self) -> None:
        if self.revoked_at is None:
            self.revoked_at = timezone.now()
            ApiKey.objects.filter(pk=self.pk, revoked_at__isnull=True).update(revoked_at=self.revoked_at)


def normalise_fingerprint(value: str) -> str:
    return "".join(c for c in (value or "").lower() if c in "0123456789abcdef")


class IdempotencyRecord(models.Model):
    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    body_sha256 = models.CharField(max_length=64)
    status_code = models.PositiveIntegerField(null=True, blank=True)  # null: the first call is still running
    response = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        verbose_name = "clé d'idempotence"
        verbose_name_plural = "clés d'idempotence"
        constraints = [models.UniqueConstraint(fields=["api_key", "key"], name="idempotency_unique")]

    def __str__(self) -> str:
        return f"idempotence #{self.pk}"


class ReturnReply(models.Model):
    """A patient's reply in an organisational return box: the work queue of RULES.md §2/§4."""

    class Status(models.TextChoices):
        TO_PROCESS = "to_process", "à traiter"
        FILED = "filed", "classé"

    mailbox = models.ForeignKey("mailboxes.Mailbox", on_delete=models.CASCADE, related_name="+", verbose_name="BAL")
    entry = models.OneToOneField(
        "mailboxes.Entry", on_delete=models.CASCADE, related_name="+", verbose_name="message reçu"
    )
    message = models.ForeignKey("mailboxes.Message", on_delete=models.CASCADE, related_name="+")
    # What the applicative box sent and the patient answers (null when nothing matched).
    original = models.ForeignKey(
        "mailboxes.Message",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name="message d'origine",
    )
    applicative = models.ForeignKey(
        "mailboxes.Mailbox",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name="BAL applicative",
    )
    patient = models.ForeignKey("patients.Patient", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # "in_reply_to", "references", "patient", ""
    matched_by = models.CharField(max_length=20, blank=True, verbose_name="rapproché par")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.TO_PROCESS, verbose_name="état")
    note = models.TextField("note", blank=True, max_length=2000)
    filed_at = models.DateTimeField(null=True, blank=True, verbose_name="classé le")
    filed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name="classé par",
    )
    filed_by_key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", verbose_name="classé par la clé"
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name="créé le")

    class Meta:
        verbose_name = "réponse de patient à traiter"
        verbose_name_plural = "réponses de patients à traiter"
        indexes = [models.Index(fields=["mailbox", "status", "-id"], name="returnreply_queue")]

    def __str__(self) -> str:
        return f"réponse #{self.pk} ({self.get_status_display()})"


class WebhookDelivery(models.Model):
    class Event(models.TextChoices):
        REPLY_RECEIVED = "reply.received", "réponse reçue"
        DELIVERED = "message.delivered", "message distribué"
        BOUNCED = "message.bounced", "message non distribué"
        READ = "message.read", "message lu"

    class Status(models.TextChoices):
        PENDING = "pending", "en attente"
        SENDING = "sending", "en cours"
        SENT = "sent", "envoyé"
        FAILED = "failed", "abandonné"

    api_key = models.ForeignKey(
        ApiKey, on_delete=models.CASCADE, related_name="webhook_deliveries", verbose_name="clé d'API"
    )
    event = models.CharField(max_length=30, choices=Event.choices, verbose_name="événement")
    # What the event is about, unique per key and event: a replayed audit row queues nothing twice.
    subject_ref = models.CharField(max_length=80, verbose_name="référence de l'objet")
    payload = models.JSONField(default=dict, verbose_name="contenu (JSON)")
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True, verbose_name="état"
    )
    attempts = models.PositiveIntegerField(default=0, verbose_name="tentatives")
    next_attempt_at = models.DateTimeField(default=timezone.now, verbose_name="prochaine tentative le")
    last_error = models.CharField(max_length=300, blank=True, verbose_name="dernière erreur")
    created_at = models.DateTimeField(auto_now_add=True, verbose_name="créé le")
    updated_at = models.DateTimeField(auto_now=True, verbose_name="modifié le")

    class Meta:
        verbose_name = "envoi de webhook"
        verbose_name_plural = "envois de webhook"
        constraints = [
            models.UniqueConstraint(fields=["api_key", "event", "subject_ref"], name="webhookdelivery_unique")
        ]

    def __str__(self) -> str:
        return f"webhook #{self.pk} ({self.get_event_display()}, {self.get_status_display()})"
