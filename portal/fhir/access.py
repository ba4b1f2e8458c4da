"""Who may call a FHIR route: ``@fhir_access(resource_type, write=False)``.

Every API route but the token endpoint carries it. It reads ``Authorization: Bearer
<token>``, finds the token's client (one query; a disabled client, an expired or revoked
token is no client), counts the request against the client's limit per minute, checks that
the token's scopes cover the resource type (reading, or writing with ``write=True``;
``None``: any valid token, for routes that check per resource themselves, like a bundle
import), and sets ``g.fhir_client`` (a ``clients.Caller``: ``.id``, ``.name``,
``.scopes``, ``.actor`` for the audit trail, ``.allows(type, write=)``). One route serving
every type names its URL argument instead (``fhir_access("<resource_type>")``); a view that
reaches other types than its own (``_include``, a bundle's entries) asks
``scope_refusal(type)`` for each.

Refusals are OperationOutcomes with the status and ``WWW-Authenticate`` header of RFC 6750:
401 without a usable token, 403 when its scopes fall short (audited), 429 with
``Retry-After`` over the limit.

A signed-in session counts for nothing here, and a bearer token is never sent by a browser
on its own, so these routes need no CSRF token: the decorator exempts them, and declares
them to the deny-by-default hook (``permissions.API_TOKEN``) so it asks for no session.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import wraps

from flask import g, jsonify, request

from portal.auth.permissions import API_TOKEN
from portal.fhir import clients

FHIR_JSON = "application/fhir+json"
REALM = 'Bearer realm="fhir"'
_TYPE_NAME = re.compile(r"[A-Za-z]{1,64}")


def operation_outcome(status: int, code: str, message: str, headers: dict | None = None):
    """An error answer: one OperationOutcome issue with its FHIR issue code."""
    response = jsonify(
        {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": code, "diagnostics": message}],
        }
    )
    response.status_code = status
    response.mimetype = FHIR_JSON
    response.headers.update(headers or {})
    return response


def _bearer_token() -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _unauthorized(message: str, error: str | None):
    challenge = REALM if error is None else f'{REALM}, error="{error}"'
    return operation_outcome(401, "login", message, {"WWW-Authenticate": challenge})


def _needed_scope(resource_type: str, write: bool) -> str:
    return f"system/{resource_type}.{'write' if write else 'read'}"


def scope_refusal(resource_type: str, *, write: bool = False):
    """Inside a guarded view, for a type the route did not name (an ``_include``d type,
    each entry of a bundle): None when the token's scopes cover it, else the 403 answer
    (the refusal audited)."""
    caller = g.fhir_client
    if caller.allows(resource_type, write=write):
        return None
    return _insufficient(caller, _needed_scope(resource_type, write))


def _insufficient(caller, needed: str):
    clients.record_scope_refused(caller, request.endpoint or "", needed)
    return operation_outcome(
        403,
        "forbidden",
        f"The token's scopes do not cover this request ({needed}).",
        {"WWW-Authenticate": f'{REALM}, error="insufficient_scope", scope="{needed}"'},
    )


def _resource_type_of_request(resource_type: str) -> str:
    """``"<name>"`` names the URL argument holding the type (``/fhir/<resource_type>/<id>``).
    Anything but a plain name (quotes, line breaks: it goes into a header) becomes
    ``Unknown``, which no scope but a wildcard covers, and the view then answers it."""
    if resource_type.startswith("<") and resource_type.endswith(">"):
        value = str((request.view_args or {}).get(resource_type[1:-1], ""))
        return value if _TYPE_NAME.fullmatch(value) else "Unknown"
    return resource_type


def fhir_access(resource_type: str | None, *, write: bool = False) -> Callable:
    """Declare a FHIR route and who may call it (see the module's notes). ``resource_type``
    is a type name, ``"<arg>"`` for the type in the URL argument ``arg`` (one route for
    every type), or None for any valid token (with ``write=True``: one that may write some
    type; the view checks each type it writes with ``scope_refusal``)."""

    def decorate(view):
        @wraps(view)
        def guarded(*args, **kwargs):
            token = _bearer_token()
            if token is None:
                return _unauthorized("An access token is required (Authorization: Bearer).", None)
            caller = clients.caller_of_token(token, request.remote_addr)
            if caller is None:
                return _unauthorized(
                    "The access token is unknown, expired or revoked.", "invalid_token"
                )
            wait = clients.count_request(caller)
            if wait is not None:
                return operation_outcome(
                    429,
                    "throttled",
                    f"Over {caller.rate_limit_per_minute} requests a minute: try again later.",
                    {"Retry-After": str(wait)},
                )
            g.fhir_client = caller
            if resource_type is not None:
                refused = scope_refusal(_resource_type_of_request(resource_type), write=write)
                if refused is not None:
                    return refused
            elif write and not caller.writes_any():
                return _insufficient(caller, "system/*.write")
            return view(*args, **kwargs)

        # No CSRF check: the whole /fhir blueprint is exempt (create_app), since a bearer
        # token in a header, never a cookie, is the credential.
        guarded.required_permission = API_TOKEN
        return guarded

    return decorate
