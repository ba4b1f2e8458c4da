"""The patient's prescriptions page: the viewer's own drafts first, then active and past
prescriptions with their state, pharmacy, refills, prescriber and date, and the actions each
allows (print, the printed copy, cancel); the newest past ones first, all on request; a
fixed number of queries however long the list; audited."""

from __future__ import annotations

import re

from sqlalchemy import event, select

from portal.audit.models import AuditEvent
from portal.extensions import db
from portal.prescriptions import states
from tests.prescriptions.printing_helpers import patient_with_address, portal_rx


def _sections(page: str) -> tuple[str, str, str]:
    head, rest = page.split('id="rx-active"', 1)
    active, past = rest.split('id="rx-past"', 1)
    return head, active, past


def test_drafts_active_and_past_are_listed_apart(app, chart, signed_in):
    patient_id = patient_with_address(app)
    portal_rx(app, patient_id, chart.drlee, signed=False, drug="amlodipine 5 MG Tab")
    portal_rx(app, patient_id, chart.drpatel, signed=False, drug="atorvastatin 20 MG Tab")
    portal_rx(
        app,
        patient_id,
        chart.drlee,
        state=states.PHARMACY_VERIFIED,
        connector="dosespot",
        vendor_id="501",
        pharmacy_name="Sandbox Pharmacy Main Street",
        drug="metformin 500 MG Tab",
    )
    portal_rx(
        app,
        patient_id,
        chart.drpatel,
        state=states.CANCELLED,
        connector="dosespot",
        vendor_id="502",
        drug="naproxen 500 MG Tab",
    )
    page = signed_in("drlee").get(f"/patients/{patient_id}/prescriptions")
    assert page.status_code == 200
    head, active, past = _sections(page.get_data(as_text=True))
    # Only the viewer's own draft, at the top; another prescriber's draft is theirs.
    assert "Your drafts" in head and "amlodipine" in head and "atorvastatin" not in page.text
    assert "metformin 500 MG Tab" in active and "Pharmacy verified" in active
    assert "Sandbox Pharmacy Main Street" in active and "Jordan Lee" in active
    assert "2 <span" in active and "authorised" in active
    assert "naproxen" in past and "Cancelled" in past and "Anita Patel" in past
    assert "metformin" not in past and "naproxen" not in active


def test_the_actions_follow_the_rules(app, chart, signed_in):
    patient_id = patient_with_address(app)
    printable = portal_rx(app, patient_id, chart.drlee, drug="Printable drug")
    others = portal_rx(app, patient_id, chart.drpatel, drug="Patient of Patel drug")
    cancellable = portal_rx(
        app,
        patient_id,
        chart.drlee,
        state=states.SENT,
        connector="dosespot",
        vendor_id="601",
        drug="Sent drug",
    )
    doctor = signed_in("drlee")
    page = doctor.get(f"/patients/{patient_id}/prescriptions").get_data(as_text=True)
    assert f'action="/prescriptions/{printable}/print"' in page
    assert f'action="/prescriptions/{others}/print"' not in page  # only its signer prints
    assert f'action="/prescriptions/{cancellable}/print"' not in page  # sent: not printed
    assert f'href="/prescriptions/{cancellable}/cancel"' in page
    assert f'href="/prescriptions/{printable}/cancel"' not in page  # the vendor never had it

    doctor.post_form(f"/prescriptions/{printable}/print", {"next": "/"})
    page = doctor.get(f"/patients/{patient_id}/prescriptions").get_data(as_text=True)
    assert f'action="/prescriptions/{printable}/print"' not in page
    assert f'href="/prescriptions/{printable}/pdf"' in page
    assert "No e-prescribing connector" in page

    nurse = signed_in("nurse").get(f"/patients/{patient_id}/prescriptions")
    assert nurse.status_code == 200
    text = nurse.get_data(as_text=True)
    assert "/print" not in text and "/cancel" not in text and "/pdf" not in text


def test_the_list_is_a_fixed_number_of_queries_however_many_prescriptions(app, chart, signed_in):
    patient_id = patient_with_address(app)
    doctor = signed_in("drlee")

    def queries_for_page() -> int:
        statements: list[str] = []

        def count(conn, cursor, statement, *args):
            if "prescriptions" in statement and statement.lstrip().upper().startswith("SELECT"):
                statements.append(statement)

        with app.app_context():
            engine = db.engine
        event.listen(engine, "before_cursor_execute", count)
        try:
            assert doctor.get(f"/patients/{patient_id}/prescriptions").status_code == 200
        finally:
            event.remove(engine, "before_cursor_execute", count)
        return len(statements)

    for index in range(3):
        portal_rx(app, patient_id, chart.drlee, drug=f"Drug {index}")
    few = queries_for_page()
    for index in range(30):
        portal_rx(
            app,
            patient_id,
            chart.drpatel if index % 2 else chart.drlee,
            state=states.CANCELLED if index % 3 else states.SENT,
            connector="dosespot",
            vendor_id=str(700 + index),
            drug=f"Other drug {index}",
        )
    assert queries_for_page() == few


def test_viewing_the_list_is_audited_and_unknown_patients_are_not_found(app, chart, signed_in):
    patient_id = patient_with_address(app)
    doctor = signed_in("drlee")
    assert doctor.get(f"/patients/{patient_id}/prescriptions").status_code == 200
    assert doctor.get(f"/patients/{patient_id + 1000}/prescriptions").status_code == 404
    with app.app_context():
        events = db.session.scalars(
            select(AuditEvent.patient_id).where(AuditEvent.action == "prescription.list_view")
        ).all()
    assert events == [patient_id]


def test_markup_in_what_was_written_stays_inert(app, chart, signed_in):
    patient_id = patient_with_address(app)
    portal_rx(
        app,
        patient_id,
        chart.drlee,
        directions="<script>alert('d')</script>",
        pharmacy_name='<img src=x onerror="alert(1)">',
        state=states.ERROR,
        transmission_error="<b>refused</b>",
    )
    page = signed_in("drlee").get(f"/patients/{patient_id}/prescriptions").get_data(as_text=True)
    assert "<script>alert('d')" not in page and "&lt;script&gt;" in page
    assert "<img src=x" not in page and "<b>refused</b>" not in page
    assert re.search(r"&lt;b&gt;refused&lt;/b&gt;", page)


def test_a_long_past_shows_its_newest_first_and_all_on_request(app, chart, signed_in):
    from portal.prescriptions.services import PAST_SHOWN_FIRST

    patient_id = patient_with_address(app)
    past = PAST_SHOWN_FIRST + 3
    for index in range(past):
        portal_rx(
            app,
            patient_id,
            chart.drlee,
            state=states.CANCELLED,
            connector="dosespot",
            vendor_id=str(900 + index),
            drug=f"Past drug {index:03d}",
        )
    doctor = signed_in("drlee")

    page = doctor.get(f"/patients/{patient_id}/prescriptions").get_data(as_text=True)
    _head, _active, shown = _sections(page)
    assert shown.count("<tr data-prescription=") == PAST_SHOWN_FIRST
    assert f"The newest {PAST_SHOWN_FIRST} of {past} past prescriptions." in shown
    link = re.search(r'<a href="([^"]+)#rx-past">Show all (\d+)</a>', shown)
    assert link and int(link.group(2)) == past
    assert "Past drug 000" not in shown  # the oldest waits for "Show all"

    everything = doctor.get(link.group(1).replace("&amp;", "&")).get_data(as_text=True)
    _head, _active, listed = _sections(everything)
    assert listed.count("<tr data-prescription=") == past
    assert "Past drug 000" in listed and "Show all" not in listed
