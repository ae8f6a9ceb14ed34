"""The directory: every MSSanté box in France (national extract) beside this operator's own.

One `Entry` per address. National entries come from the ANS extraction (directory/importer.py);
hosted entries mirror this operator's listed boxes (directory/hosted.py) and point at their
`Mailbox`, whose `unlisted` and `is_active` flags every search re-reads (liste rouge never shows,
even before the mirror catches up). `ImportRun` records each import: when, from where, counts.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.formats import date_format

from mailboxes.models import Mailbox


class Entry(models.Model):
    class Kind(models.TextChoices):
        NOMINATIVE = "PER", "nominative"
        ORGANISATIONAL = "ORG", "organisationnelle"
        APPLICATIVE = "APP", "applicative"
        PRACTICE = "CAB", "cabinet"

    class Source(models.TextChoices):
        NATIONAL = "national", "annuaire national"
        HOSTED = "hosted", "hébergée ici"

    address = models.CharField("adresse", max_length=254)
    kind = models.CharField("type de BAL", max_length=3, choices=Kind.choices)
    source = models.CharField("origine", max_length=10, choices=Source.choices, default=Source.NATIONAL)
    # Hosted entries only; the partial unique index below keeps it one entry per box.
    mailbox = models.ForeignKey(
        Mailbox,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="directory_entries",
        db_index=False,
        verbose_name="BAL",
    )
    civility = models.CharField("civilité", max_length=40, blank=True)
    last_name = models.CharField("nom", max_length=200, blank=True)
    first_name = models.CharField("prénom", max_length=200, blank=True)
    profession_code = models.CharField("code profession", max_length=10, blank=True)
    profession_label = models.CharField("profession", max_length=200, blank=True)
    specialty_label = models.CharField("savoir-faire", max_length=200, blank=True)
    structure_name = models.CharField("structure", max_length=300, blank=True)
    service = models.CharField("service", max_length=300, blank=True)
    street = models.CharField("adresse postale", max_length=500, blank=True)
    postcode = models.CharField("code postal", max_length=10, blank=True)
    town = models.CharField("commune", max_length=200, blank=True)
    department = models.CharField("département", max_length=60, blank=True)
    country = models.CharField("pays", max_length=100, blank=True)
    # "Je ne souhaite plus recevoir de courrier papier": True, False, or None when not stated.
    dematerialisation = models.BooleanField("dématérialisation", null=True, blank=True)
    # Every row of the extract for this address (one per exercise), canonical column order,
    # one per line: what a re-import compares to decide "changed".
    exercises = models.TextField("exercices", blank=True)

    class Meta:
        verbose_name = "entrée de l'annuaire"
        verbose_name_plural = "entrées de l'annuaire"
        constraints = [
            # One index serves uniqueness, equality and `LIKE 'prefix%'` (pattern operator
            # class: the database collation is not "C"); fewer indexes, faster imports.
            models.UniqueConstraint(
                fields=["address"], name="directory_address_unique", opclasses=["varchar_pattern_ops"]
            ),
            models.UniqueConstraint(
                fields=["mailbox"], condition=models.Q(mailbox__isnull=False), name="directory_one_entry_per_mailbox"
            ),
        ]

    def __str__(self) -> str:
        return self.address

    @property
    def display_name(self) -> str:
        if self.last_name:
            return " ".join(p for p in (self.civility, self.first_name, self.last_name.upper()) if p)
        return self.service or self.structure_name or self.address

    def exercise_rows(self) -> list[list[str]]:
        """The cells of each exercise, in `directory.extract.COLUMNS` order."""
        return [line.split("|") for line in self.exercises.splitlines() if line]


class SearchRow(models.Model):
    """What searches read, one per entry, kept narrow so that PostgreSQL's shared buffers hold
    it whole: a trigram recheck then reads ~150-byte rows, not the ~800-byte entries."""

    entry = models.OneToOneField(Entry, primary_key=True, on_delete=models.CASCADE, related_name="search")
    # The hosted box, if any: searches re-read its `unlisted` and `is_active` (liste rouge).
    mailbox = models.ForeignKey(
        Mailbox, null=True, blank=True, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    # Folded (directory.normalise.fold): the name for prefix search; flattened text for "contains".
    name_key = models.CharField(max_length=400, blank=True)
    search_text = models.TextField(blank=True)

    class Meta:
        verbose_name = "texte de recherche"
        verbose_name_plural = "textes de recherche"
        # Indexes by migrations 0002 and 0004: on PostgreSQL a B-tree of `name_key COLLATE "C"`
        # (serves `LIKE 'prefix%'` and the name order at once) and a trigram GIN of
        # `search_text` in two halves (even and odd ids, directory.search.halves_sql); a plain
        # index of `name_key` elsewhere.

    def __str__(self) -> str:
        return self.name_key


class ImportRun(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running", "en cours"
        DONE = "done", "terminé"
        REFUSED = "refused", "refusé"
        FAILED = "failed", "échec"

    started_at = models.DateTimeField("début", auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField("fin", null=True, blank=True)
    source = models.CharField("source", max_length=500)
    status = models.CharField("état", max_length=10, choices=Status.choices, default=Status.RUNNING)
    lines = models.PositiveIntegerField("lignes lues", default=0)
    entries = models.PositiveIntegerField("adresses dans le fichier", default=0)
    added = models.PositiveIntegerField("ajoutées", default=0)
    changed = models.PositiveIntegerField("modifiées", default=0)
    removed = models.PositiveIntegerField("retirées", default=0)
    unchanged = models.PositiveIntegerField("inchangées", default=0)
    # Of the unchanged: national entries kept as they were because every row of their address
    # in the file was rejected (directory.staging.classify).
    kept = models.PositiveIntegerField("gardées malgré leurs lignes rejetées", default=0)
    hosted = models.PositiveIntegerField("hébergées ici (données locales gardées)", default=0)
    rejected = models.PositiveIntegerField("lignes rejetées", default=0)
    # [{"line": 12, "reason": "..."}], at most directory.extract.MAX_REPORTED of them.
    rejected_lines = models.JSONField("détail des lignes rejetées", default=list, blank=True)
    # {"added": [...], "changed": [...], "removed": [...]}: the first addresses of each.
    samples = models.JSONField("exemples d'adresses", default=dict, blank=True)
    error = models.TextField("motif du refus ou de l'échec", blank=True)
    seconds = models.FloatField("durée (s)", default=0)
    # {"read and stage": 3.1, "group and compare": 0.9, …}: seconds per step.
    phases = models.JSONField("durée des étapes (s)", default=dict, blank=True)

    class Meta:
        verbose_name = "import de l'annuaire"
        verbose_name_plural = "imports de l'annuaire"
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        if self.started_at is None:  # not saved yet
            return f"import ({self.get_status_display()})"
        started = date_format(timezone.localtime(self.started_at), "DATETIME_FORMAT")
        return f"import du {started} ({self.get_status_display()})"
