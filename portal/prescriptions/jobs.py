"""E-prescribing's periodic job, for the worker: the reconciliation sweep.

Webhooks are hints that can be dropped or reordered; every few minutes the sweep re-reads
the patients with open activity, so the chart ends in the vendor's state regardless.
"""

from __future__ import annotations

from portal.prescriptions.services import sweep
from portal.worker import Job

SWEEP_EVERY_SECONDS = 300.0


def periodic_jobs(config) -> list[Job]:
    return [
        Job(
            "e-prescribing sweep",
            config.get("EPRESCRIBING_SWEEP_SECONDS", SWEEP_EVERY_SECONDS),
            sweep,
        )
    ]
