"""The one small interface through which the delivery path asks about the patient domain.

`mailboxes/` knows nothing of patients beyond this: for each recipient in the patient domain,
and for each message sent *from* a patient box, the delivery function asks the policy for a
`Decision` (every MSS-C rule, text and limit is the policy's: the delivery path obeys); inside
the delivery transaction it tells the policy what was delivered (so it can close or reopen
conversations, answer the test address, queue notifications) and what was refused (automatic
returns).

The implementation lives in `patients/policy.py` and is loaded from the `PATIENT_POLICY`
setting; `DeliverEverything` is the neutral default used when no policy is configured.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from django.conf import settings
from django.utils.module_loading import import_string

if TYPE_CHECKING:
    from mailboxes.models import Mailbox, Message


@dataclass(frozen=True)
class Envelope:
    """What a policy may know of a message before it is stored: no body, no attachment."""

    sender_address: str
    sender_mailbox: Mailbox | None  # the local box that sends, None for mail from outside
    subject: str
    size: int  # encoded size of the whole message, in bytes
    message_id: str
    in_reply_to: str = ""
    references: tuple[str, ...] = ()
    auto_submitted: bool = False
    is_report: bool = False  # MDN or DSN
    x_mss_headers: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    deliver: bool
    # When refused: a stable code ("space_closed", "patient_not_found", "too_large", "blocked",
    # "conversation_closed", "patient_may_not_initiate", "patient_to_patient", "wrong_ins") and
    # the French sentence for the sender (SMTP reply text or automatic return).
    code: str = ""
    reason: str = ""
    # Whether the refusal is answered by an automatic return message in the sender's box
    # (RULES.md §3 automatic returns), in addition to the refusal itself.
    automatic_return: bool = False

    @classmethod
    def ok(cls) -> Decision:
        return cls(deliver=True)


class PatientDomainPolicy(Protocol):
    def decide_recipient(self, envelope: Envelope, recipient_address: str) -> Decision:
        """A message is addressed to `recipient_address` in the patient domain."""

    def decide_patient_sender(self, envelope: Envelope, recipient_address: str) -> Decision:
        """A patient box (`envelope.sender_mailbox.kind == PAT`) sends to `recipient_address`."""

    def after_delivery(self, message: Message, delivered_to: list[Mailbox]) -> None:
        """Called inside the delivery transaction once `message` is stored and entered in each
        of `delivered_to` (local mailboxes). Side effects that leave the process (notification
        e-mails, automatic answers) must be queued with `transaction.on_commit`."""

    def refused(self, envelope: Envelope, message: Message | None, recipient_address: str, decision: Decision) -> None:
        """Called when a recipient was refused, so the policy may send its automatic return."""

    def message_limit(self) -> int | None:
        """The largest message (encoded bytes) to or from the patient domain, None for no
        limit of its own: the SMTP gateway advertises the larger of this and the mailbox limit."""

    def refusal_text(self, code: str) -> str | None:
        """The one French text of one of the policy's refusal codes, None for another code."""

    def own_copies(self, named: list[str], recipients: list[str]) -> list[str]:
        """Of `recipients` (who receives the message), those in the patient domain that must each
        get a copy addressed to them alone, given `named`, the addresses its `To:`/`Cc:` name;
        the others get it as written. Empty: one message, as written, for everybody."""


class DeliverEverything:
    def decide_recipient(self, envelope, recipient_address):
        return Decision.ok()

    def decide_patient_sender(self, envelope, recipient_address):
        return Decision.ok()

    def after_delivery(self, message, delivered_to):
        return None

    def refused(self, envelope, message, recipient_address, decision):
        return None

    def message_limit(self):
        return None

    def refusal_text(self, code):
        return None

    def own_copies(self, named, recipients):
        return []


def get_policy() -> PatientDomainPolicy:
    path = getattr(settings, "PATIENT_POLICY", "")
    return import_string(path)() if path else DeliverEverything()


def is_patient_address(address: str) -> bool:
    return address.rsplit("@", 1)[-1].lower() == settings.PATIENT_DOMAIN
