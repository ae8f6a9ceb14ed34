"""User accounts: one table for professionals, secretaries, patients and administrators.

A professional's identity lives in `mailboxes.Professional`, a patient's in `patients.Patient`;
each points at its account. Accounts are provisioned, never self-registered.
"""

from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    email = models.EmailField("adresse e-mail", blank=True)

    class Meta:
        verbose_name = "compte"
        verbose_name_plural = "comptes"

    @property
    def is_patient(self) -> bool:
        return hasattr(self, "patient")

    @property
    def is_professional_side(self) -> bool:
        """Professionals and the staff working on organisational boxes (secretaries)."""
        return not self.is_patient


class AppPassword(models.Model):
    """A password for one mail client or practice software (IMAP, SMTP submission), created by
    the user on their security page (accounts/app_passwords.py): shown once, kept as a SHA-256
    digest (the secret is random, 80 bits: no slow hash is needed), revocable one by one."""

    user = models.ForeignKey("accounts.User", on_delete=models.CASCADE, related_name="app_passwords")
    name = models.CharField("nom", max_length=100)
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField("créé le", auto_now_add=True)
    last_used_at = models.DateTimeField("dernière utilisation", null=True, blank=True)

    class Meta:
        verbose_name = "mot de passe d'application"
        verbose_name_plural = "mots de passe d'application"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"mot de passe d'application #{self.pk}"
