"""`python manage.py import_whitelist FILE.xml`: load the national white list of MSSanté operator
domains (RULES.md §1; namespace https://listeblanche.mssante.fr/schema, domains at //Domaine/Nom).

Idempotent: adds the new domains, keeps those already there, removes the white-list domains that
are no longer listed (domains added by hand stay). All or nothing: a malformed file, a DTD or
entity declaration (refused outright, as defusedxml would) or an invalid domain name changes
nothing and says why. A list that would remove more than `WHITELIST_MAX_REMOVED_PERCENT` % of the
white-list domains present (a truncated or wrong file cutting whole operators off) changes
nothing either, unless `--force` is given (issue 15 item 7).
"""

import xml.etree.ElementTree as ET  # noqa: S405 - parsed through mailboxes.safexml
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from audit.events import record
from audit.models import AuditEvent
from mailboxes import safexml
from mailboxes.models import TrustedDomain, domain_error
from mailboxes.trust import invalidate_domain_cache

NAMESPACE = "https://listeblanche.mssante.fr/schema"


class WhitelistError(ValueError):
    pass


def parse_whitelist(data: bytes) -> list[str]:
    """The domain names of a white list document, lower-cased and de-duplicated, in order."""
    try:
        root = safexml.parse(data)
    except safexml.UnsafeXML as exc:
        raise WhitelistError(str(exc).replace("le document", "le fichier")) from None
    except ET.ParseError as exc:
        raise WhitelistError(f"XML mal formé ({exc})") from None
    if root.tag.split("}")[0].lstrip("{") != NAMESPACE:
        raise WhitelistError(f"l'espace de noms attendu est « {NAMESPACE} »")
    names: list[str] = []
    errors: list[str] = []
    for element in root.iter(f"{{{NAMESPACE}}}Domaine"):
        for name_element in element.findall(f"{{{NAMESPACE}}}Nom"):
            name = (name_element.text or "").strip().lower().rstrip(".")
            error = domain_error(name)
            if error:
                errors.append(error)
            elif name not in names:
                names.append(name)
    if errors:
        raise WhitelistError(f"{len(errors)} nom(s) de domaine invalide(s), dont : {errors[0]}")
    if not names:
        raise WhitelistError("aucun domaine trouvé (éléments Domaine/Nom)")
    return names


@transaction.atomic
def apply_whitelist(names: list[str], force: bool = False) -> dict[str, int]:
    existing = {d.name: d for d in TrustedDomain.objects.select_for_update()}
    wanted = set(names)
    to_add = [TrustedDomain(name=n, source=TrustedDomain.Source.WHITELIST) for n in names if n not in existing]
    to_remove = [
        d.pk for name, d in existing.items() if d.source == TrustedDomain.Source.WHITELIST and name not in wanted
    ]
    listed_before = sum(1 for d in existing.values() if d.source == TrustedDomain.Source.WHITELIST)
    percent = settings.WHITELIST_MAX_REMOVED_PERCENT
    if not force and listed_before and len(to_remove) * 100 > percent * listed_before:
        raise WhitelistError(
            f"elle retirerait {len(to_remove)} des {listed_before} domaines de la liste actuelle, plus de "
            f"{percent} % (WHITELIST_MAX_REMOVED_PERCENT) ; vérifiez le fichier, ou relancez avec --force"
        )
    TrustedDomain.objects.bulk_create(to_add)  # no post_save signal: forget the cached names below
    TrustedDomain.objects.filter(pk__in=to_remove).delete()
    transaction.on_commit(invalidate_domain_cache)
    counts = {"added": len(to_add), "kept": len(wanted) - len(to_add), "removed": len(to_remove)}
    record(AuditEvent.Action.ADMIN_CHANGE, actor_label="import_whitelist", object_type="trusteddomain", detail=counts)
    return counts


class Command(BaseCommand):
    help = "Importe la liste blanche des domaines MSSanté (XML) : ajoute, conserve, retire."

    def add_arguments(self, parser):
        parser.add_argument("file", help="le fichier XML de la liste blanche")
        parser.add_argument(
            "--force",
            action="store_true",
            help="appliquer même si la liste retire plus que WHITELIST_MAX_REMOVED_PERCENT des domaines",
        )

    def handle(self, *args, **options):
        path = Path(options["file"])
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CommandError(f"Impossible de lire « {path} » : {exc.strerror}") from None
        try:
            names = parse_whitelist(data)
        except WhitelistError as exc:
            raise CommandError(f"Liste blanche refusée, rien n'a été modifié : {exc}.") from None
        try:
            counts = apply_whitelist(names, force=options["force"])
        except WhitelistError as exc:
            raise CommandError(f"Liste blanche refusée, rien n'a été modifié : {exc}.") from None
        self.stdout.write(
            f"Liste blanche importée : {counts['added']} ajouté(s), {counts['kept']} conservé(s), "
            f"{counts['removed']} retiré(s)."
        )
