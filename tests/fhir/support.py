"""What the FHIR tests stand on: a registered API client, a token for it, and a client
assertion signed the way SMART Backend Services asks (for private-key clients)."""

from __future__ import annotations

import base64
import json
import time
import uuid
from datetime import timedelta

import jwt
from sqlalchemy import insert, select

from portal.auth.models import User
from portal.extensions import db
from portal.fhir import clients
from portal.fhir.models import AUTH_CLIENT_SECRET, ApiClient, ApiToken
from portal.timeutil import utcnow
from tests.support.clients import actor_of

TOKEN_PATH = "/fhir/auth/token"
TOKEN_URL = "http://localhost" + TOKEN_PATH  # the test client's host: assertions' audience
FORM = "application/x-www-form-urlencoded"
# Tests walk pages and bundles quickly: a limit no test reaches unless it means to.
TEST_RATE_LIMIT = 10_000


def make_api_client(
    app,
    scopes: str = "system/*.read",
    method: str = AUTH_CLIENT_SECRET,
    *,
    name: str | None = None,
    public_key: str | None = None,
    jwks_url: str | None = None,
    rate_limit: int | None = TEST_RATE_LIMIT,
) -> tuple[str, str | None]:
    """Register a client as the demo admin would: (client_id, secret); the secret is None
    for a ``private_key_jwt`` client (give its ``public_key``: a JWKS or PEM text)."""
    with app.test_request_context():
        responsible = db.session.scalar(select(User.id).where(User.username == "admin"))
        registered = clients.register_client(
            actor_of("admin"),
            name=name or f"client {uuid.uuid4().hex[:8]}",
            responsible_user_id=responsible,
            scopes=scopes.split(),
            auth_method=method,
            public_key=public_key,
            jwks_url=jwks_url,
            rate_limit_per_minute=rate_limit,
        )
        return registered.client.client_id, registered.secret


def basic_auth(client_id: str, secret: str) -> dict:
    value = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {value}"}


def request_token(http_client, client_id: str, secret: str, scope: str | None = None):
    """POST to the token endpoint with HTTP Basic; the raw response."""
    data = {"grant_type": "client_credentials"}
    if scope is not None:
        data["scope"] = scope
    return http_client.post(TOKEN_PATH, data=data, headers=basic_auth(client_id, secret))


def bearer_token(http_client, client_id: str, secret: str, scope: str | None = None) -> str:
    """A fresh access token for a secret client (asserts the endpoint gave one)."""
    response = request_token(http_client, client_id, secret, scope)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["access_token"]


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def client_assertion(
    private_key,
    client_id: str,
    algorithm: str = "RS384",
    *,
    audience: str = TOKEN_URL,
    lifetime: int = 240,
    jti: str | None = None,
    kid: str | None = None,
    subject: str | None = None,
) -> str:
    """A SMART Backend Services client assertion signed with ``private_key``."""
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": subject or client_id,
        "aud": audience,
        "exp": now + lifetime,
        "jti": jti or uuid.uuid4().hex,
    }
    headers = {"kid": kid} if kid else None
    return jwt.encode(claims, private_key, algorithm=algorithm, headers=headers)


def assertion_form(assertion: str, scope: str | None = None) -> dict:
    data = {
        "grant_type": "client_credentials",
        "client_assertion_type": clients.ASSERTION_TYPE,
        "client_assertion": assertion,
    }
    if scope is not None:
        data["scope"] = scope
    return data


def jwks_of(private_key, kid: str, algorithm: str) -> str:
    """The public JWKS of a private key, as a client would publish it."""
    if algorithm.startswith("RS"):
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private_key.public_key()))
    else:
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private_key.public_key()))
    jwk.update(kid=kid, alg=algorithm, use="sig")
    return json.dumps({"keys": [jwk]})


def install_token(
    app,
    token: str,
    *,
    name: str | None = None,
    scopes=("system/*.read",),
    lifetime: timedelta = timedelta(minutes=5),
) -> dict:
    """Make ``token`` itself a valid access token of a new client called ``name`` with
    ``scopes`` (real rows: the client and the token's hash), for tests that name their
    token; returns the request headers carrying it. Other tests use ``bearer_token``."""
    client_id, _secret = make_api_client(app, " ".join(scopes), name=name)
    now = utcnow()
    with app.app_context():
        client_pk = db.session.scalar(select(ApiClient.id).where(ApiClient.client_id == client_id))
        db.session.execute(
            insert(ApiToken).values(
                token_hash=clients.hash_secret(token),
                client_id=client_pk,
                scopes=" ".join(scopes),
                issued_at=now,
                expires_at=now + lifetime,
                revoked=False,
            )
        )
        db.session.commit()
    return bearer(token)


ALL_SCOPES = "system/*.read system/*.write"


def token_of(app, scopes=("system/*.read",), name: str = "Test client") -> str:
    """A fresh token with exactly ``scopes`` for the client called ``name`` (registered
    with every scope the first time it is asked for), through the real token endpoint:
    tests that check the audit trail's ``api:<name>`` keep one name for several tokens."""
    # Only the secrets' hashes are stored: the app keeps those of the clients made here.
    known = app.extensions.setdefault("tests.fhir.secrets", {})
    if name not in known:
        known[name] = make_api_client(app, ALL_SCOPES, name=name)
    client_id, secret = known[name]
    return bearer_token(app.test_client(), client_id, secret, scope=" ".join(scopes))


def freeze_clock(monkeypatch, at=None):
    """Hold the clock of the API clients' services still (at second 10 of the current
    minute by default), so a test counting requests in a minute never straddles two."""
    moment = at or utcnow().replace(second=10, microsecond=0)
    monkeypatch.setattr(clients, "utcnow", lambda: moment)
    return moment
