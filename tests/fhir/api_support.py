"""How the FHIR API tests get a bearer token: the one place that changes when the real
API clients and token endpoint replace the interim access check.

Today (INTERIM, ``portal/fhir/access.py``) a token is valid when it is listed in
``app.config["FHIR_TEST_TOKENS"]``; ``api_headers`` lists a fresh one with the scopes asked
for. At merge, ``api_headers`` registers an API client (``make_api_client``) and asks the
token endpoint for a token (``bearer_token``) instead; the tests that call it stay as they
are.
"""

from __future__ import annotations

import secrets

DEFAULT_SCOPES = ("system/*.read",)


def _app_of(app_or_client):
    return getattr(app_or_client, "application", None) or getattr(
        app_or_client, "app", app_or_client
    )


def api_token(app_or_client, scopes=DEFAULT_SCOPES, name: str = "Test client") -> str:
    """A bearer token for an API client called ``name`` holding ``scopes``."""
    app = _app_of(app_or_client)
    token = secrets.token_urlsafe(24)
    tokens = dict(app.config.get("FHIR_TEST_TOKENS") or {})
    tokens[token] = (name, list(scopes))
    app.config["FHIR_TEST_TOKENS"] = tokens
    return token


def api_headers(app_or_client, scopes=DEFAULT_SCOPES, name: str = "Test client") -> dict:
    """Request headers of an API client holding ``scopes``: its bearer token, and JSON."""
    token = api_token(app_or_client, scopes, name)
    return {"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"}
