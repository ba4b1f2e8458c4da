"""The chart summary, the visit summary (print view and PDF) and the patient's after-visit
summary (print view and PDF).

Thin views: load and audit through ``portal.charting.summary.services``, then render.
"""

from __future__ import annotations

from flask import Response, url_for

from portal.auth.permissions import require
from portal.charting import bp
from portal.charting.immunizations.services import immunization_line
from portal.charting.models import ENCOUNTER_KINDS, NOTE_KINDS
from portal.charting.summary import services as summary
from portal.charting.summary.after_visit import (
    CHANGE_LABELS,
    export_after_visit_summary_pdf,
    view_after_visit_summary,
)
from portal.charting.vitals.charts import image_ticket
from portal.charting.vitals.services import vital_sign_items
from portal.clinic.services import current_clinic
from portal.scheduling.models import STATUS_LABELS
from portal.web import current_actor, render


@bp.get("/patients/<int:patient_id>")
@require("chart.read")
def chart_summary(patient_id: int):
    """The patient's front page: lists, latest vitals, recent encounters, next visits."""
    actor = current_actor()
    context = summary.chart_summary(actor, patient_id)
    return render(
        "charting/summary/summary.html",
        **context,
        # The sparklines are covered by this page's audit event (one event, not one each).
        vitals_image_ticket=image_ticket(actor, patient_id),
        encounter_kinds=ENCOUNTER_KINDS,
        appointment_statuses=STATUS_LABELS,
        vital_sign_items=vital_sign_items,
        clinic=current_clinic(),
    )


@bp.get("/encounters/<int:encounter_id>/summary")
@require("chart.read")
def visit_summary(encounter_id: int):
    """The printable visit summary (audited as a print when shown)."""
    visit = summary.view_visit_summary(current_actor(), encounter_id)
    return render(
        "charting/summary/visit_summary.html",
        visit=visit,
        patient=visit.patient,
        encounter_kinds=ENCOUNTER_KINDS,
        note_kinds=NOTE_KINDS,
        vital_sign_items=vital_sign_items,
        immunization_line=immunization_line,
        clinic=current_clinic(),
    )


@bp.get("/encounters/<int:encounter_id>/summary.pdf")
@require("chart.read")
def visit_summary_pdf(encounter_id: int):
    """The visit summary as a PDF; 409 while a note of the visit is not signed."""
    try:
        visit, pdf = summary.export_visit_summary_pdf(current_actor(), encounter_id)
    except summary.NoteNotSigned as refusal:
        visit = refusal.summary
        return render(
            "charting/summary/visit_summary_unsigned.html",
            visit=visit,
            patient=visit.patient,
            status=409,
        )
    return Response(
        pdf,
        mimetype="application/pdf",
        headers={
            # The file name carries ids only (no PHI in names that land in download folders).
            "Content-Disposition": f'inline; filename="visit-summary-{visit.encounter.id}.pdf"'
        },
    )


@bp.get("/encounters/<int:encounter_id>/after-visit-summary")
@require("chart.read")
def after_visit_summary(encounter_id: int):
    """The patient's copy of the visit, to print at checkout (audited as a print)."""
    after_visit = view_after_visit_summary(current_actor(), encounter_id)
    return render(
        "charting/summary/after_visit_summary.html",
        after_visit=after_visit,
        patient=after_visit.patient,
        change_labels=CHANGE_LABELS,
        vital_sign_items=vital_sign_items,
        clinic=current_clinic(),
    )


@bp.get("/encounters/<int:encounter_id>/after-visit-summary.pdf")
@require("chart.read")
def after_visit_summary_pdf(encounter_id: int):
    """The patient's copy as a PDF (audited)."""
    after_visit, pdf = export_after_visit_summary_pdf(current_actor(), encounter_id)
    return Response(
        pdf,
        mimetype="application/pdf",
        headers={
            "Content-Disposition": (
                f'inline; filename="after-visit-summary-{after_visit.encounter.id}.pdf"'
            )
        },
    )


@bp.app_template_global()
def encounter_href(encounter_id: int) -> str:
    """The encounter page's address (templates that list encounters link to it)."""
    return url_for("charting.encounter_page", encounter_id=encounter_id)
