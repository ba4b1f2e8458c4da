"""Each prescriber's credential for sending controlled-substance prescriptions at an
e-prescribing vendor (DoseSpot's ``sendEpcs`` takes a PIN and a one-time password).

Why it is kept, and how: the portal checks the prescriber's own two factors (password and
TOTP) at the moment of signing (21 CFR 1311.115, ``auth/signing.py``) and the send leaves
later, from the worker, where nobody is there to type anything. Nothing typed at signing is
stored. Instead the prescriber registers, once, the PIN and the seed of the one-time-password
token they set up at the vendor for this portal; both are encrypted with the instance's data
key (``portal.crypto``), never shown back, never put in an outbox payload, and the worker
derives the current one-time password only when it sends a prescription that the prescriber
signed with two factors. A credential is only ever set by its owner (audited); an admin
cannot set or read one.
"""

from __future__ import annotations

import pyotp
from sqlalchemy import select

from portal.audit import services as audit
from portal.auth.epcs import may_sign_controlled
from portal.auth.models import User
from portal.crypto import decrypt_text, encrypt_text
from portal.extensions import db
from portal.integrations.base import PermanentError
from portal.integrations.models import EpcsVendorCredential, ExternalId
from portal.timeutil import utcnow
from portal.transaction import Refused, end_read

PIN_MIN, PIN_MAX = 4, 32


def has_credential(connector: str, user_id: int) -> bool:
    return (
        db.session.scalar(
            select(EpcsVendorCredential.id).where(
                EpcsVendorCredential.connector == connector,
                EpcsVendorCredential.user_id == user_id,
            )
        )
        is not None
    )


def set_credential(actor, connector: str, pin: str, otp_secret: str) -> None:
    """Work function: store (or replace) the actor's own credential at ``connector``.
    Refuses a PIN that is not 4-32 characters and a seed that is not base32."""
    pin = (pin or "").strip()
    seed = (otp_secret or "").replace(" ", "").upper()
    if not PIN_MIN <= len(pin) <= PIN_MAX:
        raise Refused(f"The PIN has {PIN_MIN} to {PIN_MAX} characters.", "pin")
    try:
        pyotp.TOTP(seed).now()
        if len(seed) < 16:
            raise ValueError
    except Exception:  # binascii.Error / ValueError: not a base32 seed
        raise Refused(
            "The token's secret is the base32 key the vendor showed (16 characters or more).",
            "otp_secret",
        ) from None
    row = db.session.scalars(
        select(EpcsVendorCredential).where(
            EpcsVendorCredential.connector == connector,
            EpcsVendorCredential.user_id == actor.id,
        )
    ).first()
    if row is None:
        row = EpcsVendorCredential(connector=connector, user_id=actor.id)
        db.session.add(row)
    row.pin_encrypted = encrypt_text(pin)
    row.otp_secret_encrypted = encrypt_text(seed)
    row.set_at = utcnow()
    db.session.flush()
    audit.record(
        actor,
        "integrations.epcs_credential_set",
        object_type="user",
        object_id=actor.id,
        detail=connector,
        category="integrations",
    )


def factors_for(connector: str, clinician_id) -> tuple[str, str]:
    """The PIN and the current one-time password of the prescriber the vendor knows as
    ``clinician_id``, for the worker's send (read in a short transaction of its own).
    ``PermanentError`` when none is on file, or when the prescriber's account was disabled
    or lost its EPCS grant since signing (checked now, when the send leaves: the worker
    acts in their name with their stored factors, so it must still be theirs to use);
    retrying would not help."""
    try:
        row = db.session.execute(
            select(
                EpcsVendorCredential.pin_encrypted,
                EpcsVendorCredential.otp_secret_encrypted,
                EpcsVendorCredential.user_id,
            )
            .join(
                ExternalId,
                (ExternalId.connector == EpcsVendorCredential.connector)
                & (ExternalId.kind == "clinician")
                & (ExternalId.local_id == EpcsVendorCredential.user_id),
            )
            .where(
                EpcsVendorCredential.connector == connector,
                ExternalId.external_id == str(clinician_id),
            )
        ).first()
        enabled = row is not None and db.session.scalar(
            select(User.is_enabled).where(User.id == row[2])
        )
        allowed = bool(enabled) and may_sign_controlled(row[2])
    finally:
        end_read()
    if row is None:
        raise PermanentError(
            "The prescriber has no EPCS credential for the e-prescribing service on file: "
            "they add it under My account, then send the prescription again."
        )
    if not enabled:
        raise PermanentError(
            "The prescriber's account has been disabled since signing: a controlled-substance "
            "prescription is not sent in the name of a disabled account."
        )
    if not allowed:
        raise PermanentError(
            "The prescriber may no longer sign controlled-substance prescriptions (their EPCS "
            "permission was revoked or suspended since signing): it was not sent."
        )
    return decrypt_text(row[0]), pyotp.TOTP(decrypt_text(row[1])).now()
