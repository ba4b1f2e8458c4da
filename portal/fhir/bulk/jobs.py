"""The bulk export's periodic jobs, for the worker: run due exports, delete expired files.

Exports are looked for every two seconds (a client polls its status URL anyway); a turn runs
every due job to its end, checking the worker's stop event between lines, so a stopping
worker gives its job back to be resumed rather than finishing a long export first.
"""

from __future__ import annotations

import os
import socket
import threading

from portal.fhir.bulk.export import LEASE_SECONDS, remove_expired_files, run_due_exports
from portal.worker import Job

EXPORT_EVERY_SECONDS = 2.0
CLEAN_UP_EVERY_SECONDS = 600.0


def periodic_jobs(config, stop: threading.Event) -> list[Job]:
    lease_seconds = config.get("FHIR_BULK_LEASE_SECONDS", LEASE_SECONDS)
    worker_name = f"{socket.gethostname()}:{os.getpid()}"

    def run_exports() -> str | None:
        return run_due_exports(worker_name, stop=stop, lease_seconds=lease_seconds)

    def clean_up() -> str | None:
        removed = remove_expired_files()
        return f"bulk export: {removed} expired job folders removed" if removed else None

    return [
        Job("bulk export", EXPORT_EVERY_SECONDS, run_exports),
        Job("bulk export clean-up", CLEAN_UP_EVERY_SECONDS, clean_up),
    ]
