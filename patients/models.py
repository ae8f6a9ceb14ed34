"""Mon espace santé: the patient (INS), and the state the conversation rules need.

RULES.md §3. The rules themselves live in `patients/policy.py`; these are the facts they read:
the patient's space state, the blocks they set, the pharmacies that dispensed to them, and
which professional box closed the exchange with them.
"""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext as _

from mailboxes import identifiers


class Patient(models.Model):
    class SpaceState(models.TextChoices):
        ACTIVE = "active", "actif"
        CLOSED = "closed", "clôturé par le patient"
        NOT_CREATED = "not_created", "pas encore créé"
        OPPOSED = "opposed", "opposition à la création"

    class Sex(models.TextChoices):
        F = "F", "féminin"
        M = "M", "masculin"
        U = "U", "inconnu"

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="patient",
        verbose_name="compte",
    )
    # The patient inbox (kind PAT, `<INS>@<patient domain>`), created with the patient.
    mailbox = models.OneToOneField(
        "mailboxes.Mailbox", null=True, blank=True, on_delete=models.PROTECT, related_name="patient", verbose_name="BAL"
    )
    ins = models.CharField("matricule INS", max_length=15, unique=True, validators=[identifiers.validate_ins])
    ins_qualified = models.BooleanField("INS qualifiée", default=True)
    birth_name = models.CharField("nom de naissance", max_length=100)
    usage_name = models.CharField("nom d'usage", max_length=100, blank=True)
    first_names = models.CharField("prénoms", max_length=200)
    birth_date = models.DateField("date de naissance")
    sex = models.CharField("sexe", max_length=1, choices=Sex.choices, default=Sex.U)
    notification_email = models.EmailField("e-mail personnel pour les notifications", blank=True)
    space_state = models.CharField(
        "état de l'espace", max_length=12, choices=SpaceState.choices, default=SpaceState.ACTIVE
    )
    space_closed_at = models.DateTimeField(null=True, blank=True, verbose_name="espace clôturé le")
    created_at = models.DateTimeField(auto_now_add=True, verbose_name="créé le")

    class Meta:
        verbose_name = "patient"
        verbose_name_plural = "patients"
        ordering = ["birth_name", "first_names"]
        indexes = [models.Index(fields=["birth_name", "first_names"])]

    def __str__(self) -> str:
        return f"patient #{self.pk}"

    @property
    def first_name(self) -> str:
        return self.first_names.split(" ")[0] if self.first_names else ""

    @property
    def display_name(self) -> str:
        last = self.usage_name or self.birth_name
        return f"{self.first_name} {last.upper()}".strip()

    @property
    def address(self) -> str:
        # Addresses are stored lower-case (Mailbox.save); Corsican INS carry 2A/2B.
        return f"{self.ins.lower()}@{settings.PATIENT_DOMAIN}"

    def clean(self):
        self.ins = identifiers.normalise_ins(self.ins)
        if self.ins and not identifiers.ins_error(self.ins) and self.sex != self.Sex.U:
            if (self.ins[0] in "137") != (self.sex == self.Sex.M):
                raise ValidationError({"sex": _("Le sexe ne correspond pas au premier chiffre du matricule INS.")})


class PharmacyDispensation(models.Model):
    """A pharmacy dispensed a reimbursed prescription to the patient: they may write first to it
    within a year (RULES.md §3). Set by the pharmacy's import or by `manage.py provision`."""

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="dispensations")
    pharmacy_mailbox = models.ForeignKey(
        "mailboxes.Mailbox", on_delete=models.CASCADE, related_name="dispensations", verbose_name="BAL de la pharmacie"
    )
    dispensed_on = models.DateField("date de délivrance")

    class Meta:
        verbose_name = "délivrance en officine"
        verbose_name_plural = "délivrances en officine"
        constraints = [
            models.UniqueConstraint(fields=["patient", "pharmacy_mailbox", "dispensed_on"], name="dispensation_unique")
        ]

    def __str__(self) -> str:
        return f"délivrance #{self.pk}"


class Block(models.Model):
    """The patient blocked a professional or structure box: a box hosted here (`mailbox`), or
    one hosted by another operator (`address`, as its messages came: no local box to point to)."""

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="blocks")
    mailbox = models.ForeignKey(
        "mailboxes.Mailbox",
        on_delete=models.CASCADE,
        related_name="blocked_by",
        verbose_name="BAL",
        null=True,
        blank=True,
    )
    address = models.EmailField(max_length=254, blank=True, verbose_name="adresse d'un autre opérateur")
    created_at = models.DateTimeField(auto_now_add=True, verbose_name="créé le")

    class Meta:
        verbose_name = "blocage"
        verbose_name_plural = "blocages"
        constraints = [
            models.UniqueConstraint(fields=["patient", "mailbox"], name="block_unique"),
            models.UniqueConstraint(
                fields=["patient", "address"], condition=~models.Q(address=""), name="block_address_unique"
            ),
            models.CheckConstraint(
                condition=(models.Q(mailbox__isnull=False) & models.Q(address=""))
                | (models.Q(mailbox__isnull=True) & ~models.Q(address="")),
                name="block_box_or_address",
            ),
        ]

    def __str__(self) -> str:
        return f"blocage #{self.pk}"


class Conversation(models.Model):
    """The exchange between one professional box and one patient: open until `[FIN]`."""

    class State(models.TextChoices):
        OPEN = "open", "ouvert"
        CLOSED = "closed", "clôturé"

    mailbox = models.ForeignKey(
        "mailboxes.Mailbox", on_delete=models.CASCADE, related_name="patient_conversations", verbose_name="BAL"
    )
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="conversations")
    state = models.CharField(max_length=6, choices=State.choices, default=State.OPEN, verbose_name="état")
    opened_at = models.DateTimeField(verbose_name="ouvert le")
    closed_at = models.DateTimeField(null=True, blank=True, verbose_name="clôturé le")
    closing_message = models.ForeignKey(
        "mailboxes.Message",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name="message de clôture",
    )
    last_message_at = models.DateTimeField(null=True, blank=True, verbose_name="dernier message le")

    class Meta:
        verbose_name = "échange"
        verbose_name_plural = "échanges"
        constraints = [models.UniqueConstraint(fields=["mailbox", "patient"], name="conversation_unique")]

    def __str__(self) -> str:
        return f"échange #{self.pk} ({self.state})"


class Notification(models.Model):
    """An e-mail telling someone a message waits in the space (RULES.md §3: no health content).

    One row per (entry, recipient), written in the delivery transaction; the Celery task claims
    it with a conditional update, so a duplicate run sends nothing twice.
    """

    class Kind(models.TextChoices):
        PATIENT = "patient", "patient : nouveau message"
        PROFESSIONAL = "pro", "professionnel : réponse d'un patient"

    class Status(models.TextChoices):
        PENDING = "pending", "à envoyer"
        SENDING = "sending", "en cours"
        SENT = "sent", "envoyée"
        SKIPPED = "skipped", "sans adresse"
        FAILED = "failed", "échec"

    entry = models.ForeignKey("mailboxes.Entry", on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=7, choices=Kind.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    status = models.CharField(max_length=7, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    # The relay's discipline (mailboxes/relay.py): a claim stamps `updated_at`, a temporary
    # failure sets `next_attempt_at`, the sweeper takes back rows a lost task or worker left.
    updated_at = models.DateTimeField(default=timezone.now)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "notification"
        verbose_name_plural = "notifications"
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="notification_queue")]
        constraints = [
            models.UniqueConstraint(fields=["entry", "kind", "user"], name="notification_unique_user"),
            models.UniqueConstraint(
                fields=["entry", "kind"], condition=models.Q(user__isnull=True), name="notification_unique_patient"
            ),
        ]

    def __str__(self) -> str:
        return f"notification #{self.pk} ({self.status})"


class PendingReturn(models.Model):
    """An automatic return (RULES.md §3) waiting for its Celery task.

    The refusal writes this row and queues only its id, so the addresses (the patient's holds
    the INS, a professional's often a name) never travel in task arguments or appear in worker
    logs. The row is kept once sent (`sent_at`) so a duplicate run sends nothing twice; it is
    claimed by a conditional update (`status`) and swept like the relay's rows.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "à envoyer"
        SENDING = "sending", "en cours"
        SENT = "sent", "envoyé"
        FAILED = "failed", "échec"

    status = models.CharField(max_length=7, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    updated_at = models.DateTimeField(default=timezone.now)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    code = models.CharField(max_length=40)
    sender = models.CharField(max_length=254)
    recipient = models.CharField(max_length=254)
    original_message_id = models.CharField(max_length=998, blank=True)
    refused_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="pending_return_queue")]
        verbose_name = "retour automatique en attente"
        verbose_name_plural = "retours automatiques en attente"

    def __str__(self) -> str:
        return f"retour automatique #{self.pk} ({self.code})"
