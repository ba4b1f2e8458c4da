"""E-prescribing's periodic jobs, for the worker: the reconciliation sweep and the Rx
inbox's pull of pharmacies' requests.

Webhooks are hints that can be dropped or reordered; every few minutes the sweep re-reads
the patients with open activity, so the chart ends in the vendor's state regardless, and the
pull reads each linked prescriber's pending requests (the counts event pulls sooner).
"""

from __future__ import annotations

from portal.prescriptions.inbox.pull import poll
from portal.prescriptions.services import sweep
from portal.worker import Job

SWEEP_EVERY_SECONDS = 300.0
RX_INBOX_POLL_SECONDS = 120.0


def periodic_jobs(config) -> list[Job]:
    return [
        Job(
            "e-prescribing sweep",
            config.get("EPRESCRIBING_SWEEP_SECONDS", SWEEP_EVERY_SECONDS),
            sweep,
        ),
        Job(
            "Rx inbox pull",
            config.get("RX_INBOX_POLL_SECONDS", RX_INBOX_POLL_SECONDS),
            poll,
        ),
    ]
