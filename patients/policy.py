"""The MSS-C rules of Mon espace santé messaging (RULES.md §3), in one module.

The delivery path (`mailboxes/delivery.py`) asks this policy through the small interface of
`mailboxes/patient_domain.py`: for each recipient in the patient domain (`decide_recipient`),
for each recipient of a message sent by a patient box (`decide_patient_sender`), then, once the
message is stored, `after_delivery` (conversations, notifications, the test address) and
`refused` (automatic returns). Each rule below is a small function with its own docstring, so a
reader can check them one by one against RULES.md §3. Nothing here reads a body or logs content.

Refusal codes (`Decision.code`), the sentence the sender gets, and whether an automatic return
message is sent back to the sender's box:

| code | when | automatic return |
| --- | --- | --- |
| `wrong_ins` | the INS of the address is malformed or its key is wrong | yes ("patient not found") |
| `too_large` | the whole message is over 25 MB | yes |
| `patient_not_found` | no space: unknown INS, not created yet, opposed | yes |
| `ins_not_qualified` | `INS_REQUIRE_QUALIFIED` and the patient's INS is not qualified | yes |
| `space_closed` | the patient closed their space | yes |
| `blocked` | the patient blocked the sending box | no: "non distribué", nothing more |
| `patient_to_patient` | a patient writes to a patient | no (the patient sees the refusal) |
| `patient_may_not_initiate` | a patient writes first to a box that never wrote to them | no |
| `conversation_closed` | a patient writes to a box that closed the exchange (`[FIN]`) | no |

The test address `reponse.automatique-test@<patient domain>` is delivered to a box nobody reads
and answered after commit with the predefined acknowledgement (subject and body containing TEST).
"""

from __future__ import annotations

import datetime
import logging
import re
from dataclasses import dataclass

from django.conf import settings
from django.db import connection
from django.db.models import Q
from django.template.defaultfilters import filesizeformat
from django.utils import timezone

from audit.events import record
from audit.models import AuditEvent
from mailboxes import queueing, reports
from mailboxes.identifiers import ins_error, normalise_ins
from mailboxes.models import Mailbox, Message, Structure
from mailboxes.patient_domain import Decision, Envelope, is_patient_address
from mssante.sql import column, table, writes_in_with
from patients import notifications
from patients.models import Block, Conversation, Patient, PendingReturn, PharmacyDispensation

log = logging.getLogger(__name__)

TEST_LOCAL_PART = "reponse.automatique-test"
DISPENSATION_VALIDITY_DAYS = 365
FIN_RE = re.compile(r"^(?:\[fin\]|fin)$", re.IGNORECASE)


# --- Addresses ------------------------------------------------------------------------------


def test_address() -> str:
    return f"{TEST_LOCAL_PART}@{settings.PATIENT_DOMAIN}"


def system_address() -> str:
    return reports.system_address(settings.PATIENT_DOMAIN).lower()


def ins_of(address: str) -> str:
    return normalise_ins(address.rsplit("@", 1)[0])


def is_closing_subject(subject: str) -> bool:
    """Closing (RULES.md §3): the subject is exactly `[FIN]` or the word `FIN` alone, trimmed,
    any case. Nothing looser: "Fin de traitement", "Re: [FIN]" or "FIN." close nothing."""
    return bool(FIN_RE.match((subject or "").strip()))


def ensure_test_mailbox(using: str = "default") -> Mailbox:
    """The test address (RULES.md §3) is a real box of the patient domain that nobody reads:
    mail to it is stored like any other, then answered by `queue_test_answer`."""
    box = Mailbox.objects.using(using).filter(address=test_address()).first()
    if box is None:
        box = Mailbox(kind=Mailbox.Kind.PATIENT, address=test_address(), display_name="Adresse de test")
        box.save(using=using)  # not full_clean(): its local part is not an INS, on purpose
    return box


TEST_ADDRESS_CODE = "test_address"  # the PendingReturn code of the test address's acknowledgement


def contains_test(text: str) -> bool:
    return "TEST" in (text or "")


def queue_test_answer(message: Message) -> None:
    """The test address (RULES.md §3): a message whose subject and body both contain `TEST`
    gets the predefined acknowledgement in the sending box; never an automatic message or a
    report (RFC 3834). Like an automatic return, it is a `PendingReturn` row (code
    `test_address`) written with the message and sent by its id, so a lost task or a flushed
    broker only delays it: the returns' sweeper sends it (issue 15 item 13)."""
    if message.auto_submitted or message.is_report:
        return
    if not (contains_test(message.subject) and contains_test(message.text_body or message.html_body)):
        return
    sender = (message.envelope_from or message.from_address or "").lower()
    if not sender:
        return
    pending = PendingReturn.objects.create(
        code=TEST_ADDRESS_CODE,
        sender=sender,
        recipient=test_address(),
        original_message_id=message.message_id or "",
        refused_at=timezone.now(),
    )
    queueing.enqueue_on_commit("patients.tasks.send_automatic_return", pending.pk, queue=settings.RELAY_QUEUE)


# --- Refusals: the one French text of each code, and its automatic return ---------------------


@dataclass(frozen=True)
class Refusal:
    """One refusal of the patient domain. `text` is the one sentence the sender reads for this
    code, wherever they read it (SMTP reply, webmail, delivery timeline, conversation panel);
    `happened` and `to_do` are the two paragraphs of the automatic return message, when the
    refusal has one (RULES.md §3 automatic returns); `label` names the reason in a few words
    where refusals are counted (the statistics' « Retours automatiques par motif »)."""

    text: str
    automatic_return: bool
    happened: str = ""
    to_do: str = ""
    label: str = ""


NOT_DELIVERED = "Message non distribué."

REFUSALS: dict[str, Refusal] = {
    "wrong_ins": Refusal(
        "Adresse patient invalide : le matricule INS est erroné (clé de contrôle incorrecte).",
        True,
        "Il n'a pas été distribué : le matricule INS de l'adresse est erroné (sa clé de contrôle ne "
        "correspond pas au numéro). Aucune messagerie Mon espace santé ne peut exister à cette adresse.",
        "Vérifiez le matricule INS dans le dossier du patient (de préférence une INS qualifiée par le "
        "téléservice INSi), corrigez l'adresse et renvoyez le message.",
        label="INS erroné",
    ),
    "too_large": Refusal(
        "Message trop volumineux pour un patient (25 Mo au plus, pièces jointes comprises).",
        True,
        "Il n'a pas été distribué : sa taille totale dépasse 25 Mo, la limite d'un message adressé à un "
        "patient (pièces jointes comprises).",
        "Renvoyez le contenu en plusieurs messages plus légers, ou réduisez la taille des pièces jointes "
        "(PDF compressé, images de résolution réduite).",
        label="message de plus de 25 Mo",
    ),
    "patient_not_found": Refusal(
        "Aucune messagerie Mon espace santé n'est ouverte à cette adresse.",
        True,
        "Il n'a pas été distribué : aucune messagerie Mon espace santé n'est ouverte à cette adresse. "
        "Soit l'espace du patient n'a pas encore été créé, soit le patient s'est opposé à sa création, "
        "soit le matricule INS de l'adresse est erroné.",
        "Vérifiez le matricule INS (15 caractères, clé comprise) dans le dossier du patient, de préférence "
        "une INS qualifiée par le téléservice INSi, puis renvoyez le message. Sinon, communiquez avec le "
        "patient par un autre moyen.",
        label="aucun espace à cette adresse",
    ),
    "space_closed": Refusal(
        "Le titulaire de cette adresse a clôturé son espace Mon espace santé.",
        True,
        "Il n'a pas été distribué : le titulaire de cette adresse a clôturé son espace Mon espace santé. "
        "Le message n'a pas été conservé.",
        "Transmettez ces informations au patient par un autre moyen (courrier, téléphone, consultation).",
        label="espace clôturé par le patient",
    ),
    "ins_not_qualified": Refusal(
        "L'identité de ce patient n'est pas qualifiée : la messagerie exige une INS qualifiée.",
        True,
        "Il n'a pas été distribué : l'identité de ce patient n'est pas qualifiée, et votre opérateur "
        "n'accepte d'écrire aux patients qu'avec une INS qualifiée.",
        "Qualifiez l'identité du patient (vérification des pièces d'identité et appel au téléservice INSi), "
        "puis renvoyez le message.",
        label="INS non qualifiée",
    ),
    # Blocks: the blocked box gets the short "non distribué" of any transport refusal, no return
    # message, and nothing that says a block exists.
    "blocked": Refusal(NOT_DELIVERED, False),
    "patient_to_patient": Refusal("Un patient ne peut pas écrire à un autre patient.", False),
    "patient_may_not_initiate": Refusal(
        "Vous ne pouvez écrire qu'à un professionnel ou une structure qui vous a déjà écrit.", False
    ),
    "conversation_closed": Refusal(
        "Ce professionnel ou cette structure a clôturé l'échange : vous ne pouvez plus lui répondre.", False
    ),
}

# An automatic message (RFC 3834: `Auto-Submitted` other than `no`, or a report) is never
# answered by an automatic return (`PatientPolicy.refused`): its sender reads the refusal's own
# text, then this sentence, never a promise of a return (`without_return`).
NO_RETURN_TO_AUTOMATIC = (
    "Aucun retour automatique n'est envoyé : le message refusé est lui-même un message automatique."
)

# What a patient reads on the page where they write, when their message would be over the limit.
TOO_LARGE_TO_SEND = (
    "L'ensemble de votre message dépasse %(limit)s une fois envoyé : retirez des pièces jointes ou "
    "envoyez-les en plusieurs messages."
)


def message_limit() -> int:
    """The largest message to or from a patient (RULES.md §3: 25 MB, encoded, attachments
    included); `PATIENT_MAX_MESSAGE_BYTES` lets tests and operators lower it."""
    return settings.PATIENT_MAX_MESSAGE_BYTES


def refusal(code: str) -> Decision:
    """The refusal `code` as a Decision: its text and whether an automatic return answers it."""
    item = REFUSALS[code]
    return Decision(deliver=False, code=code, reason=item.text, automatic_return=item.automatic_return)


def refusal_text(code: str) -> str | None:
    """The one French text of a refusal code of the patient domain, None for any other code."""
    item = REFUSALS.get(code)
    return item.text if item else None


def refusal_label(code: str) -> str | None:
    """A refusal code of the patient domain named in a few words (a table's row, a chart's
    bar): its `label`, or its text when it has none; None for any other code."""
    item = REFUSALS.get(code)
    return (item.label or item.text) if item else None


def without_return(decision: Decision) -> Decision:
    """A refusal answered by an automatic return, for an automatic message: nothing automatic
    answers it (RFC 3834), so it is a plain refusal whose text says that no return is sent."""
    return Decision(
        deliver=False, code=decision.code, reason=f"{decision.reason} {NO_RETURN_TO_AUTOMATIC}", automatic_return=False
    )


def is_automatic(envelope: Envelope) -> bool:
    """RFC 3834 `Auto-Submitted` other than `no` (an absence reply, a return, a campaign robot),
    or a report (MDN, DSN): no automatic message answers it."""
    return envelope.auto_submitted or envelope.is_report


def too_large_to_send_text() -> str:
    return TOO_LARGE_TO_SEND % {"limit": filesizeformat(message_limit())}


def refuse_wrong_ins() -> Decision:
    """Patient address (RULES.md §3): `<INS>@<patient domain>`, the INS being a NIR of 13
    characters plus a 2-digit key. A wrong key is a wrong address, refused before any look-up."""
    return refusal("wrong_ins")


def refuse_too_large() -> Decision:
    """Automatic return 3 (RULES.md §3): the whole encoded message is over 25 MB."""
    return refusal("too_large")


def refuse_patient_not_found() -> Decision:
    """Automatic return 2 (RULES.md §3): no space at this address: unknown INS, space not
    created yet, or the patient opposed its creation. The three look alike to the sender."""
    return refusal("patient_not_found")


def refuse_space_closed() -> Decision:
    """Automatic return 1 (RULES.md §3): the patient closed their space on purpose."""
    return refusal("space_closed")


def refuse_ins_not_qualified() -> Decision:
    """The INS policy setting (RULES.md §3): with `INS_REQUIRE_QUALIFIED`, a patient whose INS
    is not qualified receives nothing; the sender is told to qualify the identity first."""
    return refusal("ins_not_qualified")


def refuse_blocked() -> Decision:
    """Blocks (RULES.md §3): the patient blocked this professional or structure box.
    What the blocked box receives: the same short "non distribué" any transport refusal gives,
    without an automatic return message and without saying that a block exists."""
    return refusal("blocked")


# --- Rules on a message to a patient --------------------------------------------------------


def patient_for_address(address: str) -> Patient | None:
    return Patient.objects.select_related("mailbox").filter(ins=ins_of(address)).first()


@dataclass(frozen=True)
class PatientFacts:
    """What the rules on a message to a patient read of them: their box, their space, their INS,
    and whether they blocked the sending box."""

    box_active: bool
    space_state: str
    ins_qualified: bool
    blocked: bool = False

    @classmethod
    def of(cls, patient: Patient) -> PatientFacts:
        box_active = patient.mailbox is not None and patient.mailbox.is_active
        return cls(box_active=box_active, space_state=patient.space_state, ins_qualified=patient.ins_qualified)


def _patient_facts_sql() -> str:
    box, patient, block = table(Mailbox), table(Patient), table(Block)
    active, state, qualified = (
        column(Mailbox, "is_active"),
        column(Patient, "space_state"),
        column(Patient, "ins_qualified"),
    )
    block_patient, block_box, block_address = (
        column(Block, "patient"),
        column(Block, "mailbox"),
        column(Block, "address"),
    )
    # A box hosted here is blocked by its id; one of another operator by its address.
    blocked = (
        f"SELECT 1 FROM {block} k WHERE k.{block_patient} = p.id "  # noqa: S608
        f"AND (k.{block_box} = %s OR (k.{block_address} <> '' AND k.{block_address} = %s))"
    )
    return (
        f"SELECT b.{active}, p.{state}, p.{qualified}, EXISTS ({blocked}) "  # noqa: S608
        f"FROM {patient} p LEFT JOIN {box} b ON b.id = p.{column(Patient, 'mailbox')} "
        f"WHERE p.{column(Patient, 'ins')} = %s"
    )


# Every message from a pro to a patient reads these facts: one statement written once here (the
# ORM would compile a join and build two model instances each time, plus a query for the block).
# Table and column names from the models; every value is a bound parameter.
PATIENT_FACTS_SQL = _patient_facts_sql()


def patient_facts(ins: str, sender_box: Mailbox | None, sender_address: str = "") -> PatientFacts | None:
    """The facts of the patient of `ins` (normalised), None when there is none. `blocked` reads
    the block of the sending box: `sender_box` when it is hosted here, else `sender_address`."""
    outside_address = (sender_address or "").lower() if sender_box is None else ""
    with connection.cursor() as cursor:
        cursor.execute(PATIENT_FACTS_SQL, [sender_box.pk if sender_box is not None else None, outside_address, ins])
        row = cursor.fetchone()
    if row is None:
        return None
    box_active, space_state, ins_qualified, blocked = row
    return PatientFacts(bool(box_active), space_state, bool(ins_qualified), bool(blocked))


def pro_may_write(envelope: Envelope, facts: PatientFacts) -> Decision:
    """Only professionals and structures initiate (RULES.md §3): any box kind (nominative,
    organisational, applicative) may write to a patient whose space is open, unless the patient
    blocked that box (hosted here, or by another operator: then by the envelope sender's
    address). Patients never write to patients."""
    sender_box = envelope.sender_mailbox
    if (sender_box is not None and sender_box.kind == Mailbox.Kind.PATIENT) or is_patient_address(
        envelope.sender_address
    ):
        if envelope.sender_address.lower() != system_address():
            return refusal("patient_to_patient")
    if facts.blocked:
        return refuse_blocked()
    return Decision.ok()


def space_decision(patient: Patient | PatientFacts | None) -> Decision:
    """Automatic returns 1 and 2 (RULES.md §3), and the INS qualification setting."""
    facts = PatientFacts.of(patient) if isinstance(patient, Patient) else patient
    if facts is None or not facts.box_active:
        return refuse_patient_not_found()
    if facts.space_state in (Patient.SpaceState.NOT_CREATED, Patient.SpaceState.OPPOSED):
        return refuse_patient_not_found()
    if facts.space_state == Patient.SpaceState.CLOSED:
        return refuse_space_closed()
    if settings.INS_REQUIRE_QUALIFIED and not facts.ins_qualified:
        return refuse_ins_not_qualified()
    return Decision.ok()


def own_copies(named, recipients) -> list[str]:
    """Never patient to patient, and the patient sees no other patient's address (RULES.md §3):
    one patient, one message. When a message names or reaches more than one patient (its `To:`
    and `Cc:`, `named`, and who receives it, `recipients`), every patient among its recipients
    gets a copy of their own, addressed to them alone (`To:` that patient, no `Cc:`); the
    professionals get the message as written (they may see the list). A message to one patient,
    with or without professionals, stays one message as written. The same rule whoever sends:
    the webmail composer, a desktop client's submission, another operator over SMTP, the API."""
    patients = {a.lower() for a in [*named, *recipients] if is_patient_address(a)}
    if len(patients) <= 1:
        return []
    return list(dict.fromkeys(a for a in recipients if is_patient_address(a)))


# --- Rules on a message from a patient ------------------------------------------------------


def latest_conversation(patient: Patient, box: Mailbox) -> Conversation | None:
    """The exchange that governs replies to `box`: its own, or that of an applicative box whose
    replies go to it (RULES.md §2: an applicative box is paired with an organisational return
    box), whichever saw the most recent message."""
    candidates = list(
        Conversation.objects.filter(patient=patient).filter(
            Q(mailbox=box) | Q(mailbox__kind=Mailbox.Kind.APPLICATIVE, mailbox__return_mailbox=box)
        )
    )
    if not candidates:
        return None
    epoch = datetime.datetime.min.replace(tzinfo=datetime.UTC)
    return max(candidates, key=lambda c: (c.last_message_at or c.opened_at or epoch, c.pk))


def has_recent_dispensation(patient: Patient, box: Mailbox, today: datetime.date | None = None) -> bool:
    """The pharmacy exception (RULES.md §3): a patient may write first to a pharmacy's
    organisational box when that pharmacy dispensed them a reimbursed prescription within the
    past year (`PharmacyDispensation`, set by the pharmacy's import or `manage.py
    record_dispensation`)."""
    if box.kind != Mailbox.Kind.ORGANISATIONAL:
        return False
    if box.structure is None or box.structure.kind != Structure.Kind.PHARMACY:
        return False
    today = today or timezone.localdate()
    since = today - datetime.timedelta(days=DISPENSATION_VALIDITY_DAYS)
    return PharmacyDispensation.objects.filter(
        patient=patient, pharmacy_mailbox=box, dispensed_on__gte=since, dispensed_on__lte=today
    ).exists()


def outside_reply_address(message: Message) -> str:
    """Where a patient's reply to `message`, from a box of another operator, goes: the address
    its `Reply-To:` names (an applicative box's return box, RULES.md §6) when that address is in
    the sender's own domain and not a patient's, else the sender. A `Reply-To:` elsewhere is not
    followed: a patient's health data goes back only to the structure that wrote."""
    sender = (message.from_address or "").lower()
    reply_to = (message.reply_to or "").lower()
    if reply_to and not is_patient_address(reply_to) and reply_to.rpartition("@")[2] == sender.rpartition("@")[2]:
        return reply_to
    return sender


def external_exchange_state(patient: Patient, address: str) -> str | None:
    """For a box hosted by another operator (no local mailbox, so no Conversation row): the
    exchange is "open" when that address wrote to the patient (or was named by a message of its
    domain as where replies go, `outside_reply_address`) and the latest such message was not a
    closing one, "closed" when it was, None when it never wrote."""
    address = address.lower()
    candidates = (
        Message.objects.filter(entries__mailbox=patient.mailbox, is_report=False)
        .filter(Q(from_address__iexact=address) | Q(reply_to=address, sender_mailbox__isnull=True))
        .order_by("-created_at", "-id")
        .only("subject", "from_address", "reply_to")
    )
    # A Reply-To counts where a reply would follow it (one rule: `outside_reply_address`).
    latest = next(
        (
            m
            for m in candidates.iterator(chunk_size=20)
            if m.from_address.lower() == address or outside_reply_address(m) == address
        ),
        None,
    )
    if latest is None:
        return None
    return Conversation.State.CLOSED if is_closing_subject(latest.subject) else Conversation.State.OPEN


def patient_may_write_to(patient: Patient, recipient_address: str) -> Decision:
    """Who a patient may write to (RULES.md §3):
    - never to a patient;
    - a box that wrote to them (reply, or a new conversation), unless that box closed the
      exchange with `[FIN]` (then `conversation_closed` until the box writes again);
    - a pharmacy's organisational box that dispensed them a reimbursed prescription in the
      past year, even without a previous message;
    - nobody else: `patient_may_not_initiate`."""
    if patient.space_state != Patient.SpaceState.ACTIVE:
        return refuse_space_closed()
    if is_patient_address(recipient_address):
        return refusal("patient_to_patient")
    box = Mailbox.objects.select_related("structure").filter(address=recipient_address.lower()).first()
    if box is None:
        state = external_exchange_state(patient, recipient_address)
    else:
        if has_recent_dispensation(patient, box):
            return Decision.ok()
        conversation = latest_conversation(patient, box)
        state = conversation.state if conversation else None
    if state == Conversation.State.OPEN:
        return Decision.ok()
    if state == Conversation.State.CLOSED:
        return refusal("conversation_closed")
    return refusal("patient_may_not_initiate")


def allowed_recipients(patient: Patient) -> list[Mailbox]:
    """The local boxes a patient may write to now (for the "write a message" page)."""
    boxes: dict[int, Mailbox] = {}
    for conversation in Conversation.objects.filter(patient=patient).select_related("mailbox__return_mailbox"):
        target = conversation.mailbox
        if target.kind == Mailbox.Kind.APPLICATIVE and target.return_mailbox is not None:
            target = target.return_mailbox
        boxes[target.pk] = target
    since = timezone.localdate() - datetime.timedelta(days=DISPENSATION_VALIDITY_DAYS)
    for dispensation in PharmacyDispensation.objects.filter(patient=patient, dispensed_on__gte=since).select_related(
        "pharmacy_mailbox"
    ):
        boxes[dispensation.pharmacy_mailbox_id] = dispensation.pharmacy_mailbox
    return sorted(
        (b for b in boxes.values() if b.is_active and patient_may_write_to(patient, b.address).deliver),
        key=lambda b: (b.display_name or b.address).lower(),
    )


def outside_recipients(patient: Patient) -> list[tuple[str, Message]]:
    """The boxes of other operators a patient may write to now (for the "write a message"
    page): each address that wrote to them (or that its message named for replies,
    `outside_reply_address`), with its latest message (what names it), unless
    that message closed the exchange, the same rule `external_exchange_state` reads."""
    latest: dict[str, Message] = {}
    received = (
        Message.objects.filter(entries__mailbox=patient.mailbox_id, sender_mailbox__isnull=True, is_report=False)
        .only("id", "from_address", "from_name", "reply_to", "subject", "created_at")  # not the bodies
        .order_by("-created_at", "-id")
    )
    for message in received:
        address = outside_reply_address(message)
        if address and address not in latest and address != system_address() and not is_patient_address(address):
            latest[address] = message
    hosted = set(Mailbox.objects.filter(address__in=list(latest)).values_list("address", flat=True))
    return sorted(
        ((a, m) for a, m in latest.items() if a not in hosted and not is_closing_subject(m.subject)),
        key=lambda item: item[0],
    )


# --- After delivery: conversations, notifications ---------------------------------------------


# Written once here: it runs for every message from a pro box to a patient (the ORM would compile
# it each time). Table and column names from the models; every value is a bound parameter. The
# usual cases are this one statement: the first message opens the exchange (the INSERT), a
# message in an open exchange moves its last message's time (the conflict's UPDATE). It returns
# no row when the patient of the box is unknown or the exchange is closed: `record_pro_message`
# then takes the long way (reopening is audited). PostgreSQL and SQLite both read it.
_CONVERSATION = {
    name: column(Conversation, name) for name in ("mailbox", "patient", "state", "opened_at", "last_message_at")
}
OPEN_OR_GO_ON_SQL = (
    f"INSERT INTO {table(Conversation)} "  # noqa: S608
    f"({_CONVERSATION['mailbox']}, {_CONVERSATION['patient']}, {_CONVERSATION['state']}, {_CONVERSATION['opened_at']}, {_CONVERSATION['last_message_at']}) "
    f"SELECT %s, p.id, %s, %s, %s FROM {table(Patient)} p WHERE p.{column(Patient, 'mailbox')} = %s "
    f"ON CONFLICT ({_CONVERSATION['mailbox']}, {_CONVERSATION['patient']}) DO UPDATE SET {_CONVERSATION['last_message_at']} = "
    f"excluded.{_CONVERSATION['last_message_at']} WHERE {table(Conversation)}.{_CONVERSATION['state']} = %s RETURNING id"
)


def _open_or_go_on_params(box: Mailbox, patient_box: Mailbox, now) -> list:
    at = Conversation._meta.get_field("last_message_at").get_db_prep_save(now, connection)
    state = Conversation.State.OPEN.value
    return [box.pk, state, at, at, patient_box.pk, state]


def open_or_go_on(box: Mailbox, patient_box: Mailbox, now) -> bool:
    """The exchange between `box` and the patient of `patient_box` opens (first message) or goes
    on (open: its last message's time moves), in one statement; its row stays locked until the
    delivery commits, so the next message from this box to this patient waits. False when the
    exchange is closed or the box has no patient."""
    with connection.cursor() as cursor:
        cursor.execute(OPEN_OR_GO_ON_SQL, _open_or_go_on_params(box, patient_box, now))
        return cursor.fetchone() is not None


def notify_and_go_on(message: Message, box: Mailbox, patient_box: Mailbox, now) -> tuple[bool, bool]:
    """PostgreSQL: the patient's notification (`notifications.queue_patient_notification`) and
    `open_or_go_on` (from `box`) in ONE statement, one round trip less for every pro message to
    a patient (issue 9). (notified, went on): neither when the box has no patient."""
    sql, params = notifications.patient_notification_insert(message, patient_box)
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH n AS ({sql}), c AS ({OPEN_OR_GO_ON_SQL}) SELECT ARRAY(SELECT id FROM n), EXISTS(SELECT 1 FROM c)",  # noqa: S608
            [*params, *_open_or_go_on_params(box, patient_box, now)],
        )
        ids, went_on = cursor.fetchone()
    return notifications.queued(list(ids)), went_on


def notify_of_pro_message(message: Message, patient_box: Mailbox, *, from_system: bool) -> None:
    """A message delivered to the box of a patient: the patient is notified (nothing for a box
    without a patient), and a pro box's message opens, goes on with or closes the exchange
    (`record_pro_message`)."""
    box = message.sender_mailbox
    pro_box = None if from_system or box is None or box.kind == Mailbox.Kind.PATIENT else box
    if pro_box is not None and writes_in_with() and not is_closing_subject(message.subject):
        notified, went_on = notify_and_go_on(message, pro_box, patient_box, timezone.now())
        if notified and not went_on:
            record_pro_message(message, patient_box, upsert_tried=True)
        return
    # Elsewhere the notification first: the exchange's row, locked by record_pro_message until
    # the commit, is then held for as short a time as possible.
    if notifications.queue_patient_notification(message, patient_box) and not from_system:
        record_pro_message(message, patient_box)


def record_pro_message(message: Message, patient_box: Mailbox, *, upsert_tried: bool = False) -> None:
    """A pro box wrote to the patient of `patient_box`: it opens the exchange, reopens it after
    a `[FIN]` (a new episode of care), or closes it when the subject is `[FIN]` / `FIN`
    (RULES.md §3). `upsert_tried`: `open_or_go_on` already ran and found the exchange closed."""
    box = message.sender_mailbox
    if box is None or box.kind == Mailbox.Kind.PATIENT:
        return
    now = timezone.now()
    closing = is_closing_subject(message.subject)
    # The usual cases, a first message or an open exchange going on, are one statement.
    if not closing and not upsert_tried and open_or_go_on(box, patient_box, now):
        return
    patient = Patient.objects.filter(mailbox=patient_box).first()
    if patient is None:
        return
    conversation, created = Conversation.objects.select_for_update().get_or_create(
        mailbox=box, patient=patient, defaults={"opened_at": now, "last_message_at": now}
    )
    was_closed = conversation.state == Conversation.State.CLOSED
    if created and not closing:  # just written as it should be: open, with this message's time
        return
    conversation.last_message_at = now
    if closing:
        conversation.state = Conversation.State.CLOSED
        conversation.closed_at = now
        conversation.closing_message = message
    elif was_closed:
        conversation.state = Conversation.State.OPEN
        conversation.opened_at = now
        conversation.closed_at = None
        conversation.closing_message = None
    conversation.save()
    if closing != was_closed:
        action = AuditEvent.Action.CONVERSATION_CLOSED if closing else AuditEvent.Action.CONVERSATION_REOPENED
        # The one who submitted the message (written just before, in this transaction) closed or
        # reopened the exchange: audit rows are never rewritten afterwards.
        actor_id, label = (
            AuditEvent.objects.filter(action=AuditEvent.Action.SUBMITTED, message_id=message.pk)
            .values_list("actor_id", "actor_label")
            .first()
        ) or (None, "system")
        record(action, actor_id=actor_id, actor_label=label, obj=conversation, mailbox_id=box.pk, message_id=message.pk)


def record_patient_message(message: Message, box: Mailbox) -> None:
    patient = getattr(message.sender_mailbox, "patient", None)
    if patient is None:
        return
    Conversation.objects.filter(patient=patient, mailbox=box).update(last_message_at=timezone.now())


class PatientPolicy:
    """The implementation of `mailboxes.patient_domain.PatientDomainPolicy`."""

    def decide_recipient(self, envelope: Envelope, recipient_address: str) -> Decision:
        """Order: the size of the whole message; the test address; the address itself (INS
        key) before any look-up; then the space (not found, closed, INS qualification); then
        who writes (patients never to patients, blocks)."""
        decision = self._decide_recipient(envelope, recipient_address.lower())
        if decision.automatic_return and is_automatic(envelope):
            return without_return(decision)
        return decision

    def _decide_recipient(self, envelope: Envelope, address: str) -> Decision:
        if envelope.size > message_limit():
            return refuse_too_large()
        if address == test_address():
            ensure_test_mailbox()
            return Decision.ok()
        ins = ins_of(address)
        if ins_error(ins):
            return refuse_wrong_ins()
        facts = patient_facts(ins, envelope.sender_mailbox, envelope.sender_address)
        decision = space_decision(facts)
        if facts is None or not decision.deliver:
            return decision
        return pro_may_write(envelope, facts)

    def decide_patient_sender(self, envelope: Envelope, recipient_address: str) -> Decision:
        """A patient's message: within the patient limit, from an active space, to a box the
        patient may write to (`patient_may_write_to`)."""
        patient = getattr(envelope.sender_mailbox, "patient", None)
        if patient is None:
            return refuse_patient_not_found()
        if envelope.size > message_limit():
            return Decision(deliver=False, code="too_large", reason=REFUSALS["too_large"].text)
        return patient_may_write_to(patient, recipient_address)

    def message_limit(self) -> int:
        return message_limit()

    def refusal_text(self, code: str) -> str | None:
        return refusal_text(code)

    def own_copies(self, named: list[str], recipients: list[str]) -> list[str]:
        return own_copies(named, recipients)

    def after_delivery(self, message: Message, delivered_to: list[Mailbox]) -> None:
        if message.is_report:
            return
        sender_box = message.sender_mailbox
        from_system = message.from_address.lower() == system_address()
        for box in delivered_to:
            if box.address == test_address():
                queue_test_answer(message)
            elif box.kind == Mailbox.Kind.PATIENT:
                notify_of_pro_message(message, box, from_system=from_system)
            elif sender_box is not None and sender_box.kind == Mailbox.Kind.PATIENT:
                record_patient_message(message, box)
                notifications.queue_professional_notifications(message, box)

    def refused(self, envelope: Envelope, message: Message | None, recipient_address: str, decision: Decision) -> None:
        """Automatic returns go back to the sender's box as messages through the same path,
        after commit, and never answer an automatic message or a report (RFC 3834)."""
        if not decision.automatic_return or is_automatic(envelope):
            return
        sender = (envelope.sender_address or "").lower()
        if not sender or sender == system_address() or is_patient_address(sender):
            return
        pending = PendingReturn.objects.create(
            code=decision.code,
            sender=sender,
            recipient=recipient_address.lower(),
            original_message_id=envelope.message_id or "",
            refused_at=timezone.now(),
        )
        log.info(
            "patient policy refused: code=%s message=%s return=%s",
            decision.code,
            getattr(message, "pk", None),
            pending.pk,
        )
        # Only the row's id goes to the broker: no address (INS, names) in task arguments.
        # A broker that is down is logged: the sweeper (`returns.sweep_returns`) queues it later.
        queueing.enqueue_on_commit("patients.tasks.send_automatic_return", pending.pk, queue=settings.RELAY_QUEUE)
