"""Address books of the webmail (issue 16 item 19): a personal book per professional and a
shared book per organisational box, filled from the mail exchanged (`webmail.contacts`)."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from mailboxes.models import Mailbox


class AddressBook(models.Model):
    """Either a person's own book (`owner`) or the shared book of an organisational box."""

    owner = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="address_book"
    )
    mailbox = models.OneToOneField(
        Mailbox, null=True, blank=True, on_delete=models.CASCADE, related_name="address_book"
    )
    # The last Entry id read when filling the book from the mail exchanged.
    filled_up_to = models.BigIntegerField(default=0)

    class Meta:
        verbose_name = "carnet d'adresses"
        verbose_name_plural = "carnets d'adresses"
        constraints = [
            models.CheckConstraint(
                condition=Q(owner__isnull=False, mailbox__isnull=True) | Q(owner__isnull=True, mailbox__isnull=False),
                name="addressbook_personal_or_shared",
            )
        ]

    def __str__(self) -> str:
        return f"carnet #{self.pk}"

    @property
    def is_shared(self) -> bool:
        return self.mailbox_id is not None


class Contact(models.Model):
    class Source(models.TextChoices):
        EXCHANGED = "exchanged", "courrier échangé"
        MANUAL = "manual", "ajout manuel"

    book = models.ForeignKey(AddressBook, on_delete=models.CASCADE, related_name="contacts")
    address = models.CharField("adresse", max_length=254)
    name = models.CharField("nom", max_length=200, blank=True)
    note = models.CharField("note", max_length=300, blank=True)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.EXCHANGED)
    # Removed by the user: kept hidden so that the mail exchanged does not bring it back.
    hidden = models.BooleanField(default=False)
    exchanges = models.PositiveIntegerField(default=0)
    last_exchanged_at = models.DateTimeField(null=True, blank=True)
    # Name and address in lower case without accents, for searching ("helene" finds "Hélène").
    search_key = models.CharField(max_length=500, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "contact"
        verbose_name_plural = "contacts"
        constraints = [models.UniqueConstraint(fields=["book", "address"], name="contact_unique_address")]
        indexes = [models.Index(fields=["book", "hidden", "-exchanges"], name="contact_book_rank")]

    def __str__(self) -> str:
        return f"contact #{self.pk}"
