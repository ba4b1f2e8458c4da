"""The audit trail's periodic jobs, for the worker: seal new events every second, and append
a checkpoint every ``AUDIT_CHECKPOINT_MINUTES`` (and once at start).

Every second, because an event is only bound into the chain once sealed: until then its MAC
shows an edit, but not its removal. A checkpoint is cheap (one line) and the worker writes it
at start too, so a freshly started installation is covered at once; it does not repeat an
unchanged head, so a quiet night adds nothing to the file.
"""

from __future__ import annotations

import logging

from portal.audit import integrity, sealing
from portal.worker import Job

log = logging.getLogger(__name__)


def periodic_jobs(config) -> list[Job]:
    """The audit trail's jobs under this configuration (refused at once, not every second,
    when the audit key is missing or too short)."""
    integrity.keys_from(config.get("AUDIT_KEY"))
    return [
        Job("seal audit events", 1.0, seal_audit_events),
        Job(
            "audit checkpoint",
            60.0 * config["AUDIT_CHECKPOINT_MINUTES"],
            write_audit_checkpoint,
        ),
    ]


def seal_audit_events() -> str | None:
    result = sealing.seal_all()
    if result.problem_ids:
        shown = ", ".join(map(str, result.problem_ids[:20]))
        more = len(result.problem_ids) - 20
        log.warning(
            "sealed %s audit events with a bad MAC (altered or forged before sealing): ids %s%s",
            len(result.problem_ids),
            shown,
            f" and {more} more" if more > 0 else "",
        )
    if result.sealed:
        return f"sealed {result.sealed} audit events (#{result.first_seq}-#{result.last_seq})"
    return None


def write_audit_checkpoint() -> str | None:
    written = sealing.checkpoint(skip_unchanged=True)
    return f"audit checkpoint at #{written.seq}" if written else None
