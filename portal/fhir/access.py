"""INTERIM (fbulk's branch): who may call the FHIR API, until fauth's access layer lands.

The lead replaces this module with fauth's, which keeps the same decorator:
``fhir_access(resource_type, *, write=False)``. Here a token is looked up in
``app.config["FHIR_TEST_TOKENS"]`` ({token: {"id", "name", "scopes"}}), so that tests and
the routes that use it can be written now. Like fauth's, it answers 401/403 as an
OperationOutcome with ``WWW-Authenticate``, sets ``g.fhir_client`` (``.id``, ``.name``,
``.scopes``) and declares the view for the deny-by-default hook (the token, not a
session, is its authorization; a bearer token is not sent by a browser on its own, so
these views need no CSRF token).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps

from flask import current_app, g, request

from portal.actors import Actor
from portal.auth.permissions import PUBLIC
from portal.fhir.bulk.responses import outcome_response


@dataclass(frozen=True)
class FhirClient:
    """The API client a request's token belongs to (the same face as fauth's
    ``clients.Caller``: ``.id``, ``.name``, ``.scopes``, ``.actor``, ``.allows``)."""

    id: str
    name: str
    scopes: frozenset[str]
    source: str | None = None

    @property
    def actor(self) -> Actor:
        """Who the audit trail names: the client, from the caller's address."""
        return Actor(id=None, username=f"api-client:{self.name}", source=self.source)

    def allows(self, resource_type: str, *, write: bool = False) -> bool:
        return scope_allows(self.scopes, resource_type, write=write)


def scope_allows(scopes, resource_type: str, *, write: bool = False) -> bool:
    """Whether SMART system scopes (v1 ``.read`` / ``.write`` / ``.*``, v2 ``.rs`` / ``.cud``
    letters) cover reading (or writing) ``resource_type``."""
    for scope in scopes:
        context, _, rest = scope.partition("/")
        kind, _, access = rest.partition(".")
        if context != "system" or kind not in ("*", resource_type):
            continue
        if access == "*":
            return True
        # SMART v2 spells permissions as letters of "cruds" ("rs", "cud"); v1 as words.
        letters = set(access) if access and set(access) <= set("cruds") else set()
        if write and (access == "write" or letters & set("cud")):
            return True
        if not write and (access == "read" or letters & set("rs")):
            return True
    return False


def _unauthorized(text: str, error: str | None = None):
    challenge = 'Bearer realm="fhir"' + (f', error="{error}"' if error else "")
    return outcome_response(401, "login", text, headers={"WWW-Authenticate": challenge})


def fhir_access(resource_type: str | None, *, write: bool = False) -> Callable:
    """Let a view run only for a valid token whose scopes cover ``resource_type`` (any
    valid token when None)."""

    def decorate(view):
        @wraps(view)
        def guarded(*args, **kwargs):
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return _unauthorized("An access token is required.")
            known = current_app.config.get("FHIR_TEST_TOKENS", {}).get(token.strip())
            if known is None:
                return _unauthorized("The access token is not valid.", "invalid_token")
            client = FhirClient(
                id=str(known["id"]),
                name=known["name"],
                scopes=frozenset(known["scopes"]),
                source=request.remote_addr,
            )
            if resource_type is not None and not client.allows(resource_type, write=write):
                return outcome_response(
                    403,
                    "forbidden",
                    f"The token's scopes do not cover {resource_type}.",
                    headers={"WWW-Authenticate": 'Bearer error="insufficient_scope"'},
                )
            g.fhir_client = client
            return view(*args, **kwargs)

        guarded.required_permission = PUBLIC
        return guarded

    return decorate
