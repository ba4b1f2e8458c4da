"""National Provider Identifiers: their form and check digit, as CMS defines them.

An NPI is ten digits; the tenth is a check digit computed with the Luhn formula (ISO/IEC
7812) over the first nine prefixed with 80840 (the USA's health industry issuer prefix):
equivalently, the Luhn sum of the nine digits plus the constant 24. The check catches a
number mistyped; it does not prove it was issued (NPPES says that). Pure, no database.
"""

from __future__ import annotations

import re

from portal.transaction import Refused

_FORM = re.compile(r"[12][0-9]{9}")
PREFIX = "80840"


def npi_check_digit(first_nine: str) -> int:
    """The Luhn check digit of ``80840`` + the first nine digits."""
    digits = [int(d) for d in PREFIX + first_nine]
    total = 0
    # From the right, every second digit of the number without its check digit is doubled.
    for position, digit in enumerate(reversed(digits)):
        if position % 2 == 0:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return (10 - total % 10) % 10


def is_valid_npi(value: str) -> bool:
    return bool(_FORM.fullmatch(value or "")) and npi_check_digit(value[:9]) == int(value[9])


def checked_npi(value: str | None) -> str | None:
    """The NPI as it will be stored (digits only), None for blank; ``Refused`` beside the
    ``npi`` field when its form or check digit is wrong."""
    text = re.sub(r"[\s-]", "", value or "")
    if not text:
        return None
    if not re.fullmatch(r"[0-9]{10}", text):
        raise Refused("An NPI is 10 digits.", field="npi")
    if not _FORM.fullmatch(text):
        raise Refused("An NPI starts with 1 or 2.", field="npi")
    if not is_valid_npi(text):
        raise Refused("That NPI's check digit is wrong: check it for a typing slip.", field="npi")
    return text
