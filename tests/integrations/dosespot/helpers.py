"""The DoseSpot sandbox on a live loopback socket, and a connector configured against it.

Each test gets its own sandbox on its own free port, so the connector's process-wide token
cache (keyed by the API's address) never carries a token from one test to another, and
tests can run in parallel under pytest-xdist.
"""

from __future__ import annotations

import threading
from datetime import date

import requests
from werkzeug.serving import make_server

from portal.integrations.dosespot.connector import DoseSpotConnector
from portal.integrations.sandbox.dosespot.app import create_sandbox_app

CLINIC_ID = 1001
CLINIC_KEY = "SANDBOXKEY-7f3a9c2e41d84b6e9a0c5d1f2e3b4a59"
SUBSCRIPTION_KEY = "sandbox-subscription-key-1001"
PRESCRIBER = 2001
# The PIN and OTP token seed the sandbox's EPCS-enabled prescriber 2001 registered (fixtures).
PRESCRIBER_EPCS_PIN = "2468"
PRESCRIBER_EPCS_SEED = "BQGB7C6NVWPKCVE53OGKIJIHRAINCYW4"
ADMIN_CLINICIAN = 2002
WEBHOOK_SECRET = "dosespot-test-webhook-secret-0123"  # 33 characters
TODAY = date(2025, 6, 1)


class SandboxServer:
    """``create_sandbox_app`` served by werkzeug on port 0 in a thread."""

    def __init__(self, **config):
        self.app = create_sandbox_app(
            {"lifecycle_delay": 0.05, "page_size": 2, "token_lifetime": 600.0, **config}
        )
        self.box = self.app.extensions["dosespot_sandbox"]
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    @classmethod
    def for_portal(cls, portal_url: str) -> SandboxServer:
        """A sandbox that frames into the portal at ``portal_url`` and sends its webhooks
        there (retrying quickly), as `make run` wires the two."""
        return cls(
            webhook_url=f"{portal_url}/integrations/dosespot/webhook",
            webhook_secret=WEBHOOK_SECRET,
            portal_origin=portal_url,
            webhook_backoff=(0.05, 0.05, 0.05, 0.05),
        )

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=30)
        self.box.stop()

    def faults(self, **switches) -> None:
        answer = requests.post(f"{self.url}/_sandbox/faults", json=switches, timeout=30)
        assert answer.status_code == 200, answer.text

    def control(self, path: str, body: dict | None = None) -> dict:
        answer = requests.post(f"{self.url}/_sandbox/{path}", json=body or {}, timeout=30)
        assert answer.status_code < 300, answer.text
        return answer.json()

    def tokens_granted(self) -> int:
        """How many tokens the sandbox has handed out (read from its own store)."""
        with self.box.state.lock:
            return len(self.box.state.store.tokens)

    def prescriptions(self) -> list[dict]:
        with self.box.state.lock:
            return [dict(rx) for rx in self.box.state.store.prescriptions.values()]

    def patients(self) -> list[dict]:
        with self.box.state.lock:
            return [dict(p) for p in self.box.state.store.patients.values()]


def settings(sandbox: SandboxServer, **changes) -> dict:
    values = {
        "clinic_id": CLINIC_ID,
        "clinic_key": CLINIC_KEY,
        "subscription_key": SUBSCRIPTION_KEY,
        "admin_clinician_id": ADMIN_CLINICIAN,
        "api_base_url": sandbox.url,
        "sso_base_url": sandbox.url,
        "webhook_secret": WEBHOOK_SECRET,
    }
    values.update(changes)
    return values


def connector(sandbox: SandboxServer, **changes) -> DoseSpotConnector:
    return DoseSpotConnector(settings(sandbox, **changes))


def snapshot(**changes) -> dict:
    """A plain patient snapshot, as the patients domain will hand it over."""
    values = {
        "mrn": "10000017",
        "given_name": "Rosa",
        "family_name": "Delgado",
        "birth_date": "1971-03-09",
        "sex_at_birth": "female",
        "address_line1": "5 Oak Lane",
        "city": "Springfield",
        "state": "MA",
        "postal_code": "01101",
        "phone_mobile": "+14135550199",
        "height_cm": None,
        "weight_kg": None,
    }
    values.update(changes)
    return values


def prescription(**changes) -> dict:
    values = {
        "dispensable_drug_id": 5001,
        "dispense_unit_id": 26,
        "quantity": "30",
        "refills": 2,
        "days_supply": 30,
        "directions": "Take one tablet by mouth daily.",
        "pharmacy_id": 3001,
        "no_substitutions": False,
        "diagnoses": [{"code": "I10"}],
    }
    values.update(changes)
    return values
