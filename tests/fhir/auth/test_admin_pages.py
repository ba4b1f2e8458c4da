"""The API clients' pages: registering shows the secret once (never on the list, the
client's page or in the database), disable / enable / a new secret, refusals beside their
field, CSRF, admins only; each change audited."""

from __future__ import annotations

import re

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select

from portal.auth.models import User
from portal.extensions import db
from portal.fhir import clients
from portal.fhir.models import ApiClient
from tests.fhir.support import bearer_token, jwks_of, request_token
from tests.support.audit import audit_events

SECRET = re.compile(r'id="client-secret" type="text" value="([^"]+)"')


def _user_id(app, username: str) -> int:
    with app.app_context():
        return db.session.scalar(select(User.id).where(User.username == username))


def _register(app, admin, **fields):
    data = {
        "name": "Health information exchange",
        "responsible": _user_id(app, "drlee"),
        "scopes": ["system/*.read"],
        "auth_method": "client_secret",
        "rate_limit": "120",
        **fields,
    }
    return admin.post_form("/admin/api-clients/new", data)


def _client_row(app, name: str) -> ApiClient:
    with app.app_context():
        row = db.session.scalars(select(ApiClient).where(ApiClient.name == name)).one()
        db.session.expunge(row)
        return row


def test_the_form_has_labelled_controls(signed_in):
    page = signed_in("admin").get("/admin/api-clients/new").get_data(as_text=True)
    for label in ("Name", "Responsible person", "Public key", "Requests a minute"):
        assert f">{label}" in page
    assert 'type="checkbox" name="scopes"' in page and "system/Patient.read" in page
    assert "Jordan Lee" in page  # a person to choose as responsible


def test_registering_shows_the_secret_once_and_it_works(app, signed_in, client):
    admin = signed_in("admin")
    response = _register(app, admin)
    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "no-store"
    page = response.get_data(as_text=True)
    secret = SECRET.search(page).group(1)
    assert "shown only this once" in page
    row = _client_row(app, "Health information exchange")
    assert row.client_id in page
    assert row.scopes == "system/*.read" and row.rate_limit_per_minute == 120
    assert row.responsible_user_id == _user_id(app, "drlee")
    assert secret not in (row.secret_hash or "")
    # The list and the client's page never show it again.
    listing = admin.get("/admin/api-clients").get_data(as_text=True)
    assert "Health information exchange" in listing and secret not in listing
    detail = admin.get(f"/admin/api-clients/{row.id}").get_data(as_text=True)
    assert row.client_id in detail and secret not in detail
    # And it is the client's real secret.
    assert bearer_token(client, row.client_id, secret)
    registered = audit_events(app, "api_client.registered")[-1]
    assert registered.username == "admin" and registered.object_id == str(row.id)
    assert secret not in (registered.detail or "")


def test_a_private_key_client_is_registered_with_its_jwks(app, signed_in):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    response = _register(
        app,
        signed_in("admin"),
        name="Backend export",
        auth_method="private_key_jwt",
        public_key=jwks_of(key, "k1", "RS384"),
    )
    assert response.status_code == 201
    assert 'id="client-secret"' not in response.get_data(as_text=True)
    row = _client_row(app, "Backend export")
    assert row.auth_method == "private_key_jwt" and row.secret_hash is None


def test_a_private_key_client_is_registered_with_its_jwks_url(app, signed_in):
    admin = signed_in("admin")
    assert ">JWKS URL" in admin.get("/admin/api-clients/new").get_data(as_text=True)
    response = _register(
        app,
        admin,
        name="Published keys",
        auth_method="private_key_jwt",
        jwks_url="https://keys.example.org/.well-known/jwks.json",
    )
    assert response.status_code == 201
    row = _client_row(app, "Published keys")
    assert row.jwks_url == "https://keys.example.org/.well-known/jwks.json"
    assert row.public_key is None
    page = admin.get(f"/admin/api-clients/{row.id}").get_data(as_text=True)
    assert "fetched from <code>https://keys.example.org/.well-known/jwks.json</code>" in page


@pytest.mark.parametrize(
    ("fields", "field_id", "message"),
    [
        ({"scopes": []}, "scopes-error", "at least one scope"),
        ({"name": ""}, "name-error", "required"),
        ({"responsible": "0"}, "responsible-error", "person responsible"),
        (
            {"auth_method": "private_key_jwt", "public_key": "not a key"},
            "public_key-error",
            "neither a JWKS nor a PEM",
        ),
        ({"auth_method": "private_key_jwt", "public_key": ""}, "public_key-error", "Paste"),
        ({"rate_limit": "0"}, "rate_limit-error", "between"),
        (
            {"auth_method": "private_key_jwt", "jwks_url": "http://keys.example.org/jwks"},
            "jwks_url-error",
            "https://",
        ),
    ],
)
def test_refusals_go_beside_their_field_and_keep_what_was_typed(
    app, signed_in, fields, field_id, message
):
    response = _register(app, signed_in("admin"), name=fields.pop("name", "Typed name"), **fields)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert f'id="{field_id}"' in page and message in page
    with app.app_context():
        assert db.session.scalar(select(ApiClient.id)) is None


def test_a_second_client_of_the_same_name_is_refused(app, signed_in):
    admin = signed_in("admin")
    assert _register(app, admin).status_code == 201
    again = _register(app, admin)
    assert again.status_code == 409
    assert "Another client has that name" in again.get_data(as_text=True)


def test_disable_and_enable_from_the_clients_page(app, signed_in, client):
    admin = signed_in("admin")
    secret = SECRET.search(_register(app, admin).get_data(as_text=True)).group(1)
    row = _client_row(app, "Health information exchange")
    response = admin.post_form(f"/admin/api-clients/{row.id}/disable")
    assert response.status_code == 302
    assert "is disabled" in admin.get(response.location).get_data(as_text=True)
    assert request_token(client, row.client_id, secret).status_code == 401
    assert admin.post_form(f"/admin/api-clients/{row.id}/enable").status_code == 302
    assert request_token(client, row.client_id, secret).status_code == 200
    actions = [
        event.action for event in audit_events(app) if event.action.startswith("api_client.")
    ]
    assert actions == ["api_client.registered", "api_client.disabled", "api_client.enabled"]


def test_a_new_secret_is_shown_once_and_the_old_one_stops(app, signed_in, client):
    admin = signed_in("admin")
    old = SECRET.search(_register(app, admin).get_data(as_text=True)).group(1)
    row = _client_row(app, "Health information exchange")
    response = admin.post_form(f"/admin/api-clients/{row.id}/rotate")
    assert response.status_code == 200
    new = SECRET.search(response.get_data(as_text=True)).group(1)
    assert new != old
    assert request_token(client, row.client_id, old).status_code == 401
    assert request_token(client, row.client_id, new).status_code == 200
    assert audit_events(app, "api_client.secret_rotated")[-1].object_id == str(row.id)


def test_changes_need_the_csrf_token(app, signed_in):
    admin = signed_in("admin")
    assert _register(app, admin).status_code == 201
    row = _client_row(app, "Health information exchange")
    for path in (
        f"/admin/api-clients/{row.id}/disable",
        f"/admin/api-clients/{row.id}/rotate",
        "/admin/api-clients/new",
    ):
        assert admin.client.post(path, data={"name": "x"}).status_code == 400, path
    assert _client_row(app, "Health information exchange").enabled


def test_only_admins_manage_clients(signed_in):
    for role in ("nurse", "prescriber", "front_desk"):
        assert signed_in(role).get("/admin/api-clients").status_code == 403
    assert "API clients" in signed_in("admin").get("/").get_data(as_text=True)
    assert "API clients" not in signed_in("nurse").get("/").get_data(as_text=True)


def test_the_clients_page_changes_its_settings_and_new_scopes_end_its_tokens(
    app, signed_in, client
):
    admin = signed_in("admin")
    secret = SECRET.search(_register(app, admin).get_data(as_text=True)).group(1)
    row = _client_row(app, "Health information exchange")
    token = bearer_token(client, row.client_id, secret)
    page = admin.get(f"/admin/api-clients/{row.id}").get_data(as_text=True)
    assert 'value="system/*.read" checked' in page and 'value="120"' in page
    response = admin.post_form(
        f"/admin/api-clients/{row.id}",
        {
            "responsible": _user_id(app, "nurse"),
            "scopes": ["system/Patient.read"],
            "rate_limit": "60",
        },
    )
    assert response.status_code == 302
    changed = _client_row(app, "Health information exchange")
    assert changed.scopes == "system/Patient.read" and changed.rate_limit_per_minute == 60
    assert changed.responsible_user_id == _user_id(app, "nurse")
    event = audit_events(app, "api_client.changed")[-1]
    assert event.detail == "responsible, scopes, rate limit; scopes system/Patient.read"
    with app.app_context():
        assert clients.caller_of_token(token, None) is None  # revoked with the old scopes
    assert request_token(client, row.client_id, secret).get_json()["scope"] == (
        "system/Patient.read"
    )


def test_a_private_key_clients_key_is_replaced_and_a_bad_one_refused(app, signed_in):
    admin = signed_in("admin")
    first = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    second = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _register(
        app,
        admin,
        name="Backend export",
        auth_method="private_key_jwt",
        public_key=jwks_of(first, "k1", "RS384"),
    )
    row = _client_row(app, "Backend export")
    settings = {"responsible": row.responsible_user_id, "scopes": ["system/*.read"]}
    refused = admin.post_form(f"/admin/api-clients/{row.id}", {**settings, "public_key": "{}"})
    assert refused.status_code == 422
    assert 'id="public_key-error"' in refused.get_data(as_text=True)
    new_key = jwks_of(second, "k2", "RS384")
    kept = admin.post_form(f"/admin/api-clients/{row.id}", {**settings, "public_key": ""})
    assert kept.status_code == 302 and _client_row(app, "Backend export").public_key != new_key
    replaced = admin.post_form(f"/admin/api-clients/{row.id}", {**settings, "public_key": new_key})
    assert replaced.status_code == 302
    assert _client_row(app, "Backend export").public_key == new_key
    assert audit_events(app, "api_client.changed")[-1].detail == "public key"


def test_a_clients_name_is_shown_as_text(app, signed_in):
    admin = signed_in("admin")
    name = '<img src=x onerror="alert(1)">'
    assert _register(app, admin, name=name).status_code == 201
    listing = admin.get("/admin/api-clients").get_data(as_text=True)
    assert name not in listing
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in listing
    assert audit_events(app, "api_client.registered")[-1].username == "admin"


def test_a_responsible_person_who_left_is_pointed_out(app, signed_in):
    admin = signed_in("admin")
    assert _register(app, admin).status_code == 201
    with app.app_context():
        db.session.execute(db.update(User).where(User.username == "drlee").values(is_enabled=False))
        db.session.commit()
    listing = admin.get("/admin/api-clients").get_data(as_text=True)
    assert "account disabled: name someone else" in listing
