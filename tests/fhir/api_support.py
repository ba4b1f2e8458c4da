"""How the FHIR API tests get a bearer token: the one place that changes when the real
API clients and token endpoint replace the interim access check.

Today (INTERIM, ``portal/fhir/access.py``) a token is valid when it is listed in
``app.config["FHIR_TEST_TOKENS"]``; ``api_token`` lists a fresh one with the scopes asked
for. At merge, with the real API clients (``tests/fhir/support.py``), ``api_token``
becomes::

    client_id, secret = make_api_client(app, " ".join(scopes), name=name)
    return bearer_token(app.test_client(), client_id, secret)

and the tests that call it stay as they are (they check the audit trail's ``api:<name>``).
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
