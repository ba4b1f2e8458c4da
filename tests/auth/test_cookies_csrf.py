"""Session cookie attributes, CSRF on every state change, and GETs that change nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from portal.extensions import csrf, db
from tests.auth.helpers import page_text
from tests.support.clients import CSRF_META, PortalClient
from tests.support.database import PASSWORD

STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}
# Tables a GET may write to: the audit trail records views, the session table its visit.
WRITABLE_BY_GET = {"audit_events", "server_sessions"}


def example_url(app, rule) -> str:
    """A concrete URL for a rule: 1 for every id, the first choice of every <any(...)>."""
    values = {}
    for name in rule.arguments:
        choices = getattr(rule._converters[name], "items", None)
        values[name] = sorted(choices)[0] if choices else 1
    with app.test_request_context():
        from flask import url_for

        return url_for(rule.endpoint, **values)


def session_cookie_header(response) -> str:
    headers = [h for h in response.headers.getlist("Set-Cookie") if "portal_session=" in h]
    assert headers, "no session cookie was set"
    return headers[-1]


def test_session_cookie_is_httponly_and_samesite_lax(client):
    header = session_cookie_header(client.get("/auth/sign-in"))
    assert header.startswith("portal_session=")
    assert "HttpOnly" in header
    assert "SameSite=Lax" in header
    assert "Path=/" in header
    assert "Secure" not in header


def test_with_https_the_cookie_is_secure_and_host_prefixed(app):
    app.config["HTTPS"] = True
    client = app.test_client()
    header = session_cookie_header(client.get("/auth/sign-in", base_url="https://localhost"))
    assert header.startswith("__Host-portal_session=")
    assert "; Secure" in header
    assert "HttpOnly" in header
    assert "SameSite=Lax" in header
    assert "Path=/" in header
    assert "Domain=" not in header


def test_https_sign_in_works_end_to_end(app):
    app.config["HTTPS"] = True
    client = app.test_client()
    # Browsers send a same-origin Referer (Referrer-Policy: same-origin); over HTTPS the CSRF
    # check insists on it.
    https = {"base_url": "https://localhost", "headers": {"Referer": "https://localhost/"}}
    page = client.get("/auth/sign-in", **https)
    token = CSRF_META.search(page_text(page)).group(1)
    response = client.post(
        "/auth/sign-in",
        data={"csrf_token": token, "username": "nurse", "password": PASSWORD},
        **https,
    )
    assert response.status_code == 302
    assert client.get_cookie("__Host-portal_session") is not None
    assert client.get_cookie("portal_session") is None
    assert client.get("/", **https).status_code == 200


# Posted by machines, not browsers: no session cookie is used, the sender proves itself
# otherwise (tests/integrations/test_webhooks.py shows a forged one refused).
CSRF_EXEMPT = {"integrations.webhook"}
# The FHIR API (the whole blueprint is exempt): a bearer token in a header, never a cookie,
# authenticates each request, and a cross-site form cannot set that header.
CSRF_EXEMPT_BLUEPRINTS = {"fhir"}


def state_changing_rules(app):
    return [
        rule
        for rule in app.url_map.iter_rules()
        if rule.endpoint not in {"static", *CSRF_EXEMPT}
        and rule.endpoint.partition(".")[0] not in CSRF_EXEMPT_BLUEPRINTS
        and rule.methods & STATE_CHANGING
    ]


def test_only_the_machine_endpoints_skip_the_csrf_check(app):
    def location(view) -> str:  # how Flask-WTF names the views it exempts
        return f"{view.__module__}.{view.__name__}"

    exempt = {
        endpoint
        for endpoint, view in app.view_functions.items()
        if location(view) in csrf._exempt_views
    }
    assert exempt == CSRF_EXEMPT
    exempt_blueprints = {
        name for name, bp in app.blueprints.items() if bp in csrf._exempt_blueprints
    }
    assert exempt_blueprints == CSRF_EXEMPT_BLUEPRINTS


def test_every_state_changing_route_refuses_a_request_without_csrf_token(app, signed_in):
    rules = state_changing_rules(app)
    assert {"auth.sign_in", "auth.sign_out", "auth.account"} <= {r.endpoint for r in rules}
    signed = signed_in("admin", through_the_form=True)
    anonymous = PortalClient(app)
    for rule in rules:
        url = example_url(app, rule)
        for method in sorted(rule.methods & STATE_CHANGING):
            for browser in (signed, anonymous):
                response = browser.client.open(url, method=method, data={"x": "1"})
                assert response.status_code == 400, f"{method} {url}: {response.status_code}"
    # The refused sign-out did not sign anyone out.
    assert signed.get("/").status_code == 200


def test_a_wrong_csrf_token_is_refused_too(signed_in):
    browser = signed_in("nurse", through_the_form=True)
    response = browser.client.post("/auth/sign-out", data={"csrf_token": "forged"})
    assert response.status_code == 400
    assert browser.get("/").status_code == 200


def test_htmx_requests_may_send_the_token_in_a_header(signed_in):
    browser = signed_in("nurse", through_the_form=True)
    without = browser.client.post("/auth/account", headers={"HX-Request": "true"})
    assert without.status_code == 400
    response = browser.htmx_post("/auth/account", {"current_password": ""})
    assert response.status_code == 422  # past the CSRF check: the form itself answered
    assert "current_password-error" in page_text(response)


def snapshot(app) -> dict[str, set]:
    with app.app_context():
        tables = {}
        for table in db.metadata.sorted_tables:
            if table.name in WRITABLE_BY_GET:
                continue
            tables[table.name] = {tuple(row) for row in db.session.execute(select(table))}
        db.session.remove()
        return tables


@pytest.mark.parametrize("role", ["front_desk", "nurse", "prescriber", "admin", None])
def test_no_get_changes_state(app, signed_in, role):
    browser = signed_in(role, through_the_form=True) if role else PortalClient(app)
    get_only = [
        rule
        for rule in app.url_map.iter_rules()
        if rule.methods <= {"GET", "HEAD", "OPTIONS"} and rule.endpoint != "static"
    ]
    assert get_only
    before = snapshot(app)
    for rule in get_only:
        url = example_url(app, rule)
        response = browser.get(url)
        response.close()  # let a streamed export finish before the next request
        assert response.status_code < 500, url
    assert snapshot(app) == before
    if role:  # still signed in: no GET signed the user out either
        assert browser.get("/").status_code == 200
