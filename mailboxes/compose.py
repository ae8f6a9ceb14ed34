"""Composing a message in a local box (webmail, patient space, API) as a real RFC 5322 / MIME
message, then sending it through the one delivery path (DESIGN.md; RULES.md §2–3).

- `Message-ID` on the sender's domain, `Date`, `From: "Display Name" <address>`;
- replies carry `In-Reply-To` and `References` as RFC 5322 §3.6.4 says (RULES.md §3 threading);
- `Disposition-Notification-To` when a read receipt is asked (RFC 8098);
- an applicative box gives its organisational return box as `Reply-To` (RULES.md §2).
"""

from __future__ import annotations

import base64
import quopri
import re
import secrets
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import encode_rfc2231, format_datetime, make_msgid, quote

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
    recipient_names: dict | None = None,
) -> bytes:
    """The RFC 5322 bytes of a message. `mss_headers=False` (a draft, a size estimate) leaves
    out the X-MSS-* headers read from IHE_XDM archives: nothing is inflated for them. A text
    message (no HTML) is written by `write_plain_message`, one with HTML by the `email` package.
    `recipient_names` gives a display name to some of `to` and `cc` (a reply to a `Reply-To`
    with a name: « Secrétariat cardio <cardio@…> »)."""
    names = recipient_names or {}
    # X-MSS-CODECDA is set when, and only when, CDA documents travel in an IHE_XDM archive: the
    # value comes from the documents themselves, never from the caller.
    extra = {k: v for k, v in (extra_headers or {}).items() if k.lower() != "x-mss-codecda"}
    if mss_headers:
        for filename, _content_type, data in attachments:
            problem = archive_problem(filename, data)
            if problem:  # a zip bomb: refused with the reason, before anything is stored
                raise DeliveryRefused("archive_too_large", problem, 552)
        extra.update(mss_headers_for(attachments))
    name = from_name if from_name is not None else sender.display_name
    subject = " ".join((subject or "").splitlines())  # a header never spans typed lines
    date, message_id = format_datetime(timezone.localtime()), make_msgid(domain=sender.domain_name)
    parent = _reply_headers(in_reply_to) if in_reply_to is not None and in_reply_to.message_id else None
    return_box = sender.return_mailbox if sender.kind == Mailbox.Kind.APPLICATIVE and sender.return_mailbox_id else None
    if html is None:
        headers = [("From", _mailbox(sender.address, name))]
        headers += [("To", ", ".join(_mailbox(a, names.get(a, "")) for a in to))] if to else []
        headers += [("Cc", ", ".join(_mailbox(a, names.get(a, "")) for a in cc))] if cc else []
        headers += [("Subject", _encoded_text(subject)), ("Date", date), ("Message-ID", message_id)]
        headers += [("MIME-Version", "1.0")]
        headers += [("In-Reply-To", parent[0]), ("References", parent[1])] if parent else []
        headers += [("Disposition-Notification-To", _mailbox(sender.address))] if request_mdn else []
        headers += [("Reply-To", _mailbox(return_box.address, return_box.display_name))] if return_box else []
        for key, value in extra.items():
            headers = [h for h in headers if h[0].lower() != key.lower()] + [(key, _encoded_text(str(value)))]
        return write_plain_message(headers, text, attachments)
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = _address(sender.address, " ".join((name or "").split()))
    if to:
        message["To"] = [_address(a, names.get(a, "")) for a in to]
    if cc:
        message["Cc"] = [_address(a, names.get(a, "")) for a in cc]
    message["Subject"] = subject
    message["Date"] = date
    message["Message-ID"] = message_id
    message["MIME-Version"] = "1.0"
    if parent:
        message["In-Reply-To"], message["References"] = parent
    if request_mdn:
        message["Disposition-Notification-To"] = str(_address(sender.address))
    if return_box is not None:
        message["Reply-To"] = _address(return_box.address, return_box.display_name)
    for key, value in extra.items():
        del message[key]
        message[key] = value
    message.set_content(text or "", charset="utf-8")
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


# --- The plain-text writer (issue 9: a campaign's 10,000 messages) --------------------------
# A message without HTML is written here directly, header by header, instead of through the
# `email` package's header registry (which parses every header it is given, then parses and
# refolds it again to write it: 2.4 ms a message, a fifth of a campaign line's CPU). The result
# is the same message for any reader (tests/core/test_mime_writer.py parses both back with the
# `email` package): RFC 2047 encoded words for non-ASCII text, folded at 78 characters, the text
# in 7bit / 8bit or quoted-printable, attachments in base64 with RFC 2231 file names.

_LINE = 78
_Q_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
_ATEXT = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+-/=?^_`{|}~")
_DOT_ATOM = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")


def _q_word(text: str) -> str:
    """`text` as RFC 2047 "Q" encoded words of at most 75 characters (split between characters,
    so no UTF-8 sequence is cut)."""
    words, current = [], ""
    for char in text:
        encoded = "".join(chr(b) if b in _Q_SAFE else ("_" if b == 32 else f"={b:02X}") for b in char.encode())
        if len(current) + len(encoded) > 75 - 12:  # "=?utf-8?q?" + "?=" around it
            words.append(current)
            current = ""
        current += encoded
    words.append(current)
    return " ".join(f"=?utf-8?q?{w}?=" for w in words)


def _encoded_text(value: str, plain=lambda w: w.isascii() and "=?" not in w) -> str:
    """`value` with each run of words that are not `plain` as encoded words (RFC 2047 §5): the
    spaces inside a run are encoded with it, those around it stay."""
    if all(plain(w) for w in value.split(" ")):
        return value
    out, run = [], []
    for word in value.split(" "):
        if plain(word) and word:
            if run:
                out += run if not any(run) else [_q_word(" ".join(run))]  # only spaces: as they are
                run = []
            out.append(word)
        else:
            run.append(word)
    if run:
        out += run if not any(run) else [_q_word(" ".join(run))]
    return " ".join(out)


def _header(name: str, value: str) -> str:
    """`Name: value` folded at the spaces of `value` to lines of at most 78 characters when it
    can be (a longer word stays whole)."""
    if "\r" in value or "\n" in value:
        raise ValueError("Header values may not contain linefeed or carriage return characters")
    line = f"{name}: {value}"
    if len(line) <= _LINE:
        return line + "\r\n"
    lines, current = [], f"{name}:"
    for word in value.split(" "):
        if len(current) + 1 + len(word) > _LINE and current.strip() and not current.endswith(":"):
            lines.append(current)
            current = ""
        current += " " + word
    lines.append(current)
    return "\r\n".join(lines) + "\r\n"


def _phrase(name: str) -> str:
    """A display name as an RFC 5322 phrase: atoms, a quoted string, or encoded words."""
    name = " ".join((name or "").split())
    if name.isascii():
        if all(c in _ATEXT for c in name.replace(" ", "")):
            return name
        return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return _encoded_text(name, plain=lambda w: bool(w) and all(c in _ATEXT for c in w) and "=?" not in w)


def _mailbox(address: str, name: str = "") -> str:
    local, _, domain = address.strip().rpartition("@")
    if not _DOT_ATOM.match(local):
        local = '"' + local.replace("\\", "\\\\").replace('"', '\\"') + '"'
    addr_spec = f"{local}@{domain}"
    phrase = _phrase(name)
    return f"{phrase} <{addr_spec}>" if phrase else addr_spec


def _parameters(params: dict) -> str:
    """`; key="value"` for each parameter, RFC 2231 (`key*=utf-8''…`) for a non-ASCII value."""
    out = []
    for key, value in params.items():
        value = str(value)
        if not value.isascii():  # RFC 2231 §3–4: in pieces of at most 60 characters
            encoded = encode_rfc2231(value, "utf-8").removeprefix("utf-8''")
            pieces = re.findall(r"(?:%[0-9A-F]{2}|[^%]){1,20}", encoded)  # never cuts an %XX
            if len(pieces) == 1:
                out.append(f"; {key}*=utf-8''{encoded}")
            else:
                pieces[0] = "utf-8''" + pieces[0]
                out += [f"; {key}*{i}*={piece}" for i, piece in enumerate(pieces)]
        else:
            out.append(f'; {key}="{quote(value)}"')
    return "".join(out)


def _text_part(text: str) -> tuple[str, bytes]:
    """The text's Content-Type and Content-Transfer-Encoding header lines and its body: 7bit or
    8bit when no line is longer than 78 bytes, else quoted-printable (as the `email` package
    chooses for French text)."""
    lines = (text or "").encode().splitlines()
    if max((len(line) for line in lines), default=0) <= _LINE:
        cte = "7bit" if all(line.isascii() for line in lines) else "8bit"
        body = b"\r\n".join(lines) + b"\r\n"
    else:
        cte = "quoted-printable"
        body = quopri.encodestring(b"\n".join(lines) + b"\n").replace(b"\n", b"\r\n")
    return f'Content-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: {cte}\r\n', body


def _attachment_part(filename: str, content_type: str, data: bytes) -> bytes:
    content_type, *parameters = (content_type or "application/octet-stream").split(";")
    maintype, _, subtype = content_type.strip().partition("/")
    params = dict(p.strip().partition("=")[::2] for p in parameters if "=" in p)
    params = {k.strip(): v.strip().strip('"') for k, v in params.items()}
    head = _header("Content-Type", f"{maintype or 'application'}/{subtype or 'octet-stream'}" + _parameters(params))
    head += "Content-Transfer-Encoding: base64\r\n"
    head += _header("Content-Disposition", "attachment" + _parameters({"filename": filename}))
    return head.encode() + b"\r\n" + base64.encodebytes(data).replace(b"\n", b"\r\n")


def write_plain_message(headers: list[tuple[str, str]], text: str, attachments) -> bytes:
    """The bytes of a text message: `headers` (name, already encoded value) then the text, and
    the attachments in a multipart/mixed when there are any."""
    head = "".join(_header(name, value) for name, value in headers)
    text_headers, body = _text_part(text)
    if not attachments:
        return (head + text_headers + "\r\n").encode() + body
    parts = [text_headers.encode() + b"\r\n" + body]
    parts += [_attachment_part(*attachment) for attachment in attachments]
    boundary = f"=_{secrets.token_hex(16)}"
    while any(boundary.encode() in part for part in parts):  # never in base64; maybe in the text
        boundary = f"=_{secrets.token_hex(16)}"
    separator = b"--" + boundary.encode()
    out = [(head + _header("Content-Type", f'multipart/mixed; boundary="{boundary}"') + "\r\n").encode()]
    for part in parts:
        out += [separator, b"\r\n", part, b"\r\n"]
    out += [separator, b"--\r\n"]
    return b"".join(out)


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
    recipient_names: dict | None = None,
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
        recipient_names=recipient_names,
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
