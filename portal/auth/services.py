"""Use cases of staff accounts: sign-in with back-off, TOTP, recovery codes, user management.

Each public function that changes an account is one use case (``use_case()``): the change
and its audit event(s) commit together.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

import pyotp
from flask import current_app
from sqlalchemy import func, or_, select, update

from portal.actors import SYSTEM, Actor, anonymous
from portal.audit import services as audit
from portal.audit.models import AuditEvent
from portal.auth import devices
from portal.auth.models import (
    ROLE_LABELS,
    ROLE_NAMES,
    AccountApproval,
    AccountNotice,
    RecoveryCode,
    User,
    UserRole,
)
from portal.auth.npi import checked_npi
from portal.auth.passwords import hash_password, needs_rehash, password_problems, verify_password
from portal.auth.sessions import end_user_sessions
from portal.crypto import decrypt_text, encrypt_text
from portal.extensions import db
from portal.timeutil import utcnow
from portal.transaction import Refused, use_case

RECOVERY_CODE_COUNT = 10
TOTP_ISSUER = "Practice Portal"
# Resetting the second factor of these roles takes two administrators: a prescriber's
# second factor guards prescribing and the chart, an admin's guards everyone's accounts.
TWO_PERSON_MFA_ROLES = frozenset({"prescriber", "admin"})
MFA_RESET = "mfa_reset"  # AccountApproval.action
PASSWORD_RESET = "password_reset"  # noqa: S105  (AccountApproval.action)
# A proposal nobody approved within this time lapses: an approval should follow a
# conversation, not find an old request days later.
APPROVAL_VALID_HOURS = 24
# An administrator whose admin role is younger than this does not approve: one admin could
# otherwise make a second admin account and approve their own proposal with it.
NEW_ADMIN_HOURS = 24
# What a signed-in session must finish before anything else (auth.views keeps it in the
# session): choose a new password, then read what was done to the account.
GATE_PASSWORD = "password"  # noqa: S105  (a step's name)
GATE_NOTICES = "notices"
# "Only an administrator approves.": the refusal names the role the approver must hold.
ROLE_ARTICLES = {"admin": "an administrator", "prescriber": "a prescriber"}


@dataclass
class SignInResult:
    user: User | None
    needs_mfa: bool = False
    needs_mfa_enrolment: bool = False

    @property
    def ok(self) -> bool:
        return self.user is not None


def normalise_username(username: str) -> str:
    return username.strip().lower()


def find_user(username: str, *, for_update: bool = False) -> User | None:
    """The account with this username (case-insensitive), optionally row-locked.

    Sign-in locks the row so that parallel attempts on one account queue up: otherwise they
    would all read the same failure count and a burst of guesses would skip the back-off.
    """
    query = select(User).where(User.username == normalise_username(username))
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    return db.session.scalars(query).first()


def users_with_role(role: str) -> list[User]:
    """Every account holding ``role`` (enabled or not), by name."""
    return list(
        db.session.scalars(
            select(User)
            .where(User.role_rows.any(UserRole.role == role))
            .order_by(User.full_name, User.id)
        )
    )


def mfa_required_for(user: User) -> bool:
    required = set(current_app.config["MFA_REQUIRED_ROLES"])
    return bool(required.intersection(user.roles))


def is_backing_off(user: User, now=None) -> bool:
    """True while the account is in its back-off period after repeated failures."""
    now = now or utcnow()
    return user.locked_until is not None and user.locked_until > now


def check_password(
    username: str, password: str, source: str | None, device_cookie: str | None = None
) -> SignInResult:
    """First factor. Failures back off per account, whatever the source address, except
    from a browser that signed in to the account before (``device_cookie``): that browser is
    let through the account's back-off and backs off on its own (portal/auth/devices.py).

    The caller shows the same message for every failure, so nobody learns whether an
    account exists, is locked or is disabled; each path also spends one hash's worth of time.
    The failure count is only cleared once the whole sign-in (second factor included)
    succeeds, so guessing TOTP codes with a known password backs off too.
    """
    # The hash (~25 ms) is checked before the use case, outside the write lock (SQLite) that
    # every other writer would wait on. The decision is then taken under the account's row
    # lock, on a fresh read, so parallel attempts are all counted and a password changed
    # meanwhile does not count as right.
    found = find_user(username)
    stored_hash = found.password_hash if found is not None else None
    password_ok = verify_password(stored_hash, password)  # a dummy hash when unknown

    with use_case():
        user = find_user(username, for_update=True)
        now = utcnow()
        if user is None:
            audit.record(
                anonymous(source), "auth.sign_in_failed", outcome="denied", detail="unknown account"
            )
            return SignInResult(None)
        device = devices.recognised_device(user, device_cookie, now)
        if _backing_off(user, device, now, source):
            return SignInResult(None)
        password_ok = password_ok and user.password_hash == stored_hash
        if not user.is_enabled or not password_ok:
            _register_failure(
                user,
                now,
                "wrong password" if user.is_enabled else "account disabled",
                source,
                device,
            )
            return SignInResult(None)
        if needs_rehash(user.password_hash):
            user.password_hash = hash_password(password)
        if user.mfa_enabled:
            return SignInResult(user, needs_mfa=True)
        if mfa_required_for(user):
            return SignInResult(user, needs_mfa_enrolment=True)
        _record_sign_in(user, "password", source, device)
        return SignInResult(user)


def _backing_off(user: User, device, now, source: str | None) -> bool:
    """Whether this attempt is refused unheard (and audited): a known device by its own
    back-off only, any other browser by the account's."""
    if device is not None:
        backing_off, detail = devices.is_backing_off(device, now), "known device backing off"
    else:
        backing_off, detail = is_backing_off(user, now), "account backing off"
    if backing_off:
        audit.record(
            Actor.for_user(user, source), "auth.sign_in_failed", outcome="denied", detail=detail
        )
    return backing_off


def _register_failure(user: User, now, reason: str, source: str | None, device=None) -> None:
    if device is not None:
        devices.register_failure(device, user, now, reason, source)
        return
    config = current_app.config
    user.failed_sign_ins += 1
    actor = Actor.for_user(user, source)
    audit.record(actor, "auth.sign_in_failed", outcome="denied", detail=reason)
    beyond = user.failed_sign_ins - config["LOGIN_FREE_FAILURES"]
    if beyond >= 0:
        delay = min(
            config["LOGIN_BACKOFF_BASE_SECONDS"] * (2**beyond), config["LOGIN_BACKOFF_MAX_SECONDS"]
        )
        user.locked_until = now + timedelta(seconds=delay)
        audit.record(
            actor,
            "auth.lockout",
            outcome="denied",
            detail=f"{user.failed_sign_ins} failures; locked for {delay} s",
        )


def complete_sign_in(
    user: User, method: str, source: str | None, device_cookie: str | None = None
) -> None:
    """Record a successful sign-in (the view then rotates the session)."""
    with use_case():
        _record_sign_in(
            user, method, source, devices.recognised_device(user, device_cookie, utcnow())
        )


def _record_sign_in(user: User, method: str, source: str | None, device=None) -> None:
    """A whole sign-in succeeded. From an unknown browser that clears the account's failure
    count (a lifted lockout is audited); from a known device it leaves the account's
    back-off in place, since whoever caused it may still be guessing elsewhere (the
    device's own count starts again with the fresh cookie ``remember_device`` issues)."""
    user.last_sign_in_at = utcnow()
    actor = Actor.for_user(user, source)
    if device is None:
        if user.locked_until is not None:
            audit.record(
                actor,
                "auth.lockout_lifted",
                detail=f"signed in after {user.failed_sign_ins} failures",
            )
        user.failed_sign_ins = 0
        user.locked_until = None
    audit.record(actor, "auth.sign_in", detail=method + ("; known device" if device else ""))


def remember_device(user: User, device_cookie: str | None, source: str | None) -> str:
    """After a whole sign-in: a fresh device cookie for this browser (the value to set),
    so it is let through this account's back-off next time (portal/auth/devices.py)."""
    with use_case():
        return devices.issue(user, device_cookie, utcnow(), source)


def _totp_step_matching(secret: str, code: str, now_step: int) -> int | None:
    """The time step (within ±1 for clock drift) whose code is ``code``, if any."""
    totp = pyotp.TOTP(secret)
    for step in (now_step, now_step - 1, now_step + 1):
        if secrets.compare_digest(totp.at(step * 30), code):
            return step
    return None


def _normalise_code(code: str) -> str:
    return code.strip().replace(" ", "").replace("-", "").lower()


CODE_OK = "ok"
CODE_USED = "used"
CODE_WRONG = "wrong"


def consume_totp(user: User, code: str, now) -> str:
    """A work function: whether ``code`` is the account's current TOTP code (``CODE_OK``,
    and now used), one already used (``CODE_USED``), or neither (``CODE_WRONG``).

    Consumed with a conditional UPDATE of ``totp_last_step``, so two requests racing with
    one code cannot both succeed, and a code spent at sign-in cannot sign a prescription
    (portal/auth/factors.py uses it too).
    """
    code = _normalise_code(code)
    if not (code.isdigit() and len(code) == 6 and user.totp_secret_encrypted):
        return CODE_WRONG
    step = _totp_step_matching(
        decrypt_text(user.totp_secret_encrypted), code, int(now.timestamp()) // 30
    )
    if step is None:
        return CODE_WRONG
    consumed = db.session.execute(
        update(User)
        .where(
            User.id == user.id,
            or_(User.totp_last_step.is_(None), User.totp_last_step < step),
        )
        .values(totp_last_step=step)
        .execution_options(synchronize_session=False)
    )
    return CODE_OK if consumed.rowcount == 1 else CODE_USED


def check_second_factor(
    user: User, code: str, source: str | None, device_cookie: str | None = None
) -> bool:
    """A current TOTP code (each used once) or an unused recovery code.

    Both are consumed with a conditional UPDATE, so two requests racing with the same code
    cannot both succeed. Wrong codes count as failures of the account (back-off applies),
    or of the browser when it is a known device (as for the password).
    """
    with use_case():
        db.session.refresh(user, with_for_update=True)
        now = utcnow()
        device = devices.recognised_device(user, device_cookie, now)
        if _backing_off(user, device, now, source):
            return False
        code = _normalise_code(code)
        ok = False
        method = "totp"
        if code.isdigit() and len(code) == 6 and user.totp_secret_encrypted:
            ok = consume_totp(user, code, now) == CODE_OK
        elif len(code) == 10:
            method = "recovery code"
            consumed = db.session.execute(
                update(RecoveryCode)
                .where(
                    RecoveryCode.user_id == user.id,
                    RecoveryCode.code_hash == _hash_recovery_code(code),
                    RecoveryCode.used_at.is_(None),
                )
                .values(used_at=now)
                .execution_options(synchronize_session=False)
            )
            ok = consumed.rowcount == 1
        if not ok:
            _register_failure(user, now, f"wrong second factor ({method})", source, device)
            return False
        _record_sign_in(user, f"password + {method}", source, device)
        return True


def start_mfa_enrolment() -> str:
    """A fresh TOTP secret; it is saved only once a code from it has been checked."""
    return pyotp.random_base32()


def provisioning_uri(user: User, secret: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=user.username, issuer_name=TOTP_ISSUER)


def finish_mfa_enrolment(user: User, secret: str, code: str, source: str | None) -> list[str]:
    """Turn MFA on once the user proves the app has the secret; return new recovery codes.

    The step of the code used here is remembered, so the same code cannot sign in again.
    """
    step = _totp_step_matching(secret, _normalise_code(code), int(utcnow().timestamp()) // 30)
    if step is None:
        raise Refused(
            "That code doesn't match. Check the time on your phone and try the newest code.",
            field="code",
        )
    with use_case():
        user.totp_secret_encrypted = encrypt_text(secret)
        user.mfa_enabled = True
        user.totp_last_step = step
        codes = _replace_recovery_codes(user)
        audit.record(
            Actor.for_user(user, source), "auth.mfa_enrolled", obj=user, category="user accounts"
        )
    return codes


def _hash_recovery_code(code: str) -> str:
    """A keyed hash (HMAC-SHA256 with the instance's data key) of a normalised code.

    A plain SHA-256 of a 40-bit code could be reversed by brute force from a copy of the
    database alone; keyed with the data key (kept outside the database, like the TOTP seeds
    it already protects) it cannot.
    """
    key = current_app.config["DATA_ENCRYPTION_KEY"]
    key = key.encode() if isinstance(key, str) else key
    normalised = code.replace("-", "").replace(" ", "").lower().encode()
    return hmac.new(key, normalised, hashlib.sha256).hexdigest()


def _replace_recovery_codes(user: User) -> list[str]:
    db.session.execute(db.delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        raw = secrets.token_hex(5)  # 10 hex characters, shown as xxxxx-xxxxx
        codes.append(f"{raw[:5]}-{raw[5:]}")
        db.session.add(RecoveryCode(user_id=user.id, code_hash=_hash_recovery_code(raw)))
    return codes


def unused_recovery_codes(user_id: int) -> int:
    """How many of the account's recovery codes are still unused."""
    return db.session.scalar(
        select(func.count())
        .select_from(RecoveryCode)
        .where(RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))
    )


def record_sign_out(actor: Actor) -> None:
    """Record that the actor signed out (the view then ends the session)."""
    with use_case():
        audit.record(actor, "auth.sign_out")


def change_own_password(
    user: User, current_password: str, new_password: str, source: str | None
) -> None:
    """Change a password; every other session of the user ends.

    A wrong current password counts as a failed sign-in (same back-off, audited), so a
    session left open on a shared workstation cannot be used to guess the password.
    """
    # A refusal of the current password must still record the failure (and its back-off):
    # that part commits; then the refusal is raised.
    refusal = None
    with use_case():
        db.session.refresh(user, with_for_update=True)
        now = utcnow()
        if is_backing_off(user, now):
            verify_password(None, current_password)
            raise Refused(
                "Too many wrong passwords: wait a few minutes and try again.",
                field="current_password",
            )
        if not verify_password(user.password_hash, current_password):
            _register_failure(user, now, "wrong current password at password change", source)
            refusal = Refused("Your current password is not correct.", field="current_password")
        else:
            problems = password_problems(
                new_password, username=user.username, full_name=user.full_name
            )
            if problems:
                raise Refused(problems[0], field="new_password")
            user.failed_sign_ins = 0
            _store_own_password(user, hash_password(new_password), source)
    if refusal is not None:
        raise refusal


def _store_own_password(user: User, password_hash: str, source, detail: str | None = None):
    """The owner's own password from now on (a work function): no longer temporary, every
    other session ended, audited as the owner's act."""
    user.password_hash = password_hash
    user.password_changed_at = utcnow()
    user.must_change_password = False
    end_user_sessions(user.id, "password_changed")
    audit.record(
        Actor.for_user(user, source),
        "auth.password_changed",
        obj=user,
        category="user accounts",
        detail=detail,
    )


# --- user management (admins) ---------------------------------------------------------------


USERNAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{2,63}")


def _valid_full_name(full_name: str) -> str:
    """The name as shown in the portal: required, at most 200 characters (the column)."""
    full_name = (full_name or "").strip()
    if not full_name or len(full_name) > 200:
        raise Refused("Type the person's full name (up to 200 characters).", field="full_name")
    return full_name


def validate_roles(roles: list[str]) -> list[str]:
    unknown = set(roles) - set(ROLE_NAMES)
    if unknown or not roles:
        raise Refused("Choose at least one role.", field="roles")
    return sorted(set(roles))


def create_user(
    *,
    actor,
    username: str,
    full_name: str,
    email: str | None,
    roles: list[str],
    password: str,
    temporary_password: bool = False,
) -> User:
    """A new staff account with these roles and an initial password.

    ``temporary_password``: someone else chose it (an administrator's page), so the owner
    must replace it at their first sign-in.
    """
    username = normalise_username(username)
    if not USERNAME_PATTERN.fullmatch(username):
        raise Refused("Use 3 to 64 letters, digits, dots, dashes or underscores.", field="username")
    full_name = _valid_full_name(full_name)
    roles = validate_roles(roles)
    problems = password_problems(password, username=username, full_name=full_name)
    if problems:
        raise Refused(problems[0], field="password")
    password_hash = hash_password(password)  # slow on purpose: before the write lock
    # Two admins racing for one name meet on the unique index.
    with use_case(conflict=Refused("That username is taken.", field="username")):
        if find_user(username):
            raise Refused("That username is taken.", field="username")
        user = User(
            username=username,
            full_name=full_name.strip(),
            email=(email or None),
            password_hash=password_hash,
            must_change_password=temporary_password,
        )
        user.set_roles(roles, granted_by_id=actor.id)
        db.session.add(user)
        audit.record(
            actor,
            "user.create",
            obj=user,
            category="user accounts",
            detail=f"roles={','.join(user.roles)}",
        )
    return user


KEEP = object()  # update_user: leave the last day of employment as it is


def employment_ended(user: User, today: date | None) -> bool:
    """Whether the person's last day of work is behind ``today`` (the clinic's date)."""
    return (
        today is not None
        and user.employment_ends_on is not None
        and (user.employment_ends_on < today)
    )


def update_user(
    *,
    actor,
    user: User,
    full_name: str,
    email: str | None,
    roles: list[str],
    employment_ends_on=KEEP,
    today: date | None = None,
    npi=KEEP,
) -> None:
    """Change an account's name, e-mail, roles, NPI and last day of employment (an admin keeps
    their own admin role). A last day already behind ``today`` (the clinic's date) disables
    the account in the same transaction, as the worker would at midnight."""
    roles = validate_roles(roles)
    full_name = _valid_full_name(full_name)
    if actor.id == user.id and "admin" not in roles:
        raise Refused("You can't remove your own admin role.", field="roles")
    if actor.id == user.id and set(roles) - set(user.roles):
        # An administrator has no patient access; a clinical role given to oneself would be
        # a way round that. Another administrator grants it (audited as theirs).
        raise Refused("Another administrator must give you a new role.", field="roles")
    if employment_ends_on is not KEEP and actor.id == user.id and employment_ends_on:
        raise Refused(
            "Another administrator sets the last day of your own employment.",
            field="employment_ends_on",
        )
    if npi is not KEEP:
        npi = checked_npi(npi)
    with use_case():
        had = set(user.roles)
        before = ",".join(user.roles)
        user.full_name = full_name.strip()
        user.email = email or None
        user.set_roles(roles, granted_by_id=actor.id)
        detail = f"roles {before} -> {','.join(roles)}"
        if employment_ends_on is not KEEP and employment_ends_on != user.employment_ends_on:
            user.employment_ends_on = employment_ends_on
            detail += f"; employment ends {employment_ends_on or 'never'}"
        if npi is not KEEP and npi != user.npi:
            user.npi = npi
            detail += "; NPI set" if npi else "; NPI removed"
        if had - set(roles):
            _access_withdrawn(actor, user, ACCESS_ROLES_REMOVED, frozenset(had - set(roles)))
        audit.record(actor, "user.update", obj=user, category="user accounts", detail=detail)
        if user.is_enabled and employment_ended(user, today):
            _disable(actor, user, "employment ended")


def _disable(actor, user: User, detail: str | None = None) -> None:
    """Disable an account: its sessions end and what it reached outside (feeds) is revoked."""
    user.is_enabled = False
    end_user_sessions(user.id, "disabled")
    devices.forget_all(user)
    _access_withdrawn(actor, user, ACCESS_DISABLED, frozenset(user.roles))
    audit.record(actor, "user.disable", obj=user, category="user accounts", detail=detail)


def set_user_enabled(*, actor, user: User, enabled: bool, today: date | None = None) -> None:
    """Disable an account (its sessions end at once) or enable it again (back-off cleared).

    An account whose last day of employment is behind ``today`` is not enabled again until
    that day is changed or cleared (the worker would disable it again within a minute).
    """
    if actor.id == user.id and not enabled:
        raise Refused("You can't disable your own account.")
    with use_case():
        if not enabled:
            _disable(actor, user)
            return
        if employment_ended(user, today):
            raise Refused(
                f"Their employment ended on {user.employment_ends_on:%d %B %Y}: change or "
                "clear their last day of work first."
            )
        user.is_enabled = True
        user.failed_sign_ins = 0
        user.locked_until = None
        audit.record(actor, "user.enable", obj=user, category="user accounts")


def end_employment_of_leavers(today: date) -> int:
    """The worker's job: disable every enabled account whose last day of employment is
    behind ``today`` (the clinic's date), one use case each, as the system; how many."""
    leavers = list(
        db.session.scalars(
            select(User.id).where(User.is_enabled.is_(True), User.employment_ends_on < today)
        )
    )
    db.session.rollback()  # end the read before each account's own use case
    for user_id in leavers:
        with use_case():
            user = db.session.get(User, user_id, with_for_update=True)
            if user is not None and user.is_enabled and employment_ended(user, today):
                _disable(SYSTEM, user, "employment ended")
    return len(leavers)


def password_reset_needs_approval(actor, user: User) -> bool:
    """Whether an administrator's reset of this account's password takes a second one.

    Yes for any other account with no second factor enrolled: a temporary password alone
    would let the administrator sign in as the owner, choose the "final" password (and
    enrol their own authenticator) and read charts, or, for an administrator's account,
    use it as the "second" administrator. With a second factor enrolled the administrator
    still cannot pass the owner's code, so one administrator resets it (a reset of that
    factor is itself a two-person act). One's own password is one's own.
    """
    return actor.id != user.id and not user.mfa_enabled


def _set_temporary_password(actor, user: User, password_hash: str) -> None:
    user.password_hash = password_hash
    user.password_changed_at = utcnow()
    user.failed_sign_ins = 0
    user.locked_until = None
    # An admin resetting their own account chose the password for themselves.
    user.must_change_password = actor.id != user.id
    end_user_sessions(user.id, "password_reset")
    devices.forget_all(user)
    audit.record(
        actor,
        "user.password_reset",
        obj=user,
        category="user accounts",
        detail="temporary" if user.must_change_password else "own account",
    )
    add_account_notice(actor, user.id, "password_reset")


def _hash_new_password(user: User, new_password: str) -> str:
    problems = password_problems(new_password, username=user.username, full_name=user.full_name)
    if problems:
        raise Refused(problems[0], field="password")
    return hash_password(new_password)  # slow on purpose: before the write lock


def reset_password(*, actor, user: User, new_password: str) -> None:
    """Give an account a temporary password (an admin's reset); its sessions end.

    The owner must choose their own at their next sign-in before doing anything else, and
    is told there who reset it: the administrator never knows the password the account
    ends up with, and a reset nobody asked for does not go unnoticed. Refused when
    ``password_reset_needs_approval``: that goes through ``propose_password_reset`` and
    ``approve_password_reset``.
    """
    password_hash = _hash_new_password(user, new_password)
    with use_case():
        db.session.refresh(user)
        if password_reset_needs_approval(actor, user):
            raise Refused(
                "Resetting the password of an account without two-step sign-in needs a "
                "second administrator's approval: propose it instead."
            )
        _set_temporary_password(actor, user, password_hash)


def choose_new_password(user: User, new_password: str, source: str | None) -> None:
    """Replace a temporary password (set by an administrator) with the owner's own.

    Refused when it is the temporary one again: the administrator knows that one. Every
    session of the account ends; the caller carries its own on under a new id.
    """
    if verify_password(user.password_hash, new_password):
        raise Refused(
            "Choose a new password: not the temporary one you were given.", field="new_password"
        )
    problems = password_problems(new_password, username=user.username, full_name=user.full_name)
    if problems:
        raise Refused(problems[0], field="new_password")
    password_hash = hash_password(new_password)  # slow on purpose: before the write lock
    with use_case():
        db.session.refresh(user, with_for_update=True)
        if not user.must_change_password:
            raise Refused("Your password is already your own.", field="new_password")
        _store_own_password(user, password_hash, source, detail="replaced a temporary password")


def mfa_reset_needs_approval(user: User) -> bool:
    """Whether resetting this account's second factor takes a second administrator.

    Yes whenever a second factor is enrolled (whatever the account's roles), and for a
    prescriber or an administrator. Keyed on the enrolled factor, not only on the current
    roles: otherwise an administrator could remove a prescriber's role, reset the factor
    alone and give the role back. The one-administrator reset is left only for accounts
    without an enrolled factor (it clears a half-finished enrolment).
    """
    return user.mfa_enabled or bool(TWO_PERSON_MFA_ROLES.intersection(user.roles))


def _reset_mfa_now(actor, user: User) -> None:
    user.mfa_enabled = False
    user.totp_secret_encrypted = None
    user.totp_last_step = None
    db.session.execute(db.delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    end_user_sessions(user.id, "mfa_reset")
    audit.record(actor, "user.mfa_reset", obj=user, category="user accounts")
    add_account_notice(actor, user.id, "mfa_reset")


def reset_mfa(*, actor, user: User) -> None:
    """Turn MFA off; users whose role requires it must enrol again at their next sign-in.

    Only when ``mfa_reset_needs_approval`` says no (no enrolled second factor, not a
    prescriber or an administrator): otherwise it goes through ``propose_mfa_reset`` and
    ``approve_mfa_reset``.
    """
    with use_case():
        db.session.refresh(user)
        if mfa_reset_needs_approval(user):
            raise Refused(
                "Resetting two-step sign-in that is set up, or a prescriber's or an "
                "administrator's, needs a second administrator's approval: propose it instead."
            )
        _reset_mfa_now(actor, user)


def pending_approval(user_id: int, action: str = MFA_RESET) -> AccountApproval | None:
    """The open proposal of ``action`` on the account, if one is waiting and not lapsed."""
    approval = db.session.scalar(
        select(AccountApproval).where(
            AccountApproval.user_id == user_id,
            AccountApproval.action == action,
            AccountApproval.decided_at.is_(None),
        )
    )
    if approval is None or _lapsed(approval):
        return None
    return approval


def pending_approvals() -> list[AccountApproval]:
    """Every open, unlapsed proposal, oldest first (for the admins' list)."""
    return list(
        db.session.scalars(
            select(AccountApproval)
            .where(
                AccountApproval.decided_at.is_(None),
                AccountApproval.proposed_at >= utcnow() - timedelta(hours=APPROVAL_VALID_HOURS),
            )
            .order_by(AccountApproval.proposed_at)
        )
    )


def _lapsed(approval: AccountApproval) -> bool:
    return approval.proposed_at < utcnow() - timedelta(hours=APPROVAL_VALID_HOURS)


def _close_lapsed(user_id: int, action: str) -> None:
    db.session.execute(
        update(AccountApproval)
        .where(
            AccountApproval.user_id == user_id,
            AccountApproval.action == action,
            AccountApproval.decided_at.is_(None),
            AccountApproval.proposed_at < utcnow() - timedelta(hours=APPROVAL_VALID_HOURS),
        )
        .values(decided_at=utcnow(), outcome="lapsed")
        .execution_options(synchronize_session=False)
    )


def _refuse_a_dependent_approver(
    approval: AccountApproval, actor, approver_role_name: str = "admin"
) -> None:
    """The second person must be a second person, not an account the first made.

    Refused when the approver's role (``approver_role_name``: an administrator's for account
    resets, a prescriber's for EPCS grants) was granted less than ``NEW_ADMIN_HOURS`` ago,
    or by the proposer, or when the approver granted the proposer's admin role. This is the
    smaller option (no two-person grant of roles): it stops one admin from creating an
    account (or promoting one) and deciding with it at once, in either seat. It does not
    prove independence: an admin who builds a chain of two accounts and waits a day is not
    stopped, but every grant is audited under their name.
    """
    approver = db.session.get(User, actor.id)
    proposer = db.session.get(User, approval.proposed_by_id) if approval.proposed_by_id else None
    approver_role = approver.role_row(approver_role_name) if approver else None
    proposer_role = proposer.role_row("admin") if proposer else None
    if approver_role is None:
        raise Refused(f"Only {ROLE_ARTICLES[approver_role_name]} approves.")
    if (
        approver_role.granted_at is not None
        and approver_role.granted_at > utcnow() - timedelta(hours=NEW_ADMIN_HOURS)
    ) or (
        approval.proposed_by_id is not None
        and approver_role.granted_by_id == approval.proposed_by_id
    ):
        raise Refused(
            f"Your {ROLE_LABELS[approver_role_name].lower()} role is less than a day old or was "
            "given by the administrator who proposed this: someone else must approve it."
            if approver_role_name != "admin"
            else "Your administrator role is less than a day old or was given by the "
            "administrator who proposed this: another administrator must approve it."
        )
    if proposer_role is not None and proposer_role.granted_by_id == actor.id:
        raise Refused(
            "You gave the proposer their administrator role: another administrator must approve it."
        )


@dataclass(frozen=True)
class _TwoPersonAct:
    """What the two-person rule guards (an ``AccountApproval.action``), how its audit events
    are named and what its refusals say."""

    action: str
    event: str  # "<event>_proposed", "_approved", "_withdrawn"
    what: str  # "a reset of this account's two-step sign-in"
    # Whose role the second person holds (``_refuse_a_dependent_approver``), and how the
    # refusals name them: an administrator for account resets, a DEA registrant (a
    # prescriber) for EPCS grants and revokes (auth/epcs.py).
    approver_role: str = "admin"
    approver_title: str = "administrator"


_MFA_RESET_ACT = _TwoPersonAct(MFA_RESET, "user.mfa_reset", "reset of two-step sign-in")
_PASSWORD_RESET_ACT = _TwoPersonAct(PASSWORD_RESET, "user.password_reset", "password reset")


def _propose(actor, user: User, act: _TwoPersonAct, check: Callable[[], None]) -> AccountApproval:
    """First half of the two-person rule: one administrator asks (``check`` refuses what may
    not be asked); nothing changes until a different administrator approves."""
    waiting = Refused(f"A {act.what} of this account is already waiting for approval.")
    with use_case(conflict=waiting):
        db.session.refresh(user)
        check()
        _close_lapsed(user.id, act.action)
        if pending_approval(user.id, act.action) is not None:
            raise waiting
        approval = AccountApproval(user_id=user.id, action=act.action, proposed_by_id=actor.id)
        db.session.add(approval)
        db.session.flush()  # a second proposal racing this one meets the unique index here
        audit.record(
            actor,
            f"{act.event}_proposed",
            obj=user,
            category="user accounts",
            detail=f"approval={approval.id}",
        )
    return approval


def _waiting(user: User, act: _TwoPersonAct) -> AccountApproval:
    approval = pending_approval(user.id, act.action)
    if approval is None:
        raise Refused(f"No {act.what} is waiting for approval (or it lapsed).")
    return approval


def _approve(actor, user: User, act: _TwoPersonAct) -> AccountApproval:
    """Second half, inside the caller's use case: a different administrator (not the
    proposer, not the account's owner, not one whose admin role depends on the proposer)
    approves; the caller then does the act in the same transaction."""
    db.session.refresh(user)
    approval = _waiting(user, act)
    if actor.id == approval.proposed_by_id:
        raise Refused(f"A different {act.approver_title} must approve the {act.what} you proposed.")
    if actor.id == user.id:
        raise Refused(
            f"Another {act.approver_title} must approve a {act.what} of your own account."
        )
    _refuse_a_dependent_approver(approval, actor, act.approver_role)
    _decide(approval, actor, "approved")
    audit.record(
        actor,
        f"{act.event}_approved",
        obj=user,
        category="user accounts",
        detail=f"approval={approval.id} proposed_by={approval.proposed_by_id}",
    )
    return approval


def _withdraw(actor, user: User, act: _TwoPersonAct) -> None:
    """Withdraw (the proposer) or decline (another administrator) a waiting proposal."""
    with use_case():
        approval = _waiting(user, act)
        _decide(approval, actor, "withdrawn")
        audit.record(
            actor,
            f"{act.event}_withdrawn",
            obj=user,
            category="user accounts",
            detail=f"approval={approval.id} proposed_by={approval.proposed_by_id}",
        )


def _decide(approval: AccountApproval, actor, outcome: str) -> None:
    decided = db.session.execute(
        update(AccountApproval)
        .where(AccountApproval.id == approval.id, AccountApproval.decided_at.is_(None))
        .values(decided_at=utcnow(), decided_by_id=actor.id, outcome=outcome)
        .execution_options(synchronize_session=False)
    )
    if decided.rowcount != 1:  # decided meanwhile by someone else: that decision stands
        raise Refused("That proposal was already decided: reload the page.")


def propose_mfa_reset(*, actor, user: User) -> AccountApproval:
    """Ask to reset the account's second factor (``mfa_reset_needs_approval``)."""

    def check() -> None:
        if not user.mfa_enabled:
            raise Refused("Two-step sign-in is not on for this account.")

    return _propose(actor, user, _MFA_RESET_ACT, check)


def approve_mfa_reset(*, actor, user: User) -> None:
    """Approve a waiting second-factor reset; the reset happens in the same transaction."""
    with use_case():
        _approve(actor, user, _MFA_RESET_ACT)
        _reset_mfa_now(actor, user)


def withdraw_mfa_reset(*, actor, user: User) -> None:
    _withdraw(actor, user, _MFA_RESET_ACT)


def propose_password_reset(*, actor, user: User) -> AccountApproval:
    """Ask to reset the password of an account ``password_reset_needs_approval`` guards:
    the approving administrator sets the temporary password, so no single administrator
    can take the account over."""

    def check() -> None:
        if not password_reset_needs_approval(actor, user):
            raise Refused("This password needs no second administrator: reset it directly.")

    return _propose(actor, user, _PASSWORD_RESET_ACT, check)


def approve_password_reset(*, actor, user: User, new_password: str) -> None:
    """Approve a waiting password reset by setting the temporary password (same
    transaction); the owner is told."""
    password_hash = _hash_new_password(user, new_password)
    with use_case():
        _approve(actor, user, _PASSWORD_RESET_ACT)
        _set_temporary_password(actor, user, password_hash)


def withdraw_password_reset(*, actor, user: User) -> None:
    _withdraw(actor, user, _PASSWORD_RESET_ACT)


# --- notices to the account's owner, and what a sign-in must finish first -----------------


def add_account_notice(actor, user_id: int, kind: str) -> None:
    """Tell the account's owner, at their next sign-in, that ``actor`` did ``kind`` to it
    (a work function: flushes, commits with the caller's use case). Nothing for one's own
    acts."""
    if actor.id == user_id:
        return
    acting_user = db.session.get(User, actor.id) if actor.id is not None else None
    db.session.add(
        AccountNotice(
            user_id=user_id,
            kind=kind,
            actor_id=acting_user.id if acting_user else None,
            actor_name=acting_user.full_name
            if acting_user
            else ("the portal" if actor == SYSTEM else actor.username),
        )
    )
    db.session.flush()


def unread_notices(user_id: int) -> list[AccountNotice]:
    """The account's notices its owner has not acknowledged yet, oldest first."""
    return list(
        db.session.scalars(
            select(AccountNotice)
            .where(AccountNotice.user_id == user_id, AccountNotice.acknowledged_at.is_(None))
            .order_by(AccountNotice.created_at, AccountNotice.id)
        )
    )


def acknowledge_notices(actor: Actor, notice_ids: list[int]) -> int:
    """The owner has read these notices (only theirs, only unread ones); returns how many."""
    with use_case():
        result = db.session.execute(
            update(AccountNotice)
            .where(
                AccountNotice.id.in_(notice_ids),
                AccountNotice.user_id == actor.id,
                AccountNotice.acknowledged_at.is_(None),
            )
            .values(acknowledged_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        if result.rowcount:
            audit.record(
                actor,
                "auth.notices_acknowledged",
                category="user accounts",
                object_type="users",
                object_id=actor.id,
                detail=f"{result.rowcount} notice(s)",
            )
    return result.rowcount


def recent_sign_ins(user_id: int, limit: int = 5) -> list[AuditEvent]:
    """The account's latest sign-ins as the audit trail recorded them (when, from where,
    how), newest first: shown with the notices, so that a sign-in the owner did not make
    (someone who used a temporary password before them) is seen by the owner. Rare (that
    page only), and the trail's (user, time) index keeps it a short backward scan."""
    return list(
        db.session.scalars(
            select(AuditEvent)
            .where(AuditEvent.user_id == user_id, AuditEvent.action == "auth.sign_in")
            .order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc())
            .limit(limit)
        )
    )


def sign_in_gate(user_id: int) -> str | None:
    """What a fresh sign-in must finish before the portal opens: a new password (when an
    administrator chose the current one), then the notices; None when nothing."""
    if db.session.scalar(select(User.must_change_password).where(User.id == user_id)):
        return GATE_PASSWORD
    unread = db.session.scalar(
        select(AccountNotice.id)
        .where(AccountNotice.user_id == user_id, AccountNotice.acknowledged_at.is_(None))
        .limit(1)
    )
    return GATE_NOTICES if unread is not None else None


# --- access withdrawn: what other domains revoke when an account loses access --------------

ACCESS_DISABLED = "disabled"
ACCESS_ROLES_REMOVED = "roles_removed"

# Filled by higher domains (scheduling revokes calendar feeds): auth must not import them.
_ACCESS_WITHDRAWN_HANDLERS: list[Callable] = []


def when_access_withdrawn(handler: Callable) -> Callable:
    """Register ``handler(actor, user, reason, roles)`` to run inside the use case that
    disables an account (``reason`` ACCESS_DISABLED, ``roles`` all it held) or removes roles
    from it (ACCESS_ROLES_REMOVED, the roles removed). Handlers only flush."""
    _ACCESS_WITHDRAWN_HANDLERS.append(handler)
    return handler


def _access_withdrawn(actor, user: User, reason: str, roles: frozenset[str]) -> None:
    for handler in _ACCESS_WITHDRAWN_HANDLERS:
        handler(actor, user, reason, roles)


def end_sessions(*, actor, user: User) -> int:
    """End every session of an account (sign it out everywhere); returns how many."""
    with use_case():
        count = end_user_sessions(user.id, "ended_by_admin")
        audit.record(
            actor,
            "user.sessions_ended",
            obj=user,
            category="user accounts",
            detail=f"{count} session(s)",
        )
    return count
