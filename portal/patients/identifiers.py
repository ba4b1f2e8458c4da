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


# Letters that sound alike share a digit (the classes of Soundex); vowels, h, w and y carry
# none. Unlike Soundex the key is not cut to four characters: at a million patients a short
# key would put thousands of people behind one code.
_SOUND_CLASSES = {
    **dict.fromkeys("bfpv", "1"),
    **dict.fromkeys("cgjkqsxz", "2"),
    **dict.fromkeys("dt", "3"),
    "l": "4",
    **dict.fromkeys("mn", "5"),
    "r": "6",
}
_SOUND_DIGRAPHS = (("ph", "f"), ("ck", "k"), ("gh", "h"), ("sch", "sk"))


def name_sound(key: str) -> str:
    """A name's phonetic key: "quibleworth", "Quibbleworth" and "Quiblewurth" share one.

    Takes a ``search_key`` (folded, accent-free). Doubled and silent letters, swapped vowels
    and a consonant typed twice give the same key, so a near miss is found by an index
    lookup on SQLite too. The first letter is coded like the others ("Catherine" and
    "Katherine" meet) and a leading vowel is kept as "0" ("Ellen", "Allen"). Names without
    letters get "" (never searched for).
    """
    letters = "".join(char for char in key if "a" <= char <= "z")
    spelt = None
    while spelt != letters:  # until none is left: "Vaugghan" -> "vaughan" -> "vauhan"
        spelt = letters
        for written, sound in _SOUND_DIGRAPHS:
            letters = letters.replace(written, sound)
    if not letters:
        return ""
    code = [_SOUND_CLASSES.get(letters[0], "0")]
    previous = code[0]
    for char in letters[1:]:
        digit = _SOUND_CLASSES.get(char)
        if digit is None:
            # A vowel separates two consonants of one class ("Sasaki"); h and w do not.
            if char not in "hw":
                previous = ""
            continue
        if digit != previous:
            code.append(digit)
        previous = digit
    return "".join(code)[:64]


def _trigrams(text: str) -> set[str]:
    # As PostgreSQL's pg_trgm counts them: per word of letters and digits, padded with two
    # spaces before and one after, so both databases rank near misses alike.
    found = set()
    for word in "".join(char if char.isalnum() else " " for char in text.lower()).split():
        padded = f"  {word} "
        found.update(padded[i : i + 3] for i in range(len(padded) - 2))
    return found


def trigram_similarity(left: str, right: str) -> float:
    """Shared trigrams over all trigrams of both (pg_trgm's ``similarity``), 0 to 1."""
    a, b = _trigrams(left), _trigrams(right)
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)
