"""Signal receivers of the operator.

Signing in uses one's boxes (RULES.md §5, mailboxes/inactivity.py): a box that is only read is not
unused, so each sign-in marks every box the user reaches as used and voids a pending inactivity
warning, in one UPDATE.
"""

from allauth.account.signals import user_logged_in
from django.dispatch import receiver
from django.utils import timezone

from mailboxes.access import mailboxes_for_user
from mailboxes.models import Mailbox


@receiver(user_logged_in, dispatch_uid="mailboxes.mark_mailboxes_used_on_sign_in")
def mark_mailboxes_used_on_sign_in(sender, request, user, **kwargs) -> None:
    Mailbox.objects.filter(pk__in=mailboxes_for_user(user).order_by().values("pk")).update(
        last_used_at=timezone.now(), inactivity_warned_at=None
    )
