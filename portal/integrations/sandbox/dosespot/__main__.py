"""Serve the sandbox: ``python -m portal.integrations.sandbox.dosespot --port 5101
--webhook-url URL --webhook-secret SECRET`` (``--help`` lists the rest)."""

from __future__ import annotations

import argparse

from werkzeug.serving import run_simple

from portal.integrations.sandbox.dosespot.app import DEFAULTS, create_sandbox_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m portal.integrations.sandbox.dosespot")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5101)
    parser.add_argument("--webhook-url", default=None)
    parser.add_argument("--webhook-secret", default=DEFAULTS["webhook_secret"])
    parser.add_argument("--portal-origin", default=DEFAULTS["portal_origin"])
    parser.add_argument("--clinic-id", type=int, default=None)
    parser.add_argument("--clinic-key", default=None)
    parser.add_argument("--subscription-key", default=None)
    parser.add_argument("--token-lifetime", type=float, default=DEFAULTS["token_lifetime"])
    parser.add_argument("--lifecycle-delay", type=float, default=DEFAULTS["lifecycle_delay"])
    parser.add_argument(
        "--demo-renewal",
        action="store_true",
        help="ask for a renewal of the first prescription the portal sends (the demo's)",
    )
    args = parser.parse_args(argv)
    app = create_sandbox_app(
        {
            "webhook_url": args.webhook_url,
            "webhook_secret": args.webhook_secret,
            "portal_origin": args.portal_origin,
            "clinic_id": args.clinic_id,
            "clinic_key": args.clinic_key,
            "subscription_key": args.subscription_key,
            "token_lifetime": args.token_lifetime,
            "lifecycle_delay": args.lifecycle_delay,
            "demo_renewal": args.demo_renewal,
        }
    )
    run_simple(args.host, args.port, app, threaded=True)


if __name__ == "__main__":
    main()
