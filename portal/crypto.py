"""Encryption of secrets at rest (TOTP seeds, integration credentials) with the instance key."""

from cryptography.fernet import Fernet
from flask import current_app


def _fernet() -> Fernet:
    key = current_app.config.get("DATA_ENCRYPTION_KEY")
    if not key:
        raise RuntimeError("DATA_ENCRYPTION_KEY is not configured (see instance/config.py)")
    return Fernet(key.encode() if isinstance(key, str) else key)


def encrypt_text(value: str) -> str:
    return _fernet().encrypt(value.encode()).decode()


def decrypt_text(token: str, ttl: int | None = None) -> str:
    """The text ``encrypt_text`` sealed; with ``ttl``, only if sealed within ``ttl`` seconds
    (``cryptography.fernet.InvalidToken`` otherwise)."""
    return _fernet().decrypt(token.encode(), ttl=ttl).decode()
