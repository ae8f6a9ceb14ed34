"""Audit trail (RULES.md §5): who did what to which object, when, with what outcome.

Never the content: no subject, body, name or INS is written here, only ids and codes.
"""

from django.conf import settings
from django.db import models


class AuditEvent(models.Model):
    class Action(models.TextChoices):
        LOGIN = "login", "connexion"
        LOGIN_FAILED = "login.failed", "échec de connexion"
        APP_PASSWORD_CREATED = "app_password.created", "mot de passe d'application créé"
        APP_PASSWORD_REVOKED = "app_password.revoked", "mot de passe d'application révoqué"
        SUBMITTED = "message.submitted", "message soumis"
        DELIVERED = "message.delivered", "message distribué"
        RELAYED = "message.relayed", "message relayé"
        BOUNCED = "message.bounced", "message rejeté"
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

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Who acted when no user did: "smtp", "system", "relay", "celery", "provision".
    actor_label = models.CharField(max_length=40, blank=True)
    # Stored without `choices` so that a new action is a line in `Action`, not a migration;
    # `action_label` gives the French label.
    action = models.CharField(max_length=40, db_index=True)
    object_type = models.CharField(max_length=40, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    mailbox_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    message_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    outcome = models.CharField(max_length=40, default="ok")
    # Ids and codes only (recipient mailbox ids, SMTP codes, reason codes).
    detail = models.JSONField(default=dict, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        verbose_name = "trace"
        verbose_name_plural = "traces"
        ordering = ["-at", "-id"]

    @property
    def action_label(self) -> str:
        try:
            return str(self.Action(self.action).label)
        except ValueError:
            return self.action

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.action} {self.object_type}#{self.object_id} {self.outcome}"
