"""The printed prescription as a PDF (fpdf2), one Letter page.

It carries the elements a pharmacist needs to dispense from paper (the prescriber with
address, phone, NPI, and the DEA number in full for a controlled substance; the patient with
date of birth and address; the drug, strength, form, quantity, directions, refills,
substitution, the date written, a line for the handwritten signature) and says why it was
printed, so nobody expects an electronic copy at the pharmacy. A controlled substance's
quantity is written in words beside the figures, so a figure cannot be changed unnoticed.

Text is drawn as text (never interpreted): whatever a directions field or a note to the
pharmacist holds is printed literally. Names may be in any script, so the fonts are the
visit summary's (Noto Sans, with Noto Sans CJK added only when needed).
"""

from __future__ import annotations

from portal.charting.summary.pdf import PaperPDF
from portal.clinic.clock import clinic_zone
from portal.prescriptions.printing.services import PrintOut
from portal.prescriptions.services import TRANSMISSION_FAILED

SCHEDULES = {2: "II", 3: "III", 4: "IV", 5: "V"}


def _local(value, pattern: str = "%Y-%m-%d %H:%M") -> str:
    return value.astimezone(clinic_zone()).strftime(pattern) if value else ""


def not_sent_statement(out: PrintOut) -> str:
    """The printout's statement of why it is on paper. After a failed transmission it says
    where it was sent and that the transmission failed (21 CFR 1311.170(f)): it was sent,
    so it must not say it never was; without a connector, that it was never sent."""
    reason = out.print_reason.rstrip(". ")
    if out.transmission_failed:
        why = reason.removeprefix(TRANSMISSION_FAILED).lstrip(": ").rstrip(". ")
        pharmacy = out.pharmacy_name or "a pharmacy"
        return (
            f"This prescription was sent electronically to {pharmacy} and the transmission "
            f"failed" + (f" ({why})" if why else "") + "; it will not be sent electronically "
            "again."
        )
    reason = reason[:1].lower() + reason[1:]
    return (
        f"This prescription was printed because {reason}; it has not been and will not be "
        "sent electronically."
    )


def render_prescription_pdf(out: PrintOut) -> bytes:
    """The printed prescription ``out`` as PDF bytes."""
    diagnoses = [f"{d.get('code', '')} {d.get('description', '')}".strip() for d in out.diagnoses]
    texts = [
        out.clinic_name,
        out.clinic_address,
        out.prescriber_name,
        out.patient_name,
        out.patient_address,
        out.drug,
        out.directions,
        out.pharmacist_note,
        out.print_reason,
        *diagnoses,
    ]
    pdf = PaperPDF.start(
        title="Prescription (copy)" if out.copy else "Prescription",
        footer_text=f"Prescription {out.prescription_id}"
        + (" · COPY, not a new prescription" if out.copy else ""),
        texts=texts,
    )
    text, pair, rule = pdf.paragraph, pdf.labelled, pdf.rule

    if out.copy:
        pdf.set_text_color(170, 0, 0)
        text("COPY — a reprint of the prescription printed on " + _local(out.printed_at), 13)
        pdf.set_text_color(0)
        pdf.ln(1)

    # The prescriber and where to reach them.
    text(out.clinic_name or "Practice Portal", 15)
    if out.clinic_address:
        text(out.clinic_address)
    pair("Phone", out.clinic_phone or "not on file")
    pair("Prescriber", out.prescriber_name)
    pair("NPI", out.prescriber_npi or "not on file")
    if out.schedule:
        pair("DEA number", out.prescriber_dea or "not on file")
    rule()

    # The patient.
    pair("Patient", out.patient_name)
    pair("Date of birth", out.patient_birth_date.strftime("%Y-%m-%d"))
    pair("Address", out.patient_address or "not on file")
    rule()

    # The prescription.
    text("Rx", 16)
    pair("Drug", out.drug)
    pair("Strength", out.strength)
    pair("Dose form", " · ".join(part for part in (out.dose_form, out.route) if part) or None)
    if out.schedule:
        pair("DEA schedule", SCHEDULES.get(out.schedule, str(out.schedule)))
    unit = f" {out.dispense_unit}" if out.dispense_unit else ""
    if out.quantity_words:
        pair("Quantity", f"{out.quantity_words}{unit}")
    else:
        pair("Quantity", f"{out.quantity}{unit}")
    if out.days_supply:
        pair("Days supply", str(out.days_supply))
    pair("Directions", out.directions)
    pair("Refills", out.refills)
    pair(
        "Substitution",
        "Substitution allowed" if out.substitution_allowed else "Dispense as written",
    )
    if diagnoses:
        pair("Diagnoses", "; ".join(diagnoses))
    if out.pharmacist_note:
        pair("Note to pharmacist", out.pharmacist_note)
    pair("Date written", out.written_on.strftime("%Y-%m-%d") if out.written_on else None)
    if out.effective_on and out.effective_on != out.written_on:
        pair("Do not fill before", out.effective_on.strftime("%Y-%m-%d"))
    rule()

    # The signature: the paper needs the prescriber's hand; the electronic signing is named.
    pdf.ln(10)
    pdf.set_draw_color(0)
    pdf.line(pdf.l_margin, pdf.get_y(), pdf.l_margin + 95, pdf.get_y())
    pdf.ln(1)
    text(f"Signature of {out.prescriber_name}", 9)
    pdf.set_text_color(90)
    text(
        f"Signed in the portal on {_local(out.signed_at)}; printed on {_local(out.printed_at)}"
        + (f"; content digest {out.digest[:16]}…" if out.digest else ""),
        8,
    )
    pdf.set_text_color(0)
    rule()
    text(not_sent_statement(out), 10)
    return bytes(pdf.output())
