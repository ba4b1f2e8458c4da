"""DEA registration numbers: their form, their check digit, and what they say about whom.

A DEA number is two letters and seven digits. The first letter says what kind of registrant
holds it; the second is the first letter of the registrant's last name, or ``9`` for a
registration under a business name; the seventh digit is a check digit (the last digit of
the sum of the first, third and fifth digits plus twice the sum of the second, fourth and
sixth). The form and the check digit catch a number mistyped or made up carelessly; they do
not prove a registration exists or is current: that is what the person approving an EPCS
grant verifies (21 CFR 1311.125(b)).

Pure functions, no database: the admin's form and the EPCS rules both use them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# First letters DEA uses, from the public descriptions of the registration number (the DEA
# Diversion Control Division's notice on new practitioner letters, and the registrant-type
# lists that repeat it): anything else is not a DEA number.
REGISTRANT_LETTERS = frozenset("ABCDEFGHJKLMNPRSTUX")
# The letters of registrations that prescribe: practitioners (A before October 1985, then B,
# then F, and G for some federal contractors) and mid-level practitioners (M). Another
# letter on a prescriber's account is accepted with a warning (a manufacturer's or a
# distributor's number is likely a slip); X was the separate identifier of the former DATA
# waiver, not a registration of its own.
PRESCRIBER_LETTERS = frozenset("ABFGM")
BUSINESS_NAME = "9"

_FORM = re.compile(r"[A-Z][A-Z9][0-9]{7}")


@dataclass(frozen=True)
class DeaCheck:
    """A DEA number as it will be stored (upper case, no spaces) and the warnings about it
    that do not refuse it."""

    number: str
    warnings: tuple[str, ...] = ()


class InvalidDeaNumber(ValueError):
    """The text is not a DEA number (its message says why, in words an admin can act on)."""


def normalise(text: str) -> str:
    """Upper case, without the spaces and dashes people type between the parts."""
    return re.sub(r"[\s-]", "", text or "").upper()


def check_digit(digits: str) -> int:
    """The check digit of the first six digits of a DEA number."""
    odd = int(digits[0]) + int(digits[2]) + int(digits[4])
    even = int(digits[1]) + int(digits[3]) + int(digits[5])
    return (odd + 2 * even) % 10


def last_name_initial(full_name: str) -> str | None:
    """The first letter of the last word of a name, upper case (None when there is none)."""
    words = [word for word in re.split(r"\s+", (full_name or "").strip()) if word]
    if not words:
        return None
    letter = next((char for char in words[-1] if char.isalpha()), None)
    return letter.upper() if letter else None


def check_dea_number(text: str, full_name: str = "") -> DeaCheck:
    """The number to store, with its warnings; ``InvalidDeaNumber`` when it is not one.

    Refused: not two letters and seven digits, a first letter DEA does not use, a wrong
    check digit. Warned only: a first letter of a registrant who does not prescribe, a
    second letter that is not the initial of ``full_name``'s last word (names change;
    a registration keeps its number).
    """
    number = normalise(text)
    if not _FORM.fullmatch(number):
        raise InvalidDeaNumber(
            "A DEA number is two letters and seven digits, e.g. AB1234563 "
            "(the second character may be 9)."
        )
    if number[0] not in REGISTRANT_LETTERS:
        raise InvalidDeaNumber(
            f"DEA numbers do not start with {number[0]}: check the first letter."
        )
    digits = number[2:]
    if int(digits[6]) != check_digit(digits):
        raise InvalidDeaNumber(
            "The last digit does not match the others (the DEA check digit): check for a typo."
        )
    warnings = []
    if number[0] not in PRESCRIBER_LETTERS:
        warnings.append(
            f"Numbers starting with {number[0]} are not usually a prescriber's registration "
            "(A, B, F, G or M): check it is theirs."
        )
    initial = last_name_initial(full_name)
    if number[1] != BUSINESS_NAME and initial is not None and number[1] != initial:
        warnings.append(
            f"The second letter ({number[1]}) is usually the initial of the registrant's last "
            f"name ({initial}): check it is theirs."
        )
    return DeaCheck(number, tuple(warnings))


def masked(number: str | None) -> str:
    """A DEA number as shown to those who do not need it whole: the last four digits only.

    Not a secret (it is printed on every controlled prescription), but DEA asks that it not
    be used as a general identifier, so lists and other people's pages do not carry it.
    """
    if not number:
        return ""
    return "•••••" + number[-4:]
