"""The requisition PDF: the order number as a Code 128 barcode that reads back (the bars are
taken from the PDF itself), the patient's two identifiers, the tests with LOINC and specimen,
fasting, priority, diagnoses, the ordering provider and the date; a note printed literally;
every print audited; no requisition for a draft."""

from __future__ import annotations

import io
import re

import pypdf
import pytest

from portal.labs.ordering import code128
from portal.labs.ordering.requisition import MODULE_MM
from tests.labs.ordering.helpers import XSS, a_patient, add, load, sign, start
from tests.support.audit import audit_events

RECT = re.compile(rb"([\d.]+) ([\d.]+) ([\d.]+) (-?[\d.]+) re f")
POINTS_PER_MM = 72 / 25.4


def test_code128_symbols_checksum_and_read_back():
    # "AB": start B (104), A=33, B=34; checksum (104 + 33*1 + 34*2) % 103 = 102.
    assert code128.symbols("AB") == [104, 33, 34, 102, 106]
    widths = code128.widths("L00000042")
    assert sum(widths) == 11 * (len("L00000042") + 2) + 13  # start, data, check; stop
    assert code128.decode(widths) == "L00000042"
    broken = list(widths)
    broken[20], broken[21] = broken[21], broken[20]  # two elements swapped: unreadable
    with pytest.raises(ValueError):
        code128.decode(broken)
    with pytest.raises(ValueError):
        code128.symbols("é")


def bars_in(pdf_bytes: bytes) -> list[int]:
    """The barcode's element widths in modules, read from the page's filled rectangles."""
    content = pypdf.PdfReader(io.BytesIO(pdf_bytes)).pages[0].get_contents().get_data()
    bars = [
        (float(x), float(w))
        for x, _y, w, h in RECT.findall(content)
        if abs(abs(float(h)) - 14 * POINTS_PER_MM) < 0.1
    ]
    module = MODULE_MM * POINTS_PER_MM
    widths = []
    for index, (x, w) in enumerate(bars):
        if index:
            previous_x, previous_w = bars[index - 1]
            widths.append(round((x - previous_x - previous_w) / module))
        widths.append(round(w / module))
    return widths


def test_the_requisition_carries_what_the_lab_needs(app, signed_in, chart):
    patient_id = a_patient(app)
    doctor = signed_in("drlee")
    order_id = start(doctor, patient_id)
    add(doctor, order_id, "24323-8", "4548-4")
    sign(doctor, order_id, diagnoses="E11.9", fasting="y", priority="stat", note=XSS)
    order = load(app, order_id)
    nurse = signed_in("nurse")
    response = nurse.get(f"/labs/orders/{order_id}/requisition.pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert response.headers["Cache-Control"] == "no-store"
    pdf = response.get_data()
    text = pypdf.PdfReader(io.BytesIO(pdf)).pages[0].extract_text()
    for expected in (
        order.placer_order_number,
        "Lovelace, Ada",
        "1985-12-10",
        "MRN",
        "LOINC 24323-8",
        "LOINC 4548-4",
        "specimen: serum",
        "specimen: blood",
        "STAT",
        "the patient should fast",
        "E11.9 Type 2 diabetes mellitus",
        "Jordan Lee",
        XSS,  # printed as the characters typed
    ):
        assert expected in text, expected
    with app.app_context():
        from portal.extensions import db
        from portal.patients.models import Patient

        assert db.session.get(Patient, patient_id).mrn in text
    assert code128.decode(bars_in(pdf)) == order.placer_order_number
    [event] = audit_events(app, "lab_order.print_requisition")
    assert event.patient_id == patient_id and event.username == "nurse"


def test_a_draft_has_no_requisition(app, signed_in, chart):
    patient_id = a_patient(app)
    doctor = signed_in("drlee")
    order_id = start(doctor, patient_id)
    response = doctor.get(f"/labs/orders/{order_id}/requisition.pdf")
    assert response.status_code == 303
    assert audit_events(app, "lab_order.print_requisition") == []
