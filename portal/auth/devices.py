"""Device cookies (OWASP, "Slow Down Online Guessing Attacks with Device Cookies").

The account's back-off stops anyone guessing a password quickly, but anyone who knows a
username could also keep that account backing off for ever and lock its owner out. So a
browser that has signed in to an account before gets a *device cookie*: the account's id
and a random nonce, signed with the instance's secret key (HMAC, so it cannot be forged or
moved to another account). When it comes back:

- a recognised browser is let through the account's back-off: the owner signs in from
  her usual workstation while an attacker elsewhere is still slowed;
- a recognised browser that fails itself backs off on its own (same free failures and
  doubling delays as the account), without adding to the account's count: a stolen cookie
  buys a few guesses, not an unlimited supply;
- an unknown browser (no cookie, a forged one, one for another account, one that expired)
  meets the account's back-off as before.

A cookie may name several accounts (a shared workstation in a clinic serves a whole team),
up to ``MAX_ACCOUNTS_PER_COOKIE``, the most recent first. Each successful sign-in replaces
the browser's nonce for that account with a fresh one (the old row is deleted), so a copied
cookie stops working once its owner signs in again. Rows unused for ``DEVICE_COOKIE_DAYS``
are forgotten. Only the nonce's hash is stored, as for session tokens.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import delete, select

from portal.actors import Actor
from portal.audit import services as audit
from portal.auth.models import SignInDevice, User
from portal.extensions import db

SIGNING_SALT = "portal.auth.device-cookie"
MAX_ACCOUNTS_PER_COOKIE = 10
_MAX_COOKIE_CHARS = 4000  # browsers keep about 4 KB a cookie; anything longer is not ours


def cookie_name() -> str:
    """``__Host-`` when served over HTTPS: the browser then refuses it from plain HTTP and
    from any other host or path."""
    return "__Host-portal_device" if current_app.config["HTTPS"] else "portal_device"


def cookie_options() -> dict:
    """How the cookie is set: script cannot read it, it is only sent to this site (Strict:
    it is only needed on the sign-in forms, posted from our own pages), Secure over HTTPS."""
    return {
        "max_age": int(timedelta(days=current_app.config["DEVICE_COOKIE_DAYS"]).total_seconds()),
        "httponly": True,
        "secure": bool(current_app.config["HTTPS"]),
        "samesite": "Strict",
        "path": "/",
    }


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=SIGNING_SALT)


def read_cookie(value: str | None) -> list[tuple[int, str]]:
    """The (user id, nonce) pairs a device cookie names; none if it is missing, malformed,
    or not signed with this instance's key."""
    if not value or len(value) > _MAX_COOKIE_CHARS:
        return []
    try:
        entries = _serializer().loads(value)
    except BadSignature:
        return []
    if not isinstance(entries, list):
        return []
    return [
        (entry[0], entry[1])
        for entry in entries[:MAX_ACCOUNTS_PER_COOKIE]
        if isinstance(entry, list)
        and len(entry) == 2
        and type(entry[0]) is int
        and isinstance(entry[1], str)
        and entry[1]
    ]


def _hash_nonce(nonce: str) -> str:
    return hashlib.sha256(nonce.encode()).hexdigest()


def _oldest_honoured(now: datetime) -> datetime:
    return now - timedelta(days=current_app.config["DEVICE_COOKIE_DAYS"])


def recognised_device(user: User, cookie: str | None, now: datetime) -> SignInDevice | None:
    """The row of this browser for ``user``, if its cookie names the account with a nonce
    the account issued and has used within ``DEVICE_COOKIE_DAYS``; row-locked, since the
    caller may count a failure on it (parallel failures must all be counted)."""
    nonces = [nonce for user_id, nonce in read_cookie(cookie) if user_id == user.id]
    if not nonces:
        return None
    return db.session.scalars(
        select(SignInDevice)
        .where(
            SignInDevice.user_id == user.id,
            SignInDevice.nonce_hash == _hash_nonce(nonces[0]),
            SignInDevice.last_used_at > _oldest_honoured(now),
        )
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()


def is_backing_off(device: SignInDevice, now: datetime) -> bool:
    return device.locked_until is not None and device.locked_until > now


def back_off_seconds(failures: int) -> int | None:
    """The pause after ``failures`` consecutive failures, or None while they are free."""
    config = current_app.config
    beyond = failures - config["LOGIN_FREE_FAILURES"]
    if beyond < 0:
        return None
    return min(
        config["LOGIN_BACKOFF_BASE_SECONDS"] * (2**beyond), config["LOGIN_BACKOFF_MAX_SECONDS"]
    )


def register_failure(
    device: SignInDevice, user: User, now: datetime, reason: str, source: str | None
) -> None:
    """Count a failure against this browser only; past the free ones it backs off (audited
    as ``auth.device_lockout``). The account's own count is left alone."""
    device.failed_sign_ins += 1
    actor = Actor.for_user(user, source)
    audit.record(actor, "auth.sign_in_failed", outcome="denied", detail=f"{reason}; known device")
    delay = back_off_seconds(device.failed_sign_ins)
    if delay is not None:
        device.locked_until = now + timedelta(seconds=delay)
        audit.record(
            actor,
            "auth.device_lockout",
            outcome="denied",
            detail=f"{device.failed_sign_ins} failures from a known device; locked for {delay} s",
        )


def issue(user: User, cookie: str | None, now: datetime, source: str | None) -> str:
    """Give this browser a fresh nonce for ``user`` (after a whole sign-in succeeded) and
    return the new cookie value: the account first, then the other accounts it already
    named. The browser's previous nonce for the account, and the account's devices unused
    for too long, are deleted; a device that had backed off has its back-off lifted
    (audited)."""
    entries = read_cookie(cookie)
    previous = [_hash_nonce(nonce) for user_id, nonce in entries if user_id == user.id]
    if previous:
        lifted = db.session.scalars(
            select(SignInDevice).where(
                SignInDevice.user_id == user.id,
                SignInDevice.nonce_hash.in_(previous),
                SignInDevice.locked_until.is_not(None),
            )
        ).first()
        if lifted is not None:
            audit.record(
                Actor.for_user(user, source),
                "auth.device_lockout_lifted",
                detail=f"signed in on the known device after {lifted.failed_sign_ins} failures",
            )
    db.session.execute(
        delete(SignInDevice)
        .where(
            SignInDevice.user_id == user.id,
            SignInDevice.nonce_hash.in_(previous)
            | (SignInDevice.last_used_at <= _oldest_honoured(now)),
        )
        .execution_options(synchronize_session=False)
    )
    nonce = secrets.token_urlsafe(24)
    db.session.add(
        SignInDevice(
            user_id=user.id, nonce_hash=_hash_nonce(nonce), created_at=now, last_used_at=now
        )
    )
    others = [[user_id, n] for user_id, n in entries if user_id != user.id]
    return _serializer().dumps([[user.id, nonce], *others][:MAX_ACCOUNTS_PER_COOKIE])


def forget_all(user: User) -> int:
    """Forget every browser known to ``user`` (a work function: flushes with the caller's use
    case). For a reset password and a disabled account: the account may have been in other
    hands, so no browser keeps its way past the back-off."""
    return db.session.execute(delete(SignInDevice).where(SignInDevice.user_id == user.id)).rowcount
