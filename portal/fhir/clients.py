"""API clients and their tokens: registering, disabling and rotating a client (admins),
issuing a token (the token endpoint, OAuth 2.0 client credentials) and checking one (every
API request).

A client proves itself in one of two ways, chosen when it is registered:

- ``client_secret``: a 256-bit secret the portal makes and shows once, sent by HTTP Basic
  or in the form (RFC 6749 2.3.1). Only its SHA-256 is kept (see ``models``).
- ``private_key_jwt`` (SMART Backend Services): the client signs a short assertion with its
  private key (RS384 or ES384); the portal holds the public key (a JWKS or a PEM). The
  assertion names this token endpoint as its audience, lives at most five minutes, and its
  ``jti`` is kept until it expires so it cannot be used twice.

A token is an opaque random value (its SHA-256 stored) for the scopes granted: those asked
for, narrowed to those the client may have. It lives ``FHIR_TOKEN_SECONDS`` (five minutes by
default, as SMART suggests) and is checked with its client in one query at every request,
so a disabled client stops at once. Disabling a client or rotating its secret also revokes
the tokens it holds.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from flask import current_app
from sqlalchemy import case, delete, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import NotFound

from portal import actors
from portal.actors import Actor
from portal.audit.services import record
from portal.auth.models import User
from portal.extensions import db
from portal.fhir import jwks
from portal.fhir import scopes as scope_rules
from portal.fhir.jwks import JwksUnavailable, public_keys
from portal.fhir.models import (
    AUTH_CLIENT_SECRET,
    AUTH_METHODS,
    AUTH_PRIVATE_KEY_JWT,
    NAME_MAX,
    ApiAssertionJti,
    ApiClient,
    ApiClientUsage,
    ApiToken,
)
from portal.timeutil import utcnow
from portal.transaction import Conflict, Refused, end_read, use_case

CATEGORY = "fhir"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# SMART Backend Services: servers support RS384 and ES384; nothing weaker is accepted.
ASSERTION_ALGORITHMS = {"RS384": "RSA", "ES384": "EC"}
ASSERTION_MAX_LIFETIME = timedelta(minutes=5)
CLOCK_SKEW = timedelta(seconds=30)
JTI_MAX = ApiAssertionJti.__table__.c.jti.type.length
RATE_LIMIT_MAX = 100_000
# Resource types offered as scopes on the registration form, beside those the API serves.
SCOPE_RESOURCE_TYPES = (
    "Patient",
    "Practitioner",
    "Organization",
    "Location",
    "Encounter",
    "Condition",
    "AllergyIntolerance",
    "Immunization",
    "Observation",
    "Appointment",
    "DocumentReference",
    "MedicationRequest",
    "MedicationStatement",
    "DiagnosticReport",
)


def hash_secret(value: str) -> str:
    """SHA-256 (hex) of a secret or token the portal made (256 random bits: see models)."""
    return hashlib.sha256(value.encode()).hexdigest()


def _new_secret() -> str:
    return secrets.token_urlsafe(32)  # 256 bits


# --- administration -------------------------------------------------------------------------


@dataclass(frozen=True)
class Registered:
    """A client just registered: the row, and its secret in clear (shown once; None for a
    private-key client)."""

    client: ApiClient
    secret: str | None


def list_clients() -> list[ApiClient]:
    """Every registered client, enabled first, by name."""
    return list(
        db.session.scalars(select(ApiClient).order_by(ApiClient.enabled.desc(), ApiClient.name))
    )


def get_client(client_pk: int) -> ApiClient:
    """The client with this row id, or NotFound."""
    client = db.session.get(ApiClient, client_pk)
    if client is None:
        raise NotFound()
    return client


def responsible_people() -> list[tuple[int, str]]:
    """(id, full name) of the enabled staff accounts one may name as responsible."""
    return [
        (row.id, row.full_name)
        for row in db.session.execute(
            select(User.id, User.full_name)
            .where(User.is_enabled.is_(True))
            .order_by(User.full_name, User.id)
        )
    ]


def scope_choices() -> list[str]:
    """The scopes an admin may give a client: everything, then each type alone."""
    return ["system/*.read", "system/*.write"] + [
        f"system/{name}.read" for name in SCOPE_RESOURCE_TYPES
    ]


def register_client(
    actor: Actor,
    *,
    name: str,
    responsible_user_id: int,
    scopes: list[str],
    auth_method: str,
    public_key: str | None = None,
    jwks_url: str | None = None,
    rate_limit_per_minute: int | None = None,
) -> Registered:
    """Register a client (one use case, audited ``api_client.registered``). A secret
    client's secret is returned in clear here, and nowhere ever again."""
    name = (name or "").strip()
    if not name or len(name) > NAME_MAX:
        raise Refused(f"Give the client a name of at most {NAME_MAX} characters.", "name")
    if auth_method not in AUTH_METHODS:
        raise Refused("Choose how the client signs in.", "auth_method")
    granted = _allowed_scopes(scopes)
    limit = rate_limit_per_minute or current_app.config["FHIR_RATE_LIMIT_PER_MINUTE"]
    if not 1 <= limit <= RATE_LIMIT_MAX:
        raise Refused(f"A limit from 1 to {RATE_LIMIT_MAX} requests a minute.", "rate_limit")
    secret = None
    if auth_method == AUTH_PRIVATE_KEY_JWT:
        public_key, jwks_url = _key_or_url(public_key, jwks_url)
    else:
        public_key = jwks_url = None
        secret = _new_secret()
    refused_name = Conflict("Another client has that name: choose another.", "name")
    with use_case(conflict=refused_name):
        responsible = db.session.get(User, responsible_user_id)
        if responsible is None or not responsible.is_enabled:
            raise Refused("Choose the person responsible for this client.", "responsible")
        client = ApiClient(
            client_id=secrets.token_urlsafe(18),
            name=name,
            responsible_user_id=responsible.id,
            scopes=scope_rules.spelled(granted),
            auth_method=auth_method,
            secret_hash=hash_secret(secret) if secret else None,
            public_key=public_key,
            jwks_url=jwks_url,
            enabled=True,
            rate_limit_per_minute=limit,
            created_at=utcnow(),
            created_by_id=actor.id,
        )
        db.session.add(client)
        db.session.flush()
        db.session.add(ApiClientUsage(client_id=client.id, window_start=utcnow(), requests=0))
        record(
            actor,
            "api_client.registered",
            obj=client,
            category=CATEGORY,
            detail=f"{auth_method}; scopes {client.scopes}"[:500],
        )
    return Registered(client, secret)


def _key_or_url(public_key: str | None, jwks_url: str | None) -> tuple[str | None, str | None]:
    """A private-key client's keys: pasted (a JWKS or PEM) or published at a URL, one of
    the two; ``Refused`` naming the field."""
    public_key, jwks_url = (public_key or "").strip(), (jwks_url or "").strip()
    if public_key and jwks_url:
        raise Refused("Give the public key or its JWKS URL, not both.", "jwks_url")
    if jwks_url:
        try:
            return None, jwks.check_url(jwks_url)
        except ValueError as error:
            raise Refused(str(error), "jwks_url") from error
    if not public_key:
        raise Refused(
            "Paste the client's public key (a JWKS or a PEM) or give its JWKS URL.", "public_key"
        )
    try:
        public_keys(public_key)
    except ValueError as error:
        raise Refused(str(error), "public_key") from error
    return public_key, None


def update_client(
    actor: Actor,
    client_pk: int,
    *,
    responsible_user_id: int,
    scopes: list[str],
    rate_limit_per_minute: int,
    public_key: str | None = None,
    jwks_url: str | None = None,
) -> ApiClient:
    """Change who answers for a client, its scopes, its limit, and (a private-key client)
    its public key. New scopes or a new key revoke the tokens it holds, so a scope taken
    away or a key withdrawn stops now rather than when the tokens expire. Audited
    ``api_client.changed`` with the names of the fields changed."""
    granted = scope_rules.spelled(_allowed_scopes(scopes))
    if not 1 <= rate_limit_per_minute <= RATE_LIMIT_MAX:
        raise Refused(f"A limit from 1 to {RATE_LIMIT_MAX} requests a minute.", "rate_limit")
    with use_case():
        client = get_client(client_pk)
        responsible = db.session.get(User, responsible_user_id)
        if responsible is None or not responsible.is_enabled:
            raise Refused("Choose the person responsible for this client.", "responsible")
        changed = []
        if client.responsible_user_id != responsible.id:
            client.responsible_user_id = responsible.id
            changed.append("responsible")
        if client.scopes != granted:
            client.scopes = granted
            changed.append("scopes")
        if client.rate_limit_per_minute != rate_limit_per_minute:
            client.rate_limit_per_minute = rate_limit_per_minute
            changed.append("rate limit")
        key, url = (public_key or "").strip(), (jwks_url or "").strip()
        if client.auth_method == AUTH_PRIVATE_KEY_JWT and (key or url):
            key, url = _key_or_url(key, url)
            if (key, url) != (client.public_key, client.jwks_url):
                client.public_key, client.jwks_url = key, url
                changed.append("public key" if key else "JWKS URL")
        if {"scopes", "public key", "JWKS URL"} & set(changed):
            _revoke_tokens(client.id)
        if changed:
            record(
                actor,
                "api_client.changed",
                obj=client,
                category=CATEGORY,
                detail=", ".join(changed) + (f"; scopes {granted}" if "scopes" in changed else ""),
            )
    return client


def _allowed_scopes(texts: list[str]) -> list[scope_rules.Scope]:
    try:
        parsed = [scope_rules.parse(text) for text in texts]
    except scope_rules.InvalidScope as error:
        raise Refused(f"{error} is not a scope this server grants.", "scopes") from error
    if not parsed:
        raise Refused("Give the client at least one scope.", "scopes")
    return scope_rules.intersect(parsed, parsed)


def rotate_secret(actor: Actor, client_pk: int) -> str:
    """A new secret for a secret client (the old one stops working, and so do the tokens
    given with it): returned in clear, once. Audited ``api_client.secret_rotated``."""
    with use_case():
        client = get_client(client_pk)
        if client.auth_method != AUTH_CLIENT_SECRET:
            raise Refused("This client signs in with its key, not a secret.")
        secret = _new_secret()
        client.secret_hash = hash_secret(secret)
        client.secret_rotated_at = utcnow()
        _revoke_tokens(client.id)
        record(actor, "api_client.secret_rotated", obj=client, category=CATEGORY)
    return secret


def set_enabled(actor: Actor, client_pk: int, enabled: bool) -> ApiClient:
    """Enable or disable a client. Disabling takes effect at the client's next request
    (every request checks it) and revokes its tokens, so enabling it again revives none."""
    with use_case():
        client = get_client(client_pk)
        if client.enabled == enabled:
            return client
        client.enabled = enabled
        if enabled:
            client.disabled_at = client.disabled_by_id = None
        else:
            client.disabled_at = utcnow()
            client.disabled_by_id = actor.id
            _revoke_tokens(client.id)
        record(
            actor,
            "api_client.enabled" if enabled else "api_client.disabled",
            obj=client,
            category=CATEGORY,
        )
    return client


def _revoke_tokens(client_pk: int) -> None:
    db.session.execute(
        update(ApiToken)
        .where(ApiToken.client_id == client_pk, ApiToken.revoked.is_(False))
        .values(revoked=True)
    )


# --- the token endpoint ---------------------------------------------------------------------


class TokenRefused(Exception):
    """An OAuth error answer (RFC 6749 5.2): ``error`` code, a description for the client's
    developers, the HTTP status; ``reason`` is what the audit trail records."""

    def __init__(
        self,
        error: str,
        description: str,
        *,
        reason: str,
        status: int = 400,
        retry_after: int | None = None,
    ):
        super().__init__(description)
        self.error = error
        self.description = description
        self.reason = reason
        self.status = status
        self.client_name: str | None = None
        # Over the rate limit: when to ask again. Such refusals are not audited (a client
        # in a loop would fill the trail; throttled API requests are not audited either).
        self.retry_after = retry_after


def _invalid_client(reason: str, description: str = "Client authentication failed."):
    return TokenRefused("invalid_client", description, reason=reason, status=401)


@dataclass(frozen=True)
class TokenRequest:
    """What a client sent to the token endpoint, as the view read it."""

    grant_type: str | None
    scope: str | None
    basic: tuple[str, str] | None  # (client_id, secret) from HTTP Basic
    client_id: str | None  # form fields
    client_secret: str | None
    assertion_type: str | None
    assertion: str | None
    token_url: str  # the audience an assertion must name
    source: str | None


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int
    scope: str


def issue_token(request: TokenRequest) -> IssuedToken:
    """Authenticate the client and give it a token for the scopes it asked for (all it is
    allowed when it asked for none), narrowed to those it may have. ``TokenRefused``
    otherwise; both outcomes are audited (``fhir.token_issued`` / ``fhir.token_refused``)."""
    now = utcnow()
    try:
        if request.grant_type != "client_credentials":
            raise TokenRefused(
                "unsupported_grant_type",
                "Only grant_type=client_credentials is supported.",
                reason="grant type",
            )
        # Who the client is, and its assertion's signature (its keys maybe fetched from its
        # jwks_url), are decided in reads: on SQLite a use case holds the write lock of the
        # whole portal, which must not wait on a client's server.
        proven = _authenticate(request, now)
        client_pk = proven.client.id
        replayed = _invalid_client("replayed jti", "This assertion's jti was already used.")
        replayed.client_name = proven.client.name
        end_read()
        with use_case(conflict=lambda _error: replayed):
            client = db.session.get(ApiClient, client_pk)
            if client is None or not client.enabled:  # disabled (or removed) meanwhile
                disabled = _invalid_client("disabled", "This client is disabled.")
                raise _named(disabled, client) if client is not None else disabled
            if proven.jti is not None:
                _use_jti(client, proven.jti, proven.jti_expires, now)
            # Token requests count against the client's limit too, so a client asking in a
            # loop fills neither the token table nor the audit trail. Refused, the count is
            # rolled back: it stays over the limit until the minute ends.
            if _count_in_window(client.id, now) > client.rate_limit_per_minute:
                raise _named(
                    TokenRefused(
                        "invalid_request",
                        f"Over {client.rate_limit_per_minute} requests a minute: try later.",
                        reason="rate limit",
                        status=429,
                        retry_after=_retry_after(now),
                    ),
                    client,
                )
            try:
                granted = _granted(client, request.scope)
            except TokenRefused as refusal:
                refusal.client_name = client.name
                raise
            token = secrets.token_urlsafe(32)
            lifetime = current_app.config["FHIR_TOKEN_SECONDS"]
            db.session.execute(
                delete(ApiToken).where(
                    ApiToken.client_id == client.id, ApiToken.expires_at < now - timedelta(hours=1)
                )
            )
            db.session.execute(
                insert(ApiToken).values(
                    token_hash=hash_secret(token),
                    client_id=client.id,
                    scopes=granted,
                    issued_at=now,
                    expires_at=now + timedelta(seconds=lifetime),
                    revoked=False,
                )
            )
            record(
                actors.api_client(client.name, request.source),
                "fhir.token_issued",
                obj=client,
                category=CATEGORY,
                detail=f"scopes {granted}"[:500],
            )
    except TokenRefused as refusal:
        if refusal.retry_after is None:
            _record_refusal(refusal, request.source)
        raise
    return IssuedToken(access_token=token, expires_in=lifetime, scope=granted)


def _record_refusal(refusal: TokenRefused, source: str | None) -> None:
    actor = (
        actors.api_client(refusal.client_name, source)
        if refusal.client_name
        else actors.anonymous(source)
    )
    with use_case():
        record(
            actor,
            "fhir.token_refused",
            category=CATEGORY,
            outcome="denied",
            detail=f"{refusal.error}: {refusal.reason}",
        )


@dataclass(frozen=True)
class _Proven:
    """A client that proved who it is; for an assertion, the jti to record as used."""

    client: ApiClient
    jti: str | None = None
    jti_expires: datetime | None = None


def _authenticate(request: TokenRequest, now: datetime) -> _Proven:
    """The client the request proves it is, by exactly one method (RFC 6749 2.3). Reads
    only: the jti is recorded by the caller's use case."""
    methods = [
        request.basic is not None,
        request.client_secret is not None,
        request.assertion is not None or request.assertion_type is not None,
    ]
    if sum(methods) == 0:
        raise _invalid_client("no credentials")
    if sum(methods) > 1:
        raise TokenRefused(
            "invalid_request", "Use exactly one way of client authentication.", reason="several"
        )
    if request.assertion is not None or request.assertion_type is not None:
        return _authenticate_by_assertion(request, now)
    if request.basic is not None:
        client_id, secret = request.basic
    else:
        client_id, secret = request.client_id, request.client_secret
    client = _client_by_public_id(client_id)
    if client is None:
        raise _invalid_client("unknown client")
    if client.auth_method != AUTH_CLIENT_SECRET or not client.secret_hash:
        raise _named(_invalid_client("secret for a key client"), client)
    if not hmac.compare_digest(hash_secret(secret or ""), client.secret_hash):
        raise _named(_invalid_client("wrong secret"), client)
    if not client.enabled:
        raise _named(_invalid_client("disabled", "This client is disabled."), client)
    return _Proven(client)


def _named(refusal: TokenRefused, client: ApiClient) -> TokenRefused:
    refusal.client_name = client.name
    return refusal


def _client_by_public_id(client_id: str | None) -> ApiClient | None:
    if not client_id or len(client_id) > 64:
        return None
    return db.session.scalar(select(ApiClient).where(ApiClient.client_id == client_id))


def _authenticate_by_assertion(request: TokenRequest, now: datetime) -> _Proven:
    """SMART Backend Services: a JWT signed with the client's private key, ``iss`` and
    ``sub`` its client id, ``aud`` this token endpoint, ``exp`` within five minutes, and a
    ``jti`` never seen before (kept until the assertion expires)."""
    if request.assertion_type != ASSERTION_TYPE or not request.assertion:
        raise TokenRefused(
            "invalid_request",
            f"client_assertion_type must be {ASSERTION_TYPE}, with a client_assertion.",
            reason="assertion type",
        )
    try:
        header = jwt.get_unverified_header(request.assertion)
        claimed = jwt.decode(request.assertion, options={"verify_signature": False})
    except jwt.PyJWTError as error:
        raise _invalid_client("malformed assertion", "The assertion is not a JWT.") from error
    issuer = claimed.get("iss")
    client = _client_by_public_id(issuer if isinstance(issuer, str) else None)
    if client is None or (request.client_id and request.client_id != client.client_id):
        raise _invalid_client("unknown client")
    algorithm = header.get("alg")
    if algorithm not in ASSERTION_ALGORITHMS:
        raise _named(
            _invalid_client("algorithm", "Sign the assertion with RS384 or ES384."), client
        )
    if client.auth_method != AUTH_PRIVATE_KEY_JWT or not (client.public_key or client.jwks_url):
        raise _named(_invalid_client("assertion for a secret client"), client)
    # Before the signature, so that a disabled client's assertions never make the portal
    # fetch its jwks_url (its name is public in the assertion anyway).
    if not client.enabled:
        raise _named(_invalid_client("disabled", "This client is disabled."), client)
    claims = _verified_claims(request, client, header, algorithm)
    expires = datetime.fromtimestamp(claims["exp"], tz=now.tzinfo)
    if expires > now + ASSERTION_MAX_LIFETIME + CLOCK_SKEW:
        raise _named(
            _invalid_client("lifetime", "The assertion must expire within five minutes."), client
        )
    jti = claims["jti"]
    if not isinstance(jti, str) or not jti or len(jti) > JTI_MAX:
        raise _named(_invalid_client("jti", "The assertion needs a jti."), client)
    return _Proven(client, jti, expires)


def _use_jti(client: ApiClient, jti: str, expires: datetime, now: datetime) -> None:
    """Record the assertion's jti as used, inside the token's use case; refused when it
    was. The unique constraint decides two uses at once (the caller's use case turns it
    into the same refusal); the look first only words the common case."""
    db.session.execute(delete(ApiAssertionJti).where(ApiAssertionJti.expires_at < now))
    seen = db.session.scalar(
        select(ApiAssertionJti.id).where(
            ApiAssertionJti.client_id == client.id, ApiAssertionJti.jti == jti
        )
    )
    if seen is not None:
        raise _named(
            _invalid_client("replayed jti", "This assertion's jti was already used."), client
        )
    db.session.execute(
        insert(ApiAssertionJti).values(client_id=client.id, jti=jti, expires_at=expires)
    )


def _verified_claims(request: TokenRequest, client: ApiClient, header: dict, algorithm: str):
    """The assertion's claims once its signature verifies with one of the client's keys."""
    family = ASSERTION_ALGORITHMS[algorithm]
    kid = header.get("kid")
    if client.jwks_url:
        # Fetched (or read from the cache) outside any use case, with the read ended first:
        # neither the write lock nor a snapshot is held while the client's server answers.
        url = client.jwks_url
        end_read()
        try:
            keys = jwks.keys_for(url, kid if isinstance(kid, str) else None)
        except JwksUnavailable as error:
            unavailable = _invalid_client(
                "jwks unavailable",
                f"The client's JWKS could not be read from its jwks_url: {error.reason}.",
            )
            raise _named(unavailable, client) from error
    else:
        try:
            keys = public_keys(client.public_key)
        except ValueError as error:
            raise _named(_invalid_client("stored key unusable"), client) from error
    candidates = [
        key
        for key_id, key in keys
        if (kid is None or key_id is None or key_id == kid)
        and isinstance(key, rsa.RSAPublicKey if family == "RSA" else ec.EllipticCurvePublicKey)
    ]
    problem = "no key"
    for key in candidates:
        try:
            claims = jwt.decode(
                request.assertion,
                key,
                algorithms=[algorithm],
                audience=request.token_url,
                issuer=client.client_id,
                leeway=CLOCK_SKEW,
                options={"require": ["iss", "sub", "aud", "exp", "jti"]},
            )
        except jwt.InvalidSignatureError:
            problem = "signature"
            continue
        except jwt.InvalidAudienceError as error:
            raise _named(
                _invalid_client("audience", "The assertion's aud must be this token URL."),
                client,
            ) from error
        except jwt.ExpiredSignatureError as error:
            expired = _invalid_client("expired", "The assertion has expired.")
            raise _named(expired, client) from error
        except jwt.PyJWTError as error:
            raise _named(
                _invalid_client("claims", "The assertion's claims are not acceptable."), client
            ) from error
        if claims.get("sub") != client.client_id:
            wrong_sub = _invalid_client("sub", "The assertion's sub must be the client id.")
            raise _named(wrong_sub, client)
        return claims
    raise _named(_invalid_client(problem), client)


def _granted(client: ApiClient, requested: str | None) -> str:
    """The scopes a token gets: those asked for, narrowed to those the client may have."""
    allowed = scope_rules.parse_all(client.scopes)
    if requested is None or not requested.strip():
        wanted = allowed
    else:
        try:
            wanted = scope_rules.parse_all(requested)
        except scope_rules.InvalidScope as error:
            raise TokenRefused(
                "invalid_scope", f"Unknown or unsupported scope: {error}", reason="unknown scope"
            ) from error
    granted = scope_rules.intersect(wanted, allowed)
    if not granted:
        raise TokenRefused(
            "invalid_scope",
            "None of the scopes asked for is allowed to this client.",
            reason="no scope allowed",
        )
    return scope_rules.spelled(granted)


# --- every API request ----------------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    """The client behind a valid token, as the API sees it (``g.fhir_client``).

    ``id`` is the client's row id as text (the API's other layers keep it beside FHIR's
    string ids, e.g. the owner of an export job); ``pk`` the same as a number."""

    pk: int
    client_id: str
    name: str
    scopes: tuple[str, ...]  # as granted to the token
    rate_limit_per_minute: int
    source: str | None = None

    @property
    def id(self) -> str:
        return str(self.pk)

    @property
    def actor(self) -> Actor:
        """Who the audit trail names for what this client does: ``api:<name>``."""
        return actors.api_client(self.name, self.source)

    def writes_any(self) -> bool:
        """Whether the token may write some type (the gate of a bundle import, whose
        entries are then checked one by one)."""
        return any(
            scope.covers(scope.resource_type, write=True)
            for scope in scope_rules.parse_all(" ".join(self.scopes))
        )

    def allows(self, resource_type: str, *, write: bool = False) -> bool:
        """Whether the token's scopes let it read (or write) ``resource_type``."""
        return scope_rules.allows(
            scope_rules.parse_all(" ".join(self.scopes)), resource_type, write=write
        )


def caller_of_token(token: str, source: str | None, now: datetime | None = None) -> Caller | None:
    """The client a bearer token belongs to, or None: unknown, revoked, expired, or its
    client disabled. One query, token joined to client, at every request."""
    if not token or len(token) > 256:
        return None
    row = db.session.execute(
        select(
            ApiClient.id,
            ApiClient.client_id,
            ApiClient.name,
            ApiClient.rate_limit_per_minute,
            ApiToken.scopes,
        )
        .join(ApiClient, ApiClient.id == ApiToken.client_id)
        .where(
            ApiToken.token_hash == hash_secret(token),
            ApiToken.revoked.is_(False),
            ApiToken.expires_at > (now or utcnow()),
            ApiClient.enabled.is_(True),
        )
    ).first()
    if row is None:
        return None
    return Caller(
        pk=row.id,
        client_id=row.client_id,
        name=row.name,
        scopes=tuple(row.scopes.split()),
        rate_limit_per_minute=row.rate_limit_per_minute,
        source=source,
    )


def count_request(caller: Caller, now: datetime | None = None) -> int | None:
    """Count one request in the client's current minute; None when it is within its limit,
    else the seconds until the next minute (its ``Retry-After``). A fixed window in the
    database: every API process shares it, and nothing else needs running."""
    now = now or utcnow()
    with use_case():
        if db.session.get_bind().dialect.name == "postgresql":
            # A count lost in a crash is harmless: no API request need wait for the WAL
            # to reach the disk for it.
            db.session.execute(text("SET LOCAL synchronous_commit TO OFF"))
        made = _count_in_window(caller.pk, now)
    return _retry_after(now) if made > caller.rate_limit_per_minute else None


def _retry_after(now: datetime) -> int:
    return max(1, 60 - now.second)


def _count_in_window(client_pk: int, now: datetime) -> int:
    """Add one to the client's count for the minute of ``now`` (a new minute starts at
    one) and return it; inside the caller's transaction."""
    window = now.replace(second=0, microsecond=0)
    table = ApiClientUsage.__table__
    made = db.session.execute(
        update(table)
        .where(table.c.client_id == client_pk)
        .values(
            requests=case((table.c.window_start == window, table.c.requests + 1), else_=1),
            window_start=window,
        )
        .returning(table.c.requests)
    ).scalar()
    if made is not None:
        return made
    # A client registered before its counter (or by hand): start one.
    try:
        with db.session.begin_nested():
            db.session.execute(
                insert(table).values(client_id=client_pk, window_start=window, requests=1)
            )
        return 1
    except IntegrityError:  # another request started it meanwhile
        return db.session.execute(
            update(table)
            .where(table.c.client_id == client_pk)
            .values(requests=table.c.requests + 1)
            .returning(table.c.requests)
        ).scalar()


def record_scope_refused(caller: Caller, endpoint: str, needed: str) -> None:
    """A token that does not cover what it asked for: the same ``access.denied`` event as
    a signed-in user refused a page, so one filter of the audit report finds both."""
    with use_case():
        record(
            caller.actor,
            "access.denied",
            category=CATEGORY,
            outcome="denied",
            object_type="endpoint",
            object_id=endpoint,
            detail=f"needs scope {needed}",
        )
