"""Audit trail (RULES.md §5): who did what to which object, when, with what outcome.

Never the content: no subject, body, name or INS is written here, only ids and codes.

The trail is append-only and tamper-evident (audit/chain.py): every event carries the hash of
the one before it in its chain (one chain per day and partition, `AuditChain`), each closed day
is sealed (`AuditSeal`, which also links to the day before), and `manage.py audit_verify` walks
the chains. Rows are never updated through the ORM; only retention (audit/retention.py) deletes
them, whole sealed days at a time.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.formats import date_format


class AppendOnlyError(Exception):
    """Audit rows are written once: no update, no delete outside retention."""


class AuditChain(models.Model):
    """The head of one hash chain: a day and a partition. Writers take any head of the day that
    no other transaction holds (SELECT … FOR UPDATE SKIP LOCKED), so concurrent deliveries
    append to different chains instead of queueing on one lock."""

    day = models.DateField()
    partition = models.PositiveIntegerField()
    seq = models.BigIntegerField(default=0)  # the seq of the last event appended
    head_hash = models.CharField(max_length=64, blank=True)

    class Meta:
        verbose_name = "chaîne de traces"
        verbose_name_plural = "chaînes de traces"
        constraints = [models.UniqueConstraint(fields=["day", "partition"], name="auditchain_day_partition")]

    def __str__(self) -> str:
        return f"chaîne {self.partition} du {date_format(self.day)}"


class AuditSeal(models.Model):
    """A closed day: the final seq and hash of each of its chains, linked to the previous day's
    seal. The seal hash is logged when written, so that it can be kept outside the database."""

    day = models.DateField(unique=True, verbose_name="jour")
    chains = models.JSONField(default=list, verbose_name="chaînes")  # [[partition, seq, head_hash], …] by partition
    events = models.BigIntegerField(default=0, verbose_name="événements")
    prev_hash = models.CharField(max_length=64, blank=True, verbose_name="empreinte précédente")
    hash = models.CharField(max_length=64, verbose_name="empreinte")
    sealed_at = models.DateTimeField(default=timezone.now, verbose_name="scellé le")
    # Set when retention deleted the day's events; the seal itself is kept (ids and hashes only).
    purged_at = models.DateTimeField(null=True, blank=True, verbose_name="purgé le")

    class Meta:
        verbose_name = "scellement journalier"
        verbose_name_plural = "scellements journaliers"
        ordering = ["day"]

    def __str__(self) -> str:
        return f"scellement du {date_format(self.day)} ({self.hash[:12]})"


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError("audit events are never updated")

    def bulk_update(self, objs, fields, batch_size=None):
        raise AppendOnlyError("audit events are never updated")

    def delete(self):
        raise AppendOnlyError("audit events are deleted by retention only (audit/retention.py)")

    def bulk_create(self, objs, *args, **kwargs):
        from django.db import transaction

        from audit.chain import link

        objs = list(objs)
        with transaction.atomic(using=self.db, savepoint=False):
            link([o for o in objs if not o.hash], using=self.db)
            return super().bulk_create(objs, *args, **kwargs)


class AuditEvent(models.Model):
    class Action(models.TextChoices):
        LOGIN = "login", "connexion"
        LOGIN_FAILED = "login.failed", "échec de connexion"
        APP_PASSWORD_CREATED = "app_password.created", "mot de passe d'application créé"
        APP_PASSWORD_REVOKED = "app_password.revoked", "mot de passe d'application révoqué"
        LOGOUT = "logout", "déconnexion"
        SESSION_ENDED = "session.ended", "session de client de messagerie fermée (accès retiré)"
        SUBMITTED = "message.submitted", "message soumis"
        DELIVERED = "message.delivered", "message distribué"
        RELAYED = "message.relayed", "message relayé"
        BOUNCED = "message.bounced", "message rejeté"
        RELAY_DEFERRED = "message.relay_deferred", "relais différé (nouvel essai prévu)"
        REFUSED = "message.refused", "message refusé"
        RETURNED = "message.returned", "retour automatique"
        READ = "message.read", "message lu"
        MDN_SENT = "message.mdn_sent", "accusé de lecture envoyé"
        MOVED = "message.moved", "message déplacé"
        COPIED = "message.copied", "message copié"
        APPENDED = "message.appended", "message déposé par un client de messagerie"
        DELETED = "message.deleted", "message supprimé"
        EXPORTED = "message.exported", "message exporté"
        ASSIGNED = "message.assigned", "message attribué"
        DONE = "message.done", "message traité"
        DOWNLOADED = "attachment.downloaded", "pièce jointe téléchargée"
        CONVERSATION_CLOSED = "conversation.closed", "échange clôturé"
        CONVERSATION_REOPENED = "conversation.reopened", "échange rouvert"
        BLOCKED = "patient.blocked", "professionnel bloqué"
        UNBLOCKED = "patient.unblocked", "professionnel débloqué"
        SPACE_CLOSED = "patient.space_closed", "espace clôturé"
        DOCUMENT_VIEWED = "document.viewed", "document consulté"
        DOCUMENT_DOWNLOADED = "document.downloaded", "document téléchargé"
        DOCUMENT_ADDED = "document.added", "document ajouté"
        DOCUMENT_DELETED = "document.deleted", "document supprimé"
        PROFILE_UPDATED = "profile.updated", "profil médical modifié"
        PROFILE_DOWNLOADED = "profile.downloaded", "profil médical téléchargé"
        PROFILE_SENT = "profile.sent", "profil médical envoyé"
        ADMIN_CHANGE = "admin.change", "modification d'administration"
        PROVISIONED = "admin.provisioned", "provisionnement"
        NOTIFIED = "notification.sent", "notification envoyée"
        MAILBOX_INACTIVITY_WARNED = "mailbox.inactivity_warned", "BAL inactive : titulaire averti"
        MAILBOX_DELETED_INACTIVE = "mailbox.deleted_inactive", "BAL inactive supprimée"
        # Automation (issue 9): models, convocations, reminders, campaigns.
        MODEL_SAVED = "automation.model_saved", "modèle de message enregistré"
        CONVOCATION_SENT = "convocation.sent", "convocation envoyée"
        CONVOCATION_RESCHEDULED = "convocation.rescheduled", "convocation déplacée"
        CONVOCATION_CANCELLED = "convocation.cancelled", "convocation annulée"
        CONVOCATION_DOWNLOADED = "convocation.downloaded", "invitation agenda téléchargée"
        REMINDER_SENT = "convocation.reminder_sent", "rappel envoyé"
        CAMPAIGN_CREATED = "campaign.created", "campagne créée"
        CAMPAIGN_VALIDATED = "campaign.validated", "liste de campagne vérifiée"
        CAMPAIGN_STARTED = "campaign.started", "campagne lancée"
        CAMPAIGN_PAUSED = "campaign.paused", "campagne mise en pause"
        CAMPAIGN_RESUMED = "campaign.resumed", "campagne reprise"
        CAMPAIGN_CANCELLED = "campaign.cancelled", "campagne annulée"
        CAMPAIGN_FINISHED = "campaign.finished", "campagne terminée"
        CAMPAIGN_LINE_SENT = "campaign.line_sent", "ligne de campagne envoyée"
        CAMPAIGN_REPORT_DOWNLOADED = "campaign.report_downloaded", "rapport de campagne téléchargé"
        DIRECTORY_IMPORTED = "directory.imported", "import de l'annuaire"
        DEMATERIALISATION_CHANGED = "directory.dematerialisation", "choix de dématérialisation modifié"
        AUDIT_PURGED = "audit.purged", "traces purgées (durée de conservation)"
        AUDIT_EXPORTED = "audit.exported", "traces exportées"
        STATISTICS_EXPORTED = "statistics.exported", "indicateurs exportés"
        BOX_SETTINGS_CHANGED = "mailbox.settings_changed", "réglages de BAL modifiés (absence, transfert, règles)"
        ABSENCE_REPLIED = "message.absence_replied", "réponse d'absence envoyée"
        AUTO_FORWARDED = "message.auto_forwarded", "message transféré automatiquement"

    # Set when the row is linked into its chain (audit/chain.py), since the hash covers it.
    at = models.DateTimeField(db_index=True, verbose_name="date")
    # An id kept as written: deleting the account leaves the row (and its hash) untouched.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
        verbose_name="acteur",
    )
    # Who acted when no user did: "smtp", "system", "relay", "celery", "provision".
    actor_label = models.CharField(max_length=40, blank=True, verbose_name="libellé de l'acteur")
    # Stored without `choices` so that a new action is a line in `Action`, not a migration;
    # `action_label` gives the French label.
    action = models.CharField(max_length=40, db_index=True)
    object_type = models.CharField(max_length=40, blank=True, verbose_name="type d'objet")
    object_id = models.CharField(max_length=64, blank=True, verbose_name="identifiant de l'objet")
    mailbox_id = models.BigIntegerField(null=True, blank=True, db_index=True, verbose_name="identifiant de la BAL")
    message_id = models.BigIntegerField(null=True, blank=True, db_index=True, verbose_name="identifiant du message")
    outcome = models.CharField(max_length=40, default="ok", verbose_name="résultat")
    # Ids and codes only (recipient mailbox ids, SMTP codes, reason codes).
    detail = models.JSONField(default=dict, blank=True, verbose_name="détail")
    ip = models.GenericIPAddressField(null=True, blank=True, verbose_name="adresse IP")
    # The hash chain (audit/chain.py): position in the chain, previous and own hash.
    # No index of its own: the (chain, seq) constraint leads with it.
    chain = models.ForeignKey(
        AuditChain,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name="chaîne",
        db_index=False,
    )
    seq = models.BigIntegerField(null=True, blank=True, verbose_name="rang dans la chaîne")
    prev_hash = models.CharField(max_length=64, blank=True, verbose_name="empreinte précédente")
    hash = models.CharField(max_length=64, blank=True, verbose_name="empreinte")

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        verbose_name = "trace"
        verbose_name_plural = "traces"
        ordering = ["-at", "-id"]
        constraints = [models.UniqueConstraint(fields=["chain", "seq"], name="auditevent_chain_seq")]

    def save(self, *args, **kwargs):
        from django.db import transaction

        from audit.chain import link

        if not self._state.adding:
            raise AppendOnlyError("audit events are never updated")
        using = kwargs.get("using") or "default"
        with transaction.atomic(using=using, savepoint=False):
            if not self.hash:
                link([self], using=using)
            super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("audit events are deleted by retention only (audit/retention.py)")

    @property
    def action_label(self) -> str:
        try:
            return str(self.Action(self.action).label)
        except ValueError:
            return self.action

    def __str__(self) -> str:
        return f"trace n° {self.pk} du {timezone.localtime(self.at):%d/%m/%Y %H:%M:%S} : {self.action_label}"
