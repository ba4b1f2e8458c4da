"""The patient page's appointments (next and last, "Book" for this patient) and where opening
a patient from a search leads (clinicians: the chart summary; the front desk: demographics)."""

from __future__ import annotations

import re

from tests.patients.appointment_helpers import add_appointment
from tests.support.audit import audit_events


def section(html: str, element_id: str) -> str:
    """The text of the element with ``element_id`` (up to its closing tag)."""
    return html.split(f'id="{element_id}"', 1)[1].split("</", 1)[0] if element_id in html else ""


def listed_ids(html: str, list_id: str) -> list[int]:
    block = html.split(f'id="{list_id}"', 1)[1].split("</ul>", 1)[0]
    return [int(n) for n in re.findall(r"/schedule/appointments/(\d+)\"", block)]


def test_patient_page_lists_next_and_last_appointments(app, chart, signed_in):
    later = add_appointment(app, chart, days=9)
    soon = add_appointment(app, chart, days=2)
    add_appointment(app, chart, days=3, status="cancelled")  # not upcoming
    missed = add_appointment(app, chart, days=-5, status="no_show")
    seen = add_appointment(app, chart, days=-30, status="completed")
    add_appointment(app, chart, days=1, patient=1)  # someone else's
    html = signed_in("front_desk").get(f"/patients/{chart.patients[0]}").get_data(as_text=True)
    assert listed_ids(html, "upcoming-appointments") == [soon, later]
    assert listed_ids(html, "recent-appointments") == [missed, seen]
    recent = html.split('id="recent-appointments"', 1)[1].split("</ul>", 1)[0]
    assert "No-show" in recent and "Completed" in recent
    upcoming = html.split('id="upcoming-appointments"', 1)[1].split("</ul>", 1)[0]
    assert "Follow-up with" in upcoming and "Main Street" in upcoming


def test_patient_without_appointments_says_so_and_offers_book(app, chart, signed_in):
    patient_id = chart.patients[1]
    html = signed_in("front_desk").get(f"/patients/{patient_id}").get_data(as_text=True)
    assert section(html, "upcoming-appointments").strip(">").strip() == "None booked."
    assert section(html, "recent-appointments").strip(">").strip() == "No past appointments."
    assert f'href="/schedule/appointments/new?patient_id={patient_id}">Book</a>' in html


def test_page_with_appointments_still_writes_one_event(app, chart, signed_in):
    add_appointment(app, chart, days=2)
    signed_in("nurse").get(f"/patients/{chart.patients[0]}")
    assert len(audit_events(app, "patient.view")) == 1
    assert audit_events(app, "appointment.list") == []


def test_book_from_the_patient_page_has_the_patient_chosen(app, chart, signed_in):
    patient_id = chart.patients[1]
    html = (
        signed_in("front_desk")
        .get(f"/schedule/appointments/new?patient_id={patient_id}")
        .get_data(as_text=True)
    )
    radio = re.search(rf'<input[^>]*value="{patient_id}"[^>]*>', html)
    assert radio is not None and "checked" in radio.group(0)
    assert "Turing, Alan" in html
    # Showing the chosen patient is a read of their record, audited like any other (an id
    # typed into the address is no way round the trail).
    viewed = audit_events(app, "patient.view")
    assert [(e.patient_id, e.detail) for e in viewed] == [(patient_id, "booking")]
    # An id that is no patient's chooses nobody (and is not an error).
    response = signed_in("front_desk").get("/schedule/appointments/new?patient_id=999999")
    assert response.status_code == 200 and 'name="patient_id" value=' not in response.get_data(
        as_text=True
    )


def result_links(client, query: str) -> list[str]:
    response = client.post_form("/patients/search", {"q": query}, headers={"HX-Request": "true"})
    return re.findall(r'class="search-result" href="([^"]+)"', response.get_data(as_text=True))


def test_clinicians_open_the_chart_and_the_front_desk_demographics(app, chart, signed_in):
    patient_id = chart.patients[0]
    assert result_links(signed_in("front_desk"), "Lovelace") == [f"/patients/{patient_id}"]
    for role in ("nurse", "prescriber"):
        assert result_links(signed_in(role), "Lovelace") == [f"/chart/patients/{patient_id}"]


def test_the_appointment_panel_opens_the_patient_where_the_role_lands(app, chart, signed_in):
    appointment_id = add_appointment(app, chart, days=1)
    patient_id = chart.patients[0]
    for role, href in (
        ("front_desk", f"/patients/{patient_id}"),
        ("nurse", f"/chart/patients/{patient_id}"),
    ):
        html = (
            signed_in(role).get(f"/schedule/appointments/{appointment_id}").get_data(as_text=True)
        )
        assert f'<a href="{href}">Open the patient\u2019s record</a>' in html, role
