"""The after-visit summary as a PDF: one page for an ordinary visit, never a trailing page
that holds only a few stray lines.

fpdf2 breaks pages on its own; a summary a few lines too long for one page used to leave a
nearly blank last page. So the PDF is laid out at the normal size first and, when that takes
more than one page, again a little tighter: the tighter layout is kept when it saves a page.
A section heading never sits alone at the foot of a page.
"""

from __future__ import annotations

from dataclasses import dataclass

from fpdf import FPDF

from portal.charting.summary.pdf import (
    CJK_FONT,
    FONT,
    _cjk_font_path,
    _font_path,
    _local,
    _needs_cjk,
)
from portal.charting.vitals.services import vital_sign_items
from portal.clinic.services import current_clinic
from portal.timeutil import utcnow

CHANGE_WORDS = {"new": "New", "changed": "Changed", "stopped": "Stop taking"}


@dataclass(frozen=True)
class _Scale:
    body: float  # font size of the text
    line: float  # line height, mm
    gap: float  # space before a heading, mm


SCALES = (_Scale(10.5, 5.2, 3.0), _Scale(9.5, 4.6, 2.0), _Scale(9.0, 4.2, 1.4))


class _AfterVisitPDF(FPDF):
    footer_text = ""

    def footer(self):
        self.set_y(-13)
        self.set_font(FONT, size=8)
        self.set_text_color(90)
        self.cell(0, 5, f"{self.footer_text} · page {self.page_no()}", align="C")
        self.set_text_color(0)


def _texts(summary) -> list[str]:
    """Every text the PDF may print (to decide whether the CJK font is needed)."""
    patient, encounter = summary.patient, summary.encounter
    texts = [patient.family_name, patient.given_name, encounter.provider.full_name]
    texts += summary.done + [name for name, _code in summary.diagnoses]
    for line in [*summary.medications, *summary.stopped]:
        texts += [line.drug, line.how, line.was or ""]
    for allergy in summary.allergies.allergies:
        texts += [allergy.substance, *[str(r) for r in allergy.reactions or []]]
    if summary.next_appointment is not None:
        row = summary.next_appointment
        texts += [row.type_name, row.provider_name, row.location_name]
    return texts


def _layout(summary, scale: _Scale, cjk: bool) -> FPDF:
    clinic = current_clinic()
    patient, encounter = summary.patient, summary.encounter
    name = f"{patient.given_name} {patient.family_name}"
    pdf = _AfterVisitPDF(format="Letter")
    pdf.set_margins(18, 14, 18)
    pdf.set_auto_page_break(True, margin=17)
    pdf.add_font(FONT, "", _font_path())
    if cjk:
        pdf.add_font(CJK_FONT, "", _cjk_font_path())
        pdf.set_fallback_fonts([CJK_FONT], exact_match=False)
    pdf.set_title("After-visit summary")
    pdf.set_creator("Practice Portal")
    pdf.footer_text = f"{patient.family_name}, {patient.given_name} · printed {_local(utcnow())}"
    pdf.add_page()
    line = scale.line

    def text(value: str, *, size: float | None = None, grey: bool = False) -> None:
        pdf.set_font(FONT, size=size or scale.body)
        if grey:
            pdf.set_text_color(90)
        pdf.multi_cell(0, line, value, new_x="LMARGIN", new_y="NEXT")
        pdf.set_text_color(0)

    def heading(title: str) -> None:
        # Never a heading alone at the foot of a page: start the section on the next one.
        if pdf.get_y() + scale.gap + 3 * line > pdf.page_break_trigger:
            pdf.add_page()
        pdf.ln(scale.gap)
        pdf.set_font(FONT, size=scale.body + 1.5)
        pdf.multi_cell(0, line + 0.8, title, new_x="LMARGIN", new_y="NEXT")
        pdf.set_draw_color(170)
        pdf.line(pdf.l_margin, pdf.get_y(), pdf.w - pdf.r_margin, pdf.get_y())
        pdf.ln(1)

    def bullet(value: str) -> None:
        pdf.set_font(FONT, size=scale.body)
        pdf.cell(5, line, "•")
        pdf.multi_cell(0, line, value, new_x="LMARGIN", new_y="NEXT")

    pdf.set_font(FONT, size=scale.body + 4)
    pdf.multi_cell(0, line + 2, clinic.name if clinic else "", new_x="LMARGIN", new_y="NEXT")
    if clinic and clinic.address:
        text(clinic.address, size=scale.body - 1, grey=True)
    pdf.ln(1)
    pdf.set_font(FONT, size=scale.body + 3)
    pdf.multi_cell(0, line + 1.5, f"After-visit summary for {name}", new_x="LMARGIN", new_y="NEXT")
    when = _local(encounter.occurred_at, "%A %d %B %Y")
    where = f" at {encounter.location.name}" if encounter.location is not None else ""
    text(f"Your visit on {when}{where} · date of birth {patient.birth_date:%d %B %Y}", grey=True)

    heading("What we did today")
    for item in summary.done:
        bullet(item)

    heading("Your diagnoses")
    if not summary.diagnoses:
        text("None were recorded at this visit.")
    for plain, code in summary.diagnoses:
        bullet(f"{plain}  ({code})")

    heading("Your vital signs")
    if not summary.visit.vitals:
        text("None were measured at this visit.")
    for vitals in summary.visit.vitals:
        items = vital_sign_items(vitals, clinic)
        half = (pdf.w - pdf.l_margin - pdf.r_margin) / 2
        pdf.set_font(FONT, size=scale.body)
        for index, (label, value) in enumerate(items):
            pdf.set_text_color(90)
            pdf.cell(half * 0.45, line, label)
            pdf.set_text_color(0)
            last_in_row = index % 2 == 1 or index == len(items) - 1
            pdf.cell(
                half * 0.55,
                line,
                value,
                new_x="LMARGIN" if last_in_row else "RIGHT",
                new_y="NEXT" if last_in_row else "TOP",
            )

    heading("Your medications")
    if not summary.medications:
        text("No medications on your list.")
    for medication in summary.medications:
        label = f"{CHANGE_WORDS[medication.change]}: " if medication.change else ""
        how = f" — {medication.how}" if medication.how else ""
        was = f" (before: {medication.was})" if medication.was else ""
        bullet(f"{label}{medication.drug}{how}{was}")
    if summary.stopped:
        pdf.ln(1)
        text("Stop taking:")
        for medication in summary.stopped:
            bullet(medication.drug)

    heading("Your allergies")
    allergies = summary.allergies
    if allergies.allergies:
        for allergy in allergies.allergies:
            reactions = ", ".join(str(reaction) for reaction in allergy.reactions or [])
            bullet(f"{allergy.substance}{f' ({reactions})' if reactions else ''}")
    elif allergies.nka_recorded_at is not None:
        text("No known allergies.")
    else:
        text("None recorded yet: tell us about any allergy at your next visit.")

    heading("Your next appointment")
    row = summary.next_appointment
    if row is None:
        text("None booked. Please call us if you were asked to come back.")
    else:
        text(
            f"{_local(row.starts_at, '%A %d %B %Y at %H:%M')}: {row.type_name} with "
            f"{row.provider_name}, {row.location_name}"
        )
    return pdf


def render_after_visit_pdf(summary) -> bytes:
    """The patient's copy as PDF bytes, on as few pages as a slightly tighter layout allows."""
    cjk = _needs_cjk(_texts(summary))
    best = None
    for scale in SCALES:
        pdf = _layout(summary, scale, cjk)
        if best is None or pdf.pages_count < best.pages_count:
            best = pdf
        if best.pages_count == 1:
            break
    return bytes(best.output())
