"""Password hashing (argon2id) and the password policy.

Policy (NIST SP 800-63B): length 12..256, no composition rules, refuse the most common
passwords, guessable ones (zxcvbn score below 3) and ones built from the user's own name.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from flask import current_app
from zxcvbn import zxcvbn

ZXCVBN_MAX_LENGTH = 72

# Verified when the username is unknown, so a miss costs the same time as a wrong password.
_DUMMY_PASSWORD = "not a real password, only spends time"  # noqa: S105


def hasher() -> PasswordHasher:
    config = current_app.config
    return _hasher(
        config["PASSWORD_HASH_TIME_COST"],
        config["PASSWORD_HASH_MEMORY_KIB"],
        config["PASSWORD_HASH_PARALLELISM"],
    )


@cache
def _hasher(time_cost: int, memory_kib: int, parallelism: int) -> PasswordHasher:
    return PasswordHasher(
        time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
    )


def hash_password(password: str) -> str:
    return hasher().hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when the password matches; always spends one hash's worth of time."""
    ph = hasher()
    try:
        return ph.verify(password_hash or _dummy_hash(), password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return hasher().check_needs_rehash(password_hash)


@cache
def _dummy_hash_for(time_cost: int, memory_kib: int, parallelism: int) -> str:
    return _hasher(time_cost, memory_kib, parallelism).hash(_DUMMY_PASSWORD)


def _dummy_hash() -> str:
    config = current_app.config
    return _dummy_hash_for(
        config["PASSWORD_HASH_TIME_COST"],
        config["PASSWORD_HASH_MEMORY_KIB"],
        config["PASSWORD_HASH_PARALLELISM"],
    )


@cache
def common_passwords() -> frozenset[str]:
    text = resources.files("portal.auth").joinpath("common_passwords.txt").read_text()
    return frozenset(line for line in text.splitlines() if line and not line.startswith("#"))


def _letters(value: str) -> str:
    return "".join(ch for ch in value.lower() if ch.isalnum())


def _contains_own_name(lowered: str, username: str, full_name: str) -> bool:
    """True when the password is built from the user's username or name.

    The username and the whole name (spaces and punctuation ignored) are refused anywhere in
    the password, as is any part of the name of four letters or more; a short part ("Lee",
    "Kim") only as a word of its own, so "sleepless" is not refused for Jordan Lee.
    """
    squeezed = _letters(lowered)
    whole = [_letters(username), _letters(full_name)]
    if any(len(value) >= 3 and value in squeezed for value in whole):
        return True
    parts = [_letters(part) for part in full_name.split()]
    words = {_letters(word) for word in lowered.replace("-", " ").replace("_", " ").split()}
    for part in parts:
        if len(part) >= 4 and part in squeezed:
            return True
        if len(part) == 3 and part in words:
            return True
    return False


def password_problems(password: str, *, username: str = "", full_name: str = "") -> list[str]:
    """Why a new password is refused (empty when it is acceptable)."""
    config = current_app.config
    minimum, maximum = config["PASSWORD_MIN_LENGTH"], config["PASSWORD_MAX_LENGTH"]
    if len(password) < minimum:
        return [f"Use at least {minimum} characters (a few words make a good passphrase)."]
    if len(password) > maximum:
        return [f"Use at most {maximum} characters."]
    lowered = password.lower()
    if lowered in common_passwords():
        return ["This password is one of the most commonly used; choose another."]
    if _contains_own_name(lowered, username, full_name):
        return ["Don't use your own name or username in your password."]
    names = [part.lower() for part in [username, *full_name.split()] if len(part) >= 3]
    # zxcvbn refuses input over 72 characters (ValueError); a guessable start is what counts.
    result = zxcvbn(password[:ZXCVBN_MAX_LENGTH], user_inputs=names)
    if result["score"] < 3:
        hint = result["feedback"].get("warning") or "It would be easy to guess."
        return [f"Too easy to guess: {hint.rstrip('.')}. Add more words or characters."]
    return []
