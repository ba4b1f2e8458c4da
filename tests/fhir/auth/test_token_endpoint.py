"""The token endpoint: client credentials by HTTP Basic, by form, by a signed assertion
(RS384 and ES384); every refusal an OAuth error with its status; scopes narrowed to the
client's; issued and refused tokens in the audit trail."""

from __future__ import annotations

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sqlalchemy import select

from portal.extensions import db
from portal.fhir.models import ApiToken
from tests.fhir.support import (
    FORM,
    TOKEN_PATH,
    assertion_form,
    basic_auth,
    client_assertion,
    freeze_clock,
    jwks_of,
    make_api_client,
    request_token,
)
from tests.support.audit import audit_events


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key():
    return ec.generate_private_key(ec.SECP384R1())


def _pem(private_key) -> str:
    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _refused(response, status: int, error: str) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.get_json()["error"] == error
    assert response.headers["Cache-Control"] == "no-store"


def test_http_basic_gets_a_bearer_token_for_the_allowed_scopes(app, client):
    client_id, secret = make_api_client(app, "system/*.read", name="Registry sync")
    response = request_token(client, client_id, secret)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 300
    assert body["scope"] == "system/*.read"
    assert len(body["access_token"]) >= 40
    with app.app_context():
        stored = db.session.scalars(select(ApiToken)).one()
        assert stored.token_hash != body["access_token"]  # only its hash is kept
        lifetime = stored.expires_at - stored.issued_at
        assert lifetime.total_seconds() == 300
    issued = audit_events(app, "fhir.token_issued")
    assert [event.username for event in issued] == ["api:Registry sync"]


def test_form_credentials_get_a_token(app, client):
    client_id, secret = make_api_client(app)
    response = client.post(
        TOKEN_PATH,
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": secret,
        },
    )
    assert response.status_code == 200
    assert response.get_json()["token_type"] == "bearer"


def test_a_wrong_secret_is_invalid_client_and_audited(app, client):
    client_id, _secret = make_api_client(app, name="Lab bridge")
    response = request_token(client, client_id, "not-the-secret")
    _refused(response, 401, "invalid_client")
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    refused = audit_events(app, "fhir.token_refused")[-1]
    assert refused.username == "api:Lab bridge" and refused.outcome == "denied"
    assert "wrong secret" in refused.detail and "not-the-secret" not in refused.detail


def test_an_unknown_client_is_invalid_client(app, client):
    _refused(request_token(client, "nobody", "whatever"), 401, "invalid_client")
    assert audit_events(app, "fhir.token_refused")[-1].username == "anonymous"


def test_unreadable_basic_credentials_are_invalid_client(client):
    response = client.post(
        TOKEN_PATH,
        data={"grant_type": "client_credentials"},
        headers={"Authorization": "Basic !!!not-base64"},
    )
    _refused(response, 401, "invalid_client")


def test_no_credentials_at_all_is_invalid_client(client):
    _refused(
        client.post(TOKEN_PATH, data={"grant_type": "client_credentials"}), 401, "invalid_client"
    )


def test_other_grant_types_are_unsupported(app, client):
    client_id, secret = make_api_client(app)
    response = client.post(
        TOKEN_PATH, data={"grant_type": "password"}, headers=basic_auth(client_id, secret)
    )
    _refused(response, 400, "unsupported_grant_type")


def test_two_ways_of_authenticating_at_once_are_refused(app, client):
    client_id, secret = make_api_client(app)
    response = client.post(
        TOKEN_PATH,
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
        headers=basic_auth(client_id, secret),
    )
    _refused(response, 400, "invalid_request")


def test_json_instead_of_a_form_is_refused(app, client):
    client_id, secret = make_api_client(app)
    response = client.post(
        TOKEN_PATH, json={"grant_type": "client_credentials"}, headers=basic_auth(client_id, secret)
    )
    _refused(response, 400, "invalid_request")


# --- scopes --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("asked", "granted"),
    [
        (None, "system/Observation.read system/Patient.read"),
        ("system/*.read", "system/Observation.read system/Patient.read"),
        ("system/Patient.read", "system/Patient.read"),
        ("system/Patient.rs", "system/Patient.rs"),  # SMART v2 spelling, kept
        ("system/Patient.read system/Condition.read", "system/Patient.read"),
        ("system/Patient.*", "system/Patient.read"),
    ],
)
def test_asked_scopes_are_narrowed_to_the_allowed_ones(app, client, asked, granted):
    client_id, secret = make_api_client(app, "system/Patient.read system/Observation.read")
    response = request_token(client, client_id, secret, asked)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["scope"] == granted


@pytest.mark.parametrize(
    "asked",
    ["system/Condition.read", "system/*.write", "patient/*.read", "user/Patient.read", "openid"],
)
def test_scopes_outside_the_allowed_ones_are_invalid_scope(app, client, asked):
    client_id, secret = make_api_client(app, "system/Patient.read")
    _refused(request_token(client, client_id, secret, asked), 400, "invalid_scope")


def test_a_wildcard_client_gets_what_it_asks_for(app, client):
    client_id, secret = make_api_client(app, "system/*.read system/*.write")
    response = request_token(client, client_id, secret, "system/Patient.read system/*.write")
    assert response.get_json()["scope"] == "system/*.write system/Patient.read"


# --- private-key JWT (SMART Backend Services) ----------------------------------------------


def _key_client(app, key, algorithm, *, jwks=True):
    public = jwks_of(key, "key-1", algorithm) if jwks else _pem(key)
    client_id, secret = make_api_client(
        app, "system/*.read", "private_key_jwt", public_key=public, name="Backend"
    )
    assert secret is None
    return client_id


@pytest.mark.parametrize(("algorithm", "jwks"), [("RS384", True), ("ES384", False)])
def test_a_signed_assertion_gets_a_token(app, client, rsa_key, ec_key, algorithm, jwks):
    key = rsa_key if algorithm == "RS384" else ec_key
    client_id = _key_client(app, key, algorithm, jwks=jwks)
    assertion = client_assertion(key, client_id, algorithm, kid="key-1" if jwks else None)
    response = client.post(TOKEN_PATH, data=assertion_form(assertion, "system/Patient.read"))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["scope"] == "system/Patient.read"
    assert audit_events(app, "fhir.token_issued")[-1].username == "api:Backend"


def test_a_replayed_assertion_is_refused(app, client, rsa_key):
    client_id = _key_client(app, rsa_key, "RS384")
    assertion = client_assertion(rsa_key, client_id, kid="key-1")
    assert client.post(TOKEN_PATH, data=assertion_form(assertion)).status_code == 200
    replay = client.post(TOKEN_PATH, data=assertion_form(assertion))
    _refused(replay, 401, "invalid_client")
    assert "jti" in replay.get_json()["error_description"]
    # A new jti is a new assertion.
    fresh = client_assertion(rsa_key, client_id, kid="key-1")
    assert client.post(TOKEN_PATH, data=assertion_form(fresh)).status_code == 200


@pytest.mark.parametrize(
    ("problem", "options"),
    [
        ("audience", {"audience": "https://elsewhere.example/token"}),
        ("expired", {"lifetime": -120}),
        ("lifetime", {"lifetime": 3600}),
        ("sub", {"subject": "someone-else"}),
    ],
)
def test_assertions_with_bad_claims_are_refused(app, client, rsa_key, problem, options):
    client_id = _key_client(app, rsa_key, "RS384")
    assertion = client_assertion(rsa_key, client_id, kid="key-1", **options)
    _refused(client.post(TOKEN_PATH, data=assertion_form(assertion)), 401, "invalid_client")
    refused = audit_events(app, "fhir.token_refused")[-1]
    assert refused.detail == f"invalid_client: {problem}"
    assert refused.username == "api:Backend"


def test_an_assertion_signed_by_another_key_is_refused(app, client, rsa_key):
    client_id = _key_client(app, rsa_key, "RS384")
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assertion = client_assertion(stranger, client_id, kid="key-1")
    _refused(client.post(TOKEN_PATH, data=assertion_form(assertion)), 401, "invalid_client")
    assert audit_events(app, "fhir.token_refused")[-1].detail == "invalid_client: signature"


def test_weaker_or_symmetric_algorithms_are_refused(app, client, rsa_key):
    client_id = _key_client(app, rsa_key, "RS384")
    rs256 = client_assertion(rsa_key, client_id, "RS256", kid="key-1")
    _refused(client.post(TOKEN_PATH, data=assertion_form(rs256)), 401, "invalid_client")
    hs256 = client_assertion("a-shared-secret-a-shared-secret!", client_id, "HS256")
    _refused(client.post(TOKEN_PATH, data=assertion_form(hs256)), 401, "invalid_client")


def test_a_garbled_assertion_is_refused(client):
    _refused(client.post(TOKEN_PATH, data=assertion_form("not.a.jwt")), 401, "invalid_client")


def test_the_wrong_assertion_type_is_invalid_request(app, client, rsa_key):
    client_id = _key_client(app, rsa_key, "RS384")
    data = assertion_form(client_assertion(rsa_key, client_id, kid="key-1"))
    data["client_assertion_type"] = "urn:something:else"
    _refused(client.post(TOKEN_PATH, data=data), 400, "invalid_request")


def test_each_client_proves_itself_only_its_own_way(app, client, rsa_key):
    key_client = _key_client(app, rsa_key, "RS384")
    _refused(request_token(client, key_client, "guess"), 401, "invalid_client")
    secret_client, _secret = make_api_client(app)
    assertion = client_assertion(rsa_key, secret_client)
    _refused(client.post(TOKEN_PATH, data=assertion_form(assertion)), 401, "invalid_client")


def test_the_token_endpoint_needs_no_csrf_token_or_session(app, client):
    client_id, secret = make_api_client(app)
    response = client.post(
        TOKEN_PATH,
        data=f"grant_type=client_credentials&client_id={client_id}&client_secret={secret}",
        content_type=FORM,
    )
    assert response.status_code == 200


def test_over_real_http_the_audience_is_the_url_the_client_used(app, live_server, rsa_key):
    """A live server on its own port: the assertion names the URL the client posts to, and
    the token it gets opens a guarded route."""
    client_id = _key_client(app, rsa_key, "RS384")
    token_url = live_server + TOKEN_PATH
    assertion = client_assertion(rsa_key, client_id, kid="key-1", audience=token_url)
    response = requests.post(token_url, data=assertion_form(assertion), timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    # The test client's host ("localhost") is another audience: refused over real HTTP.
    elsewhere = client_assertion(rsa_key, client_id, kid="key-1")
    refused = requests.post(token_url, data=assertion_form(elsewhere), timeout=10)
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"


def test_a_configured_token_url_is_the_audience_behind_a_proxy(app, client, rsa_key):
    app.config["FHIR_TOKEN_URL"] = "https://portal.example/fhir/auth/token"
    client_id = _key_client(app, rsa_key, "RS384")
    proxied = client_assertion(
        rsa_key, client_id, kid="key-1", audience="https://portal.example/fhir/auth/token"
    )
    assert client.post(TOKEN_PATH, data=assertion_form(proxied)).status_code == 200
    direct = client_assertion(rsa_key, client_id, kid="key-1")
    _refused(client.post(TOKEN_PATH, data=assertion_form(direct)), 401, "invalid_client")


def test_token_requests_count_against_the_clients_limit(app, client, monkeypatch):
    freeze_clock(monkeypatch)
    client_id, secret = make_api_client(app, rate_limit=2)
    for _ in range(2):
        assert request_token(client, client_id, secret).status_code == 200
    throttled = request_token(client, client_id, secret)
    _refused(throttled, 429, "invalid_request")
    assert throttled.headers["Retry-After"] == "50"
    assert len(audit_events(app, "fhir.token_issued")) == 2
    assert audit_events(app, "fhir.token_refused") == []  # a loop does not fill the trail
    with app.app_context():
        assert len(db.session.scalars(select(ApiToken)).all()) == 2
