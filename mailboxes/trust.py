"""The trust space (RULES.md §1): only hosted domains, the patient domain, the trusted operator
domains (national white list or added by hand) and, when `TRUST_ALL_MSSANTE` is on, any
`*.mssante.fr` domain may send or receive.

Addresses are parsed strictly with `email.headerregistry.Address`: the normalised address
returned here (lower-cased, as every MSSanté address is) is the one every
later decision and delivery uses, so what was checked is what is delivered.
"""

from __future__ import annotations

import re
from email.headerregistry import Address

from django.conf import settings

from mailboxes.models import Domain, TrustedDomain

DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


class InvalidAddress(ValueError):
    pass


def normalise_address(value: str) -> str:
    """`Jean.Dupont@CH-X.mssante.fr` → `jean.dupont@ch-x.mssante.fr`; InvalidAddress when the
    value is not exactly one plain addr-spec (no display name, no comment, no route, ASCII)."""
    text = (value or "").strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1]
    if not text or len(text) > 254 or not text.isascii() or any(c.isspace() or ord(c) < 32 for c in text):
        raise InvalidAddress(value)
    try:
        address = Address(addr_spec=text)
    except Exception as exc:  # HeaderParseError, ValueError, IndexError...
        raise InvalidAddress(value) from exc
    local, domain = address.username, address.domain.lower()
    # What was parsed must be exactly what was written: no comment, quoting or folding dropped.
    if address.addr_spec != text or not local or not DOMAIN_RE.match(domain):
        raise InvalidAddress(value)
    # MSSanté addresses are lower case by convention (RULES.md §1): one spelling per box.
    return f"{local.lower()}@{domain}"


def domain_of(address: str) -> str:
    return address.rsplit("@", 1)[-1].lower()


def is_patient_domain(domain: str) -> bool:
    return domain == settings.PATIENT_DOMAIN


def is_local_domain(domain: str) -> bool:
    """Hosted here (a Domain row) or the patient domain."""
    return is_patient_domain(domain) or Domain.objects.filter(name=domain).exists()


def classify_domains(domains: set[str]) -> dict[str, str]:
    """Each domain → "patient", "hosted", "trusted" or "untrusted", in at most two queries."""
    result: dict[str, str] = {}
    rest = set()
    for domain in domains:
        if is_patient_domain(domain):
            result[domain] = "patient"
        else:
            rest.add(domain)
    if rest:
        for name in Domain.objects.filter(name__in=rest).values_list("name", flat=True):
            result[name] = "hosted"
            rest.discard(name)
    if rest and settings.TRUST_ALL_MSSANTE:
        for domain in list(rest):
            if domain.endswith(".mssante.fr"):
                result[domain] = "trusted"
                rest.discard(domain)
    if rest:
        for name in TrustedDomain.objects.filter(name__in=rest).values_list("name", flat=True):
            result[name] = "trusted"
            rest.discard(name)
    for domain in rest:
        result[domain] = "untrusted"
    return result


def is_trusted_domain(domain: str) -> bool:
    return classify_domains({domain})[domain] != "untrusted"
