"""Roles -> permissions, in one table; and the decorators every route must carry.

Deny by default: ``enforce_declared_permission`` (a before_request hook) refuses any endpoint
whose view declares neither ``@require(...)`` nor ``@public``. A new domain adds its permissions
to ``ROLE_PERMISSIONS``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from flask import abort, current_app, request
from flask_login import current_user

from portal.actors import Actor
from portal.audit.services import record_denied

# The one table. A permission not listed for any role is granted to nobody.
ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    # schedule.overbook: booking over another appointment on purpose (always audited).
    "front_desk": frozenset(
        {
            "patients.read",
            "patients.write",
            "account.self",
            "schedule.read",
            "schedule.write",
            "schedule.overbook",
        }
    ),
    # chart.read/chart.write: the clinical record (notes, vitals, lists). chart.sign_nursing:
    # sign one's own nursing notes. chart.sign: sign provider notes and co-sign (prescribers).
    "nurse": frozenset(
        {
            "patients.read",
            "patients.write",
            "account.self",
            "schedule.read",
            "schedule.write",
            "chart.read",
            "chart.write",
            "chart.sign_nursing",
            # The unmatched lab results queue: compare and attach to a patient (audited).
            "labs.match",
        }
    ),
    "prescriber": frozenset(
        {
            "patients.read",
            "patients.write",
            "account.self",
            "schedule.read",
            "schedule.write",
            "schedule.overbook",
            "chart.read",
            "chart.write",
            "chart.sign",
            "chart.sign_nursing",
            # Prescribing through the e-prescribing connector (the vendor's screen, queues).
            "prescriptions.write",
            # Prescriptions composed in the portal's own screens: drafts, favourites, renewals.
            "rx.compose",
            # Signing a prescription composed in the portal (a fresh second factor each time;
            # a controlled substance also needs an EPCS grant and the password).
            "rx.sign",
            # EPCS logical access control (21 CFR 1311.125): the second person of a grant or
            # revoke of controlled-substance signing is a DEA registrant; portal/auth/epcs.py
            # checks the approver holds a DEA number and is independent of the proposer.
            "epcs.approve",
            # Lab results (issue 12): sign off results of one's orders and the shared pool.
            "labs.review",
            # The unmatched lab results queue: compare and attach to a patient (audited).
            "labs.match",
            # Lab orders: drafts, signing (the send in the outbox), cancelling.
            "labs.order",
        }
    ),
    # Least privilege: an administrator manages the system, not patients' records. A person
    # who does both holds two roles.
    "admin": frozenset(
        {
            "account.self",
            "audit.read",
            "users.manage",
            "clinic.manage",
            "schedule.manage",
            "chart.manage",  # note templates and clinic-wide snippets: no patient data
            # The integrations console: connector settings, health, the message log
            # (statuses and ids, never payloads), replays, vendors' clinician ids.
            "integrations.manage",
            # FHIR API clients: register, disable, rotate secrets (no patient data).
            "api_clients.manage",
        }
    ),
}

ALL_PERMISSIONS = frozenset().union(*ROLE_PERMISSIONS.values())

# Endpoints that need no permission: sign-in, static files, the health check.
PUBLIC = "public"
# Endpoints of the FHIR API: no session; a bearer token, checked by the view's own
# decorator (``portal.fhir.access.fhir_access``), which also answers its refusals.
API_TOKEN = "api token"  # noqa: S105  (a marker, not a secret)


@cache
def _permissions_for(roles: tuple[str, ...]) -> frozenset[str]:
    return frozenset().union(*(ROLE_PERMISSIONS.get(role, frozenset()) for role in roles))


def permissions_for_roles(roles) -> frozenset[str]:
    """Every permission granted by any of ``roles``."""
    return _permissions_for(tuple(sorted(roles)))


def permissions_of_current_user() -> frozenset[str]:
    """The signed-in user's permissions (none when nobody is signed in)."""
    if not current_user.is_authenticated:
        return frozenset()
    return permissions_for_roles(current_user.roles)


def template_globals() -> dict:
    """``can("chart.write")`` in templates: whether the signed-in user has a permission."""
    permissions = permissions_of_current_user()
    return {"can": lambda permission: permission in permissions}


def require(permission: str) -> Callable:
    """Declare the permission a view needs (checked before the view runs)."""
    if permission not in ALL_PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}: add it to ROLE_PERMISSIONS")

    def decorate(view):
        view.required_permission = permission
        return view

    return decorate


def public(view):
    """Declare a view that anyone may reach without signing in."""
    view.required_permission = PUBLIC
    return view


def declared_permission(endpoint: str | None) -> str | None:
    """The permission the endpoint's view declares, or None when it declares nothing."""
    if endpoint is None:
        return None
    if endpoint == "static" or endpoint.endswith(".static"):
        return PUBLIC
    view = current_app.view_functions.get(endpoint)
    return getattr(view, "required_permission", None)


def enforce_declared_permission():
    """before_request: sign-in first, then the declared permission, else 403/404."""
    if request.endpoint is None:
        return None  # routing failed: Flask answers 404/405 itself
    permission = declared_permission(request.endpoint)
    if permission in (PUBLIC, API_TOKEN):
        return None
    if not current_user.is_authenticated:
        return current_app.login_manager.unauthorized()
    if permission is None or not current_user.has_permission(permission):
        record_denied(
            Actor.for_user(current_user, request.remote_addr), request.endpoint, permission
        )
        abort(403)
    return None
