"""The trust space (RULES.md §1): only hosted domains, the patient domain, the trusted operator
domains (national white list or added by hand) and, when `TRUST_ALL_MSSANTE` is on, any
`*.mssante.fr` domain may send or receive.

Addresses are parsed strictly with `email.headerregistry.Address`: the normalised address
returned here (lower-cased, as every MSSanté address is) is the one every
later decision and delivery uses, so what was checked is what is delivered.

The hosted and trusted domain names are few and read on every message: each process keeps them
for `TRUST_CACHE_SECONDS`, forgets them as soon as it saves or deletes a domain itself, and other
processes see a change within that delay. The cache is only filled outside a transaction, so it
never holds a row that was not committed (or may roll back); inside one it is read while fresh
(a campaign's chunk sends its 50 messages in one transaction), and a transaction that saves or
deletes a domain drops it at once, so that transaction reads its own rows from the database.
"""

from __future__ import annotations

import functools
import re
import time
from email.headerregistry import Address

from django.conf import settings
from django.db import connection, transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from mailboxes.models import Domain, TrustedDomain

DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


class InvalidAddress(ValueError):
    pass


def normalise_address(value: str) -> str:
    """`Jean.Dupont@CH-X.mssante.fr` → `jean.dupont@ch-x.mssante.fr`; InvalidAddress when the
    value is not exactly one plain addr-spec (no display name, no comment, no route, ASCII).
    A pure function of its text, asked several times per message: valid addresses are
    remembered (a bounded cache; a refusal is worked out again each time)."""
    if not isinstance(value, str):
        return _normalise_address(value)
    return _normalise_cached(value)


def _normalise_address(value: str) -> str:
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


_normalise_cached = functools.lru_cache(maxsize=4096)(_normalise_address)


def domain_of(address: str) -> str:
    return address.rsplit("@", 1)[-1].lower()


def is_patient_domain(domain: str) -> bool:
    return domain == settings.PATIENT_DOMAIN


# (expires at, hosted names, trusted names), replaced as a whole so that threads share it safely.
_domain_sets: tuple[float, frozenset[str], frozenset[str]] | None = None


def invalidate_domain_cache() -> None:
    global _domain_sets
    _domain_sets = None


@receiver(post_save, sender=Domain)
@receiver(post_delete, sender=Domain)
@receiver(post_save, sender=TrustedDomain)
@receiver(post_delete, sender=TrustedDomain)
def _domain_changed(**_kwargs) -> None:
    # Now, and again once the change is visible to every reader (after the commit).
    invalidate_domain_cache()
    transaction.on_commit(invalidate_domain_cache)


def cached_domain_sets() -> tuple[frozenset[str], frozenset[str]] | None:
    """(hosted, trusted) domain names from this process's cache, or None when it must not be
    used: caching switched off (`TRUST_CACHE_SECONDS = 0`), or inside a transaction when the
    cache is stale (it is filled outside transactions only). Called outside a transaction, it
    also fills the cache for the transactions that follow."""
    global _domain_sets
    ttl = getattr(settings, "TRUST_CACHE_SECONDS", 0)
    if ttl <= 0:
        return None
    now = time.monotonic()
    cached = _domain_sets
    if cached is None or cached[0] <= now:
        if connection.in_atomic_block:
            return None
        cached = (
            now + ttl,
            frozenset(Domain.objects.values_list("name", flat=True)),
            frozenset(TrustedDomain.objects.values_list("name", flat=True)),
        )
        _domain_sets = cached
    return cached[1], cached[2]


def is_local_domain(domain: str) -> bool:
    """Hosted here (a Domain row) or the patient domain."""
    if is_patient_domain(domain):
        return True
    sets = cached_domain_sets()
    return domain in sets[0] if sets is not None else Domain.objects.filter(name=domain).exists()


def classify_domains(domains: set[str]) -> dict[str, str]:
    """Each domain → "patient", "hosted", "trusted" or "untrusted", in at most two queries
    (none while the process's cache of domain names is fresh)."""
    result: dict[str, str] = {}
    rest = set()
    for domain in domains:
        if is_patient_domain(domain):
            result[domain] = "patient"
        else:
            rest.add(domain)
    sets = cached_domain_sets() if rest else None
    if sets is not None:
        hosted, trusted = sets
        for domain in rest:
            if domain in hosted:
                result[domain] = "hosted"
            elif domain in trusted or (settings.TRUST_ALL_MSSANTE and domain.endswith(".mssante.fr")):
                result[domain] = "trusted"
            else:
                result[domain] = "untrusted"
        return result
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
