"""Keep the hosted entries of the directory in step with the boxes they mirror (directory/hosted.py).

Receivers run in the saving transaction, so the mirror commits or rolls back with the change.
Saves that touch none of the mirrored fields (a signature, a counter) cost nothing.
"""

from django.db.models.signals import post_save
from django.dispatch import receiver

from directory import hosted
from mailboxes.models import Mailbox, Professional, Structure

PROFESSIONAL_FIELDS = {
    "civility",
    "first_name",
    "last_name",
    "profession",
    "specialty",
    "structure",
    "dematerialisation",
}
STRUCTURE_FIELDS = {"name", "address"}


def _relevant(update_fields, fields) -> bool:
    return update_fields is None or bool(set(update_fields) & fields)


@receiver(post_save, sender=Mailbox, dispatch_uid="directory.mailbox_saved")
def mailbox_saved(sender, instance, update_fields=None, raw=False, **kwargs):
    if not raw and instance.kind != Mailbox.Kind.PATIENT and _relevant(update_fields, hosted.MIRRORED_FIELDS):
        hosted.sync_mailboxes([instance])


@receiver(post_save, sender=Professional, dispatch_uid="directory.professional_saved")
def professional_saved(sender, instance, created=False, update_fields=None, raw=False, **kwargs):
    if not raw and not created and _relevant(update_fields, PROFESSIONAL_FIELDS):
        boxes = Mailbox.objects.filter(owner=instance) | Mailbox.objects.filter(responsible=instance)
        hosted.sync_mailboxes(list(boxes.distinct()))


@receiver(post_save, sender=Structure, dispatch_uid="directory.structure_saved")
def structure_saved(sender, instance, created=False, update_fields=None, raw=False, **kwargs):
    if not raw and not created and _relevant(update_fields, STRUCTURE_FIELDS):
        hosted.sync_mailboxes(list(Mailbox.objects.filter(structure=instance)))
