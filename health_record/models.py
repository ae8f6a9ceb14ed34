"""The patient's record (RULES.md §3, what a patient replies with): documents, medical profile
and measures.

The profile is one row per patient with a date per section (each section is optional and dated
when changed) and child rows for what is a list (history items, treatments, allergies, contacts,
vaccinations). Measures are dated values with a unit fixed by their kind; the BMI is derived.
"""

from decimal import Decimal

from django.db import models

from mailboxes.filetypes import PREVIEWABLE


def document_upload_path(instance, filename):
    return f"docs/{instance.sha256[:2]}/{instance.sha256}"


class Document(models.Model):
    class Kind(models.TextChoices):
        HEALTH = "health", "document de santé"
        ADMINISTRATIVE = "admin", "document administratif"

    class Category(models.TextChoices):
        REPORT = "report", "compte rendu"
        PRESCRIPTION = "prescription", "ordonnance"
        RESULT = "result", "résultat d'examen"
        IMAGING = "imaging", "imagerie"
        IDENTITY = "identity", "pièce d'identité"
        INSURANCE_CARD = "insurance_card", "carte Vitale ou attestation de droits"
        COMPLEMENTARY = "complementary", "carte de complémentaire santé"
        BLOOD_GROUP = "blood_group", "carte de groupe sanguin"
        OTHER = "other", "autre"

    # Which categories belong to which kind (the upload form offers both groups).
    HEALTH_CATEGORIES = (Category.REPORT, Category.PRESCRIPTION, Category.RESULT, Category.IMAGING, Category.OTHER)
    ADMINISTRATIVE_CATEGORIES = (
        Category.IDENTITY,
        Category.INSURANCE_CARD,
        Category.COMPLEMENTARY,
        Category.BLOOD_GROUP,
        Category.OTHER,
    )

    patient = models.ForeignKey("patients.Patient", on_delete=models.CASCADE, related_name="documents")
    kind = models.CharField("nature", max_length=10, choices=Kind.choices, default=Kind.HEALTH)
    category = models.CharField("catégorie", max_length=20, choices=Category.choices, default=Category.OTHER)
    title = models.CharField("titre", max_length=200)
    date = models.DateField("date du document")
    filename = models.CharField(max_length=255, verbose_name="nom du fichier")
    content_type = models.CharField(max_length=100, verbose_name="type de contenu")
    size = models.BigIntegerField(verbose_name="taille (octets)")
    sha256 = models.CharField(max_length=64, verbose_name="empreinte SHA-256")
    file = models.FileField(upload_to=document_upload_path, max_length=200, verbose_name="fichier")
    source_attachment = models.ForeignKey(
        "mailboxes.Attachment",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name="pièce jointe d'origine",
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name="créé le")

    class Meta:
        verbose_name = "document"
        verbose_name_plural = "documents"
        ordering = ["-date", "-id"]

    def __str__(self) -> str:
        return f"document #{self.pk}"

    @property
    def previewable(self) -> bool:
        return self.content_type in PREVIEWABLE

    @property
    def is_image(self) -> bool:
        return self.content_type.startswith("image/") and self.previewable


class Profile(models.Model):
    """The medical profile. Each `*_updated_at` dates its section (None: never filled)."""

    class Tobacco(models.TextChoices):
        UNKNOWN = "", "non renseigné"
        NEVER = "never", "non-fumeur"
        FORMER = "former", "ancien fumeur"
        CURRENT = "current", "fumeur"

    class Alcohol(models.TextChoices):
        UNKNOWN = "", "non renseigné"
        NONE = "none", "aucune consommation"
        OCCASIONAL = "occasional", "occasionnelle"
        REGULAR = "regular", "régulière"

    class BloodGroup(models.TextChoices):
        UNKNOWN = "", "non renseigné"
        A_POS = "A+", "A+"
        A_NEG = "A-", "A−"
        B_POS = "B+", "B+"
        B_NEG = "B-", "B−"
        AB_POS = "AB+", "AB+"
        AB_NEG = "AB-", "AB−"
        O_POS = "O+", "O+"
        O_NEG = "O-", "O−"

    patient = models.OneToOneField("patients.Patient", on_delete=models.CASCADE, related_name="profile")

    # History (medical, surgical, family): rows in HistoryItem.
    history_updated_at = models.DateTimeField(null=True, blank=True)
    treatments_updated_at = models.DateTimeField(null=True, blank=True)
    allergies_updated_at = models.DateTimeField(null=True, blank=True)

    tobacco = models.CharField("tabac", max_length=10, choices=Tobacco.choices, blank=True)
    tobacco_detail = models.CharField("précisions sur le tabac", max_length=200, blank=True)
    alcohol = models.CharField("alcool", max_length=10, choices=Alcohol.choices, blank=True)
    alcohol_detail = models.CharField("précisions sur l'alcool", max_length=200, blank=True)
    physical_activity = models.CharField("activité physique", max_length=300, blank=True)
    diet = models.CharField("alimentation", max_length=300, blank=True)
    lifestyle_updated_at = models.DateTimeField(null=True, blank=True)

    contacts_updated_at = models.DateTimeField(null=True, blank=True)

    advance_directives = models.TextField("directives anticipées", blank=True)
    advance_directives_document = models.ForeignKey(
        Document, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    directives_updated_at = models.DateTimeField(null=True, blank=True)

    vaccinations_updated_at = models.DateTimeField(null=True, blank=True)

    gp_name = models.CharField("médecin traitant", max_length=200, blank=True)
    gp_phone = models.CharField("téléphone du médecin traitant", max_length=30, blank=True)
    insurance = models.CharField("caisse d'assurance maladie", max_length=200, blank=True)
    complementary_insurance = models.CharField("complémentaire santé (mutuelle)", max_length=200, blank=True)
    complementary_number = models.CharField("numéro d'adhérent de la complémentaire", max_length=60, blank=True)
    blood_group = models.CharField("groupe sanguin", max_length=3, choices=BloodGroup.choices, blank=True)
    administrative_updated_at = models.DateTimeField(null=True, blank=True)

    # The cached profile PDF: its storage name and the hash of the content it was rendered from.
    pdf_name = models.CharField(max_length=200, blank=True)
    pdf_hash = models.CharField(max_length=64, blank=True)
    pdf_rendered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "profil médical"
        verbose_name_plural = "profils médicaux"

    def __str__(self) -> str:
        return f"profil #{self.pk}"


class HistoryItem(models.Model):
    class Kind(models.TextChoices):
        MEDICAL = "medical", "antécédent médical"
        SURGICAL = "surgical", "antécédent chirurgical"
        FAMILY = "family", "antécédent familial"

    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="history")
    kind = models.CharField("type", max_length=10, choices=Kind.choices)
    description = models.CharField("description", max_length=300)
    year = models.PositiveSmallIntegerField("année", null=True, blank=True)
    note = models.CharField("précisions", max_length=300, blank=True)

    class Meta:
        verbose_name = "antécédent"
        verbose_name_plural = "antécédents"
        ordering = ["kind", "year", "id"]

    def __str__(self) -> str:
        return f"antécédent #{self.pk}"


class Treatment(models.Model):
    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="treatments")
    drug = models.CharField("médicament", max_length=200)
    dose = models.CharField("posologie", max_length=200, blank=True)
    since = models.DateField("depuis le", null=True, blank=True)

    class Meta:
        verbose_name = "traitement"
        verbose_name_plural = "traitements"
        ordering = ["drug", "id"]

    def __str__(self) -> str:
        return f"traitement #{self.pk}"


class Allergy(models.Model):
    class Kind(models.TextChoices):
        ALLERGY = "allergy", "allergie"
        INTOLERANCE = "intolerance", "intolérance"

    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="allergies")
    kind = models.CharField("type", max_length=12, choices=Kind.choices, default=Kind.ALLERGY)
    substance = models.CharField("substance ou aliment", max_length=200)
    reaction = models.CharField("réaction", max_length=300, blank=True)

    class Meta:
        verbose_name = "allergie ou intolérance"
        verbose_name_plural = "allergies et intolérances"
        ordering = ["kind", "substance", "id"]

    def __str__(self) -> str:
        return f"allergie #{self.pk}"


class Contact(models.Model):
    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="contacts")
    name = models.CharField("nom et prénom", max_length=200)
    relation = models.CharField("lien", max_length=100, blank=True)
    phone = models.CharField("téléphone", max_length=30)
    is_trusted_person = models.BooleanField("personne de confiance", default=False)

    class Meta:
        verbose_name = "proche"
        verbose_name_plural = "proches"
        ordering = ["-is_trusted_person", "name", "id"]

    def __str__(self) -> str:
        return f"proche #{self.pk}"


class Vaccination(models.Model):
    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="vaccinations")
    vaccine = models.CharField("vaccin", max_length=200)
    date = models.DateField("date", null=True, blank=True)
    note = models.CharField("précisions (rappel, lot…)", max_length=200, blank=True)

    class Meta:
        verbose_name = "vaccination"
        verbose_name_plural = "vaccinations"
        ordering = ["-date", "vaccine", "id"]

    def __str__(self) -> str:
        return f"vaccination #{self.pk}"


class Measure(models.Model):
    """One dated measure. `value` is the measure (systolic for blood pressure), `value2` the
    diastolic pressure. Units are fixed per kind (UNITS)."""

    class Kind(models.TextChoices):
        WEIGHT = "weight", "poids"
        HEIGHT = "height", "taille"
        BLOOD_PRESSURE = "bp", "tension artérielle"
        GLUCOSE = "glucose", "glycémie"
        HEART_RATE = "heart_rate", "fréquence cardiaque"

    UNITS = {
        Kind.WEIGHT: "kg",
        Kind.HEIGHT: "cm",
        Kind.BLOOD_PRESSURE: "mmHg",
        Kind.GLUCOSE: "g/L",
        Kind.HEART_RATE: "bpm",
    }
    # Plausible ranges (inclusive) for an adult or a child; outside them the value is refused.
    RANGES = {
        Kind.WEIGHT: (Decimal("1"), Decimal("350")),
        Kind.HEIGHT: (Decimal("40"), Decimal("250")),
        Kind.BLOOD_PRESSURE: (Decimal("50"), Decimal("260")),  # systolic
        Kind.GLUCOSE: (Decimal("0.2"), Decimal("6")),
        Kind.HEART_RATE: (Decimal("25"), Decimal("250")),
    }
    DIASTOLIC_RANGE = (Decimal("30"), Decimal("160"))

    patient = models.ForeignKey("patients.Patient", on_delete=models.CASCADE, related_name="measures")
    kind = models.CharField("mesure", max_length=12, choices=Kind.choices)
    measured_on = models.DateField("date")
    value = models.DecimalField("valeur", max_digits=6, decimal_places=2)
    value2 = models.DecimalField("tension diastolique", max_digits=6, decimal_places=2, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "mesure"
        verbose_name_plural = "mesures"
        ordering = ["kind", "measured_on", "id"]
        indexes = [models.Index(fields=["patient", "kind", "measured_on"])]

    def __str__(self) -> str:
        return f"mesure #{self.pk}"

    @property
    def unit(self) -> str:
        return self.UNITS[self.kind]

    @property
    def display_value(self) -> str:
        if self.kind == self.Kind.BLOOD_PRESSURE:
            return f"{format_number(self.value)}/{format_number(self.value2)}"
        return format_number(self.value)


def format_number(value) -> str:
    """French decimal: 72.50 → "72,5", 120.00 → "120". A float goes through its shortest
    representation (`str`), never its binary expansion (25.8 → "25,8", not "25,80000000000000071…")."""
    if value is None:
        return ""
    if isinstance(value, float):
        value = str(value)
    text = f"{Decimal(value).normalize():f}"
    return text.replace(".", ",")


def format_decimal(value: Decimal) -> str:
    """A decimal as written, French style: Decimal("25.0") → "25,0" (keeps its places)."""
    return f"{value:f}".replace(".", ",")
