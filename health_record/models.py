"""Documents of the patient's record (health and administrative), RULES.md §3."""

from django.db import models


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

    patient = models.ForeignKey("patients.Patient", on_delete=models.CASCADE, related_name="documents")
    kind = models.CharField("nature", max_length=10, choices=Kind.choices, default=Kind.HEALTH)
    category = models.CharField("catégorie", max_length=20, choices=Category.choices, default=Category.OTHER)
    title = models.CharField("titre", max_length=200)
    date = models.DateField("date du document")
    filename = models.CharField(max_length=255)
    content_type = models.CharField(max_length=100)
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    file = models.FileField(upload_to=document_upload_path, max_length=200)
    source_attachment = models.ForeignKey(
        "mailboxes.Attachment", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "document"
        verbose_name_plural = "documents"
        ordering = ["-date", "-id"]

    def __str__(self) -> str:
        return f"document #{self.pk}"
