"""The identifiers of the trust space (RULES.md §1, §3): real valid numbers pass, numbers with a
wrong key or length are refused with a French message that says what is wrong."""

import pytest
from django.core.exceptions import ValidationError

from mailboxes import identifiers
from mailboxes.identifiers import ins_error, ins_key, luhn_valid
from tests.factories import with_luhn_key


def refused(validator, value) -> str:
    with pytest.raises(ValidationError) as info:
        validator(value)
    return " ".join(info.value.messages)


def other_key(number: str) -> str:
    """The same number with a wrong last digit."""
    return number[:-1] + str((int(number[-1]) + 1) % 10)


# --- Luhn --------------------------------------------------------------------------------------


def test_luhn_on_known_numbers():
    assert luhn_valid("732829320")  # a published SIREN
    assert luhn_valid("73282932000074")  # one of its SIRET
    assert not luhn_valid("732829321")
    assert with_luhn_key("1000345678") == "10003456786"


# --- RPPS: 11 digits, Luhn key -------------------------------------------------------------------


@pytest.mark.parametrize("value", ["10003456786", "10007654329", "1000 345 6786"])
def test_valid_rpps(value):
    identifiers.validate_rpps(value)


def test_rpps_with_a_wrong_key_says_so():
    message = refused(identifiers.validate_rpps, "10003456787")
    assert "RPPS" in message and "clé de contrôle" in message


@pytest.mark.parametrize("value", ["1000345678", "100034567861", "1000345678A"])
def test_rpps_of_the_wrong_length_says_eleven_digits(value):
    assert "11 chiffres" in refused(identifiers.validate_rpps, value)


# --- ADELI: 9 characters -----------------------------------------------------------------------


@pytest.mark.parametrize("value", ["741234567", "2A1234567", "2B0000001"])
def test_valid_adeli(value):
    identifiers.validate_adeli(value)


@pytest.mark.parametrize("value", ["74123456", "7412345678", "74123456X"])
def test_adeli_of_the_wrong_form(value):
    assert "ADELI" in refused(identifiers.validate_adeli, value)


# --- FINESS: 9 characters, Luhn key on the all-digit form --------------------------------------


@pytest.mark.parametrize("value", ["380780015", "382001238", "740780028", "2A0000123"])
def test_valid_finess(value):
    identifiers.validate_finess(value)


def test_finess_with_a_wrong_key():
    message = refused(identifiers.validate_finess, other_key("380780015"))
    assert "FINESS" in message and "clé de contrôle" in message


def test_finess_of_the_wrong_length():
    assert "9 chiffres" in refused(identifiers.validate_finess, "38078001")


# --- SIREN / SIRET, with the La Poste exception -------------------------------------------------


def test_valid_siren_and_siret():
    identifiers.validate_siren("732829320")
    identifiers.validate_siret("73282932000074")
    identifiers.validate_siret("26380001300017")


def test_siren_and_siret_with_wrong_keys():
    assert "clé de contrôle" in refused(identifiers.validate_siren, "732829321")
    assert "clé de contrôle" in refused(identifiers.validate_siret, "73282932000075")
    assert "14 chiffres" in refused(identifiers.validate_siret, "7328293200007")


def test_la_poste_establishments_use_a_digit_sum_multiple_of_five():
    # La Poste's SIREN 356000000: its establishments fail Luhn but their digit sum is a multiple of 5.
    assert not luhn_valid("35600000049837")
    identifiers.validate_siret("35600000049837")
    identifiers.validate_siret("35600000000048")  # the head office, also Luhn-valid
    assert "clé de contrôle" in refused(identifiers.validate_siret, "35600000049838")


# --- INS matricule: NIR (13 characters) + key 97 - NIR mod 97, Corsica 2A → 19, 2B → 18 --------


def test_ins_key_is_97_minus_the_nir_modulo_97():
    assert ins_key("1580375112045") == 97 - 1580375112045 % 97 == 68
    assert ins_key("2721120004021") == 97 - 2721120004021 % 97


def test_corsican_departments_are_replaced_before_the_key():
    assert ins_key("272112A004021") == 97 - 2721119004021 % 97 == 65
    assert ins_key("185122B055123") == 97 - 1851218055123 % 97 == 23


@pytest.mark.parametrize("value", ["158037511204568", "272112A00402165", "185122B05512323", "1 58 03 75 112 045 68"])
def test_valid_ins(value):
    assert ins_error(value) is None
    identifiers.validate_ins(value)


def test_ins_with_a_wrong_key_says_the_key_does_not_match():
    message = ins_error("158037511204569")
    assert "clé ne correspond pas" in message


def test_corsican_ins_checked_with_the_wrong_convention_is_refused():
    # The key of 272112A004021 computed as if 2A were 20 is not the right one.
    wrong = "272112A004021" + f"{97 - 2721120004021 % 97:02d}"
    assert ins_error(wrong) is not None


@pytest.mark.parametrize(
    "value, words",
    [
        ("15803751120456", "15 caractères"),
        ("5580375112045" + f"{ins_key('5580375112045'):02d}", "forme d'un NIR"),
        ("158037511204A68", "forme d'un NIR"),
    ],
)
def test_ins_of_the_wrong_shape(value, words):
    assert words in ins_error(value)


def test_ascii_slug_for_address_conventions():
    assert identifiers.ascii_slug("Jean-François Lefèvre") == "jean-francois-lefevre"
    assert identifiers.ascii_slug("Étienne") == "etienne"
