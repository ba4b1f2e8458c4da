"""Deny by default: every route declares its permission, and an undeclared one is refused."""

from __future__ import annotations

from portal.auth.permissions import ALL_PERMISSIONS, PUBLIC, declared_permission
from tests.auth.conftest import audit_events

# The only endpoints anyone may reach without signing in.
PUBLIC_ENDPOINTS = {
    "static",
    "auth.sign_in",
    "auth.second_factor",
    "auth.enrol_mfa",
    "main.health",
    "scheduling.calendar_feed",  # a provider's iCalendar feed: the URL's secret token is the key
}


def test_every_route_declares_a_permission(app):
    undeclared, unexpected_public = [], []
    with app.test_request_context():
        for rule in app.url_map.iter_rules():
            permission = declared_permission(rule.endpoint)
            if permission is None:
                undeclared.append(f"{rule.rule} ({rule.endpoint})")
            elif permission == PUBLIC and rule.endpoint not in PUBLIC_ENDPOINTS:
                unexpected_public.append(f"{rule.rule} ({rule.endpoint})")
            elif permission != PUBLIC:
                assert permission in ALL_PERMISSIONS, rule.endpoint
    assert not undeclared, f"routes that declare no permission: {undeclared}"
    assert not unexpected_public, f"public routes beyond sign-in/health/static: {unexpected_public}"


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
