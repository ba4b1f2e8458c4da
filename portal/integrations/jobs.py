"""The integrations' periodic job, for the worker: deliver the outbox.

Every quarter second, so a message committed to an idle queue leaves within about that
(the outbox's latency budget is a second at the 95th percentile); each turn delivers for at
most a second before the worker's other jobs (the audit sealer) get their turn again.
"""

from __future__ import annotations

import threading

from portal.integrations.delivery import deliver_due
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

    return [Job("deliver outbox", DELIVERY_EVERY_SECONDS, deliver_outbox)]
