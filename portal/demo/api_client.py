"""The demo's FHIR API client: one client-secret client with read access to everything, so
the API can be tried at once (README, "The FHIR API"). Its secret is shown only where the
demo users' passwords are kept, the instance's ``demo-credentials.txt`` (owner-only), and
never printed: a terminal's scroll-back and CI logs outlive a demo.
"""

from __future__ import annotations

from sqlalchemy import select

from portal.auth.models import User
from portal.demo.clinic import SEED_DEMO
from portal.extensions import db
from portal.fhir import clients
from portal.fhir.models import AUTH_CLIENT_SECRET, ApiClient

DEMO_CLIENT_NAME = "Demo API client"
DEMO_CLIENT_SCOPES = ["system/*.read"]


def seed_api_client() -> dict | None:
    """Register the demo client (answered for by the demo admin) unless it exists: its name,
    client id, scopes and secret; None when it was there already (its secret is not kept)."""
    if db.session.scalar(select(ApiClient.id).where(ApiClient.name == DEMO_CLIENT_NAME)):
        return None
    admin = db.session.scalar(select(User.id).where(User.username == "admin"))
    registered = clients.register_client(
        SEED_DEMO,
        name=DEMO_CLIENT_NAME,
        responsible_user_id=admin,
        scopes=DEMO_CLIENT_SCOPES,
        auth_method=AUTH_CLIENT_SECRET,
    )
    return {
        "name": DEMO_CLIENT_NAME,
        "client_id": registered.client.client_id,
        "secret": registered.secret,
        "scopes": " ".join(DEMO_CLIENT_SCOPES),
    }


def api_client_text(client: dict) -> str:
    """The demo client's credentials as lines of the demo credentials file."""
    return (
        "\nFHIR API client (OAuth 2.0 client credentials; the README shows a curl example)\n"
        f"  name:          {client['name']}\n"
        f"  client id:     {client['client_id']}\n"
        f"  client secret: {client['secret']}\n"
        f"  scopes:        {client['scopes']}\n"
    )
