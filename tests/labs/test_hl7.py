"""Reading results (2.3 to 2.5.1), the ACKs we answer with, and the orders we build."""

from __future__ import annotations

import random
from datetime import date

import hl7

from portal.labs.hl7 import ack, oru
from portal.labs.hl7.orm import OrderedTest, OrderMessage, build_orm
from tests.labs import samples


def _read(template: str, **values) -> oru.Reading:
    values = {"mrn": "M100", "dob": "19700304", "placer": "P-1"} | values
    return oru.read_message(template.format(**values).encode())


def test_a_nist_style_251_message_is_read():
    reading = _read(samples.NIST_STYLE_251)
    assert reading.problem is None
    assert reading.header.control_id == "NIST-TEST-0001"
    assert reading.header.sending_facility == "Sample Lab"
    assert reading.patient.mrns == ["M100"]
    assert reading.patient.birth_date == date(1970, 3, 4)
    (group,) = reading.groups
    assert group.placer_order_number == "P-1"
    (a1c,) = group.observations
    assert (a1c.loinc, a1c.value_numeric, a1c.units, a1c.abnormal_flag) == ("4548-4", 7.9, "%", "H")
    assert a1c.status == "F" and a1c.performing_lab == "Sample Lab"
    assert a1c.observed_at.utcoffset().total_seconds() == -5 * 3600


def test_a_23_message_with_the_mrn_in_pid_2_and_the_placer_number_in_orc():
    reading = _read(samples.V23)
    assert reading.problem is None
    assert reading.patient.mrns == ["M100"]
    (group,) = reading.groups
    assert group.placer_order_number == "P-1"
    tsh, t4 = group.observations
    assert (tsh.value_numeric, tsh.units, tsh.abnormal_flag) == (0.21, "m[IU]/L", "L")
    assert tsh.notes == ["Repeat in 6 weeks suggested."]
    assert (t4.value_type, t4.value_text, t4.status) == ("ST", "pending review", "P")


def test_231_text_values():
    reading = _read(samples.V231)
    assert reading.problem is None
    tx, ft, sg = reading.groups[0].observations
    assert tx.value_text == "Specimen slightly turbid.\nNo casts seen."
    assert ft.value_text == "Line one\nLine two"
    assert sg.value_numeric == 1.02 and sg.abnormal_flag == "N"


def test_24_coded_and_structured_numeric_values_and_a_z_segment():
    reading = _read(samples.V24)
    assert reading.problem is None
    sn, ce = reading.groups[0].observations
    assert (sn.value_text, sn.value_numeric) == ("<0.3", None)
    assert (ce.value_type, ce.value_text) == ("CE", "Negative")


def test_an_accepting_ack_names_the_message_it_answers():
    text = ack.build_ack(
        ack_code="AA", control_id="X1", version="2.3", ack_control_id="A1",
        receiving_application="LIS", receiving_facility="LAB",
    )  # fmt: skip
    parsed = hl7.parse(text)
    assert str(parsed.segment("MSA")(1)) == "AA"
    assert str(parsed.segment("MSA")(2)) == "X1"
    assert str(parsed.segment("MSH")(12)) == "2.3"
    assert str(parsed.segment("MSH")(5)) == "LIS"


def test_a_refusal_carries_its_reason_and_an_err_segment_in_each_version_style():
    problem = ack.Problem("AR", "MSH-10 is missing", ack.REQUIRED_FIELD_MISSING, "MSH", 10)
    new = hl7.parse(
        ack.build_ack(
            ack_code="AR", control_id="", version="2.5.1", problem=problem, ack_control_id="A2"
        )
    )
    assert str(new.segment("MSA")(3)) == "MSH-10 is missing"
    assert str(new.segment("ERR")(3)(1)(1)) == "101"
    assert str(new.segment("ERR")(2)) == "MSH^1^10"
    old = hl7.parse(
        ack.build_ack(
            ack_code="AE", control_id="C", version="2.4", problem=problem, ack_control_id="A3"
        )
    )
    assert str(old.segment("ERR")(1)(1)(4)) == "101&Required field missing&HL70357"


def test_a_reason_with_separators_is_escaped():
    problem = ack.Problem("AE", "bad | value ^ here", ack.DATA_TYPE_ERROR)
    parsed = hl7.parse(
        ack.build_ack(
            ack_code="AE", control_id="C", version="2.5.1", problem=problem, ack_control_id="A"
        )
    )
    assert parsed.unescape(str(parsed.segment("MSA")(3))) == "bad | value ^ here"


def test_an_orm_o01_is_built_for_an_order():
    text = build_orm(
        OrderMessage(
            control_id="O-1", placer_order_number="LAB-000042", patient_mrn="M100",
            patient_family_name="O'Brien|Smith", patient_given_name="Ann",
            patient_birth_date=date(1970, 3, 4), patient_sex="female", provider_id="7",
            provider_family_name="Lee", provider_given_name="Jordan",
            tests=(
                OrderedTest("24331-1", "Lipid panel"),
                OrderedTest("4548-4", "Hemoglobin A1c", "A1C"),
            ),
            priority="stat", collection_date=date(2026, 12, 7), fasting=True,
            note="Patient on statin", diagnoses=("E78.5", "E11.9"),
        )
    )  # fmt: skip
    parsed = hl7.parse(text)
    assert str(parsed.segment("MSH")(9)) == "ORM^O01^ORM_O01"
    assert str(parsed.segment("MSH")(12)) == "2.5.1"
    assert parsed.unescape(str(parsed.segment("PID")(5)(1)(1))) == "O'Brien|Smith"
    obrs = parsed.segments("OBR")
    assert [str(obr(4)(1)(1)) for obr in obrs] == ["24331-1", "4548-4"]
    assert all(str(obr(2)) == "LAB-000042" for obr in obrs)
    assert str(parsed.segments("ORC")[0](7)(1)(6)) == "S"
    assert [str(dg1(3)(1)(1)) for dg1 in parsed.segments("DG1")] == ["E78.5", "E11.9"]


def test_reading_never_raises_on_mangled_input():
    """Thousands of seeded mutations of a good message (bytes flipped, cut, repeated):
    every one is read or refused with a reason, none raises."""
    good = samples.V24.format(mrn="M1", dob="19700304", placer="P").encode()
    rng = random.Random(12)
    for _ in range(3000):
        data = bytearray(good)
        for _ in range(rng.randint(1, 8)):
            choice = rng.random()
            position = rng.randrange(len(data))
            if choice < 0.5:
                data[position] = rng.randrange(256)
            elif choice < 0.75:
                del data[position : position + rng.randint(1, 40)]
            else:
                data[position:position] = data[position : position + rng.randint(1, 40)]
        reading = oru.read_message(bytes(data))
        assert reading.ack_code in ("AA", "AE", "AR")
        assert reading.problem is None or reading.problem.text
        answer = ack.build_ack(
            ack_code=reading.ack_code,
            control_id=reading.header.control_id,
            version=reading.header.version,
            receiving_application=reading.header.sending_application,
            receiving_facility=reading.header.sending_facility,
            trigger=reading.header.trigger or "R01",
            problem=reading.problem,
            ack_control_id="A1",
        )
        assert str(hl7.parse(answer).segment("MSA")(1)) == reading.ack_code
