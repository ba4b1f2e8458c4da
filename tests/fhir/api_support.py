"""How the FHIR API tests get a bearer token: a real API client called ``name`` and a token
for exactly the scopes asked for, through the token endpoint (``tests/fhir/support.py``:
``token_of``). The tests check the audit trail's ``api:<name>``.
"""

from __future__ import annotations

from tests.fhir.support import token_of

DEFAULT_SCOPES = ("system/*.read",)


def _app_of(app_or_client):
    return getattr(app_or_client, "application", None) or getattr(
        app_or_client, "app", app_or_client
    )


def api_token(app_or_client, scopes=DEFAULT_SCOPES, name: str = "Test client") -> str:
    """A bearer token for an API client called ``name`` holding ``scopes``."""
    return token_of(_app_of(app_or_client), list(scopes), name)


def api_headers(app_or_client, scopes=DEFAULT_SCOPES, name: str = "Test client") -> dict:
    """Request headers of an API client holding ``scopes``: its bearer token, and JSON."""
    token = api_token(app_or_client, scopes, name)
    return {"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"}
