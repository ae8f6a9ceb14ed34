"""The exchange between one professional box and one patient, seen from the professional side
(RULES.md §3 "Closing"): its state, the "close the conversation" action that sends `[FIN]`, and
each message's delivery state (delivered, read by MDN, returned with the reason).

Opening, closing by `[FIN]` and reopening are recorded by the policy when a message is delivered
(`patients.policy.record_pro_message`), whatever sent it: this webmail action, the SMTP
gateway or the API.
"""

from mailboxes import compose
from mailboxes.delivery import refusal_text
from mailboxes.models import Delivery, Mailbox, Message
from mailboxes.patient_domain import is_patient_address
from patients.display import patient_label
from patients.models import Conversation, Patient

CLOSING_SUBJECT = "[FIN]"
CLOSING_TEXT = (
    "Bonjour,\n\n"
    "Cet échange est terminé : vous ne pouvez plus répondre à ce message. "
    "Si vous avez besoin de nous joindre, utilisez les moyens de contact habituels.\n"
)


def conversation_for(mailbox: Mailbox, patient: Patient) -> Conversation | None:
    return Conversation.objects.filter(mailbox=mailbox, patient=patient).first()


def close_conversation(mailbox: Mailbox, patient: Patient, actor) -> Message:
    """Send `[FIN]` from `mailbox` to the patient through the one delivery path; the policy
    closes the conversation on delivery, and the audit event names the professional."""
    result = compose.send_from_mailbox(
        mailbox, actor, to=[patient.address], subject=CLOSING_SUBJECT, text=CLOSING_TEXT, source="webmail"
    )
    # The policy wrote the `conversation.closed` event while delivering, naming the submitter.
    return result.message


def delivery_states(message: Message) -> list[dict]:
    """One row per recipient address: who (a patient's name with the address), the state in
    French and, when returned or refused, why."""
    rows = []
    for delivery in Delivery.objects.filter(message=message).order_by("address"):
        status = delivery.status
        label = delivery.get_status_display()
        if status == Delivery.Status.READ:
            label = "lu (accusé de lecture reçu)"
        reason = ""
        if status in (Delivery.Status.RETURNED, Delivery.Status.BOUNCED):
            reason = refusal_text(delivery.reason, delivery.address)
        rows.append(
            {
                "address": delivery.address,
                "label": patient_label(delivery.address) if is_patient_address(delivery.address) else delivery.address,
                "status": status,
                "status_label": label,
                "reason": reason,
            }
        )
    return rows
