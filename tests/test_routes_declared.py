"""Deny by default: every route declares its permission, and an undeclared one is refused."""

from __future__ import annotations

from portal.auth.permissions import ALL_PERMISSIONS, API_TOKEN, PUBLIC, declared_permission
from tests.support.audit import audit_events

# The only endpoints anyone may reach without signing in.
PUBLIC_ENDPOINTS = {
    "static",
    "auth.sign_in",
    "auth.second_factor",
    "auth.enrol_mfa",
    "main.health",
    "scheduling.calendar_feed",  # a provider's iCalendar feed: the URL's secret token is the key
    "integrations.webhook",  # vendors' pushes: the connector verifies its shared secret
    "fhir.token",  # FHIR API clients' token endpoint: their secret or signed assertion
    "fhir.metadata",  # the FHIR CapabilityStatement: read before a client has a token
    "fhir.smart_discovery",  # SMART's .well-known/smart-configuration: where tokens come from
}
# The FHIR routes a client reaches without a bearer token.
FHIR_PUBLIC = {"fhir.token", "fhir.metadata", "fhir.smart_discovery"}


def test_every_route_declares_a_permission(app):
    undeclared, unexpected_public = [], []
    with app.test_request_context():
        for rule in app.url_map.iter_rules():
            permission = declared_permission(rule.endpoint)
            if permission is None:
                undeclared.append(f"{rule.rule} ({rule.endpoint})")
            elif permission == PUBLIC and rule.endpoint not in PUBLIC_ENDPOINTS:
                unexpected_public.append(f"{rule.rule} ({rule.endpoint})")
            elif permission == API_TOKEN:
                # The FHIR API's routes: a bearer token instead of a session.
                assert rule.rule == "/fhir" or rule.rule.startswith("/fhir/"), rule.rule
            elif permission != PUBLIC:
                assert permission in ALL_PERMISSIONS, rule.endpoint
    assert not undeclared, f"routes that declare no permission: {undeclared}"
    assert not unexpected_public, f"public routes beyond sign-in/health/static: {unexpected_public}"


def test_every_fhir_route_but_the_public_ones_needs_a_bearer_token(app):
    """Under /fhir a session is no credential: each route is ``@fhir_access`` but the
    token endpoint (where clients prove themselves) and what clients read before they have
    a token (the CapabilityStatement, SMART's discovery document)."""
    with app.test_request_context():
        for rule in app.url_map.iter_rules():
            under_fhir = rule.rule == "/fhir" or rule.rule.startswith("/fhir/")
            if under_fhir and rule.endpoint not in FHIR_PUBLIC:
                assert declared_permission(rule.endpoint) == API_TOKEN, rule.endpoint


def test_an_undeclared_route_is_refused(app, signed_in):
    app.add_url_rule("/undeclared", "undeclared", lambda: "should never be seen")
    browser = signed_in("admin")
    response = browser.get("/undeclared")
    assert response.status_code == 403
    assert "should never be seen" not in response.get_data(as_text=True)
    denied = audit_events(app, "access.denied")[-1]
    assert denied.object_id == "undeclared" and denied.username == "admin"
    # Signed out, it sends the browser to sign in (the route's existence is not confirmed).
    anonymous = app.test_client()
    assert anonymous.get("/undeclared").status_code == 302


def test_a_declared_permission_the_role_lacks_is_refused(signed_in):
    assert signed_in("nurse").get("/admin/users").status_code == 403
    assert signed_in("admin").get("/admin/users").status_code == 200


# Ids in URLs: every <int:...> is a row id, bounded to the id columns' range (portal/ids.py).
BEYOND_ANY_ID = ("2147483648", "99999999999999999999999", "9" * 5000, "0")


def _id_routes(app):
    """(method, rule) of every route taking an id, with a method it answers to."""
    for rule in app.url_map.iter_rules():
        if any(type(c).__name__ == "IdConverter" for c in rule._converters.values()):
            yield ("GET" if "GET" in rule.methods else "POST"), rule


def test_every_id_in_a_url_is_bounded_to_the_database_range(app, signed_in):
    """An id no row can have is "not found", on every route: beyond the integer columns'
    range it used to reach the query, where SQLite's driver overflows and PostgreSQL
    answers "integer out of range" (a 500)."""
    admin = signed_in("admin")
    routes = list(_id_routes(app))
    assert len(routes) > 50, "the int converter is the bounded one on every route"
    crashes = {}
    for method, rule in routes:
        for value in BEYOND_ANY_ID:
            path = rule.rule
            for name in rule.arguments:
                path = path.replace(f"<int:{name}>", value)
            response = admin.get(path) if method == "GET" else admin.post_form(path)
            # 405 when another route shares the path with another method (werkzeug's
            # matcher reports the method first): refused before any view runs all the same.
            if response.status_code not in (404, 405):
                crashes[f"{method} {path[:80]}"] = response.status_code
    assert not crashes, crashes
    # The largest id there can be is still an id: the view looks it up, and finds nothing.
    urls = app.url_map.bind("localhost")
    assert urls.match("/chart/encounters/2147483647") == (
        "charting.encounter_page",
        {"encounter_id": 2147483647},
    )
    prescriber = signed_in("prescriber")
    assert prescriber.get("/chart/encounters/2147483647").status_code == 404
    assert prescriber.get("/patients/0002147483647").status_code == 404
