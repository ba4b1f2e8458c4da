"""``fhir_access`` on tiny routes added to the test app: no token, a wrong, expired or
revoked token, a disabled client (stopped at once), scopes that fall short (audited), the
rate limit; a session is no credential and no CSRF token is asked for."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import g, jsonify
from sqlalchemy import update

from portal.extensions import csrf, db
from portal.fhir import clients
from portal.fhir.access import fhir_access, scope_refusal
from portal.fhir.models import ApiClient, ApiClientUsage, ApiToken
from portal.timeutil import utcnow
from tests.fhir.support import (
    bearer,
    bearer_token,
    freeze_clock,
    install_token,
    make_api_client,
    request_token,
    token_of,
)
from tests.support.audit import audit_events
from tests.support.clients import actor_of


def _who():
    caller = g.fhir_client
    return jsonify(id=caller.id, name=caller.name, scopes=list(caller.scopes))


@pytest.fixture
def api(app):
    """The app with three routes guarded the three ways the API uses."""
    app.add_url_rule(
        "/fhir-test/Patient", "fhir_test_patient", fhir_access("Patient")(_who), methods=["GET"]
    )
    app.add_url_rule(
        "/fhir-test/import",
        "fhir_test_import",
        fhir_access("Patient", write=True)(lambda: _who()),
        methods=["POST"],
    )
    app.add_url_rule("/fhir-test/any", "fhir_test_any", fhir_access(None)(lambda: _who()))
    app.add_url_rule(
        "/fhir-test/bundle",
        "fhir_test_bundle",
        fhir_access(None, write=True)(lambda: scope_refusal("Condition", write=True) or _who()),
        methods=["POST"],
    )
    app.add_url_rule(
        "/fhir-test/typed/<resource_type>",
        "fhir_test_typed",
        fhir_access("<resource_type>")(lambda resource_type: _who()),
    )
    app.add_url_rule(
        "/fhir-test/include/<included>",
        "fhir_test_include",
        fhir_access("Patient")(lambda included: scope_refusal(included) or _who()),
    )
    # Outside the /fhir blueprint, which create_app exempts from CSRF as a whole (a bearer
    # token is the credential): the test routes are exempted the same way.
    for endpoint in ("fhir_test_import", "fhir_test_bundle"):
        csrf.exempt(app.view_functions[endpoint])
    return app


def _outcome(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/fhir+json"
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == code
    return body


def _pk(app, client_id: str) -> int:
    with app.app_context():
        return db.session.scalar(db.select(ApiClient.id).where(ApiClient.client_id == client_id))


def test_a_valid_token_reaches_the_view_as_its_client(api, client):
    client_id, secret = make_api_client(api, "system/Patient.read", name="Reader")
    token = bearer_token(client, client_id, secret)
    response = client.get("/fhir-test/Patient", headers=bearer(token))
    assert response.status_code == 200
    assert response.get_json() == {
        "id": str(_pk(api, client_id)),
        "name": "Reader",
        "scopes": ["system/Patient.read"],
    }


def test_without_a_token_it_is_401_with_a_bearer_challenge(api, client):
    response = client.get("/fhir-test/Patient")
    _outcome(response, 401, "login")
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="fhir"'
    basic = client.get("/fhir-test/Patient", headers={"Authorization": "Basic abc"})
    _outcome(basic, 401, "login")


def test_an_unknown_token_is_invalid_token(api, client):
    response = client.get("/fhir-test/Patient", headers=bearer("made-up"))
    _outcome(response, 401, "login")
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_an_expired_token_stops(api, client):
    client_id, secret = make_api_client(api)
    token = bearer_token(client, client_id, secret)
    assert client.get("/fhir-test/any", headers=bearer(token)).status_code == 200
    with api.app_context():
        db.session.execute(update(ApiToken).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    _outcome(client.get("/fhir-test/any", headers=bearer(token)), 401, "login")


def test_a_disabled_client_stops_at_once_and_gets_no_new_token(api, client):
    client_id, secret = make_api_client(api)
    token = bearer_token(client, client_id, secret)
    assert client.get("/fhir-test/any", headers=bearer(token)).status_code == 200
    with api.test_request_context():
        clients.set_enabled(actor_of("admin"), _pk(api, client_id), False)
    _outcome(client.get("/fhir-test/any", headers=bearer(token)), 401, "login")
    assert request_token(client, client_id, secret).status_code == 401
    # Enabled again, it needs a new token: the old one was revoked with the disabling.
    with api.test_request_context():
        clients.set_enabled(actor_of("admin"), _pk(api, client_id), True)
    _outcome(client.get("/fhir-test/any", headers=bearer(token)), 401, "login")
    fresh = bearer_token(client, client_id, secret)
    assert client.get("/fhir-test/any", headers=bearer(fresh)).status_code == 200


def test_the_client_is_checked_at_every_request_not_only_through_its_tokens(api, client):
    """Disabled behind the service's back (a database change), the token stops all the
    same: each request joins the token to its client."""
    client_id, secret = make_api_client(api)
    token = bearer_token(client, client_id, secret)
    with api.app_context():
        db.session.execute(update(ApiClient).values(enabled=False))
        db.session.commit()
    _outcome(client.get("/fhir-test/any", headers=bearer(token)), 401, "login")


def test_a_new_secret_revokes_the_tokens_given_with_the_old_one(api, client):
    client_id, secret = make_api_client(api)
    token = bearer_token(client, client_id, secret)
    with api.test_request_context():
        new_secret = clients.rotate_secret(actor_of("admin"), _pk(api, client_id))
    _outcome(client.get("/fhir-test/any", headers=bearer(token)), 401, "login")
    assert request_token(client, client_id, secret).status_code == 401
    assert (
        client.get(
            "/fhir-test/any", headers=bearer(bearer_token(client, client_id, new_secret))
        ).status_code
        == 200
    )


def test_a_scope_that_does_not_cover_the_resource_is_403_and_audited(api, client):
    client_id, secret = make_api_client(api, "system/Observation.read", name="Vitals feed")
    token = bearer_token(client, client_id, secret)
    response = client.get("/fhir-test/Patient", headers=bearer(token))
    _outcome(response, 403, "forbidden")
    challenge = response.headers["WWW-Authenticate"]
    assert 'error="insufficient_scope"' in challenge and "system/Patient.read" in challenge
    denied = audit_events(api, "access.denied")[-1]
    assert denied.username == "api:Vitals feed" and denied.outcome == "denied"
    assert denied.object_id == "fhir_test_patient"
    # Any valid token will do where the route names no type.
    assert client.get("/fhir-test/any", headers=bearer(token)).status_code == 200


def test_a_token_narrower_than_its_client_is_limited_to_its_own_scopes(api, client):
    client_id, secret = make_api_client(api, "system/*.read")
    token = bearer_token(client, client_id, secret, scope="system/Observation.read")
    _outcome(client.get("/fhir-test/Patient", headers=bearer(token)), 403, "forbidden")


def test_writing_needs_a_write_scope(api, client):
    reader_id, reader_secret = make_api_client(api, "system/*.read")
    reader = bearer_token(client, reader_id, reader_secret)
    _outcome(client.post("/fhir-test/import", headers=bearer(reader)), 403, "forbidden")
    writer_id, writer_secret = make_api_client(api, "system/*.read system/*.write")
    writer = bearer_token(client, writer_id, writer_secret)
    # No CSRF token: a bearer token is no ambient credential, so none is asked for.
    assert client.post("/fhir-test/import", headers=bearer(writer)).status_code == 200


def test_smart_v2_scopes_read_and_write_alike(api, client):
    client_id, secret = make_api_client(api, "system/Patient.rs system/Patient.c")
    token = bearer_token(client, client_id, secret)
    assert client.get("/fhir-test/Patient", headers=bearer(token)).status_code == 200
    assert client.post("/fhir-test/import", headers=bearer(token)).status_code == 200


def test_over_the_rate_limit_it_is_429_with_retry_after(api, client, monkeypatch):
    freeze_clock(monkeypatch)
    client_id, secret = make_api_client(api, rate_limit=3)
    token = bearer_token(client, client_id, secret)  # the token request counts too
    for _ in range(2):
        assert client.get("/fhir-test/any", headers=bearer(token)).status_code == 200
    response = client.get("/fhir-test/any", headers=bearer(token))
    _outcome(response, 429, "throttled")
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    # Another client has its own count.
    other_id, other_secret = make_api_client(api, rate_limit=3)
    other = bearer_token(client, other_id, other_secret)
    assert client.get("/fhir-test/any", headers=bearer(other)).status_code == 200


def test_the_count_starts_again_each_minute(api):
    client_id, _secret = make_api_client(api, rate_limit=2)
    with api.test_request_context():
        caller = clients.Caller(
            pk=_pk(api, client_id),
            client_id=client_id,
            name="x",
            scopes=(),
            rate_limit_per_minute=2,
        )
        minute = utcnow().replace(second=10, microsecond=0)
        assert clients.count_request(caller, minute) is None
        assert clients.count_request(caller, minute + timedelta(seconds=5)) is None
        assert clients.count_request(caller, minute + timedelta(seconds=20)) == 30
        assert clients.count_request(caller, minute + timedelta(seconds=60)) is None


def test_a_signed_in_session_is_no_credential(api, signed_in):
    nurse = signed_in("nurse")
    _outcome(nurse.get("/fhir-test/any"), 401, "login")


def test_a_client_without_a_usage_row_is_counted_from_its_first_request(api, client, monkeypatch):
    freeze_clock(monkeypatch)
    """A client row made by hand (a fixture, a restore) gets its counter when first used."""
    client_id, secret = make_api_client(api, rate_limit=1)
    token = bearer_token(client, client_id, secret)
    with api.app_context():
        db.session.execute(db.delete(ApiClientUsage))
        db.session.commit()
    assert client.get("/fhir-test/any", headers=bearer(token)).status_code == 200
    _outcome(client.get("/fhir-test/any", headers=bearer(token)), 429, "throttled")


def test_one_route_for_every_type_checks_the_type_in_its_url(api, client):
    client_id, secret = make_api_client(api, "system/Patient.read")
    token = bearer_token(client, client_id, secret)
    assert client.get("/fhir-test/typed/Patient", headers=bearer(token)).status_code == 200
    _outcome(client.get("/fhir-test/typed/Observation", headers=bearer(token)), 403, "forbidden")
    assert audit_events(api, "access.denied")[-1].detail == "needs scope system/Observation.read"


def test_a_view_checks_the_types_it_reaches_beyond_its_own(api, client):
    client_id, secret = make_api_client(api, "system/Patient.read system/Encounter.read")
    token = bearer_token(client, client_id, secret)
    assert client.get("/fhir-test/include/Encounter", headers=bearer(token)).status_code == 200
    refused = client.get("/fhir-test/include/Condition", headers=bearer(token))
    _outcome(refused, 403, "forbidden")
    assert "system/Condition.read" in refused.headers["WWW-Authenticate"]


def test_a_bundle_route_needs_some_write_scope_then_checks_each_type(api, client):
    reader_id, reader_secret = make_api_client(api, "system/*.read")
    reader = bearer_token(client, reader_id, reader_secret)
    refused = client.post("/fhir-test/bundle", headers=bearer(reader))
    _outcome(refused, 403, "forbidden")
    assert 'scope="system/*.write"' in refused.headers["WWW-Authenticate"]
    patients_id, patients_secret = make_api_client(api, "system/Patient.write")
    patients = bearer_token(client, patients_id, patients_secret)
    _outcome(client.post("/fhir-test/bundle", headers=bearer(patients)), 403, "forbidden")
    writer_id, writer_secret = make_api_client(api, "system/*.write")
    writer = bearer_token(client, writer_id, writer_secret)
    assert client.post("/fhir-test/bundle", headers=bearer(writer)).status_code == 200


def test_a_test_may_name_its_own_token(api, client):
    headers = install_token(api, "a-token-of-my-own", name="Named", scopes=["system/*.read"])
    response = client.get("/fhir-test/Patient", headers=headers)
    assert response.status_code == 200 and response.get_json()["name"] == "Named"


def test_one_named_client_gives_tokens_of_different_scopes(api, client):
    wide = token_of(api, ["system/*.read"], name="Shared")
    narrow = token_of(api, ["system/Observation.read"], name="Shared")
    assert client.get("/fhir-test/Patient", headers=bearer(wide)).status_code == 200
    _outcome(client.get("/fhir-test/Patient", headers=bearer(narrow)), 403, "forbidden")


def test_a_type_in_the_url_never_reaches_a_header_as_typed(api, client):
    client_id, secret = make_api_client(api, "system/Patient.read")
    token = bearer_token(client, client_id, secret)
    for hostile in ('Pat"ient', "Patient%0d%0aSet-Cookie:%20x=1", "Patient%22,%20x=%22"):
        response = client.get(f"/fhir-test/typed/{hostile}", headers=bearer(token))
        _outcome(response, 403, "forbidden")
        assert response.headers["WWW-Authenticate"].endswith('scope="system/Unknown.read"')
        assert "Set-Cookie" not in response.headers
