"""Identifiers and search keys of patients: MRNs with a check digit, name keys, phones."""

from __future__ import annotations

import random
import secrets
import unicodedata

import phonenumbers

MRN_DIGITS = 8  # plus one check digit: 9 digits, e.g. 40213577-6 shown as 402135776


def luhn_check_digit(digits: str) -> str:
    """The Luhn check digit of a string of digits (catches every single-digit typo)."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return str((10 - total % 10) % 10)


def is_valid_mrn(value: str) -> bool:
    return (
        len(value) == MRN_DIGITS + 1
        and value.isdigit()
        and luhn_check_digit(value[:-1]) == value[-1]
    )


def new_mrn(rng: random.Random | None = None) -> str:
    """A random MRN (random, not sequential, so it reveals nothing about patient counts)."""
    if rng is None:
        body = str(secrets.randbelow(9 * 10 ** (MRN_DIGITS - 1)) + 10 ** (MRN_DIGITS - 1))
    else:
        body = str(rng.randrange(10 ** (MRN_DIGITS - 1), 10**MRN_DIGITS))
    return body + luhn_check_digit(body)


def search_key(name: str) -> str:
    """A name as search compares it: accents removed, case folded, spaces collapsed."""
    decomposed = unicodedata.normalize("NFKD", name)
    stripped = "".join(char for char in decomposed if not unicodedata.combining(char))
    return " ".join(stripped.casefold().split())


def normalise_phone(value: str, region: str) -> str | None:
    """E.164 form of a typed phone number, or None when it is not a valid number."""
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
