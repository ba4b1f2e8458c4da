"""Marking a chart row (a set of vital signs, an immunization) as entered in error.

Mistakes are marked, never deleted: the row keeps what was once shown, with the reason in the
words of whoever marked it; the audit trail, which holds no free text, records who and when.
Each kind of row keeps its own service functions (its own error type, audit actions and
detail); this module holds the steps they share.
"""

from __future__ import annotations

from collections.abc import Callable

from portal.audit import services as audit
from portal.extensions import db
from portal.patients.services import get_patient_for, get_row_of_patient

# The longest reason kept with a row marked entered in error (the columns' length).
ERROR_REASON_MAX_CHARS = 300


def patients_row(actor, model, patient_id: int, row_id: int):
    """The patient and one of their rows of ``model``; 404 for an id of anyone else's."""
    patient = get_patient_for(actor, patient_id)
    return patient, get_row_of_patient(patient, model, row_id)


def view_row_to_mark(actor, model, patient_id: int, row_id: int, *, action: str, category: str):
    """The patient and one of their rows, for the "entered in error" confirmation page; the
    view is audited as ``action``. Returns (patient, row)."""
    patient, row = patients_row(actor, model, patient_id, row_id)
    audit.record(
        actor,
        action,
        patient=patient,
        obj=row,
        category=category,
        detail="entered-in-error confirmation",
    )
    db.session.commit()
    return patient, row


def mark_row_entered_in_error(
    actor,
    patient,
    row,
    reason: str,
    *,
    thing: str,
    refuse: Callable[[str], Exception],
    action: str,
    category: str,
    detail: str | None = None,
):
    """Mark ``row`` (the patient's, already checked) entered in error with ``reason``, audited
    as ``action`` in the same transaction. A missing or too long reason raises what
    ``refuse(message)`` makes (each domain its own error type); a row already marked is left
    as it is."""
    reason = (reason or "").strip()
    if not reason:
        raise refuse(f"Say why this {thing} was entered in error.")
    if len(reason) > ERROR_REASON_MAX_CHARS:
        raise refuse(f"Keep the reason to {ERROR_REASON_MAX_CHARS} characters or fewer.")
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
        db.session.commit()
    return row
