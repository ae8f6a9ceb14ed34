"""What the delivery path decides, and how a refusal reads (RULES.md §1–2).

The refusal codes of the delivery path itself (address, trust space, hosting, size, quota,
sender identity), each with its French sentence; the one map from any refusal code to its SMTP
reply, shared by `DeliveryRefused` and the SMTP gateway; and `DeliveryRefused` /
`DeliveryResult`, what `send_message` raises and returns. The patient domain's codes and texts
are its policy's (`patients/policy.py`): this module only maps them to SMTP replies.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from mailboxes.models import Mailbox, Message
from mailboxes.patient_domain import Decision, get_policy, is_patient_address

# Refusal code → (SMTP reply code, enhanced status code of RFC 3463). A code not listed here
# (a patient-domain policy's own) is refused with DEFAULT_REPLY.
REPLY_CODES: dict[str, tuple[int, str]] = {
    "invalid_address": (553, "5.1.3"),
    "unknown_recipient": (550, "5.1.1"),
    "patient_not_found": (550, "5.1.1"),
    "wrong_ins": (550, "5.1.1"),
    "untrusted_domain": (550, "5.7.1"),
    "untrusted_from": (550, "5.7.1"),
    "null_sender_not_report": (550, "5.7.1"),
    "not_hosted": (550, "5.7.1"),
    "sender_not_allowed": (550, "5.7.1"),
    "too_large": (552, "5.3.4"),
    "over_quota": (552, "5.2.2"),
    "malformed": (554, "5.6.0"),
    "too_many_hops": (554, "5.4.6"),  # RFC 3463: routing loop detected
}
DEFAULT_REPLY = (550, "5.7.1")


def reply_code(code: str) -> tuple[int, str]:
    """The SMTP reply code and enhanced status code of a refusal code."""
    return REPLY_CODES.get(code, DEFAULT_REPLY)


class DeliveryRefused(Exception):
    """The whole message is refused: nothing was stored. `refused` gives each refused
    recipient's Decision; `smtp_code` is 4xx when the peer should try again. `message_ids`
    gives, for the refused recipients of a message that was read, its Message-ID: the one an
    automatic return for that recipient names in `In-Reply-To` (the API tells it its caller)."""

    def __init__(
        self,
        code: str,
        reason: str,
        smtp_code: int | None = None,
        refused: dict | None = None,
        message_ids: dict[str, str] | None = None,
    ):
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason
        self.smtp_code = smtp_code or reply_code(code)[0]
        self.refused: dict[str, Decision] = refused or {}
        self.message_ids: dict[str, str] = message_ids or {}


@dataclass
class DeliveryResult:
    message: Message
    delivered: list[Mailbox] = field(default_factory=list)
    queued: list[str] = field(default_factory=list)
    refused: dict[str, Decision] = field(default_factory=dict)


def refuse(code: str, reason: str, automatic_return: bool = False) -> Decision:
    return Decision(deliver=False, code=code, reason=reason, automatic_return=automatic_return)


def refuse_invalid(address: str) -> Decision:
    return refuse("invalid_address", _("« %(a)s » n'est pas une adresse électronique valide.") % {"a": address[:254]})


def refuse_untrusted(domain: str) -> Decision:
    return refuse(
        "untrusted_domain",
        _("Le domaine « %(d)s » n'appartient pas à l'espace de confiance MSSanté.") % {"d": domain},
    )


def refuse_untrusted_from(domain: str) -> Decision:
    return refuse(
        "untrusted_from",
        _(
            "L'auteur du message (en-tête From) est sous le domaine « %(d)s », hors de l'espace de "
            "confiance MSSanté : le message est refusé."
        )
        % {"d": domain},
    )


def refuse_null_sender_not_report() -> Decision:
    return refuse(
        "null_sender_not_report",
        _(
            "L'expéditeur vide (<>) est réservé aux avis de non-remise et aux accusés de lecture "
            "(multipart/report) d'un domaine de l'espace de confiance."
        ),
    )


def refuse_unknown() -> Decision:
    return refuse("unknown_recipient", _("Aucune boîte aux lettres active ne porte cette adresse."))


def refuse_no_recipient() -> Decision:
    return refuse("unknown_recipient", _("Le message n'a aucun destinataire."))


def refuse_not_hosted(domain: str) -> Decision:
    return refuse(
        "not_hosted",
        _("Le domaine « %(d)s » n'est pas hébergé ici : ce serveur ne relaie pas vers d'autres opérateurs.")
        % {"d": domain},
    )


def refuse_too_large(size: int, limit: int) -> Decision:
    shown_size, shown_limit = filesizeformat(size), filesizeformat(limit)
    if shown_size == shown_limit:  # just over: "25,0 Mo … la limite est de 25,0 Mo" says nothing
        shown_size, shown_limit = _("%(n)s octets") % {"n": size}, _("%(n)s octets") % {"n": limit}
    return refuse(
        "too_large",
        _("Le message pèse %(s)s une fois encodé : la limite est de %(m)s.") % {"s": shown_size, "m": shown_limit},
    )


def refuse_over_quota() -> Decision:
    return refuse("over_quota", _("La boîte aux lettres du destinataire est pleine : le message n'a pas été remis."))


def refuse_malformed() -> Decision:
    return refuse("malformed", _("Le message est illisible : ce n'est pas un message électronique."))


def refuse_unreadable_header() -> Decision:
    """A header block with a line that is not a `Name: value` field: this parse stops there, a
    mail client may read on (a `From :` it would show, which no rule here checked)."""
    return refuse(
        "malformed",
        _(
            "Les en-têtes du message sont mal formés : une ligne n'est pas un champ « Nom: valeur » "
            "(RFC 5322). Malformed header block."
        ),
    )


def refuse_outside_from_missing() -> Decision:
    return refuse(
        "sender_not_allowed",
        _("Le message n'a pas d'en-tête From lisible : il doit donner l'adresse de son auteur (RFC 5322)."),
    )


def refuse_too_many_hops(count: int, limit: int) -> Decision:
    """A message that has made more hops than the limit (RFC 5321 §6.3): a mail loop. The
    peer's postmaster may not read French: the reason says it in English too."""
    return refuse(
        "too_many_hops",
        _(
            "Boucle de messagerie : le message a déjà traversé %(n)d serveurs (en-têtes Received), "
            "la limite est de %(m)d. Mail loop detected: %(n)d Received headers, limit %(m)d."
        )
        % {"n": count, "m": limit},
    )


def refuse_forged_local(domain: str) -> Decision:
    return refuse(
        "sender_not_allowed",
        _(
            "L'expéditeur se présente sous le domaine « %(d)s », hébergé ici : un message de ce domaine "
            "ne peut pas arriver de l'extérieur."
        )
        % {"d": domain},
    )


def refuse_inactive_box() -> Decision:
    return refuse("sender_not_allowed", _("Cette boîte aux lettres est désactivée."))


def refuse_envelope_not_box() -> Decision:
    return refuse("sender_not_allowed", _("L'expéditeur de l'enveloppe n'est pas la boîte aux lettres qui envoie."))


def refuse_from_not_box() -> Decision:
    return refuse("sender_not_allowed", _("L'en-tête From du message n'est pas la boîte aux lettres qui envoie."))


def refuse_from_missing() -> Decision:
    return refuse(
        "sender_not_allowed",
        _("Le message n'a pas d'en-tête From lisible : il doit donner l'adresse de la boîte aux lettres qui envoie."),
    )


def refuse_several_authors() -> Decision:
    return refuse(
        "sender_not_allowed",
        _("L'en-tête From du message doit donner la seule adresse de la boîte aux lettres qui envoie."),
    )


# One line per refusal code of the delivery path, for pages that show a stored refusal (the
# delivery timeline): the sentences above name the address, domain or size, while a stored
# Delivery keeps only the code. The patient domain's codes have their one text in its policy.
SUMMARIES = {
    "invalid_address": gettext_lazy("adresse électronique invalide"),
    "unknown_recipient": gettext_lazy("aucune boîte aux lettres active à cette adresse"),
    "untrusted_domain": gettext_lazy("domaine hors de l'espace de confiance MSSanté"),
    "untrusted_from": gettext_lazy("auteur (From) hors de l'espace de confiance MSSanté"),
    "null_sender_not_report": gettext_lazy("expéditeur vide réservé aux avis et accusés"),
    "not_hosted": gettext_lazy("domaine non hébergé ici"),
    "too_large": gettext_lazy("message trop volumineux"),
    "over_quota": gettext_lazy("boîte du destinataire pleine"),
    "malformed": gettext_lazy("message illisible"),
    "too_many_hops": gettext_lazy("boucle de messagerie (trop de serveurs traversés)"),
    "sender_not_allowed": gettext_lazy("expéditeur non autorisé"),
}


def refusal_text(code: str, address: str = "") -> str:
    """The French text of a stored refusal code (`Delivery.reason`) for `address`: the
    policy's own text for the patient domain, the delivery path's summary otherwise, the
    remote server's code for a relay refusal."""
    if not code:
        return ""
    if code.startswith("smtp_"):
        return _("réponse du serveur distant %(c)s") % {"c": code[5:]}
    if code.startswith("dsn_"):
        return _("avis de non-distribution de l'opérateur du destinataire (%(c)s)") % {"c": code[4:]}
    if address and is_patient_address(address):
        text = get_policy().refusal_text(code)
        if text:
            return text
    return str(SUMMARIES.get(code) or get_policy().refusal_text(code) or code)
