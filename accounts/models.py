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
