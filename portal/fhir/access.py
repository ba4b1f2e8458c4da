"""Who may call the FHIR API: the bearer token of a registered API client.

INTERIM. This module stands in for the API clients and tokens of the FHIR issue's "who may
call it" part (``fauth``), which replaces it at merge with the same contract:

- ``fhir_access(resource_type, *, write=False)`` decorates a view: it reads
  ``Authorization: Bearer``, refuses a missing or unknown token (401, with
  ``WWW-Authenticate``) and a token whose scopes do not cover ``resource_type`` (403), sets
  ``g.fhir_client`` (``.id``, ``.name``, ``.scopes``, ``.actor`` for the audit trail,
  ``.allows(resource_type, write=)``) and declares the view to the deny-by-default hook
  (``portal.auth.permissions.API_TOKEN``). ``fhir_access(None)``: any valid token (the
  view checks the resource type it is asked for with ``g.fhir_client.allows``).

Here the only valid tokens are those listed in ``app.config["FHIR_TEST_TOKENS"]``
(``{token: (client name, [scopes])}``, or ``{token: {"id", "name", "scopes"}}`` as fbulk's
tests list them): no table, no token endpoint, no expiry, no rate limit. Nothing in
production configures it, so until the real module lands every token is refused.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps

from flask import current_app, g, request

from portal.actors import Actor
from portal.auth.permissions import API_TOKEN
from portal.fhir.errors import FhirError

REALM = "fhir"


@dataclass(frozen=True)
class ApiClient:
    """The caller of this request: a registered API client and the scopes of its token."""

    id: str
    name: str
    scopes: tuple[str, ...]
    source: str | None = None

    @property
    def actor(self) -> Actor:
        """Who the audit trail names for what this client does: ``api:<name>``."""
        return Actor(id=None, username=f"api:{self.name}", source=self.source)

    def allows(self, resource_type: str, *, write: bool = False) -> bool:
        """Whether the token's scopes let it read (or write) ``resource_type``."""
        return scope_allows(self.scopes, resource_type, write=write)


def scope_allows(scopes, resource_type: str, *, write: bool = False) -> bool:
    """Whether SMART system scopes grant reading (or writing) ``resource_type``.

    ``system/Patient.read`` and ``system/*.read`` (SMART v1), ``system/Patient.rs`` (v2:
    read and search), ``system/*.*`` and ``system/*.write`` / ``.cud`` for writing.
    """
    for scope in scopes:
        context, _, rest = scope.partition("/")
        kind, _, access = rest.partition(".")
        if context != "system" or kind not in ("*", resource_type):
            continue
        if access == "*":
            return True
        if write and (access == "write" or set("cud") <= set(access)):
            return True
        if not write and (access == "read" or set("rs") <= set(access)):
            return True
    return False


def _bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _client_for(token: str) -> ApiClient | None:
    for known, client in (current_app.config.get("FHIR_TEST_TOKENS") or {}).items():
        if hmac.compare_digest(known.encode(), token.encode()):
            # (name, scopes); or {"id", "name", "scopes"}, as fbulk's interim lists them.
            if isinstance(client, dict):
                client_id, name, scopes = client["id"], client["name"], client["scopes"]
            else:
                (name, scopes), client_id = client, client[0]
            return ApiClient(
                id=str(client_id), name=name, scopes=tuple(scopes), source=request.remote_addr
            )
    return None


def fhir_access(resource_type: str | None, *, write: bool = False) -> Callable:
    """Declare a FHIR view reachable with a valid bearer token whose scopes cover
    ``resource_type`` (any valid token when None)."""

    def decorate(view):
        @wraps(view)
        def checked(*args, **kwargs):
            token = _bearer_token()
            client = _client_for(token) if token else None
            if client is None:
                error = ' error="invalid_token"' if token else ""
                raise FhirError(
                    401,
                    "A valid bearer token is required." if token is None else "Invalid token.",
                    headers={"WWW-Authenticate": f'Bearer realm="{REALM}"{error}'},
                )
            if resource_type is not None and not scope_allows(
                client.scopes, resource_type, write=write
            ):
                raise FhirError(
                    403,
                    f"The token's scopes do not cover {resource_type}.",
                    headers={
                        "WWW-Authenticate": f'Bearer realm="{REALM}", error="insufficient_scope"'
                    },
                )
            g.fhir_client = client
            return view(*args, **kwargs)

        checked.required_permission = API_TOKEN
        return checked

    return decorate
