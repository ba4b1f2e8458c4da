"""Printing pages: print a signed prescription that will not be sent (then its PDF), and the
PDF again later, marked as a copy."""

from __future__ import annotations

from flask import Response, flash, redirect, request, session, url_for

from portal.auth.permissions import require
from portal.prescriptions import bp
from portal.prescriptions.printing import services
from portal.prescriptions.printing.pdf import render_prescription_pdf
from portal.transaction import Refused
from portal.web import current_actor, safe_local_path

# The prescription whose original this browser session may download once, just after
# printing it; any other download of a printed prescription is a copy.
ORIGINAL_KEY = "rx_print_original"


@bp.post("/prescriptions/<int:prescription_id>/print")
@require("rx.sign")
def print_prescription(prescription_id: int):
    """Print a prescription whose transmission failed (or with no e-prescribing): it is
    marked printed and never sent; the original PDF follows."""
    back = safe_local_path(request.form.get("next"))
    try:
        rx = services.print_prescription(current_actor(), prescription_id)
    except Refused as refused:
        flash(refused.message, "danger")
        return redirect(back, code=303)
    session[ORIGINAL_KEY] = rx.id
    return redirect(url_for("prescriptions.prescription_pdf", prescription_id=rx.id), code=303)


@bp.get("/prescriptions/<int:prescription_id>/pdf")
@require("rx.sign")
def prescription_pdf(prescription_id: int):
    """The printed prescription as a PDF: the original once, right after printing; a copy
    (marked so) every other time."""
    original = session.get(ORIGINAL_KEY) == prescription_id
    try:
        content = services.printout(current_actor(), prescription_id, original=original)
    except Refused as refused:
        flash(refused.message, "danger")
        return redirect(url_for("main.home"), code=303)
    if original:
        session.pop(ORIGINAL_KEY, None)
    return Response(
        render_prescription_pdf(content),
        mimetype="application/pdf",
        headers={
            # Ids only in the file name (it lands in download folders).
            "Content-Disposition": f'inline; filename="prescription-{prescription_id}.pdf"',
            "Cache-Control": "no-store",
        },
    )
