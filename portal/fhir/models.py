"""Who may call the FHIR API: the API clients an administrator registered, the access
tokens they were given, the assertions they signed (so none is used twice), and how many
requests each made this minute.

No secret is stored in clear. A client secret and an access token are 256-bit random values
the portal made itself, so a fast hash (SHA-256) is as good as a slow one: nobody can guess
a 256-bit value, and the token check runs on every API request. Only their SHA-256 is kept,
and the secret is shown once, when it is made.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.extensions import db
from portal.timeutil import UTCDateTime, utcnow

# How a client proves who it is at the token endpoint.
AUTH_CLIENT_SECRET = "client_secret"  # noqa: S105  HTTP Basic or form fields (RFC 6749 2.3.1)
AUTH_PRIVATE_KEY_JWT = "private_key_jwt"  # a signed assertion (SMART Backend Services)
AUTH_METHODS = (AUTH_CLIENT_SECRET, AUTH_PRIVATE_KEY_JWT)

NAME_MAX = 60  # "api:<name>" must fit the audit trail's username column (64)
SCOPES_MAX = 2000


class ApiClient(db.Model):
    """A system allowed to call the FHIR API, registered by an administrator, with the
    person who answers for it and the scopes it may be given."""

    __tablename__ = "api_clients"

    id: Mapped[int] = mapped_column(primary_key=True)
    # What the client sends as ``client_id``: random, so it tells nothing and is not guessed.
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX), unique=True)
    responsible_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    # The scopes it may be given, space-separated (``system/*.read system/*.write``).
    scopes: Mapped[str] = mapped_column(String(SCOPES_MAX))
    auth_method: Mapped[str] = mapped_column(String(20))
    # SHA-256 (hex) of the client secret, for ``client_secret`` clients.
    secret_hash: Mapped[str | None] = mapped_column(String(64))
    # The public key(s) of a ``private_key_jwt`` client: a JWKS (JSON) or a PEM key.
    public_key: Mapped[str | None] = mapped_column(Text)
    # Or where it publishes them (SMART Backend Services' jwks_url), fetched by the token
    # endpoint (``jwks``): one of the two.
    jwks_url: Mapped[str | None] = mapped_column(String(500))
    enabled: Mapped[bool] = mapped_column(default=True)
    rate_limit_per_minute: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    secret_rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    disabled_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    responsible = relationship("User", foreign_keys=[responsible_user_id], lazy="joined")

    @property
    def scope_list(self) -> list[str]:
        return self.scopes.split()


class ApiToken(db.Model):
    """An access token given to a client: opaque, short-lived, limited to the scopes
    granted when it was issued. Checked with its client at every request, so disabling
    the client stops it at once."""

    __tablename__ = "api_tokens"
    __table_args__ = (Index("ix_api_tokens_client_expires", "client_id", "expires_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("api_clients.id", ondelete="CASCADE"))
    scopes: Mapped[str] = mapped_column(String(SCOPES_MAX))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked: Mapped[bool] = mapped_column(default=False)


class ApiAssertionJti(db.Model):
    """The ``jti`` of every client assertion accepted, kept until the assertion expires:
    a second use of one is a replay and is refused (the unique constraint decides a race)."""

    __tablename__ = "api_assertion_jtis"
    __table_args__ = (
        UniqueConstraint("client_id", "jti"),
        Index("ix_api_assertion_jtis_expires_at", "expires_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("api_clients.id", ondelete="CASCADE"))
    jti: Mapped[str] = mapped_column(String(255))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ApiClientUsage(db.Model):
    """How many requests a client made in the current minute (a fixed window): one row per
    client, counted by one conditional UPDATE, apart from the client's own row so the
    counting never contends with an administrator's change."""

    __tablename__ = "api_client_usage"

    client_id: Mapped[int] = mapped_column(
        ForeignKey("api_clients.id", ondelete="CASCADE"), primary_key=True
    )
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    requests: Mapped[int] = mapped_column(default=0)
