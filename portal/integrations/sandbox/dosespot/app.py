"""The sandbox's application factory: one Flask app holding the REST API, the SSO screen
and the control API, with the store, the lifecycle timer and the webhook sender beside it
in ``app.extensions["dosespot_sandbox"]``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from flask import Flask, jsonify, request

from portal.integrations.sandbox.dosespot import api, control, sso
from portal.integrations.sandbox.dosespot.lifecycle import Lifecycle
from portal.integrations.sandbox.dosespot.state import SandboxState
from portal.integrations.sandbox.dosespot.webhooks import DEFAULT_BACKOFF, WebhookSender

DEFAULTS: dict[str, Any] = {
    "clinic_id": None,  # None: the first clinic of fixtures/clinics.json
    "clinic_key": None,
    "subscription_key": None,
    "webhook_url": None,  # None: events are recorded, not sent
    "webhook_secret": "sandbox-webhook-secret-0123456789",  # 32+ characters, as DoseSpot's
    "webhook_backoff": DEFAULT_BACKOFF,
    "webhook_timeout": 20.0,
    "token_lifetime": 600.0,  # seconds; DoseSpot's tokens live about ten minutes
    "lifecycle_delay": 2.0,  # seconds between the steps of a transmission or a cancel
    "page_size": 20,
    "portal_origin": "http://127.0.0.1:5000",  # allowed to frame the SSO screen
    "secret_key": None,  # signs the SSO session cookie; None: a random one per start
    # [sandbox] `make run`'s demo: ask for a renewal of the first prescription the portal
    # sends, once it reaches the pharmacy (Dr. Lee's Rx inbox then has one).
    "demo_renewal": False,
}


@dataclass
class Sandbox:
    config: dict[str, Any]
    state: SandboxState
    lifecycle: Lifecycle
    webhooks: WebhookSender

    def reset(self) -> None:
        self.lifecycle.reset()
        self.webhooks.reset()
        self.state.reset()

    def stop(self) -> None:
        self.lifecycle.stop()
        self.webhooks.stop()


def create_sandbox_app(config: dict[str, Any] | None = None) -> Flask:
    settings = {**DEFAULTS, **(config or {})}
    unknown = set(settings) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown sandbox settings: {sorted(unknown)}")
    state = SandboxState(
        {
            "ClinicId": settings["clinic_id"],
            "ClinicKey": settings["clinic_key"],
            "SubscriptionKey": settings["subscription_key"],
        }
    )
    webhooks = WebhookSender(
        state,
        settings["webhook_url"],
        settings["webhook_secret"],
        backoff=tuple(settings["webhook_backoff"]),
        timeout=settings["webhook_timeout"],
    )
    lifecycle = Lifecycle(
        state, webhooks, settings["lifecycle_delay"], demo_renewal=settings["demo_renewal"]
    )
    app = Flask(__name__, template_folder="templates")
    # The SSO screen lives in the portal's frame, so its session cookie must reach it there.
    # Served over HTTPS beside an HTTPS portal (another site) that takes SameSite=None, which
    # browsers accept only with Secure; on plain-http loopback the two are the same site
    # (ports do not count) and Lax is enough, while None without Secure would be dropped.
    over_https = str(settings["portal_origin"]).startswith("https://")
    app.config.update(
        SECRET_KEY=settings["secret_key"] or secrets.token_hex(32),
        SESSION_COOKIE_NAME="dosespot_sandbox",
        SESSION_COOKIE_SAMESITE="None" if over_https else "Lax",
        SESSION_COOKIE_SECURE=over_https,
    )
    app.extensions["dosespot_sandbox"] = Sandbox(settings, state, lifecycle, webhooks)
    app.register_blueprint(api.bp)
    app.register_blueprint(sso.bp)
    app.register_blueprint(control.bp)

    @app.before_request
    def down_switch():
        if state.faults.down and not request.path.startswith("/_sandbox"):
            return jsonify({"Message": "Service unavailable (sandbox fault)."}), 503
        return None

    @app.after_request
    def framing(response):
        response.headers["Content-Security-Policy"] = f"frame-ancestors {settings['portal_origin']}"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    return app
