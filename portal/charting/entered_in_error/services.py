"""Marking a chart row (a set of vital signs, an immunization) as entered in error.

Mistakes are marked, never deleted: the row keeps what was once shown, with the reason in the
words of whoever marked it; the audit trail, which holds no free text, records who and when.
Each kind of row keeps its own use cases (its audit actions and detail); this module holds
the work they share, which flushes only: the callers run it inside their ``use_case()``.
"""

from __future__ import annotations

from portal.audit import services as audit
from portal.extensions import db
from portal.patients.services import get_patient_for, get_row_of_patient
from portal.transaction import Refused

# The longest reason kept with a row marked entered in error (the columns' length).
ERROR_REASON_MAX_CHARS = 300


def patients_row(actor, model, patient_id: int, row_id: int):
    """The patient and one of their rows of ``model``; 404 for an id of anyone else's."""
    patient = get_patient_for(actor, patient_id)
    return patient, get_row_of_patient(patient, model, row_id)


def record_view_to_mark(actor, patient, row, *, action: str, category: str) -> None:
    """Audit that ``actor`` was shown ``row`` on the "entered in error" confirmation page."""
    audit.record(
        actor,
        action,
        patient=patient,
        obj=row,
        category=category,
        detail="entered-in-error confirmation",
    )


def mark_row_entered_in_error(
    actor,
    patient,
    row,
    reason: str,
    *,
    thing: str,
    action: str,
    category: str,
    detail: str | None = None,
):
    """Mark ``row`` (the patient's, already checked) entered in error with ``reason``,
    audited as ``action``. A missing or too long reason is refused beside the "reason"
    field; a row already marked is left as it is. Flushes only."""
    reason = (reason or "").strip()
    if not reason:
        raise Refused(f"Say why this {thing} was entered in error.", "reason")
    if len(reason) > ERROR_REASON_MAX_CHARS:
        raise Refused(f"Keep the reason to {ERROR_REASON_MAX_CHARS} characters or fewer.", "reason")
    if not row.entered_in_error:
        row.entered_in_error = True
        row.entered_in_error_reason = reason
        audit.record(
            actor,  # the reason stays with the row: the trail holds no free text
            action,
            patient=patient,
            obj=row,
            category=category,
            detail=detail,
        )
        db.session.flush()
    return row
