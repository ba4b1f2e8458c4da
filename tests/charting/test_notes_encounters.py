"""Encounters: "Start visit" from an appointment, ad hoc encounters, the encounter page."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from portal.extensions import db


def _encounters(app):
    from portal.charting.models import Encounter

    with app.app_context():
        return list(db.session.scalars(select(Encounter).order_by(Encounter.id)))


def _appointment(app, appointment_id):
    from portal.scheduling.models import Appointment

    with app.app_context():
        return db.session.get(Appointment, appointment_id)


def _events(app, action):
    from portal.audit.models import AuditEvent

    with app.app_context():
        return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def test_start_visit_creates_the_encounter_and_moves_the_appointment(
    app, chart, make_appointment, signed_in
):
    appointment_id = make_appointment(status="roomed", reason="Cough for two weeks")
    drlee = signed_in("prescriber")

    response = drlee.post_form(f"/chart/appointments/{appointment_id}/start-visit")

    assert response.status_code == 303
    [encounter] = _encounters(app)
    assert response.location.endswith(f"/chart/encounters/{encounter.id}")
    assert encounter.kind == "office"
    assert encounter.provider_id == chart.drlee
    assert encounter.location_id == chart.main_street
    assert encounter.chief_complaint == "Cough for two weeks"
    assert encounter.patient_id == chart.patients[0]
    assert _appointment(app, appointment_id).status == "with_provider"
    page = drlee.get(response.location)
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "Cough for two weeks" in text
    assert "Lovelace, Ada" in text  # the banner
    [event] = _events(app, "encounter.create")
    assert event.category == "encounters"
    assert event.patient_id == chart.patients[0]


def test_pressing_start_visit_twice_opens_the_same_encounter(
    app, chart, make_appointment, signed_in
):
    appointment_id = make_appointment(status="arrived")
    nurse = signed_in("nurse")
    first = nurse.post_form(f"/chart/appointments/{appointment_id}/start-visit")
    second = nurse.post_form(f"/chart/appointments/{appointment_id}/start-visit")
    assert first.location == second.location
    assert len(_encounters(app)) == 1
    assert len(_events(app, "encounter.create")) == 1


def test_telehealth_visit_types_make_telehealth_encounters(app, chart, make_appointment, signed_in):
    appointment_id = make_appointment(status="arrived", type_id=chart.video_visit)
    signed_in("prescriber").post_form(f"/chart/appointments/{appointment_id}/start-visit")
    [encounter] = _encounters(app)
    assert encounter.kind == "telehealth"


def test_an_appointment_already_with_the_provider_gets_its_encounter(
    app, chart, make_appointment, signed_in
):
    appointment_id = make_appointment(status="with_provider")
    response = signed_in("prescriber").post_form(
        f"/chart/appointments/{appointment_id}/start-visit"
    )
    assert response.status_code == 303
    assert len(_encounters(app)) == 1
    assert _appointment(app, appointment_id).status == "with_provider"


def test_a_visit_does_not_start_before_check_in(app, chart, make_appointment, signed_in):
    appointment_id = make_appointment(status="scheduled")
    drlee = signed_in("prescriber")
    response = drlee.post_form(f"/chart/appointments/{appointment_id}/start-visit")
    assert response.status_code == 303
    assert f"/schedule/appointments/{appointment_id}/status" in response.location
    page = drlee.get(response.location).get_data(as_text=True)
    assert "a visit starts once the patient is checked in" in page
    assert _encounters(app) == []
    assert _appointment(app, appointment_id).status == "scheduled"


def test_start_visit_on_an_unknown_appointment_is_404(app, chart, signed_in):
    response = signed_in("prescriber").post_form("/chart/appointments/987654/start-visit")
    assert response.status_code == 404


def test_the_appointment_panels_offer_start_visit_to_clinicians_only(
    app, chart, make_appointment, signed_in
):
    appointment_id = make_appointment(status="arrived")
    status_url = f"/schedule/appointments/{appointment_id}/status"
    assert "Start visit" in signed_in("nurse").get(status_url).get_data(as_text=True)
    assert "Start visit" not in signed_in("front_desk").get(status_url).get_data(as_text=True)
    panel_url = f"/schedule/appointments/{appointment_id}"
    assert "Start visit" in signed_in("prescriber").get(panel_url).get_data(as_text=True)


def test_ad_hoc_encounter(app, chart, signed_in):
    drlee = signed_in("prescriber")
    pid = chart.patients[1]
    form = drlee.get(f"/chart/patients/{pid}/encounters/new")
    assert form.status_code == 200
    assert "Turing, Alan" in form.get_data(as_text=True)
    response = drlee.post_form(
        f"/chart/patients/{pid}/encounters/new",
        {
            "kind": "phone",
            "provider_id": chart.drpatel,
            "location_id": "",
            "chief_complaint": "Refill question",
            "occurred_on": "2026-01-05",
            "occurred_time": "09:30",
        },
    )
    assert response.status_code == 303
    [encounter] = _encounters(app)
    assert (encounter.kind, encounter.provider_id, encounter.location_id) == (
        "phone",
        chart.drpatel,
        None,
    )
    # 09:30 in New York in January is 14:30 UTC.
    assert encounter.occurred_at.hour == 14 and encounter.occurred_at.minute == 30
    # The "None" choice of the location, as the browser sends it, is no location too.
    form = drlee.get(f"/chart/patients/{pid}/encounters/new").get_data(as_text=True)
    assert '<option selected value="None">None</option>' in form
    again = {"kind": "phone", "provider_id": chart.drpatel, "location_id": "None"}
    again |= {"occurred_on": "2026-01-05", "occurred_time": "10:30"}
    assert drlee.post_form(f"/chart/patients/{pid}/encounters/new", again).status_code == 303
    assert _encounters(app)[-1].location_id is None


def test_ad_hoc_encounter_refusals_keep_what_was_typed(app, chart, signed_in):
    nurse = signed_in("nurse")
    pid = chart.patients[0]
    response = nurse.post_form(
        f"/chart/patients/{pid}/encounters/new",
        {
            "kind": "office",
            "provider_id": chart.nurse,  # not a prescriber
            "chief_complaint": "Dizzy spells",
            "occurred_on": "2026-01-05",
            "occurred_time": "09:30",
        },
    )
    assert response.status_code == 422
    text = response.get_data(as_text=True)
    assert "Choose the provider." in text
    assert 'value="Dizzy spells"' in text
    assert _encounters(app) == []
    future = nurse.post_form(
        f"/chart/patients/{pid}/encounters/new",
        {
            "kind": "office",
            "provider_id": chart.drlee,
            "occurred_on": "2099-01-05",
            "occurred_time": "09:30",
        },
    )
    assert future.status_code == 422
    assert "cannot be in the future" in future.get_data(as_text=True)


def _request_key(page) -> str:
    import re

    match = re.search(r'name="request_key" type="hidden" value="([0-9a-f]{32})"', page.text)
    assert match, "the form carries a one-time request key"
    return match.group(1)


def _ad_hoc(chart, request_key: str, **values) -> dict:
    return {
        "kind": "office",
        "provider_id": str(chart.drlee),
        "location_id": "",
        "chief_complaint": "Walk-in, sore throat",
        "occurred_on": "2026-01-05",
        "occurred_time": "09:30",
        "request_key": request_key,
        **values,
    }


def test_a_double_submitted_ad_hoc_encounter_opens_the_first(app, chart, signed_in):
    """The form sent twice (a double click, a resent post): one encounter, and both answers
    open it. A new form (a new key) makes a new encounter."""
    drlee = signed_in("prescriber")
    url = f"/chart/patients/{chart.patients[0]}/encounters/new"
    key = _request_key(drlee.get(url))
    first = drlee.post_form(url, _ad_hoc(chart, key))
    second = drlee.post_form(url, _ad_hoc(chart, key))
    [encounter] = _encounters(app)
    assert first.status_code == second.status_code == 303
    assert first.location == second.location == f"/chart/encounters/{encounter.id}"
    assert len(_events(app, "encounter.create")) == 1
    another = _request_key(drlee.get(url))
    assert another != key
    assert drlee.post_form(url, _ad_hoc(chart, another)).status_code == 303
    assert len(_encounters(app)) == 2


def test_a_refused_ad_hoc_form_keeps_its_key_and_creates_once(app, chart, signed_in):
    drlee = signed_in("prescriber")
    url = f"/chart/patients/{chart.patients[0]}/encounters/new"
    key = _request_key(drlee.get(url))
    refused = drlee.post_form(url, _ad_hoc(chart, key, occurred_time=""))
    assert refused.status_code == 422 and _request_key(refused) == key
    assert drlee.post_form(url, _ad_hoc(chart, key)).status_code == 303
    assert drlee.post_form(url, _ad_hoc(chart, key)).status_code == 303
    assert len(_encounters(app)) == 1


@pytest.mark.postgres_only
def test_two_sends_of_one_ad_hoc_form_racing_make_one_encounter(app, chart, signed_in, monkeypatch):
    """Both sends in flight at once: the second has looked for the key's encounter (none
    yet) when the first commits. Still one encounter, both answers open it."""
    from portal.charting.encounters import services as encounters
    from tests.charting.race_helpers import interleave

    drlee = signed_in("prescriber")
    url = f"/chart/patients/{chart.patients[0]}/encounters/new"
    data = _ad_hoc(chart, _request_key(drlee.get(url)))
    race = interleave(
        monkeypatch, encounters, "check_prescriber", lambda: drlee.post_form(url, data)
    )
    first = drlee.post_form(url, data)
    second = race.finish()
    [encounter] = _encounters(app)
    assert first.location == second.location == f"/chart/encounters/{encounter.id}"


@pytest.mark.parametrize("field", ["provider_id", "location_id"])
@pytest.mark.parametrize("value", ["99999999999999999999999", "2147483648", "-1", "abc"])
def test_an_ad_hoc_encounter_with_an_impossible_id_is_refused_beside_the_field(
    app, chart, signed_in, field, value
):
    """Ids beyond the database's integer range used to reach the query (a 500)."""
    drlee = signed_in("prescriber")
    url = f"/chart/patients/{chart.patients[0]}/encounters/new"
    response = drlee.post_form(url, _ad_hoc(chart, "", **{field: value}))
    assert response.status_code == 422
    assert f'id="{field}-error"' in response.text and "Choose one from the list." in response.text
    assert 'value="Walk-in, sore throat"' in response.text
    assert _encounters(app) == []


def test_encounter_urls_404_for_unknown_ids(app, chart, signed_in):
    drlee = signed_in("prescriber")
    assert drlee.get("/chart/encounters/424242").status_code == 404
    assert drlee.get("/chart/patients/424242/encounters/new").status_code == 404
    assert (
        drlee.post_form("/chart/notes/424242/draft", {"text": "x", "version": "1"}).status_code
        == 404
    )


def test_encounter_page_view_is_audited(app, chart, make_encounter, signed_in):
    encounter_id = make_encounter()
    signed_in("nurse").get(f"/chart/encounters/{encounter_id}")
    [event] = _events(app, "encounter.view")
    assert event.category == "encounters"
    assert event.patient_id == chart.patients[0]
    assert event.object_id == str(encounter_id)


def test_encounter_page_takes_a_handful_of_queries_whatever_the_history(
    app, chart, make_encounter, make_note, signed_in
):
    """One encounter is shown: its notes and addenda, and the patient's other encounters,
    do not add queries (no query per note, addendum or author)."""
    from sqlalchemy import event

    from portal.charting.models import NoteAddendum
    from portal.charting.notes.services import sha256_text

    small = make_encounter()
    make_note(small, signed=True)
    for _ in range(30):
        make_note(make_encounter(), signed=True)
    big = make_encounter()
    first = make_note(big, signed=True)
    make_note(big, kind="nursing", author="nurse")
    with app.app_context():
        for n, author in enumerate([chart.nurse, chart.drpatel, chart.drlee] * 2):
            db.session.add(
                NoteAddendum(
                    note_id=first,
                    author_id=author,
                    text=f"a{n}",
                    signed_text_sha256=sha256_text(f"a{n}"),
                )
            )
        db.session.commit()
        engine = db.engine
    drlee = signed_in("prescriber")

    def statements_for(encounter_id):
        statements = []

        def count(_conn, _cursor, statement, *_args):
            statements.append(statement)

        event.listen(engine, "before_cursor_execute", count)
        try:
            assert drlee.get(f"/chart/encounters/{encounter_id}").status_code == 200
        finally:
            event.remove(engine, "before_cursor_execute", count)
        return statements

    statements_for(small)  # warm up (the clinic's cached settings)
    few, many = statements_for(small), statements_for(big)
    assert len(many) == len(few), "\n".join(many)
    # The page with its vitals, diagnoses and medication sections: a fixed set of statements
    # (sessions, user, banner, note, sections, the audit insert), not one per row.
    assert len(many) <= 30, "\n".join(many)
