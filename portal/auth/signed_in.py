"""The signed-in user as a request sees it: a snapshot, read once when the request starts.

Flask-Login's ``current_user`` is this snapshot, not a ``User`` row: nothing a use case
does to the ORM session (ending a read transaction expires every loaded row) makes the
navigation, the permission checks or the actor of the next use case read the account
again, and one query loads it with its roles. Views that change the account itself (a new
password, a second factor) load the ``User`` row by id inside their use case.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask_login import UserMixin
from sqlalchemy import select

from portal.auth.models import ROLE_LABELS, User, UserRole
from portal.auth.permissions import permissions_for_roles
from portal.extensions import db


@dataclass(frozen=True)
class SignedInUser(UserMixin):
    """Who is signed in: what pages and permission checks need, and nothing to lazy-load."""

    id: int
    username: str
    full_name: str
    roles: tuple[str, ...]
    mfa_enabled: bool

    @property
    def permissions(self) -> frozenset[str]:
        return permissions_for_roles(self.roles)

    @property
    def role_labels(self) -> str:
        return ", ".join(ROLE_LABELS[role] for role in self.roles if role in ROLE_LABELS)

    def has_permission(self, permission: str) -> bool:
        return permission in self.permissions


def load_signed_in_user(user_id: int) -> SignedInUser | None:
    """The enabled account ``user_id`` with its roles (one query), or None."""
    rows = db.session.execute(
        select(User.id, User.username, User.full_name, User.mfa_enabled, UserRole.role)
        .outerjoin(UserRole, UserRole.user_id == User.id)
        .where(User.id == user_id, User.is_enabled.is_(True))
    ).all()
    if not rows:
        return None
    first = rows[0]
    roles = tuple(sorted(row.role for row in rows if row.role is not None))
    return SignedInUser(first.id, first.username, first.full_name, roles, first.mfa_enabled)
