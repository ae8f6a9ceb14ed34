"""The operator's data: structures, hosted domains, professionals, mailboxes (BAL) and members,
and the message store (messages, attachments, folders, entries, deliveries, outbox).

RULES.md §1–2 for the people and boxes; DESIGN.md "One message store" for the rest:
a message is stored once (raw bytes kept as received) and entered in each local mailbox.
"""

import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from mailboxes import identifiers

LOCAL_PART_RE = re.compile(r"^[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?$")
DOMAIN_LABEL_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


class Structure(models.Model):
    class Kind(models.TextChoices):
        HOSPITAL = "hospital", "établissement de santé"
        ESSMS = "essms", "établissement ou service social ou médico-social"
        PHARMACY = "pharmacy", "officine"
        PRACTICE = "practice", "cabinet"
        LABORATORY = "laboratory", "laboratoire"
        OTHER = "other", "autre"

    name = models.CharField("nom", max_length=200)
    kind = models.CharField("type", max_length=20, choices=Kind.choices, default=Kind.HOSPITAL)
    finess = models.CharField("FINESS", max_length=9, blank=True, validators=[identifiers.validate_finess])
    siret = models.CharField("SIRET", max_length=14, blank=True, validators=[identifiers.validate_siret])
    siren = models.CharField("SIREN", max_length=9, blank=True, validators=[identifiers.validate_siren])
    address = models.TextField("adresse postale", blank=True)
    phone = models.CharField("téléphone", max_length=30, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, verbose_name="créé le")

    class Meta:
        verbose_name = "structure"
        verbose_name_plural = "structures"
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["finess"], condition=~Q(finess=""), name="structure_finess_unique"),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self):
        for field in ("finess", "siret", "siren"):
            setattr(self, field, identifiers.normalise_number(getattr(self, field)))
        if not (self.finess or self.siret or self.siren):
            raise ValidationError(
                _("Une structure est identifiée par son FINESS, son SIRET ou son SIREN : renseignez-en au moins un.")
            )
        if self.siret and self.siren and not self.siret.startswith(self.siren):
            raise ValidationError({"siret": _("Le SIRET doit commencer par le SIREN de la structure.")})


class Domain(models.Model):
    """A domain hosted by this operator (`ch-troispics.mssante.fr`), belonging to one structure."""

    name = models.CharField("domaine", max_length=253, unique=True)
    structure = models.ForeignKey(Structure, on_delete=models.PROTECT, related_name="domains")
    created_at = models.DateTimeField(auto_now_add=True, verbose_name="créé le")

    class Meta:
        verbose_name = "domaine hébergé"
        verbose_name_plural = "domaines hébergés"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self):
        self.name = (self.name or "").strip().lower()
        error = domain_error(self.name)
        if error:
            raise ValidationError({"name": error})
        if self.name == settings.PATIENT_DOMAIN:
            raise ValidationError({"name": _("Le domaine des patients est géré à part ; il ne s'héberge pas ici.")})


def domain_error(name: str) -> str | None:
    if not name.endswith(".mssante.fr") or name == ".mssante.fr":
        return _("Un domaine de l'espace de confiance se termine par « .mssante.fr » (reçu : « %(v)s »).") % {"v": name}
    labels = name.split(".")
    if any(not DOMAIN_LABEL_RE.match(label) for label in labels):
        return _("« %(v)s » n'est pas un nom de domaine valide.") % {"v": name}
    return None


class TrustedDomain(models.Model):
    """A domain of another MSSanté operator, from the national white list or added by hand."""

    class Source(models.TextChoices):
        WHITELIST = "whitelist", "liste blanche"
        MANUAL = "manual", "ajout manuel"

    name = models.CharField("domaine", max_length=253, unique=True)
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.MANUAL)
    updated_at = models.DateTimeField(auto_now=True, verbose_name="modifié le")

    class Meta:
        verbose_name = "domaine de confiance"
        verbose_name_plural = "domaines de confiance"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Professional(models.Model):
    class Civility(models.TextChoices):
        DR = "dr", "Dr"
        PR = "pr", "Pr"
        MME = "mme", "Mme"
        M = "m", "M."

    class Profession(models.TextChoices):
        MEDECIN = "medecin", "médecin"
        INFIRMIER = "infirmier", "infirmier"
        PHARMACIEN = "pharmacien", "pharmacien"
        SAGE_FEMME = "sage-femme", "sage-femme"
        CHIRURGIEN_DENTISTE = "chirurgien-dentiste", "chirurgien-dentiste"
        KINE = "masseur-kinesitherapeute", "masseur-kinésithérapeute"
        PODOLOGUE = "pedicure-podologue", "pédicure-podologue"
        SECRETAIRE = "secretaire", "secrétaire médical"
        SOCIAL = "social", "professionnel du social"
        AUTRE = "autre", "autre professionnel"

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="professional",
        verbose_name="compte",
    )
    civility = models.CharField("civilité", max_length=5, choices=Civility.choices, blank=True)
    first_name = models.CharField("prénom", max_length=100)
    last_name = models.CharField("nom", max_length=100)
    profession = models.CharField("profession", max_length=30, choices=Profession.choices)
    specialty = models.CharField("spécialité", max_length=100, blank=True)
    rpps = models.CharField("RPPS", max_length=11, blank=True, validators=[identifiers.validate_rpps])
    adeli = models.CharField("ADELI", max_length=9, blank=True, validators=[identifiers.validate_adeli])
    # For those without RPPS/ADELI (interns, secretaries), under the head of the structure.
    local_identifier = models.CharField("identifiant local", max_length=40, blank=True)
    structure = models.ForeignKey(
        Structure, null=True, blank=True, on_delete=models.PROTECT, related_name="professionals"
    )
    # "I no longer want paper copies of what I receive electronically" (RULES.md §1).
    dematerialisation = models.BooleanField("ne souhaite plus recevoir de papier", default=False)
    notify_patient_replies = models.BooleanField("notifier les réponses des patients", default=False)
    created_at = models.DateTimeField(auto_now_add=True, verbose_name="créé le")

    class Meta:
        verbose_name = "professionnel"
        verbose_name_plural = "professionnels"
        ordering = ["last_name", "first_name"]
        constraints = [
            models.UniqueConstraint(fields=["rpps"], condition=~Q(rpps=""), name="professional_rpps_unique"),
            models.UniqueConstraint(fields=["adeli"], condition=~Q(adeli=""), name="professional_adeli_unique"),
        ]
        indexes = [models.Index(fields=["last_name", "first_name"])]

    def __str__(self) -> str:
        return self.display_name

    @property
    def display_name(self) -> str:
        civility = self.get_civility_display() if self.civility else ""
        return " ".join(p for p in (civility, self.first_name, self.last_name.upper()) if p)

    def clean(self):
        self.rpps = identifiers.normalise_number(self.rpps)
        self.adeli = identifiers.normalise_number(self.adeli)
        self.local_identifier = (self.local_identifier or "").strip()
        if not (self.rpps or self.adeli or self.local_identifier):
            raise ValidationError(
                _(
                    "Un professionnel est identifié par son RPPS, son ADELI ou, à défaut (interne, secrétaire), un identifiant local."
                )
            )


class Mailbox(models.Model):
    """A BAL. Kinds follow the national directory (PER, ORG, APP), plus the patient inbox."""

    class Kind(models.TextChoices):
        NOMINATIVE = "PER", "nominative"
        ORGANISATIONAL = "ORG", "organisationnelle"
        APPLICATIVE = "APP", "applicative"
        PATIENT = "PAT", "patient"

    kind = models.CharField("type", max_length=3, choices=Kind.choices)
    address = models.CharField("adresse", max_length=254, unique=True)
    display_name = models.CharField("nom affiché", max_length=200, blank=True)
    domain = models.ForeignKey(
        Domain, null=True, blank=True, on_delete=models.PROTECT, related_name="mailboxes", verbose_name="domaine"
    )
    structure = models.ForeignKey(Structure, null=True, blank=True, on_delete=models.PROTECT, related_name="mailboxes")
    owner = models.ForeignKey(
        Professional,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="nominative_mailboxes",
        verbose_name="titulaire",
    )
    responsible = models.ForeignKey(
        Professional,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="responsible_mailboxes",
        verbose_name="professionnel responsable",
    )
    return_mailbox = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="applicative_mailboxes",
        verbose_name="BAL organisationnelle de retour",
    )
    quota_bytes = models.BigIntegerField("quota (octets)", default=0)
    max_message_bytes = models.BigIntegerField("taille maximale d'un message (octets)", default=0)
    used_bytes = models.BigIntegerField("espace utilisé (octets)", default=0)
    signature = models.TextField("signature", blank=True)
    unlisted = models.BooleanField("liste rouge", default=False)
    is_preferred = models.BooleanField("BAL préférée", default=False)
    is_active = models.BooleanField("active", default=True)
    last_used_at = models.DateTimeField(null=True, blank=True, verbose_name="dernière utilisation le")
    # When the owner was warned that the unused box will be deleted (RULES.md §5,
    # mailboxes/inactivity.py); a use after this moment voids the warning.
    inactivity_warned_at = models.DateTimeField("averti de l'inactivité le", null=True, blank=True)
    # The API's reading order of the box (api/listing.py): the next `Entry.api_position` to give.
    api_position_next = models.PositiveBigIntegerField(
        "prochaine place dans l'ordre de lecture de l'API", default=1, editable=False
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name="créé le")

    class Meta:
        verbose_name = "boîte aux lettres"
        verbose_name_plural = "boîtes aux lettres"
        ordering = ["address"]
        indexes = [models.Index(fields=["kind", "address"])]

    def __str__(self) -> str:
        return self.address

    @property
    def local_part(self) -> str:
        return self.address.split("@", 1)[0]

    @property
    def domain_name(self) -> str:
        return self.address.split("@", 1)[1]

    @property
    def is_patient(self) -> bool:
        return self.kind == self.Kind.PATIENT

    def save(self, *args, **kwargs):
        self.address = (self.address or "").strip().lower()
        if not self.quota_bytes:
            self.quota_bytes = settings.MAILBOX_DEFAULT_QUOTA
        if not self.max_message_bytes:
            # A patient box's own limit is the patient policy's (`patients.policy.message_limit`).
            self.max_message_bytes = settings.MAILBOX_MAX_MESSAGE_BYTES
        creating = self._state.adding
        super().save(*args, **kwargs)
        if creating:
            self.ensure_system_folders()

    def ensure_system_folders(self) -> None:
        existing = set(self.folders.exclude(role=Folder.Role.USER).values_list("role", flat=True))
        Folder.objects.bulk_create(
            [
                Folder(mailbox=self, role=role, name=str(Folder.Role(role).label), position=index)
                for index, role in enumerate(Folder.SYSTEM_ROLES)
                if role not in existing
            ]
        )

    def folder(self, role: str) -> "Folder":
        return self.folders.get(role=role)

    def clean(self):
        self.address = (self.address or "").strip().lower()
        errors = mailbox_errors(self)
        if errors:
            raise ValidationError(errors)


def mailbox_errors(box: "Mailbox") -> dict[str, list[str]]:
    """Every rule of RULES.md §2 on a mailbox, as field → French messages (empty when valid)."""
    errors: dict[str, list[str]] = {}

    def add(field, message):
        errors.setdefault(field, []).append(message)

    if box.address.count("@") != 1:
        add("address", _("Une adresse s'écrit partie-locale@domaine (reçu : « %(v)s »).") % {"v": box.address})
        return errors
    local, domain = box.address.split("@")
    Kind = Mailbox.Kind
    if box.kind == Kind.PATIENT:
        if domain != settings.PATIENT_DOMAIN:
            add("address", _("Une BAL patient est sur le domaine %(d)s.") % {"d": settings.PATIENT_DOMAIN})
        else:
            message = identifiers.ins_error(local)
            if message:
                add("address", message)
        return errors
    if domain == settings.PATIENT_DOMAIN:
        add("address", _("Le domaine %(d)s est réservé aux patients.") % {"d": domain})
        return errors
    if not LOCAL_PART_RE.match(local) or ".." in local:
        add(
            "address",
            _(
                "« %(v)s » : la partie avant @ ne peut contenir que des minuscules sans accent, des chiffres, « . », « - » ou « _ »."
            )
            % {"v": local},
        )
    if box.domain_id is None:
        hosted = Domain.objects.filter(name=domain).first()
        if hosted is None:
            add("address", _("Le domaine « %(d)s » n'est pas hébergé ici : créez-le d'abord.") % {"d": domain})
        else:
            box.domain = hosted
    elif box.domain.name != domain:
        add(
            "domain",
            _("L'adresse est sur « %(a)s » mais le domaine choisi est « %(d)s ».")
            % {"a": domain, "d": box.domain.name},
        )
    if box.domain_id and not box.structure_id:
        box.structure = box.domain.structure

    if box.kind == Kind.NOMINATIVE:
        if box.owner_id is None:
            add("owner", _("Une BAL nominative a un titulaire."))
        else:
            expected = f"{identifiers.ascii_slug(box.owner.first_name)}.{identifiers.ascii_slug(box.owner.last_name)}"
            if not re.fullmatch(re.escape(expected) + r"\d{0,2}", local):
                add(
                    "address",
                    _(
                        "Une BAL nominative s'écrit prénom.nom : « %(e)s@… » attendu pour ce titulaire (reçu : « %(v)s »)."
                    )
                    % {"e": expected, "v": local},
                )
    elif box.owner_id is not None:
        add("owner", _("Seule une BAL nominative a un titulaire."))
    if box.kind == Kind.ORGANISATIONAL and box.responsible_id is None:
        add(
            "responsible",
            _("Une BAL organisationnelle est ouverte sous la responsabilité d'un professionnel habilité."),
        )
    if box.kind == Kind.APPLICATIVE:
        if box.return_mailbox_id is None:
            add(
                "return_mailbox",
                _("Une BAL applicative est toujours associée à une BAL organisationnelle qui reçoit les réponses."),
            )
        elif box.return_mailbox.kind != Kind.ORGANISATIONAL:
            add("return_mailbox", _("La BAL de retour doit être une BAL organisationnelle."))
    elif box.return_mailbox_id is not None:
        add("return_mailbox", _("Seule une BAL applicative a une BAL de retour."))
    return errors


class Membership(models.Model):
    """A person working on an organisational or applicative box (secretaries included)."""

    class Role(models.TextChoices):
        MEMBER = "member", "membre"
        MANAGER = "manager", "gestionnaire"

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="memberships", verbose_name="BAL")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships", verbose_name="compte"
    )
    role = models.CharField("rôle", max_length=10, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True, verbose_name="créé le")

    class Meta:
        verbose_name = "membre"
        verbose_name_plural = "membres"
        constraints = [models.UniqueConstraint(fields=["mailbox", "user"], name="membership_unique")]

    def __str__(self) -> str:
        return f"{self.user} → {self.mailbox}"

    def clean(self):
        if self.mailbox_id and self.mailbox.kind in (Mailbox.Kind.NOMINATIVE, Mailbox.Kind.PATIENT):
            raise ValidationError(
                _("Une BAL nominative ou patient n'a pas de membres : elle appartient à son titulaire.")
            )


# --- The message store ------------------------------------------------------------------------


def raw_upload_path(instance, filename):
    return f"raw/{instance.sha256[:2]}/{instance.sha256}.eml"


def attachment_upload_path(instance, filename):
    return f"att/{instance.sha256[:2]}/{instance.sha256}"


class Message(models.Model):
    """One RFC 5322 message, stored once: its raw bytes as received, and its parsed fields."""

    message_id = models.CharField(max_length=998)
    in_reply_to = models.CharField(max_length=998, blank=True)
    references = models.TextField(blank=True)
    thread_key = models.CharField(max_length=998, blank=True)
    from_address = models.CharField(max_length=254)
    from_name = models.CharField(max_length=300, blank=True)
    # The first address of `Reply-To:` (RFC 5322 §3.6.2), lower case: where an applicative box of
    # another operator asks replies to go (RULES.md §6, its return box); "" when none.
    reply_to = models.CharField(max_length=254, blank=True)
    # Its display name, as `from_name` is the sender's: a reply goes to « Secrétariat cardio
    # <…> », not to a bare address.
    reply_to_name = models.CharField(max_length=300, blank=True)
    to = models.JSONField(default=list, blank=True)  # [{"address": ..., "name": ...}]
    cc = models.JSONField(default=list, blank=True)
    envelope_from = models.CharField(max_length=254, blank=True)
    envelope_to = models.JSONField(default=list, blank=True)
    subject = models.TextField(blank=True)
    date = models.DateTimeField(null=True, blank=True)
    text_body = models.TextField(blank=True)
    html_body = models.TextField(blank=True)  # sanitised with nh3, never the raw HTML
    mdn_requested_to = models.CharField(max_length=254, blank=True)
    x_mss_headers = models.JSONField(default=dict, blank=True)
    auto_submitted = models.BooleanField(default=False)
    is_report = models.BooleanField(default=False)
    # "disposition-notification" (MDN, RFC 8098) or "delivery-status" (DSN, RFC 3464).
    report_type = models.CharField(max_length=60, blank=True)
    has_attachments = models.BooleanField(default=False)
    size = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64)
    raw = models.FileField(upload_to=raw_upload_path, max_length=200)
    sender_mailbox = models.ForeignKey(
        Mailbox, null=True, blank=True, on_delete=models.SET_NULL, related_name="sent_messages"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # The search index's durable queue (issue 17 item 2): a new or changed message is written
    # with True in its own transaction; the webmail's indexer (`webmail/search_index.py`,
    # every few seconds) writes its search document and sets it back to False.
    search_pending = models.BooleanField(default=True, editable=False)

    class Meta:
        verbose_name = "message"
        verbose_name_plural = "messages"
        # Every index here is paid for by each message written (ingest, issue 17): plain B-trees
        # for the exact look-ups (threading, the bounce match, de-duplication), none of the
        # `varchar_pattern_ops` twins `db_index=True` would add on PostgreSQL (no LIKE on these),
        # and none on `from_address` (searched with ILIKE and `iexact`, which no B-tree serves).
        indexes = [
            models.Index(fields=["id"], condition=models.Q(search_pending=True), name="mailboxes_message_search_queue"),
            models.Index(fields=["message_id"], name="message_message_id"),
            models.Index(fields=["thread_key"], name="message_thread_key"),
            models.Index(fields=["sha256"], name="message_sha256"),
        ]

    def __str__(self) -> str:
        return f"message #{self.pk}"


class Attachment(models.Model):
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="attachments")
    filename = models.CharField(max_length=255)
    content_type = models.CharField(max_length=255)
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    file = models.FileField(upload_to=attachment_upload_path, max_length=200)
    content_id = models.CharField(max_length=255, blank=True)
    is_inline = models.BooleanField(default=False)
    position = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = "pièce jointe"
        verbose_name_plural = "pièces jointes"
        ordering = ["message_id", "position"]
        indexes = [models.Index(fields=["sha256"], name="attachment_sha256")]

    @classmethod
    def from_part(cls, part, *, sha256: str, file: str, position: int, size: int, **fields) -> "Attachment":
        """The row of one attachment of a parsed message (`mailboxes.mime`), its bytes stored
        under `file` (`mailboxes.store`): the delivery path, drafts and IMAP APPEND alike."""
        return cls(
            filename=part.filename[:255],
            content_type=part.content_type[:255],
            size=size,
            sha256=sha256,
            file=file,
            content_id=part.content_id[:255],
            is_inline=part.is_inline,
            position=position,
            **fields,
        )

    def __str__(self) -> str:
        return f"pièce jointe #{self.pk}"


class Folder(models.Model):
    class Role(models.TextChoices):
        INBOX = "inbox", "Boîte de réception"
        SENT = "sent", "Envoyés"
        DRAFTS = "drafts", "Brouillons"
        ARCHIVE = "archive", "Archives"
        TRASH = "trash", "Corbeille"
        USER = "user", "Dossier personnel"

    SYSTEM_ROLES = [Role.INBOX, Role.SENT, Role.DRAFTS, Role.ARCHIVE, Role.TRASH]

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="folders")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.USER)
    name = models.CharField("nom", max_length=100)
    position = models.PositiveIntegerField(default=100)
    # IMAP (clients/imap): the next UID to give in this folder. It only grows, so a UID is never
    # given twice in a folder; the folder's UIDVALIDITY is its id, never reused either.
    imap_uid_next = models.PositiveIntegerField(default=1)

    class Meta:
        verbose_name = "dossier"
        verbose_name_plural = "dossiers"
        ordering = ["mailbox_id", "position", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["mailbox", "role"], condition=~Q(role="user"), name="folder_system_role_unique"
            ),
            models.UniqueConstraint(fields=["mailbox", "name"], name="folder_name_unique"),
        ]

    def __str__(self) -> str:
        return self.name


class EntryQuerySet(models.QuerySet):
    def update(self, **kwargs):
        """An UPDATE that changes entries' folder also forgets their IMAP UID (and \\Deleted mark)
        in that same statement, for the entries that really change folder. PostgreSQL's trigger
        of migration 0005 does it before the row is written; SQLite's trigger can only do it
        after, once the unique (folder, imap_uid) constraint has refused a row arriving with a
        UID its new folder already gives (an IntegrityError, a 500 in the webmail)."""
        target = kwargs.get("folder", kwargs.get("folder_id"))
        if target is not None and "imap_uid" not in kwargs:
            target_id = getattr(target, "pk", target)
            kwargs["imap_uid"] = models.Case(models.When(folder_id=target_id, then=models.F("imap_uid")), default=None)
            kwargs["imap_deleted"] = models.Case(
                models.When(folder_id=target_id, then=models.F("imap_deleted")), default=False
            )
        return super().update(**kwargs)


class Entry(models.Model):
    """A message as seen in one mailbox: its folder and IMAP-like flags."""

    objects = EntryQuerySet.as_manager()

    # No index of their own for `mailbox` and `folder`: the composite indexes and constraints
    # below lead with them and serve every look-up by either (Meta).
    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="entries", db_index=False)
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="entries")
    folder = models.ForeignKey(Folder, on_delete=models.PROTECT, related_name="entries", db_index=False)
    received_at = models.DateTimeField(db_index=True)
    seen = models.BooleanField(default=False)
    flagged = models.BooleanField(default=False)
    answered = models.BooleanField(default=False)
    forwarded = models.BooleanField(default=False)
    is_draft = models.BooleanField(default=False)
    mdn_sent_at = models.DateTimeField(null=True, blank=True)
    trashed_at = models.DateTimeField(null=True, blank=True)
    # Organisational boxes: claim / assign / done, visible to all members.
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="assigned_entries",
        db_index=False,  # a partial index (Meta): most entries have none
    )
    done_at = models.DateTimeField(null=True, blank=True)
    done_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    # IMAP (clients/imap/uids.py): the UID of this entry in its folder, given from
    # `Folder.imap_uid_next` when an IMAP session first sees the entry there. A database trigger
    # (migration 0005) empties it whenever `folder` changes, by whatever code: the entry then
    # gets a new, higher UID in its new folder, as IMAP requires. Writers never set it: on
    # SQLite, whose trigger can only run after the row is written, `Entry.objects.update` empties
    # it in the same statement (EntryQuerySet.update); every move is such an update
    # (webmail.organise: move_entry, move_entries, emptying a folder; the forwarding's trash).
    imap_uid = models.PositiveIntegerField(null=True, blank=True)
    # IMAP's \Deleted flag: marked by a client, removed for good at its EXPUNGE.
    imap_deleted = models.BooleanField(default=False)
    # The API (api/listing.py): this entry's place in its box's reading order, given from
    # `Mailbox.api_position_next` when software first lists the box after the entry committed,
    # so that a cursor never passes an entry that commits later (ids are taken before commits,
    # in no commit order). Writers never set it.
    api_position = models.PositiveBigIntegerField(
        "place dans l'ordre de lecture de l'API", null=True, blank=True, editable=False
    )

    class Meta:
        verbose_name = "entrée"
        verbose_name_plural = "entrées"
        constraints = [
            models.UniqueConstraint(fields=["mailbox", "message"], name="entry_unique"),
            models.UniqueConstraint(fields=["folder", "imap_uid"], name="entry_folder_imap_uid_unique"),
            models.UniqueConstraint(fields=["mailbox", "api_position"], name="entry_mailbox_api_position_unique"),
        ]
        # Each index here is written for every entry a delivery makes (ingest, issue 17). The
        # organisational boxes' assignee and done-by are indexed only where set (partial
        # indexes: an entry written without them costs nothing there), which is enough for a
        # user's deletion (SET NULL) and for "assigned to me".
        indexes = [
            models.Index(fields=["folder", "-received_at", "-id"], name="entry_folder_list"),
            models.Index(fields=["mailbox", "seen"], name="entry_mailbox_seen"),
            models.Index(
                fields=["assigned_to"], condition=models.Q(assigned_to__isnull=False), name="entry_assigned_to"
            ),
            models.Index(fields=["done_by"], condition=models.Q(done_by__isnull=False), name="entry_done_by"),
        ]

    def __str__(self) -> str:
        return f"entrée #{self.pk}"


class EntryView(models.Model):
    """Which member of a shared box opened a message, and when."""

    entry = models.ForeignKey(Entry, on_delete=models.CASCADE, related_name="views")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    first_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["entry", "user"], name="entryview_unique")]

    def __str__(self) -> str:
        return f"vue #{self.pk}"


class Delivery(models.Model):
    """The fate of a message for one recipient address: the delivery timeline reads it."""

    class Status(models.TextChoices):
        DELIVERED = "delivered", "distribué"
        QUEUED = "queued", "en attente de relais"
        RELAYED = "relayed", "relayé"
        BOUNCED = "bounced", "non distribué"
        RETURNED = "returned", "retour automatique"
        READ = "read", "lu"

    # Served by the (message, address) constraint, which leads with it.
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="deliveries", db_index=False)
    address = models.CharField(max_length=254)
    mailbox = models.ForeignKey(Mailbox, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    status = models.CharField(max_length=10, choices=Status.choices)
    reason = models.CharField(max_length=60, blank=True)  # a code, e.g. "space_closed", "smtp_550"
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "distribution"
        verbose_name_plural = "distributions"
        constraints = [models.UniqueConstraint(fields=["message", "address"], name="delivery_unique")]

    def __str__(self) -> str:
        return f"distribution #{self.pk} ({self.status})"


class Outbox(models.Model):
    """A message waiting for the relay to one external domain, written in the delivery transaction."""

    class Status(models.TextChoices):
        PENDING = "pending", "en attente"
        SENDING = "sending", "en cours"
        SENT = "sent", "envoyé"
        FAILED = "failed", "échec définitif"

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="outbox")
    domain = models.CharField(max_length=253)
    recipients = models.JSONField(default=list)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "envoi sortant"
        verbose_name_plural = "envois sortants"
        constraints = [models.UniqueConstraint(fields=["message", "domain"], name="outbox_unique")]

    def __str__(self) -> str:
        return f"envoi sortant #{self.pk} ({self.status})"


# --- What a box's owner asks done with new mail (RULES.md §6 client functions) ----------------
# Sorting rules, the absence message and forwarding: mailboxes/box_actions.py applies them to
# every delivered message, whatever the path (SMTP gateway, webmail, API).


class BoxRule(models.Model):
    """A simple sorting rule: when a field of a new message contains a text, move it to a folder,
    flag it, mark it read. Rules apply in `position` order; the first move wins."""

    class Field(models.TextChoices):
        FROM = "from", "l'expéditeur"
        SUBJECT = "subject", "l'objet"
        TO = "to", "les destinataires"

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="rules")
    position = models.PositiveIntegerField(default=0)
    field = models.CharField("champ", max_length=10, choices=Field.choices)
    contains = models.CharField("contient", max_length=200)
    # A deleted folder leaves the rule's other actions in place.
    move_to = models.ForeignKey(
        Folder, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", verbose_name="déplacer vers"
    )
    flag = models.BooleanField("suivre", default=False)
    mark_read = models.BooleanField("marquer comme lu", default=False)
    enabled = models.BooleanField("active", default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "règle de tri"
        verbose_name_plural = "règles de tri"
        ordering = ["mailbox_id", "position", "id"]

    def __str__(self) -> str:
        return f"règle #{self.pk}"


class AbsenceMessage(models.Model):
    """The absence message of a box: answered once per sender and per period (RFC 3834)."""

    mailbox = models.OneToOneField(Mailbox, on_delete=models.CASCADE, related_name="absence")
    enabled = models.BooleanField("activé", default=False)
    starts_on = models.DateField("du", null=True, blank=True)
    ends_on = models.DateField("au", null=True, blank=True)
    subject = models.CharField("objet", max_length=200, blank=True)
    text = models.TextField("texte", max_length=4000)
    reply_to_patients = models.BooleanField("répondre aussi aux patients", default=False)
    # A new period (dates changed, or switched on again) answers every sender once more.
    period = models.PositiveIntegerField(default=1)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "message d'absence"
        verbose_name_plural = "messages d'absence"

    def __str__(self) -> str:
        return f"absence de la BAL #{self.mailbox_id}"


class AbsenceReply(models.Model):
    """One sender answered in one absence period: the unique row is the claim."""

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="+")
    period = models.PositiveIntegerField()
    sender = models.CharField(max_length=254)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "réponse d'absence"
        verbose_name_plural = "réponses d'absence"
        constraints = [
            models.UniqueConstraint(fields=["mailbox", "period", "sender"], name="absencereply_once_per_period")
        ]

    def __str__(self) -> str:
        return f"réponse d'absence #{self.pk}"


class Forwarding(models.Model):
    """Forwarding of a nominative box to another box of the trust space."""

    mailbox = models.OneToOneField(Mailbox, on_delete=models.CASCADE, related_name="forwarding")
    enabled = models.BooleanField("activé", default=False)
    address = models.CharField("transférer à", max_length=254)
    keep_copy = models.BooleanField("garder une copie dans la boîte", default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "transfert automatique"
        verbose_name_plural = "transferts automatiques"

    def __str__(self) -> str:
        return f"transfert de la BAL #{self.mailbox_id}"


class IncomingAction(models.Model):
    """An absence reply or a forward decided in the delivery transaction, done by a Celery task
    after commit (`mailboxes.tasks.run_incoming_action`); the sweeper re-queues lost ones."""

    class Kind(models.TextChoices):
        ABSENCE = "absence", "réponse d'absence"
        FORWARD = "forward", "transfert"

    class Status(models.TextChoices):
        PENDING = "pending", "en attente"
        RUNNING = "running", "en cours"
        DONE = "done", "fait"
        SKIPPED = "skipped", "sans objet"
        FAILED = "failed", "échec"

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="+")
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    outcome = models.CharField(max_length=60, blank=True)  # a code: "sent", "auto_submitted", "refused:…"
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "action sur message reçu"
        verbose_name_plural = "actions sur messages reçus"
        constraints = [models.UniqueConstraint(fields=["mailbox", "message", "kind"], name="incomingaction_unique")]
        indexes = [models.Index(fields=["status", "updated_at"], name="incomingaction_due")]

    def __str__(self) -> str:
        return f"action #{self.pk} ({self.kind}, {self.status})"


class SentRecipient(models.Model):
    """An address a sender wrote to that the message they are shown (`sent`: the webmail's sent
    message, the `id` a `POST /messages` call answered with) does not hold, kept as the sending
    told it: a patient's own copy of a fan-out (`copy`), or a copy refused whole (no `copy`:
    nothing was stored for it), with the patient policy's code and reason and the Message-ID it
    had, which its automatic return names in `In-Reply-To`. Written in the sending's transaction
    (`mailboxes.fanout.keep_recipients`, for the webmail and the API); read beside the
    message's own deliveries by the webmail's delivery timeline (webmail/timeline.py) and by
    `GET /messages/{id}` (api/views.py `message_status`)."""

    sent = models.ForeignKey(
        "mailboxes.Message", on_delete=models.CASCADE, related_name="+", verbose_name="message envoyé"
    )
    address = models.CharField("adresse", max_length=254)
    copy = models.ForeignKey(
        "mailboxes.Message",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name="copie du destinataire",
    )
    message_id = models.CharField("Message-ID", max_length=998, blank=True)
    code = models.CharField("code du refus", max_length=60, blank=True)
    reason = models.CharField("raison du refus", max_length=500, blank=True)
    created_at = models.DateTimeField("enregistré le", default=timezone.now)

    class Meta:
        verbose_name = "destinataire d'un envoi"
        verbose_name_plural = "destinataires des envois"
        constraints = [models.UniqueConstraint(fields=["sent", "address"], name="sentrecipient_unique")]

    def __str__(self) -> str:
        return f"destinataire #{self.pk}"
