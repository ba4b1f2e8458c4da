"""The visit day between rooming and the provider (issue 14, section 4): vitals a nurse
records at rooming belong to the day's visit, and a nurse's "Start visit" (for her intake
note) leaves the flow board card where it is until the prescriber starts the visit."""

from __future__ import annotations

from io import BytesIO

from pypdf import PdfReader
from sqlalchemy import select

from portal.extensions import db
from tests.charting.vitals_helpers import audit_events, form, vital_sets


def _appointment_status(app, appointment_id: int) -> str:
    from portal.scheduling.models import Appointment

    with app.app_context():
        return db.session.get(Appointment, appointment_id).status


def _encounter_ids(app) -> list[int]:
    from portal.charting.models import Encounter

    with app.app_context():
        return list(db.session.scalars(select(Encounter.id).order_by(Encounter.id)))


def _start(client, appointment_id: int):
    response = client.post_form(f"/chart/appointments/{appointment_id}/start-visit")
    assert response.status_code == 303
    return response


def _record_on_patient_page(client, patient_id: int, **values):
    response = client.post_form(f"/chart/patients/{patient_id}/vitals", form(**values))
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]


# --- the nurse's start and the provider's --------------------------------------------------


def test_a_nurses_start_leaves_the_card_roomed_and_the_providers_moves_it(
    app, chart, make_appointment, signed_in
):
    appointment_id = make_appointment(status="roomed")
    nurse, drlee = signed_in("nurse"), signed_in("prescriber")

    opened_by_nurse = _start(nurse, appointment_id)

    assert _appointment_status(app, appointment_id) == "roomed"
    [encounter_id] = _encounter_ids(app)
    assert opened_by_nurse.location.endswith(f"/chart/encounters/{encounter_id}")
    # The flow board reads the status: the card stays in the "Roomed" column.
    board_events = [e.detail for e in audit_events(app, "appointments")]
    assert not any("-> with_provider" in (detail or "") for detail in board_events)

    opened_by_provider = _start(drlee, appointment_id)

    assert opened_by_provider.location == opened_by_nurse.location
    assert _encounter_ids(app) == [encounter_id]
    assert _appointment_status(app, appointment_id) == "with_provider"
    details = [e.detail for e in audit_events(app, "appointments")]
    assert "roomed -> with_provider" in details


def test_a_nurses_start_of_a_checked_in_visit_keeps_it_checked_in(
    app, chart, make_appointment, signed_in
):
    appointment_id = make_appointment(status="arrived")
    _start(signed_in("nurse"), appointment_id)
    assert _appointment_status(app, appointment_id) == "arrived"
    status_panel = signed_in("nurse").get(f"/schedule/appointments/{appointment_id}/status")
    # The nurse can go back to the visit from the panel, and the card is not "with provider".
    assert "Start visit" in status_panel.get_data(as_text=True)


def test_the_provider_opening_a_visit_already_with_them_changes_nothing(
    app, chart, make_appointment, signed_in
):
    appointment_id = make_appointment(status="roomed")
    drlee = signed_in("prescriber")
    _start(drlee, appointment_id)
    _start(drlee, appointment_id)
    assert _appointment_status(app, appointment_id) == "with_provider"
    moves = [e for e in audit_events(app, "appointments") if "-> with_provider" in e.detail]
    assert len(moves) == 1


# --- vitals taken at rooming ---------------------------------------------------------------


def test_vitals_recorded_at_rooming_belong_to_the_visit_started_later(
    app, chart, make_appointment, make_note, signed_in
):
    patient = chart.patients[0]
    other_patient = chart.patients[1]
    appointment_id = make_appointment(status="roomed")
    nurse, drlee = signed_in("nurse"), signed_in("prescriber")
    # At rooming, before anyone pressed "Start visit": on the patient's vitals page.
    _record_on_patient_page(nurse, patient, systolic="131", diastolic="84", heart_rate="77")
    _record_on_patient_page(nurse, other_patient, heart_rate="64")

    started = _start(drlee, appointment_id)

    [encounter_id] = _encounter_ids(app)
    [rooming_set] = vital_sets(app, patient)
    assert rooming_set.encounter_id == encounter_id
    [unrelated] = vital_sets(app, other_patient)
    assert unrelated.encounter_id is None  # another patient's set stays where it was
    page = drlee.get(started.location).get_data(as_text=True)
    assert "131/84 mmHg" in page
    assert "No vital signs recorded at this visit" not in page
    make_note(encounter_id, signed=True)
    summary = drlee.get(f"/chart/encounters/{encounter_id}/summary").get_data(as_text=True)
    assert "131/84 mmHg" in summary
    assert "None recorded at this visit" not in summary
    pdf = drlee.get(f"/chart/encounters/{encounter_id}/summary.pdf")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    pdf_text = "\n".join(
        page.extract_text() for page in PdfReader(BytesIO(pdf.data)).pages
    ).replace("\x00", "")
    assert "131/84 mmHg" in pdf_text
    attach = [e for e in audit_events(app, "vital signs") if e.action == "vitals.attach"]
    assert len(attach) == 1 and attach[0].patient_id == patient


def test_vitals_recorded_on_the_patient_page_during_the_visit_join_it(
    app, chart, make_appointment, signed_in
):
    patient = chart.patients[0]
    appointment_id = make_appointment(status="roomed")
    nurse = signed_in("nurse")
    _start(nurse, appointment_id)  # the nurse opens the visit for her intake note
    [encounter_id] = _encounter_ids(app)

    _record_on_patient_page(nurse, patient, temperature="99.1")

    [row] = vital_sets(app, patient)
    assert row.encounter_id == encounter_id


def test_vitals_outside_any_visit_day_stay_unattached(app, chart, make_appointment, signed_in):
    patient = chart.patients[0]
    make_appointment(status="scheduled")  # booked today but not checked in: no visit under way
    _record_on_patient_page(signed_in("nurse"), patient, heart_rate="70")
    [row] = vital_sets(app, patient)
    assert row.encounter_id is None
