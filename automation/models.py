"""Message models, convocations with their reminders, and campaigns (issue 9; RULES.md §4).

- A `MessageModel` belongs to one box and one service; its text lives in immutable
  `ModelVersion`s (subject, body with named fields, standing attachments): editing a model
  writes a new version, and whatever was sent keeps the version it used.
- A `Convocation` is an appointment sent to one patient with an `.ics` invitation (stable UID,
  SEQUENCE raised on each reschedule); its `Reminder`s are due at D-n in local time.
- A `Campaign` is a list (CSV) of patients sent with one model, line by line: `CampaignLine`s are
  claimed by conditional UPDATE inside the transaction that stores their message and marks them
  sent, so a line is sent once whatever crashes (automation/campaign_sending.py).
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext, gettext_lazy


class MessageModel(models.Model):
    class Kind(models.TextChoices):
        PRE_ADMISSION = "pre_admission", "pré-admission"
        CONVOCATION = "convocation", "convocation"
        WELCOME = "welcome", "accueil et informations pratiques"
        PREPARATION = "preparation", "consignes de préparation"
        DOCUMENT_REQUEST = "document_request", "demande de documents"
        SATISFACTION = "satisfaction", "questionnaire de satisfaction"
        OTHER = "other", "autre"

    mailbox = models.ForeignKey(
        "mailboxes.Mailbox", on_delete=models.PROTECT, related_name="message_models", verbose_name="BAL d'envoi"
    )
    service = models.CharField("service", max_length=120)
    name = models.CharField("nom du modèle", max_length=120)
    kind = models.CharField("type", max_length=20, choices=Kind.choices, default=Kind.OTHER)
    # An appointment model: each send is a convocation with an .ics invitation and reminders.
    is_appointment = models.BooleanField("convocation avec invitation agenda", default=False)
    # Days before the appointment when a reminder leaves (local time), e.g. [7, 1].
    reminder_days = models.JSONField("rappels (jours avant)", default=list, blank=True)
    # Values of the fields that are the same for every patient (help line, portal link…).
    defaults = models.JSONField("valeurs communes des champs", default=dict, blank=True)
    # CSV column chosen for each field, remembered for the next list (field → column heading).
    column_mapping = models.JSONField("correspondance des colonnes", default=dict, blank=True)
    is_active = models.BooleanField("actif", default=True)
    created_at = models.DateTimeField(auto_now_add=True, verbose_name="créé le")
    updated_at = models.DateTimeField(auto_now=True, verbose_name="modifié le")

    class Meta:
        verbose_name = "modèle de message"
        verbose_name_plural = "modèles de message"
        ordering = ["service", "name"]
        constraints = [models.UniqueConstraint(fields=["mailbox", "service", "name"], name="message_model_unique")]

    def __str__(self) -> str:
        return f"{self.service} — {self.name}"

    @property
    def current(self) -> ModelVersion | None:
        return self.versions.order_by("-number").first()


class ModelVersion(models.Model):
    """One version of a model's text; never edited once written."""

    model = models.ForeignKey(MessageModel, on_delete=models.CASCADE, related_name="versions", verbose_name="modèle")
    number = models.PositiveIntegerField("version")
    subject = models.CharField("objet", max_length=900)
    body = models.TextField("texte")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name="créé par",
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name="créé le")

    class Meta:
        verbose_name = "version de modèle"
        verbose_name_plural = "versions de modèle"
        ordering = ["model_id", "-number"]
        constraints = [models.UniqueConstraint(fields=["model", "number"], name="model_version_unique")]

    def __str__(self) -> str:
        return f"version {self.number} du modèle #{self.model_id}"


class StandingAttachment(models.Model):
    """A file sent with every message of a version (a preparation leaflet…), stored by content
    hash like the message store's attachments."""

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="attachments")
    filename = models.CharField(max_length=255)
    content_type = models.CharField(max_length=255)
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    file = models.CharField(max_length=200)  # storage name (mailboxes.store.store_attachment)

    class Meta:
        verbose_name = "pièce jointe permanente"
        verbose_name_plural = "pièces jointes permanentes"
        ordering = ["version_id", "filename"]

    def __str__(self) -> str:
        return f"pièce jointe permanente #{self.pk}"


class Convocation(models.Model):
    class Status(models.TextChoices):
        SCHEDULED = "scheduled", "prévue"
        CANCELLED = "cancelled", "annulée"

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False, verbose_name="identifiant (UID)")
    model = models.ForeignKey(
        MessageModel, on_delete=models.PROTECT, related_name="convocations", verbose_name="modèle"
    )
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="+")
    mailbox = models.ForeignKey("mailboxes.Mailbox", on_delete=models.PROTECT, related_name="+", verbose_name="BAL")
    patient = models.ForeignKey("patients.Patient", on_delete=models.PROTECT, related_name="convocations")
    starts_at = models.DateTimeField("date et heure")
    duration_minutes = models.PositiveIntegerField("durée (minutes)", default=30)
    service = models.CharField("service", max_length=120, blank=True)
    place = models.CharField("lieu", max_length=300, blank=True)
    professional = models.CharField("professionnel", max_length=200, blank=True)
    reason = models.CharField("motif", max_length=300, blank=True)
    # The other field values of this patient's message (from the form or the CSV line).
    values = models.JSONField(default=dict, blank=True, verbose_name="valeurs")
    sequence = models.PositiveIntegerField(default=0, verbose_name="séquence")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.SCHEDULED, verbose_name="état")
    message = models.ForeignKey("mailboxes.Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name="créé par",
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name="créé le")
    updated_at = models.DateTimeField(auto_now=True, verbose_name="modifié le")

    class Meta:
        verbose_name = "convocation"
        verbose_name_plural = "convocations"
        ordering = ["starts_at"]
        indexes = [models.Index(fields=["patient", "starts_at"], name="convocation_patient_start")]

    def __str__(self) -> str:
        return f"convocation #{self.pk}"


# What the secretary reads for a reminder's `reason` (a code kept for the software); any other
# code is a refusal of the delivery path (closed space, blocked…).
REMINDER_REASONS = {
    "past": gettext_lazy("moment déjà passé"),
    "cancelled": gettext_lazy("rendez-vous annulé"),
    "rescheduled": gettext_lazy("rendez-vous déplacé"),
    "superseded": gettext_lazy("un rappel plus proche est parti"),
    "daily_limit": gettext_lazy("limite quotidienne de la boîte atteinte"),
}


class Reminder(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "à envoyer"
        SENDING = "sending", "en cours"
        SENT = "sent", "envoyé"
        SKIPPED = "skipped", "sans objet"
        FAILED = "failed", "échec"

    convocation = models.ForeignKey(Convocation, on_delete=models.CASCADE, related_name="reminders")
    # The convocation's SEQUENCE the reminder was computed for: a reschedule makes new ones.
    sequence = models.PositiveIntegerField(default=0, verbose_name="séquence")
    days_before = models.PositiveSmallIntegerField(verbose_name="jours avant")
    due_at = models.DateTimeField(verbose_name="prévu le")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING, verbose_name="état")
    reason = models.CharField(max_length=60, blank=True, verbose_name="motif")
    claimed_at = models.DateTimeField(null=True, blank=True, verbose_name="pris en charge le")
    sent_at = models.DateTimeField(null=True, blank=True, verbose_name="envoyé le")
    message = models.ForeignKey("mailboxes.Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        verbose_name = "rappel"
        verbose_name_plural = "rappels"
        constraints = [
            models.UniqueConstraint(fields=["convocation", "sequence", "days_before"], name="reminder_unique")
        ]
        indexes = [models.Index(fields=["status", "due_at"], name="reminder_due")]

    def __str__(self) -> str:
        return f"rappel #{self.pk} ({self.get_status_display()})"

    @property
    def reason_label(self) -> str:
        if not self.reason:
            return ""
        return str(REMINDER_REASONS.get(self.reason, gettext_lazy("message refusé par la messagerie du patient")))


class Campaign(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "à valider"
        SENDING = "sending", "envoi en cours"
        PAUSED = "paused", "en pause"
        CANCELLED = "cancelled", "annulée"
        DONE = "done", "terminée"

    model = models.ForeignKey(MessageModel, on_delete=models.PROTECT, related_name="campaigns", verbose_name="modèle")
    version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    mailbox = models.ForeignKey("mailboxes.Mailbox", on_delete=models.PROTECT, related_name="+", verbose_name="BAL")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name="créé par",
    )
    filename = models.CharField("fichier", max_length=255, blank=True)
    encoding = models.CharField(max_length=20, blank=True, verbose_name="encodage")
    delimiter = models.CharField(max_length=1, blank=True, verbose_name="séparateur")
    headers = models.JSONField(default=list, blank=True, verbose_name="en-têtes")
    # The list as uploaded (decoded text): its lines are written, with their verdicts, by the check.
    source = models.TextField(blank=True)
    line_count = models.PositiveIntegerField(default=0, verbose_name="nombre de lignes")
    mapping = models.JSONField(default=dict, blank=True, verbose_name="correspondance des colonnes")
    validated_at = models.DateTimeField(null=True, blank=True, verbose_name="validé le")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT, verbose_name="état")
    pause_reason = models.CharField(max_length=40, blank=True, verbose_name="motif de la pause")
    created_at = models.DateTimeField(auto_now_add=True, verbose_name="créé le")
    started_at = models.DateTimeField(null=True, blank=True, verbose_name="commencé le")
    finished_at = models.DateTimeField(null=True, blank=True, verbose_name="terminé le")
    last_progress_at = models.DateTimeField(null=True, blank=True, verbose_name="dernière progression le")

    class Meta:
        verbose_name = "campagne"
        verbose_name_plural = "campagnes"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"campagne #{self.pk} ({self.get_status_display()})"

    @property
    def encoding_label(self) -> str:
        """The file's encoding as the spreadsheet's « Enregistrer sous » names it."""
        return {"utf-8": "UTF-8", "windows-1252": "Windows-1252"}.get(self.encoding, self.encoding)

    @property
    def state_label(self) -> str:
        """The state as the pages say it: a draft tells whether its list was checked, a list
        stopped before its start is « abandonnée » (the button and the message say so), one
        stopped during its send « annulée »."""
        if self.status == self.Status.DRAFT:
            return gettext("vérifiée, pas encore envoyée") if self.validated_at else gettext("colonnes à choisir")
        if self.status == self.Status.CANCELLED and self.started_at is None:
            return gettext("abandonnée")
        return self.get_status_display()


class CampaignLine(models.Model):
    class Status(models.TextChoices):
        INVALID = "invalid", "ligne refusée"
        PENDING = "pending", "à envoyer"
        CLAIMED = "claimed", "en cours"
        SENT = "sent", "envoyé"
        RETURNED = "returned", "retour automatique"
        FAILED = "failed", "échec"
        CANCELLED = "cancelled", "annulé"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="lines")
    number = models.PositiveIntegerField("ligne")  # the line number in the file (heading = 1)
    patient = models.ForeignKey("patients.Patient", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    values = models.JSONField(default=dict, blank=True)  # field → value, after mapping
    errors = models.JSONField(default=list, blank=True)  # [{"code": …, "message": …}]
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    reason = models.CharField(max_length=60, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    message = models.ForeignKey("mailboxes.Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    convocation = models.ForeignKey(Convocation, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        verbose_name = "ligne de campagne"
        verbose_name_plural = "lignes de campagne"
        ordering = ["campaign_id", "number"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "number"], name="campaign_line_unique"),
            # Never twice to the same patient for the same campaign (duplicates are invalid lines).
            models.UniqueConstraint(
                fields=["campaign", "patient"],
                condition=~Q(status="invalid") & Q(patient__isnull=False),
                name="campaign_patient_once",
            ),
        ]
        indexes = [models.Index(fields=["campaign", "status"], name="campaign_line_status")]

    def __str__(self) -> str:
        return f"ligne {self.number} de la campagne #{self.campaign_id}"
