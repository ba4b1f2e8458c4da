"""The results inbox past its first 50 (issue 12, section 5): a keyset page after the last row
shown, in the inbox's order (critical, abnormal, normal; oldest first), that neither repeats
nor skips a result when results are signed off or arrive between pages; "Show more" asked by
htmx answers the next rows alone (to append inside the sign-off form), asked as a page the
page of them; the patients of each page audited as the first page's are."""

from __future__ import annotations

from sqlalchemy import select

from portal.extensions import db
from portal.labs.models import LabResult
from tests.labs.helpers import add_order, add_patient
from tests.labs.results_helpers import add_prescriber, file_glucose, inbox_ids
from tests.support.audit import audit_events

PAGE = 50


def waiting_in_order() -> list[int]:
    """Every waiting result's id in the inbox's order, read from the rows themselves."""
    rows = (
        db.session.execute(
            select(LabResult.id)
            .where(LabResult.reviewed_at.is_(None))
            .where(LabResult.superseded_at.is_(None))
            .order_by(LabResult.review_rank, LabResult.received_at, LabResult.id)
        )
        .scalars()
        .all()
    )
    db.session.rollback()
    return list(rows)


def seed_inbox(app, zone, normals: int = 70, abnormals: int = 3, criticals: int = 2):
    with app.app_context():
        patient_id, mrn = add_patient()
        add_order(patient_id, "P-1", tests=(("2345-7", "Glucose"),))
        values = [("90", "N")] * normals + [("140", "H")] * abnormals + [("30", "LL")] * criticals
        file_glucose(zone, mrn, "P-1", values, "20240102080000")
        return patient_id, mrn, waiting_in_order()


def test_show_more_pages_through_the_whole_inbox_in_its_order(app, signed_in, zone):
    _, _, every = seed_inbox(app, zone)
    assert len(every) == 75
    drlee = signed_in("drlee")
    first = drlee.get("/labs/inbox")
    text = first.get_data(as_text=True)
    assert inbox_ids(first) == every[:PAGE]
    assert "75 waiting for review: 2 critical, 3 abnormal, 70 normal" in text
    assert f'href="/labs/inbox?after={every[PAGE - 1]}"' in text
    assert "Show more results" in text
    # htmx asks for the rest: the rows alone (no page around them), the first one focused.
    more = drlee.get(f"/labs/inbox?after={every[PAGE - 1]}", headers={"HX-Request": "true"})
    assert more.status_code == 200
    assert "HX-Request" in more.headers["Vary"]
    body = more.get_data(as_text=True)
    assert "<html" not in body and "Results inbox" not in body
    assert inbox_ids(more) == every[PAGE:]
    assert body.count("autofocus") == 1
    assert "Show more results" not in body  # nothing after these
    # Each page's patients audited: the first page's view and the appended rows'.
    details = [e.detail for e in audit_events(app, "lab.inbox.view")]
    assert details == ["50 results", "25 results"]


def test_the_next_page_without_script_is_a_page_with_the_way_back(app, signed_in, zone):
    _, _, every = seed_inbox(app, zone)
    drlee = signed_in("drlee")
    page = drlee.get(f"/labs/inbox?after={every[PAGE - 1]}")
    text = page.get_data(as_text=True)
    assert inbox_ids(page) == every[PAGE:]
    assert "75 waiting for review" in text  # the counts still cover them all
    assert "Back to the first results" in text
    assert 'action="/labs/inbox/sign-off"' in text  # its normal ones signed off as ever
    assert "Sign off chosen normal results" in text


def test_a_page_neither_repeats_nor_skips_when_results_change_between_pages(app, signed_in, zone):
    _, mrn, every = seed_inbox(app, zone)
    drlee = signed_in("drlee")
    first = inbox_ids(drlee.get("/labs/inbox"))
    # Between the pages: three results of the first page are signed off, and new ones
    # arrive (a critical one, which sorts before the page's end, and normal ones after it).
    signed = drlee.post_form("/labs/inbox/sign-off", {"result_ids": first[-3:]})
    assert signed.status_code == 303
    with app.app_context():
        add_order(db.session.get(LabResult, every[0]).patient_id, "P-2")
        file_glucose(zone, mrn, "P-2", [("25", "LL"), ("85", "N"), ("88", "N")], "20240103")
        now_waiting = waiting_in_order()
    new = sorted(set(now_waiting) - set(every))
    more = drlee.get(f"/labs/inbox?after={first[-1]}", headers={"HX-Request": "true"})
    second = inbox_ids(more)
    assert not set(first) & set(second)  # nothing shown twice
    assert second == every[PAGE:] + new[1:]  # nothing skipped; the new normals in their place
    assert new[0] not in second  # the new critical sorts before: the first page shows it
    assert inbox_ids(drlee.get("/labs/inbox"))[:3] == every[:2] + new[:1]  # after older ones


def test_a_cursor_that_names_no_result_is_not_found(app, signed_in, zone):
    seed_inbox(app, zone, normals=2)
    drlee = signed_in("drlee")
    assert drlee.get("/labs/inbox?after=999999").status_code == 404
    assert drlee.get("/labs/inbox?after=abc").status_code == 404
    assert drlee.get("/labs/inbox?after=").status_code == 404


def test_a_cursor_outside_my_inbox_is_not_found(app, signed_in, zone, password_hash):
    """The cursor is looked up under the inbox's own visibility: another prescriber's result
    or one still in the unmatched queue (no patient yet) answers 404, as a result that does
    not exist does, so the cursor tells nothing of them (their existence, their rank)."""
    _, _, every = seed_inbox(app, zone, normals=3)
    with app.app_context():
        patel = add_prescriber("drpatel", "Anita Patel", password_hash)
        patients_id, patients_mrn = add_patient(given="Ann", family="Roe", mrn="MRN-PATEL")
        add_order(patients_id, "P-9", tests=(("2345-7", "Glucose"),), provider_id=patel)
        file_glucose(zone, patients_mrn, "P-9", [("95", "N")], "20240102080000")
        theirs = db.session.scalar(select(LabResult.id).where(LabResult.reviewer_id == patel))
        # Results for an MRN nobody has: the unmatched queue, not anyone's inbox.
        file_glucose(zone, "NO-SUCH-MRN", "P-404", [("20", "LL")], "20240102080000")
        queued = db.session.scalar(select(LabResult.id).where(LabResult.patient_id.is_(None)))
        db.session.rollback()
    assert theirs is not None and queued is not None
    drlee = signed_in("drlee")
    for result_id in (theirs, queued):
        for headers in ({}, {"HX-Request": "true"}):
            answer = drlee.get(f"/labs/inbox?after={result_id}", headers=headers)
            assert answer.status_code == 404, (result_id, headers)
    # Their owner pages past their own result; mine still page past mine.
    assert signed_in("drpatel").get(f"/labs/inbox?after={theirs}").status_code == 200
    assert drlee.get(f"/labs/inbox?after={every[0]}").status_code == 200


def test_a_short_inbox_offers_no_more(app, signed_in, zone):
    seed_inbox(app, zone, normals=PAGE - 5, abnormals=3, criticals=2)  # exactly a page
    page = signed_in("drlee").get("/labs/inbox")
    assert len(inbox_ids(page)) == PAGE
    assert "Show more results" not in page.get_data(as_text=True)
