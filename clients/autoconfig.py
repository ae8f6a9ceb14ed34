"""Autoconfiguration of mail clients (issue 11 §4): typing the address fills the servers.

- Thunderbird: `/.well-known/autoconfig/mail/config-v1.1.xml` and `/mail/config-v1.1.xml
  ?emailaddress=` (the Mozilla ISPDB "clientConfig" format);
- Outlook: Autodiscover "POX" (`/autodiscover/autodiscover.xml`, POST of an
  `<Autodiscover><Request><EMailAddress>` document, response schema 2006a).

Everything comes from settings (CLIENTS_PUBLIC_*, the TLS certificate) and the hosted domains:
a domain that is not hosted here gets a 404; nothing says whether an address exists.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from django.conf import settings

from mailboxes.models import Domain

AUTODISCOVER_REQUEST = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
AUTODISCOVER_RESPONSE = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
OUTLOOK_RESPONSE = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"


@dataclass(frozen=True)
class Servers:
    host: str
    imap_port: int
    imaps_port: int
    submission_port: int
    tls: bool


def servers(request_host: str) -> Servers:
    return Servers(
        host=settings.CLIENTS_PUBLIC_HOST or request_host.split(":")[0],
        imap_port=settings.CLIENTS_PUBLIC_IMAP_PORT,
        imaps_port=settings.CLIENTS_PUBLIC_IMAPS_PORT if settings.CLIENTS_TLS_CERT else 0,
        submission_port=settings.CLIENTS_PUBLIC_SUBMISSION_PORT,
        tls=bool(settings.CLIENTS_TLS_CERT and settings.CLIENTS_TLS_KEY),
    )


def hosted_domains(address: str | None) -> list[str]:
    """The hosted domain of `address`, or every hosted domain when no address is given; [] when
    the address's domain is not hosted here."""
    if address:
        domain = address.strip().lower().rpartition("@")[2]
        return [domain] if Domain.objects.filter(name=domain).exists() else []
    return list(Domain.objects.order_by("name").values_list("name", flat=True))


def _add(parent, tag, text=None, **attrs):
    element = ET.SubElement(parent, tag, attrs)
    if text is not None:
        element.text = str(text)
    return element


def thunderbird(domains: list[str], conf: Servers) -> bytes:
    root = ET.Element("clientConfig", version="1.1")
    provider = _add(root, "emailProvider", id=domains[0])
    for domain in domains:
        _add(provider, "domain", domain)
    _add(provider, "displayName", "MSSanté — messagerie sécurisée de santé")
    _add(provider, "displayShortName", "MSSanté")
    incoming = [(conf.imaps_port, "SSL")] if conf.imaps_port else []
    incoming.append((conf.imap_port, "STARTTLS" if conf.tls else "plain"))
    for port, socket_type in incoming:
        server = _add(provider, "incomingServer", type="imap")
        for tag, value in (("hostname", conf.host), ("port", port), ("socketType", socket_type)):
            _add(server, tag, value)
        _add(server, "authentication", "password-cleartext")
        _add(server, "username", "%EMAILADDRESS%")
    outgoing = _add(provider, "outgoingServer", type="smtp")
    for tag, value in (
        ("hostname", conf.host),
        ("port", conf.submission_port),
        ("socketType", "STARTTLS" if conf.tls else "plain"),
    ):
        _add(outgoing, tag, value)
    _add(outgoing, "authentication", "password-cleartext")
    _add(outgoing, "username", "%EMAILADDRESS%")
    documentation = _add(provider, "documentation", url=f"{settings.SITE_URL}/comptes/mots-de-passe-application/")
    _add(documentation, "descr", "Créez un mot de passe d'application pour ce logiciel.", lang="fr")
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8")


def requested_address(body: bytes) -> str | None:
    """The EMailAddress of an Autodiscover POX request, or None when the document is not one."""
    from mailboxes import safexml

    try:
        root = safexml.parse(body)
    except (ET.ParseError, safexml.UnsafeXML):
        return None
    node = root.find(f"{{{AUTODISCOVER_REQUEST}}}Request/{{{AUTODISCOVER_REQUEST}}}EMailAddress")
    if node is None or not (node.text or "").strip():
        return None
    return node.text.strip()


def outlook(address: str, conf: Servers) -> bytes:
    ET.register_namespace("", AUTODISCOVER_RESPONSE)
    root = ET.Element(f"{{{AUTODISCOVER_RESPONSE}}}Autodiscover")
    response = ET.SubElement(root, f"{{{OUTLOOK_RESPONSE}}}Response")
    account = ET.SubElement(response, f"{{{OUTLOOK_RESPONSE}}}Account")
    _add(account, f"{{{OUTLOOK_RESPONSE}}}AccountType", "email")
    _add(account, f"{{{OUTLOOK_RESPONSE}}}Action", "settings")
    encryption = "TLS" if conf.tls else "None"
    for kind, port in (("IMAP", conf.imap_port), ("SMTP", conf.submission_port)):
        protocol = _add(account, f"{{{OUTLOOK_RESPONSE}}}Protocol")
        for tag, value in (
            ("Type", kind),
            ("Server", conf.host),
            ("Port", port),
            ("DomainRequired", "off"),
            ("LoginName", address),
            ("SPA", "off"),
            ("SSL", "on" if conf.tls else "off"),
            ("Encryption", encryption),
            ("AuthRequired", "on"),
        ):
            _add(protocol, f"{{{OUTLOOK_RESPONSE}}}{tag}", value)
        if kind == "SMTP":
            _add(protocol, f"{{{OUTLOOK_RESPONSE}}}UsePOPAuth", "off")
            _add(protocol, f"{{{OUTLOOK_RESPONSE}}}SMTPLast", "off")
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="utf-8")
