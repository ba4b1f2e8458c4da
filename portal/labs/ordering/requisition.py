"""The lab requisition as a PDF (fpdf2), one Letter page: what the person drawing the blood
and the lab need when the order travels on paper (no lab connector) or with the patient.

The order number is printed as a Code 128 barcode (``code128``) and in figures under it;
the patient carries two identifiers (name with date of birth, and the MRN), then the tests
with their LOINC codes and specimens, fasting, priority, the diagnoses (ICD-10-CM), the
ordering provider and the date. Text is drawn as text, never interpreted: a note to the lab
holding markup prints literally. The fonts are the visit summary's (any script).
"""

from __future__ import annotations

from fpdf import FPDF

from portal.charting.summary.pdf import PaperPDF
from portal.clinic.clock import clinic_zone
from portal.labs.ordering import code128
from portal.labs.ordering.services import Requisition

MODULE_MM = 0.33  # a narrow bar: within what hand scanners read on office printers
BAR_HEIGHT_MM = 14


def draw_barcode(pdf: FPDF, text: str, x: float, y: float) -> float:
    """Draw ``text`` as Code 128 at (x, y) with quiet zones; returns its width in mm."""
    position = x + 10 * MODULE_MM  # the quiet zone before the start symbol
    pdf.set_fill_color(0)
    for index, width in enumerate(code128.widths(text)):
        if index % 2 == 0:  # bars at even positions, spaces between
            pdf.rect(position, y, width * MODULE_MM, BAR_HEIGHT_MM, style="F")
        position += width * MODULE_MM
    return position + 10 * MODULE_MM - x


def render_requisition_pdf(req: Requisition) -> bytes:
    """The requisition ``req`` as PDF bytes."""
    texts = [
        req.patient_name,
        req.orderer_name,
        req.note or "",
        req.clinic_name,
        *(name for _, name in req.diagnoses),
        *(test.name for test in req.tests),
    ]
    pdf = PaperPDF.start(
        title=f"Lab requisition {req.placer_order_number}",
        footer_text=f"Lab requisition {req.placer_order_number}",
        texts=texts,
    )
    text, pair, rule = pdf.paragraph, pdf.labelled, pdf.rule

    text(req.clinic_name or "Practice Portal", 15)
    if req.clinic_address:
        text(req.clinic_address)
    if req.clinic_phone:
        pair("Phone", req.clinic_phone)
    text("Laboratory requisition", 13)
    top = pdf.get_y() + 1
    draw_barcode(pdf, req.placer_order_number, pdf.l_margin, top)
    pdf.set_y(top + BAR_HEIGHT_MM + 1)
    pair("Order number", req.placer_order_number)
    if req.priority == "stat":
        pdf.set_text_color(170, 0, 0)
        text("STAT", 14)
        pdf.set_text_color(0)
    rule()

    pair("Patient", req.patient_name)
    pair("Date of birth", req.patient_birth_date.strftime("%Y-%m-%d"))
    pair("MRN", req.patient_mrn)
    pair("Sex at birth", req.patient_sex)
    rule()

    pair("Priority", "STAT" if req.priority == "stat" else "Routine")
    pair("Fasting", "Yes: the patient should fast" if req.fasting else "No")
    pair(
        "Collection date",
        req.collection_date.strftime("%Y-%m-%d") if req.collection_date else "At collection",
    )
    pair("Performing lab", req.lab_title or "Any (printed requisition)")
    rule()

    text("Tests", 12)
    for test in req.tests:
        line = f"{test.name} — LOINC {test.loinc}"
        if test.specimen:
            line += f" — specimen: {test.specimen}"
        if test.fasting:
            line += " — fasting"
        text(line)
    rule()

    if req.diagnoses:
        pair("Diagnoses (ICD-10-CM)", "; ".join(f"{c} {d}".strip() for c, d in req.diagnoses))
    if req.note:
        pair("Note to the lab", req.note)
    pair("Ordering provider", req.orderer_name)
    signed = req.signed_at.astimezone(clinic_zone()).strftime("%Y-%m-%d") if req.signed_at else ""
    pair("Date ordered", signed)
    return bytes(pdf.output())
