"""Composing a message in a local box (webmail, patient space, API) as a real RFC 5322 / MIME
message, then sending it through the one delivery path (DESIGN.md; RULES.md §2–3).

- `Message-ID` on the sender's domain, `Date`, `From: "Display Name" <address>`;
- replies carry `In-Reply-To` and `References` as RFC 5322 §3.6.4 says (RULES.md §3 threading);
- `Disposition-Notification-To` when a read receipt is asked (RFC 8098);
- an applicative box gives its organisational return box as `Reply-To` (RULES.md §2).
"""

from __future__ import annotations

from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from django.utils import timezone

from mailboxes.cda import archive_problem, mss_headers_for
from mailboxes.delivery import DeliveryRefused, DeliveryResult, refuse_invalid, send_message
from mailboxes.models import Entry, Mailbox, Message
from mailboxes.trust import InvalidAddress, normalise_address


def _address(value: str, name: str = "") -> Address:
    local, _, domain = value.strip().rpartition("@")
    # A display name is one line: no CR/LF (header injection), whatever the box's settings hold.
    return Address(display_name=" ".join((name or "").split()), username=local, domain=domain)


def _reply_headers(parent: Message) -> tuple[str, str]:
    """In-Reply-To and References for a reply to `parent` (RFC 5322 §3.6.4). A long chain is
    trimmed in the middle: the first reference (the thread's root) and the latest ones stay."""
    references = parent.references.split() if parent.references else []
    if not references and parent.in_reply_to:
        references = [parent.in_reply_to]
    references = [r for r in references if r != parent.message_id] + [parent.message_id]
    if len(references) > 20:
        references = references[:1] + references[-19:]
    return parent.message_id, " ".join(references)


def build_message(
    *,
    sender: Mailbox,
    to: list[str],
    cc: list[str] = (),
    subject: str,
    text: str,
    html: str | None = None,
    attachments: list[tuple[str, str, bytes]] = (),
    in_reply_to: Message | None = None,
    request_mdn: bool = False,
    extra_headers: dict | None = None,
    from_name: str | None = None,
    mss_headers: bool = True,
) -> bytes:
    """The RFC 5322 bytes of a message. `mss_headers=False` (a draft, a size estimate) leaves
    out the X-MSS-* headers read from IHE_XDM archives: nothing is inflated for them."""
    message = EmailMessage(policy=policy.SMTP)
    name = from_name if from_name is not None else sender.display_name
    message["From"] = _address(sender.address, " ".join((name or "").split()))
    if to:
        message["To"] = [_address(a) for a in to]
    if cc:
        message["Cc"] = [_address(a) for a in cc]
    message["Subject"] = " ".join((subject or "").splitlines())  # a header never spans typed lines
    message["Date"] = format_datetime(timezone.localtime())
    message["Message-ID"] = make_msgid(domain=sender.domain_name)
    message["MIME-Version"] = "1.0"
    if in_reply_to is not None and in_reply_to.message_id:
        parent_id, references = _reply_headers(in_reply_to)
        message["In-Reply-To"] = parent_id
        message["References"] = references
    if request_mdn:
        message["Disposition-Notification-To"] = str(_address(sender.address))
    if sender.kind == Mailbox.Kind.APPLICATIVE and sender.return_mailbox_id:
        return_box = sender.return_mailbox
        message["Reply-To"] = _address(return_box.address, return_box.display_name)
    # X-MSS-CODECDA is set when, and only when, CDA documents travel in an IHE_XDM archive: the
    # value comes from the documents themselves, never from the caller.
    headers = {k: v for k, v in (extra_headers or {}).items() if k.lower() != "x-mss-codecda"}
    if mss_headers:
        for filename, _content_type, data in attachments:
            problem = archive_problem(filename, data)
            if problem:  # a zip bomb: refused with the reason, before anything is stored
                raise DeliveryRefused("archive_too_large", problem, 552)
        headers.update(mss_headers_for(attachments))
    for name, value in headers.items():
        del message[name]
        message[name] = value
    message.set_content(text or "", charset="utf-8")
    if html:
        message.add_alternative(html, subtype="html", charset="utf-8")
    for filename, content_type, data in attachments:
        # Parameters may follow the type: "text/calendar; charset=utf-8; method=REQUEST" (RFC 6047).
        content_type, *parameters = (content_type or "application/octet-stream").split(";")
        maintype, _, subtype = content_type.strip().partition("/")
        params = dict(p.strip().partition("=")[::2] for p in parameters if "=" in p)
        message.add_attachment(
            data,
            maintype=maintype or "application",
            subtype=subtype or "octet-stream",
            filename=filename,
            params=params or None,
        )
    return message.as_bytes()


def encoded_size(**kwargs) -> int:
    """The size of the message as it would be sent (the limits apply to the encoded size):
    the webmail calls it with `build_message`'s arguments to warn before sending."""
    return len(build_message(**{"mss_headers": False, **kwargs}))


def estimated_encoded_size(text: str = "", html: str | None = None, attachment_sizes=()) -> int:
    """A cheap upper estimate without building the message: base64 adds a third plus line ends."""
    body = len((text or "").encode()) * 2 + len((html or "").encode()) * 2
    return 4096 + body + sum((size + 2) // 3 * 4 * 78 // 76 + 512 for size in attachment_sizes)


REPLY_PREFIX = "RE :"
FORWARD_PREFIX = "TR :"


def prefixed(prefix: str, subject: str) -> str:
    """`subject` with `prefix` (French clients' "RE :" / "TR :"), once: a subject that already
    starts with it — typed "Re:", "RE :", "re :" alike — is left as it is."""
    subject = subject or ""
    stripped = subject.lstrip()
    head = prefix.replace(" ", "").upper()
    if stripped[: len(prefix) + 1].replace(" ", "").upper().startswith(head):
        return subject
    return f"{prefix} {stripped}".strip()


def reply_subject(subject: str) -> str:
    return prefixed(REPLY_PREFIX, subject)


def forward_subject(subject: str) -> str:
    return prefixed(FORWARD_PREFIX, subject)


def checked_addresses(addresses) -> list[str]:
    """Normalised addresses; DeliveryRefused naming the first one that is not an address."""
    result = []
    for value in addresses:
        if not value or not value.strip():
            continue
        try:
            result.append(normalise_address(value))
        except InvalidAddress:
            decision = refuse_invalid(value)
            raise DeliveryRefused(decision.code, decision.reason, refused={value: decision}) from None
    return result


def send_from_mailbox(
    sender: Mailbox,
    actor,
    *,
    to,
    cc=(),
    subject,
    text,
    html=None,
    attachments=(),
    in_reply_to=None,
    request_mdn=False,
    source="webmail",
    extra_headers=None,
    replied_entry: Entry | None = None,
) -> DeliveryResult:
    """Build the message and send it from `sender`. A reply (`in_reply_to`) marks the entry it
    answers as answered: `replied_entry` when given (the webmail may answer a message of one
    box from another), else the sending box's entry of that message."""
    to, cc = checked_addresses(to), checked_addresses(cc)
    raw = build_message(
        sender=sender,
        to=to,
        cc=cc,
        subject=subject,
        text=text,
        html=html,
        attachments=attachments,
        in_reply_to=in_reply_to,
        request_mdn=request_mdn,
        extra_headers=extra_headers,
    )
    result = send_message(
        raw,
        envelope_from=sender.address,
        envelope_to=list(dict.fromkeys(to + cc)),
        source=source,
        actor=actor,
        sender_mailbox=sender,
    )
    if replied_entry is not None:
        Entry.objects.filter(pk=replied_entry.pk).update(answered=True)
    elif in_reply_to is not None:
        Entry.objects.filter(mailbox=sender, message=in_reply_to).update(answered=True)
    return result
