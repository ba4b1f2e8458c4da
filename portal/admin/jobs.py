"""The accounts' periodic job, for the worker: just after the clinic's midnight, disable the
accounts of people whose last day of work has passed (their sessions end and their calendar
feeds are revoked, as when an administrator disables one; audited as the system).

Here rather than in auth: "which day is it" is the clinic's (``clinic.clock``), which auth
cannot import. Every minute, so a leaver's account closes within a minute of midnight
however long the worker was stopped; a minute with nobody to disable costs one query.
"""

from __future__ import annotations

from portal.auth import services as auth_services
from portal.clinic.clock import clinic_today
from portal.worker import Job


def periodic_jobs(config) -> list[Job]:
    """The accounts' jobs."""
    return [Job("end employment", 60.0, end_employment)]


def end_employment() -> str | None:
    count = auth_services.end_employment_of_leavers(clinic_today())
    return f"disabled {count} account(s) whose employment ended" if count else None
