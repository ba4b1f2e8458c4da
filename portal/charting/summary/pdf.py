"""The visit summary as a PDF (fpdf2), with the signed note text exactly as signed.

fpdf2's built-in fonts know latin-1 only, and names and notes may hold any script, so the
PDF embeds Noto Sans (a registry package ships it) and falls back to Noto Sans CJK for
Chinese, Japanese and Korean. The CJK font is large and slow to load, so it is added only
when the text needs a character Noto Sans lacks.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from fontTools.ttLib import TTFont
from fpdf import FPDF

from portal.charting.immunizations.services import immunization_line
from portal.charting.models import ENCOUNTER_KINDS, NOTE_KINDS
from portal.charting.vitals.services import vital_sign_items
from portal.clinic.clock import clinic_zone
from portal.clinic.services import current_clinic
from portal.timeutil import utcnow

FONT = "NotoSans"
CJK_FONT = "NotoSansCJK"
LINE = 5.5


def _font_path() -> str:
    return str(files("fontpkg_noto_sans") / "files" / "NotoSans[wdth,wght].ttf")


def _cjk_font_path() -> str:
    return str(files("cvttf_NotoSansCJK_Regular") / "NotoSansCJKtc-Regular.otf")


@cache
def _covered_code_points() -> frozenset[int]:
    """The characters Noto Sans has glyphs for (read once per process)."""
    font = TTFont(_font_path(), lazy=True)
    try:
        return frozenset(font.getBestCmap())
    finally:
        font.close()


def _needs_cjk(texts) -> bool:
    covered = _covered_code_points()
    return any(
        ord(char) not in covered and not char.isspace() for text in texts for char in text or ""
    )


class PaperPDF(FPDF):
    """One printed Letter document in the portal's fonts (any script), with a centred footer
    line and the few text helpers the printouts of other domains share (the prescription,
    the lab requisition): drawn as text, never interpreted."""

    LINE = 5.5
    footer_text = ""

    @classmethod
    def start(cls, *, title: str, footer_text: str, texts) -> PaperPDF:
        """A document with its first page added; ``texts`` decide whether the CJK font is
        needed (it is large and slow to load)."""
        pdf = cls(format="Letter")
        pdf.set_margins(18, 16, 18)
        pdf.set_auto_page_break(True, margin=18)
        pdf.add_font(FONT, "", _font_path())
        if _needs_cjk(texts):
            pdf.add_font(CJK_FONT, "", _cjk_font_path())
            pdf.set_fallback_fonts([CJK_FONT], exact_match=False)
        pdf.set_title(title)
        pdf.set_creator("Practice Portal")
        pdf.footer_text = footer_text
        pdf.add_page()
        return pdf

    @property
    def body_width(self) -> float:
        return self.w - self.l_margin - self.r_margin

    def footer(self):
        self.set_y(-14)
        self.set_font(FONT, size=8)
        self.set_text_color(90)
        self.cell(0, 5, self.footer_text, align="C")
        self.set_text_color(0)

    def paragraph(self, value: str, size: int = 10) -> None:
        self.set_font(FONT, size=size)
        self.multi_cell(0, self.LINE, value, new_x="LMARGIN", new_y="NEXT")

    def labelled(self, label: str, value: str | None) -> None:
        """A grey label and its value beside it ("—" when there is none)."""
        self.set_font(FONT, size=10)
        self.set_text_color(90)
        self.cell(46, self.LINE, label)
        self.set_text_color(0)
        self.multi_cell(0, self.LINE, value or "—", new_x="LMARGIN", new_y="NEXT")

    def rule(self) -> None:
        self.ln(1.5)
        self.set_draw_color(160)
        self.line(self.l_margin, self.get_y(), self.l_margin + self.body_width, self.get_y())
        self.ln(2)


class _SummaryPDF(FPDF):
    """Letter pages with the patient's identifiers in every footer (no "{nb}" page total:
    fpdf2 would replace that text inside a note too)."""

    footer_text = ""

    def footer(self):
        self.set_y(-14)
        self.set_font(FONT, size=8)
        self.set_text_color(90)
        self.cell(0, 5, f"{self.footer_text} · page {self.page_no()}", align="C")
        self.set_text_color(0)


def _local(value, pattern="%Y-%m-%d %H:%M") -> str:
    return value.astimezone(clinic_zone()).strftime(pattern) if value else ""


def render_pdf(summary) -> bytes:
    """The visit summary of a final encounter (every note signed) as PDF bytes."""
    clinic = current_clinic()
    patient, encounter = summary.patient, summary.encounter
    patient_name = f"{patient.family_name}, {patient.given_name}"
    texts = [
        patient_name,
        clinic.name if clinic else "",
        encounter.chief_complaint,
        encounter.provider.full_name,
        *(problem.description for problem in encounter.problems_addressed),
        *(immunization_line(row) for row in summary.immunizations),
    ]
    for note in summary.notes:
        texts += [note.text, note.author.full_name]
        for addendum in note.addenda:
            texts += [addendum.text, addendum.author.full_name]

    pdf = _SummaryPDF(format="Letter")
    pdf.set_margins(18, 16, 18)
    pdf.set_auto_page_break(True, margin=18)
    pdf.add_font(FONT, "", _font_path())
    if _needs_cjk(texts):
        pdf.add_font(CJK_FONT, "", _cjk_font_path())
        pdf.set_fallback_fonts([CJK_FONT], exact_match=False)
    pdf.set_title("Visit summary")
    pdf.set_creator("Practice Portal")
    pdf.footer_text = f"{patient_name} · MRN {patient.mrn} · printed {_local(utcnow())}"
    pdf.add_page()

    def heading(text: str, size: int = 12) -> None:
        pdf.ln(2)
        pdf.set_font(FONT, size=size)
        pdf.multi_cell(0, LINE + 1, text, new_x="LMARGIN", new_y="NEXT")
        pdf.set_draw_color(160)
        pdf.line(pdf.l_margin, pdf.get_y(), pdf.w - pdf.r_margin, pdf.get_y())
        pdf.ln(1.5)
        pdf.set_font(FONT, size=10)

    def pair(label: str, value: str) -> None:
        pdf.set_text_color(90)
        pdf.cell(42, LINE, label)
        pdf.set_text_color(0)
        pdf.multi_cell(0, LINE, value or "—", new_x="LMARGIN", new_y="NEXT")

    pdf.set_font(FONT, size=16)
    clinic_title = clinic.name if clinic else "Practice Portal"
    pdf.multi_cell(0, 8, clinic_title, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, size=10)
    if clinic and clinic.address:
        pdf.multi_cell(0, LINE, clinic.address, new_x="LMARGIN", new_y="NEXT")
    heading("Visit summary", 14)
    pair("Patient", patient_name)
    pair("Date of birth", patient.birth_date.isoformat())
    pair("MRN", patient.mrn)
    pair("Visit", _local(encounter.occurred_at))
    pair("Kind", ENCOUNTER_KINDS.get(encounter.kind, encounter.kind))
    pair("Provider", encounter.provider.full_name)
    if encounter.location is not None:
        pair("Location", encounter.location.name)
    pair("Chief complaint", encounter.chief_complaint or "")

    heading("Vital signs")
    if not summary.vitals:
        pdf.multi_cell(0, LINE, "None recorded at this visit.", new_x="LMARGIN", new_y="NEXT")
    for vitals in summary.vitals:
        pair("Taken", _local(vitals.taken_at))
        for label, value in vital_sign_items(vitals, clinic):
            pair(label, value)
        pdf.ln(1)

    if summary.immunizations:  # most visits give none: no empty heading for them
        heading("Immunizations")
        for row in summary.immunizations:
            pair(row.occurred_on.isoformat(), immunization_line(row))

    heading("Diagnoses addressed")
    if not encounter.problems_addressed:
        pdf.multi_cell(0, LINE, "None recorded.", new_x="LMARGIN", new_y="NEXT")
    for problem in sorted(encounter.problems_addressed, key=lambda p: p.icd10_code):
        pair(problem.icd10_code, problem.description)

    for note in summary.notes:
        heading(NOTE_KINDS.get(note.kind, note.kind))
        signer = note.signed_by or note.author
        pdf.set_text_color(90)
        pdf.multi_cell(
            0,
            LINE,
            f"Written by {note.author.full_name}; signed by {signer.full_name} "
            f"on {_local(note.signed_at)}",
            new_x="LMARGIN",
            new_y="NEXT",
        )
        pdf.set_text_color(0)
        pdf.ln(1)
        # The text exactly as signed: no markup, wrapping only at the page edge.
        pdf.multi_cell(0, LINE, note.text, new_x="LMARGIN", new_y="NEXT")
        for addendum in note.addenda:
            pdf.ln(2)
            pdf.set_text_color(90)
            pdf.multi_cell(
                0,
                LINE,
                f"Addendum by {addendum.author.full_name}, signed {_local(addendum.signed_at)}",
                new_x="LMARGIN",
                new_y="NEXT",
            )
            pdf.set_text_color(0)
            pdf.multi_cell(0, LINE, addendum.text, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())
