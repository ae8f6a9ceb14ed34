"""French identifiers of the trust space: RPPS, ADELI, FINESS, SIREN, SIRET and the INS matricule.

The keys are checked by python-stdnum (Luhn, SIREN, SIRET, NIR); the messages are ours, in French.

Each `validate_*` raises `ValidationError` with a French message that says what is wrong;
each `normalise_*` strips spaces so a number typed as printed on a card is accepted.
RULES.md §1 (directory identifiers) and §3 (INS matricule = NIR, Corsica 2A/2B).
"""

import re
import unicodedata

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from stdnum import luhn
from stdnum.fr import nir, siren, siret


def _digits_only(value: str) -> str:
    return re.sub(r"[\s.\-]", "", value or "")


def luhn_valid(number: str) -> bool:
    return luhn.is_valid(number)


def normalise_number(value: str) -> str:
    return _digits_only(value).upper()


def validate_rpps(value: str) -> None:
    number = normalise_number(value)
    if not re.fullmatch(r"\d{11}", number):
        raise ValidationError(_("Un numéro RPPS compte 11 chiffres (reçu : « %(v)s »).") % {"v": value})
    if not luhn_valid(number):
        raise ValidationError(
            _("Le numéro RPPS « %(v)s » est invalide : sa clé de contrôle ne correspond pas.") % {"v": value}
        )


def validate_adeli(value: str) -> None:
    number = normalise_number(value)
    if not re.fullmatch(r"\d{9}|2[AB]\d{7}", number):
        raise ValidationError(_("Un numéro ADELI compte 9 caractères (reçu : « %(v)s »).") % {"v": value})


def validate_finess(value: str) -> None:
    number = normalise_number(value)
    if not re.fullmatch(r"\d{9}|2[AB]\d{7}", number):
        raise ValidationError(_("Un numéro FINESS compte 9 chiffres (reçu : « %(v)s »).") % {"v": value})
    # Corsican FINESS numbers (2A/2B) carry a key computed on a departmental convention that
    # is not public; only the all-digit form is checked with the Luhn key.
    if number.isdigit() and not luhn_valid(number):
        raise ValidationError(
            _("Le numéro FINESS « %(v)s » est invalide : sa clé de contrôle ne correspond pas.") % {"v": value}
        )


def validate_siren(value: str) -> None:
    number = normalise_number(value)
    if not re.fullmatch(r"\d{9}", number):
        raise ValidationError(_("Un numéro SIREN compte 9 chiffres (reçu : « %(v)s »).") % {"v": value})
    if not siren.is_valid(number):
        raise ValidationError(
            _("Le numéro SIREN « %(v)s » est invalide : sa clé de contrôle ne correspond pas.") % {"v": value}
        )


def validate_siret(value: str) -> None:
    number = normalise_number(value)
    if not re.fullmatch(r"\d{14}", number):
        raise ValidationError(_("Un numéro SIRET compte 14 chiffres (reçu : « %(v)s »).") % {"v": value})
    # python-stdnum knows La Poste's establishments (SIREN 356000000: a digit sum multiple of 5
    # instead of the Luhn key, except the head office) and checks the SIREN part too.
    if not siret.is_valid(number):
        raise ValidationError(
            _("Le numéro SIRET « %(v)s » est invalide : sa clé de contrôle ne correspond pas.") % {"v": value}
        )


INS_RE = re.compile(r"^[1-478]\d{4}(?:\d{2}|2A|2B)\d{6}\d{2}$")


def normalise_ins(value: str) -> str:
    return _digits_only(value).upper()


def ins_key(body: str) -> int:
    """The 2-digit key of a 13-character NIR body (python-stdnum: Corsica's 2A/2B included)."""
    return int(nir.calc_check_digits(body))


def ins_error(value: str) -> str | None:
    """A French message saying what is wrong with an INS matricule, or None when it is valid."""
    ins = normalise_ins(value)
    if len(ins) != 15:
        return _("Le matricule INS compte 15 caractères (13 + une clé de 2 chiffres) ; « %(v)s » en compte %(n)d.") % {
            "v": value,
            "n": len(ins),
        }
    if not INS_RE.match(ins):
        return _(
            "Le matricule INS « %(v)s » n'a pas la forme d'un NIR (sexe, année, mois, département, commune, ordre, clé)."
        ) % {"v": value}
    if ins_key(ins[:13]) != int(ins[13:]):
        return _("Le matricule INS « %(v)s » est invalide : la clé ne correspond pas au numéro.") % {"v": value}
    return None


def validate_ins(value: str) -> None:
    message = ins_error(value)
    if message:
        raise ValidationError(message, code="invalid_ins")


def ascii_slug(value: str) -> str:
    """`Jean-François Lefèvre` → `jean-francois-lefevre`, for address conventions."""
    text = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode("ascii").lower()
    text = re.sub(r"[^a-z0-9]+", "-", text)
    return text.strip("-")
