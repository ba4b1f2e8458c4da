"""Staff accounts, their roles, recovery codes and server-side sessions."""

from __future__ import annotations

from datetime import date, datetime

from flask_login import UserMixin
from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, false, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.auth.permissions import permissions_for_roles
from portal.extensions import db
from portal.timeutil import UTCDateTime, utcnow

ROLE_NAMES = ("front_desk", "nurse", "prescriber", "admin")
ROLE_LABELS = {
    "front_desk": "Front desk",
    "nurse": "Nurse / MA",
    "prescriber": "Prescriber",
    "admin": "Administrator",
}


class User(UserMixin, db.Model):
    """A member of staff who signs in to the portal."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    full_name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    password_hash: Mapped[str] = mapped_column(String(255))
    is_enabled: Mapped[bool] = mapped_column(default=True)
    # TOTP second factor; the seed is encrypted with the instance's data key.
    totp_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    mfa_enabled: Mapped[bool] = mapped_column(default=False)
    totp_last_step: Mapped[int | None]  # refuses a code already used (replay)
    # Per-account back-off: counts consecutive failures whatever the source address.
    failed_sign_ins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    password_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set when an administrator chose the password (a new account, a reset): the owner must
    # replace it at their next sign-in before anything else, so the admin never knows the
    # password the account ends up with.
    must_change_password: Mapped[bool] = mapped_column(default=False, server_default=false())
    # The last day the person works here (a leaver, a locum's contract): from the clinic's
    # next midnight the account is disabled (the worker) and its calendar feeds stop.
    employment_ends_on: Mapped[date | None]
    last_sign_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The prescriber's DEA registration number (portal/auth/dea.py checks its form), needed to
    # sign controlled-substance prescriptions. Who set it and when: the second person of an
    # EPCS grant must not be a registrant whose number the proposer typed in (auth/epcs.py).
    dea_number: Mapped[str | None] = mapped_column(String(9))
    dea_number_set_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    dea_number_set_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The prescriber's National Provider Identifier (10 digits, CMS's Luhn check digit over
    # 80840 + the first nine; portal/auth/npi.py), printed on paper prescriptions.
    npi: Mapped[str | None] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    role_rows: Mapped[list[UserRole]] = relationship(
        back_populates="user",
        cascade="all, delete-orphan",
        lazy="selectin",
        foreign_keys="UserRole.user_id",
    )

    @property
    def roles(self) -> list[str]:
        return sorted(row.role for row in self.role_rows)

    def set_roles(self, roles: list[str], granted_by_id: int | None = None) -> None:
        """Keep the roles in ``roles``; the ones an administrator adds record who and when
        (none for the set-up: the demo clinic, the command line)."""
        wanted = set(roles)
        self.role_rows = [row for row in self.role_rows if row.role in wanted]
        have = {row.role for row in self.role_rows}
        self.role_rows.extend(
            UserRole(
                role=role,
                granted_by_id=granted_by_id,
                granted_at=utcnow() if granted_by_id is not None else None,
            )
            for role in sorted(wanted - have)
        )

    def role_row(self, role: str) -> UserRole | None:
        return next((row for row in self.role_rows if row.role == role), None)

    @property
    def role_labels(self) -> str:
        return ", ".join(ROLE_LABELS[role] for role in self.roles if role in ROLE_LABELS)

    @property
    def is_active(self) -> bool:  # Flask-Login: disabled users cannot sign in
        return self.is_enabled

    @property
    def permissions(self) -> frozenset[str]:
        return permissions_for_roles(self.roles)

    def has_permission(self, permission: str) -> bool:
        return permission in self.permissions


class UserRole(db.Model):
    __tablename__ = "user_roles"
    __table_args__ = (UniqueConstraint("user_id", "role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(32))
    # Provenance (the two-person rule): who gave the role and when; empty for roles given
    # before it was kept, by the demo set-up or from the command line.
    granted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    granted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship(back_populates="role_rows", foreign_keys=[user_id])


class RecoveryCode(db.Model):
    """A one-time code that stands in for the TOTP code; only its hash is kept."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ServerSession(db.Model):
    """A browser session. The cookie holds a random token; the table holds its SHA-256.

    ``data`` is the Flask session (JSON): the signed-in user, the CSRF secret, a saved form
    waiting to be resumed after an idle time-out. Nothing else about a session is in the browser.
    """

    __tablename__ = "server_sessions"
    __table_args__ = (Index("ix_server_sessions_user_active", "user_id", "ended_at"),)

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    data: Mapped[str] = mapped_column(Text, default="{}")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    end_reason: Mapped[str | None] = mapped_column(String(32))
    source_address: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(300))


# Notices an account's owner reads (and acknowledges) at their next sign-in: what someone
# else did to their account. The text is written from ``kind`` when shown.
NOTICE_KINDS = (
    "password_reset",
    "mfa_reset",
    "calendar_feed_revoked",
    "calendar_feeds_revoked_disabled",
    "calendar_feeds_revoked_role",
)


class AccountNotice(db.Model):
    """Something done to an account by someone else, shown to its owner until acknowledged."""

    __tablename__ = "account_notices"
    __table_args__ = (
        Index(
            "ix_account_notices_unread",
            "user_id",
            postgresql_where=text("acknowledged_at IS NULL"),
            sqlite_where=text("acknowledged_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # Kept as written: the notice still says who acted if that account is renamed or removed.
    actor_name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AccountApproval(db.Model):
    """A sensitive change to an account that one administrator proposes and a different one
    approves (the two-person rule), e.g. resetting a prescriber's second factor.

    At most one proposal per account and action is open (``decided_at`` empty): a unique
    partial index, so two admins proposing at once cannot make two.
    """

    __tablename__ = "account_approvals"
    __table_args__ = (
        Index(
            "uq_account_approvals_pending",
            "user_id",
            "action",
            unique=True,
            postgresql_where=text("decided_at IS NULL"),
            sqlite_where=text("decided_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    action: Mapped[str] = mapped_column(String(32))
    proposed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    proposed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str | None] = mapped_column(String(16))  # approved / withdrawn


class SignInDevice(db.Model):
    """A browser that has signed in to an account before (OWASP's "device cookies").

    The browser holds a signed cookie naming the account and a random nonce; this row holds
    the nonce's SHA-256 and the device's own failure count. A recognised device is let
    through the account's back-off (so guessing from elsewhere cannot lock its owner out),
    and backs off on its own when it is the one failing.
    """

    __tablename__ = "sign_in_devices"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    nonce_hash: Mapped[str] = mapped_column(String(64), unique=True)
    failed_sign_ins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EpcsPermission(db.Model):
    """A prescriber's permission to sign controlled-substance prescriptions (EPCS logical
    access control, 21 CFR 1311.125): granted when a second person approved what an
    administrator proposed (``account_approvals`` action ``epcs_grant``), for the DEA number
    the account held then; ended (``revoked_at``) by an approved revoke, or at once when the
    registration it was granted for changes or the account loses its access.

    Rows are never deleted: they are the record of who could sign controlled prescriptions
    when. At most one is current per account (a unique partial index).
    """

    __tablename__ = "epcs_permissions"
    __table_args__ = (
        Index(
            "uq_epcs_permissions_current",
            "user_id",
            unique=True,
            postgresql_where=text("revoked_at IS NULL"),
            sqlite_where=text("revoked_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    dea_number: Mapped[str] = mapped_column(String(9))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    proposed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    approved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    grant_approval_id: Mapped[int | None] = mapped_column(
        ForeignKey("account_approvals.id", ondelete="SET NULL")
    )
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The second person of an approved revoke, or whoever made the change that ended it.
    revoked_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    revoke_approval_id: Mapped[int | None] = mapped_column(
        ForeignKey("account_approvals.id", ondelete="SET NULL")
    )
    revoke_reason: Mapped[str | None] = mapped_column(String(64))
