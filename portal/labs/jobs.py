"""The labs' periodic jobs, for the worker: file stored results still waiting (the listener
stopped between the ACK and the filing, or filing failed), and take the drop folder's files
when ``LAB_DROP_FOLDER`` is set."""

from __future__ import annotations

from pathlib import Path

from portal.labs import listener, services
from portal.worker import Job

PENDING_EVERY_SECONDS = 5.0
FOLDER_EVERY_SECONDS = 2.0


def periodic_jobs(config) -> list[Job]:
    def file_pending() -> str | None:
        filed, failed = services.process_pending()
        if filed or failed:
            return f"lab messages: {filed} filed" + (f", {failed} failed" if failed else "")
        return None

    jobs = [Job("file lab results", PENDING_EVERY_SECONDS, file_pending)]
    folder = config.get("LAB_DROP_FOLDER")
    if folder:

        def take_dropped_files() -> str | None:
            done, failed = listener.watch_folder(Path(folder))
            if done or failed:
                return f"lab drop folder: {done} files filed, {failed} refused"
            return None

        jobs.append(Job("lab drop folder", FOLDER_EVERY_SECONDS, take_dropped_files))
    return jobs
