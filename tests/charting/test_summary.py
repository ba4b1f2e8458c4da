"""The chart summary (/chart/patients/<id>), the patient page's link to it, and the home
page's note worklist, over HTTP on the test database."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import event, select

from portal.charting.models import Encounter, Note
from portal.extensions import db
from portal.timeutil import utcnow
from tests.audit.helpers import events
from tests.charting.summary_helpers import (
    make_chart,
    make_encounter,
    make_note,
    make_patient,
    user_id,
)


def test_summary_shows_the_chart_at_a_glance(app, signed_in):
    ids = make_chart(app, allergy=True)
    browser = signed_in("prescriber")
    response = browser.get(f"/chart/patients/{ids['patient']}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Ångström, Zoë" in page  # the banner
    assert "E11.9" in page and "Type 2 diabetes" in page
    assert "Old asthma" not in page  # resolved problems are not on the front page
    assert "Metformin" in page and "Stopped drug" not in page
    assert "Penicillin" in page and "Hives" in page
    assert "128/82 mmHg" in page and "150/95" not in page  # the latest set only
    assert "Sore throat" in page and "Back pain" in page
    assert f'href="/chart/encounters/{ids["signed"]}"' in page
    assert ">Signed<" in page and ">Unsigned<" in page
    assert f'href="/chart/encounters/{ids["signed"]}/summary"' in page
    assert f'href="/chart/encounters/{ids["draft"]}/summary"' not in page  # nothing to print yet
    assert "Follow-up with Jordan Lee" in page
    assert "1 recorded" in page  # immunizations
    # Each list's heading leads to the full list, where it is kept up to date.
    for part in ("vitals", "problems", "allergies", "medications", "immunizations"):
        assert f'href="/chart/patients/{ids["patient"]}/{part}"' in page, part


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        ({}, "Allergies not recorded"),
        ({"nka": True}, "No known allergies"),
    ],
)
def test_allergies_say_nka_or_not_recorded(app, signed_in, build, expected):
    ids = make_chart(app, **build)
    page = signed_in("nurse").get(f"/chart/patients/{ids['patient']}").get_data(as_text=True)
    assert expected in page


def test_allergy_section_lists_the_active_allergies_with_reactions(app, signed_in):
    from portal.charting.models import Allergy

    ids = make_chart(app, allergy=True)
    with app.app_context():
        db.session.add(
            Allergy(
                patient_id=ids["patient"],
                substance_kind="food",
                substance="Peanut",
                reactions=["Rash"],
                status="inactive",
            )
        )
        db.session.commit()
    page = signed_in("nurse").get(f"/chart/patients/{ids['patient']}").get_data(as_text=True)
    section = _section(page, "Allergies and intolerances")
    assert "Penicillin" in section and "Hives" in section and "Severe" in section
    assert "Peanut" not in section and "No known allergies" not in section


def test_no_known_allergies_shows_the_day_it_was_recorded(app, signed_in):
    ids = make_chart(app, nka=True)
    page = signed_in("nurse").get(f"/chart/patients/{ids['patient']}").get_data(as_text=True)
    section = _section(page, "Allergies and intolerances")
    assert re.search(r"No known allergies .*\(recorded \d{4}-\d{2}-\d{2}\)", section)


def test_each_view_is_audited_once_with_the_patient(app, signed_in):
    ids = make_chart(app)
    browser = signed_in("nurse")
    browser.get(f"/chart/patients/{ids['patient']}")
    browser.get(f"/chart/patients/{ids['patient']}")
    views = events(app, "chart.view")
    assert len(views) == 2
    assert {(e.patient_id, e.category, e.username) for e in views} == {
        (ids["patient"], "chart summary", "nurse")
    }


def test_unknown_patient_is_404_and_front_desk_has_nomake_chart(app, signed_in):
    ids = make_chart(app)
    assert signed_in("nurse").get("/chart/patients/987654").status_code == 404
    assert signed_in("front_desk").get(f"/chart/patients/{ids['patient']}").status_code == 403
    assert not events(app, "chart.view")


def _statements_of(app, browser, path) -> int:
    with app.app_context():
        engine = db.engine
    counted = []

    def count(*_args):
        counted.append(1)

    event.listen(engine, "before_cursor_execute", count)
    try:
        assert browser.get(path).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return len(counted)


def test_a_long_history_costs_no_more_queries_and_shows_the_latest_ten(app, signed_in):
    small = make_chart(app)["patient"]
    large = make_chart(app, extra_encounters=40)["patient"]
    browser = signed_in("prescriber")
    browser.get(f"/chart/patients/{small}")  # warm the session and caches alike
    assert _statements_of(app, browser, f"/chart/patients/{small}") == _statements_of(
        app, browser, f"/chart/patients/{large}"
    )
    page = browser.get(f"/chart/patients/{large}").get_data(as_text=True)
    assert "The 10 latest of 42 encounters" in page
    assert "Old visit 7" in page and "Old visit 8" not in page


def test_patient_page_links_to_the_chart_for_clinicians_only(app, signed_in):
    ids = make_chart(app)
    link = f'href="/chart/patients/{ids["patient"]}"'
    assert link in signed_in("nurse").get(f"/patients/{ids['patient']}").get_data(as_text=True)
    desk = signed_in("front_desk").get(f"/patients/{ids['patient']}").get_data(as_text=True)
    assert link not in desk


# --- home page worklist ----------------------------------------------------------------------


def _worklist_notes(app):
    with app.app_context():
        patient = make_patient("Grace", "Hopper")
        old = make_encounter(patient, days_ago=3, complaint="Old draft visit")
        make_note(old, signed=False, created_at=utcnow() - timedelta(hours=30))
        fresh = make_encounter(patient, days_ago=0.1, complaint="Fresh")
        make_note(fresh, signed=False, created_at=utcnow() - timedelta(hours=2))
        nurse_visit = make_encounter(patient, days_ago=4)
        make_note(
            nurse_visit,
            signed=False,
            author="nurse",
            kind="nursing",
            created_at=utcnow() - timedelta(hours=50),
        )
        supervised = make_encounter(patient, days_ago=5)
        make_note(
            supervised,
            author="nurse",
            kind="nursing",
            cosigner_id=user_id("drlee"),
        )
        db.session.commit()
        return {"old": old.id, "fresh": fresh.id, "nurse": nurse_visit.id, "cosign": supervised.id}


def _section(page: str, heading: str) -> str:
    start = page.index(heading)
    return page[start : page.index("</section>", start)]


def test_prescriber_home_lists_own_old_drafts_and_notes_to_cosign(app, signed_in):
    ids = _worklist_notes(app)
    page = signed_in("prescriber", through_the_form=True).get("/").get_data(as_text=True)
    unsigned = _section(page, "Unsigned notes older than 24 hours")
    assert f'href="/chart/encounters/{ids["old"]}"' in unsigned
    assert f'/chart/encounters/{ids["fresh"]}"' not in unsigned  # not 24 hours old yet
    assert f'/chart/encounters/{ids["nurse"]}"' not in unsigned  # someone else's draft
    assert "Hopper, Grace" in unsigned
    cosign = _section(page, "Awaiting your co-signature")
    assert f'href="/chart/encounters/{ids["cosign"]}"' in cosign
    listed = events(app, "chart.worklist.view")
    # Two home page views (signing in lands there too), each recorded with the note ids.
    assert len(listed) == 2 and {e.category for e in listed} == {"clinical notes"}
    assert "Hopper" not in listed[0].detail  # ids only, never names


def test_the_home_worklist_is_audited_once_per_patient_shown(app, signed_in):
    """ "Who saw this patient" must find the home page too: one event per patient listed,
    with that patient's id and the ids of their notes shown, whole."""
    from portal.audit.verification import verify

    ids = _worklist_notes(app)
    with app.app_context():
        other = make_patient("Alan", "Turing")
        drafts = [
            make_note(
                make_encounter(other, days_ago=2 + n),
                signed=False,
                created_at=utcnow() - timedelta(hours=30 + n),
            ).id
            for n in range(2)
        ]
        hopper = db.session.get(Encounter, ids["old"]).patient_id
        db.session.commit()
    signed_in("prescriber", through_the_form=True)  # signing in lands on the home page
    listed = events(app, "chart.worklist.view")
    by_patient = {event.patient_id: event for event in listed}
    assert len(listed) == 2 and set(by_patient) == {hopper, other.id}
    with app.app_context():
        old_note, cosign_note = (
            db.session.scalar(select(Note.id).where(Note.encounter_id == ids[key]))
            for key in ("old", "cosign")
        )
    assert _note_ids(by_patient[hopper].detail) == {old_note, cosign_note}
    assert _note_ids(by_patient[other.id].detail) == set(drafts)
    assert {event.category for event in listed} == {"clinical notes"}
    with app.app_context():
        assert verify().ok  # the batch's events carry valid MACs like any event


def _note_ids(detail: str) -> set[int]:
    assert detail.startswith("notes=")
    return {int(part) for part in detail.removeprefix("notes=").split(",")}


def test_a_long_list_of_note_ids_is_split_never_cut():
    from portal.charting.notes.services import _id_lists

    ids = list(range(1_000_000_000, 1_000_000_100))  # 100 ids of 10 digits: 1,100 characters
    details = _id_lists("notes=", ids)
    assert len(details) == 3 and all(len(detail) <= 500 for detail in details)
    assert [n for detail in details for n in sorted(_note_ids(detail))] == ids


def test_nurse_home_lists_own_drafts_without_cosignature(app, signed_in):
    ids = _worklist_notes(app)
    page = signed_in("nurse").get("/").get_data(as_text=True)
    assert f'href="/chart/encounters/{ids["nurse"]}"' in page
    assert "Awaiting your co-signature" not in page


def test_front_desk_home_has_no_note_lists(app, signed_in):
    _worklist_notes(app)
    page = signed_in("front_desk").get("/").get_data(as_text=True)
    assert "Unsigned notes" not in page and "Hopper" not in page
    assert not events(app, "chart.worklist.view")
