"""The integrations' periodic jobs, for the worker: deliver the outbox, process the inbox.

Every quarter second, so a message committed to an idle queue leaves within about that
(the outbox's latency budget is a second at the 95th percentile); each turn delivers for at
most a second before the worker's other jobs (the audit sealer) get their turn again.
"""

from __future__ import annotations

import threading

from portal.integrations import inbox
from portal.integrations.delivery import deliver_due
from portal.integrations.settings import active_connectors
from portal.transaction import end_read
from portal.worker import Job

DELIVERY_EVERY_SECONDS = 0.25


def periodic_jobs(config, stop: threading.Event) -> list[Job]:
    max_attempts = config["OUTBOX_MAX_ATTEMPTS"]
    lease_seconds = config["OUTBOX_LEASE_SECONDS"]

    def deliver_outbox() -> str | None:
        run = deliver_due(
            max_attempts=max_attempts, lease_seconds=lease_seconds, seconds=1.0, stop=stop
        )
        return run.summary()

    return [
        Job("deliver outbox", DELIVERY_EVERY_SECONDS, deliver_outbox),
        Job("process inbox", DELIVERY_EVERY_SECONDS, process_inbox),
    ]


def process_inbox() -> str | None:
    """Hand stored events (webhooks) to the handlers their domains registered."""
    connectors = active_connectors(include_paused=True)
    end_read()
    processed, failed = inbox.process_due(connectors)
    if processed or failed:
        return f"inbox: {processed} processed" + (f", {failed} failed" if failed else "")
    return None
