"""Confirming who acts at a sensitive moment, after sign-in: a fresh TOTP code, and the
password too when the moment asks for two factors (signing a controlled-substance
prescription, approving an EPCS grant).

A code is used once: it is consumed with the same conditional UPDATE of
``users.totp_last_step`` as sign-in's, so a code that signed someone in cannot sign a
prescription, and a second click carrying the same code is refused. Wrong codes and wrong
passwords count toward the account's back-off exactly as at sign-in (a session left open
must not become a way to guess them); a replayed code is refused and audited but not
counted (whoever sends it knew a right code). Recovery codes are not accepted here: they
get their owner back into the account, they do not sign.
"""

from __future__ import annotations

from werkzeug.exceptions import NotFound

from portal.actors import Actor
from portal.audit import services as audit
from portal.auth.models import User
from portal.auth.passwords import verify_password
from portal.auth.services import (
    CODE_USED,
    CODE_WRONG,
    _register_failure,
    consume_totp,
    is_backing_off,
)
from portal.extensions import db
from portal.timeutil import utcnow
from portal.transaction import Refused, use_case


def confirm_factors(
    user_id: int,
    *,
    totp_code: str | None,
    password: str | None = None,
    ask_password: bool = False,
    purpose: str,
    source: str | None = None,
) -> None:
    """Confirm the account's owner is at the keyboard now: a fresh TOTP code, and the
    password when ``ask_password``. A use case of its own, to run BEFORE the use case it
    guards: a refusal must still commit the failure it counts, and the code stays used
    whatever happens next (a retry takes the next code). Raises ``Refused`` beside the
    field (``password``, ``totp_code``); audited either way under ``purpose`` (a few words,
    no patient data).
    """
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound()
    if ask_password and not password:
        raise Refused("Type your password.", field="password")
    if not (totp_code or "").strip():
        raise Refused("Type the 6-digit code from your authenticator app.", field="totp_code")
    # The hash (~25 ms) is checked before the write lock, as at sign-in; the decision is
    # taken under the row lock on a fresh read (a password changed meanwhile does not count).
    stored_hash = user.password_hash
    password_ok = verify_password(stored_hash, password) if ask_password else True
    refusal = None
    with use_case():
        db.session.refresh(user, with_for_update=True)
        now = utcnow()
        actor = Actor.for_user(user, source)
        if not user.is_enabled:
            raise Refused("This account is disabled.")
        if is_backing_off(user, now):
            audit.record(
                actor,
                "auth.factors_refused",
                obj=user,
                category="user accounts",
                outcome="denied",
                detail=f"{purpose}; account backing off",
            )
            refusal = Refused(
                "Too many wrong codes or passwords: wait a few minutes and try again.",
                field="totp_code",
            )
        elif ask_password and not (password_ok and user.password_hash == stored_hash):
            _register_failure(user, now, f"wrong password at {purpose}", source)
            refusal = Refused("Your password is not correct.", field="password")
        elif not (user.mfa_enabled and user.totp_secret_encrypted):
            refusal = Refused(
                "Set up two-step sign-in first: this step needs a code from your "
                "authenticator app.",
                field="totp_code",
            )
        else:
            outcome = consume_totp(user, totp_code, now)
            if outcome == CODE_USED:
                audit.record(
                    actor,
                    "auth.factors_refused",
                    obj=user,
                    category="user accounts",
                    outcome="denied",
                    detail=f"{purpose}; code already used",
                )
                refusal = Refused(
                    "That code was already used: wait for the next one in your app.",
                    field="totp_code",
                )
            elif outcome == CODE_WRONG:
                _register_failure(user, now, f"wrong code at {purpose}", source)
                refusal = Refused(
                    "That code doesn't match. Check the time on your phone and try the "
                    "newest code.",
                    field="totp_code",
                )
            else:
                audit.record(
                    actor,
                    "auth.factors_confirmed",
                    obj=user,
                    category="user accounts",
                    detail=f"{purpose}; {'password and code' if ask_password else 'code'}",
                )
    if refusal is not None:
        raise refusal
