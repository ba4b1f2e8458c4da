"""The audit report: filters, sorting, keyset pages, htmx fragment, CSV export."""

from __future__ import annotations

import csv
import html as html_lib
import io
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event

from portal.extensions import db
from tests.audit.helpers import append_event, events

PAST_RANGE = "end=2026-06-30"  # excludes the sign-in and report-view events made "now"


@pytest.fixture
def admin(signed_in):
    return signed_in("admin")


def markers(response) -> list[str]:
    """The test events on a page, in the order shown (their detail is n<number>)."""
    return re.findall(r'<td class="small">(n\d+)</td>', response.get_data(as_text=True))


def link(response, label: str) -> str | None:
    match = re.search(
        rf'<a class="btn[^"]*" rel="\w+" href="([^"]+)"[^>]*>{label}</a>',
        response.get_data(as_text=True),
    )
    return html_lib.unescape(match.group(1)) if match else None


USERS = ["ann", "bob", None, "cy"]
ACTIONS = ["test.alpha", "test.beta", "test.gamma"]
CATEGORIES = ["billing", None, "demographics"]
OUTCOMES = ["success", "denied", "error"]
PATIENTS = [3, None, 1, 2]


@pytest.fixture
def seeded(app):
    """23 events in January with many ties in every column (and NULLs in the nullable ones)."""
    base = datetime(2026, 1, 10, 15, 0, tzinfo=UTC)
    rows = []
    with app.app_context():
        for i in range(23):
            values = {
                # Four events share each instant: ties in time too.
                "occurred_at": base + timedelta(minutes=i // 4),
                "action": ACTIONS[i % 3],
                "username": USERS[i % 4],
                "category": CATEGORIES[i % 3],
                "outcome": OUTCOMES[(i // 2) % 3],
                "patient_id": PATIENTS[i % 4],
                "detail": f"n{i}",
            }
            stored = append_event(**values)
            rows.append({**values, "id": stored.id, "marker": f"n{i}"})
        db.session.commit()
    app.config["AUDIT_REPORT_PAGE_SIZE"] = 5
    return rows


SORT_FIELDS = {
    "time": "occurred_at",
    "user": "username",
    "action": "action",
    "patient": "patient_id",
    "outcome": "outcome",
    "category": "category",
}


def expected_order(rows, sort: str, direction: str) -> list[str]:
    name = SORT_FIELDS[sort]
    ordered = sorted(
        rows, key=lambda r: (r[name] is not None, r[name] if r[name] is not None else 0, r["id"])
    )
    if direction == "desc":
        ordered.reverse()  # descending is exactly the ascending order reversed
    return [r["marker"] for r in ordered]


@pytest.mark.parametrize("direction", ["asc", "desc"])
@pytest.mark.parametrize("sort", list(SORT_FIELDS))
def test_keyset_pages_cover_every_row_once_in_order_both_ways(admin, seeded, sort, direction):
    url = f"/admin/audit/?{PAST_RANGE}&sort={sort}&dir={direction}"
    pages = []
    while url:
        response = admin.get(url)
        assert response.status_code == 200
        pages.append(markers(response))
        url = link(response, "Next page")
        if url:
            assert re.search(r"after=\d+", url)
    assert [m for page in pages for m in page] == expected_order(seeded, sort, direction)
    assert [len(p) for p in pages] == [5, 5, 5, 5, 3]
    assert link(response, "Next page") is None

    # And back again from the last page with "Previous page".
    backwards = [pages[-1]]
    url = link(response, "Previous page")
    while url:
        assert re.search(r"before=\d+", url)
        response = admin.get(url)
        backwards.append(markers(response))
        url = link(response, "Previous page")
    assert backwards[::-1] == pages


def test_page_links_carry_the_edge_rows_sort_value_and_id(admin, seeded):
    response = admin.get(f"/admin/audit/?{PAST_RANGE}&sort=user&dir=asc")
    fifth = next(r for r in seeded if r["marker"] == markers(response)[-1])
    next_url = link(response, "Next page")
    expected = f"{fifth['id']}:{fifth['username']}" if fifth["username"] else f"{fifth['id']}"
    assert f"after={expected}&" in next_url + "&"


def test_pages_never_use_offset(app, admin, seeded):
    statements = []

    def capture(conn, cursor, statement, parameters, *args):
        statements.append((statement.upper(), parameters))

    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", capture)
        try:
            first = admin.get(f"/admin/audit/?{PAST_RANGE}&sort=action")
            admin.get(link(first, "Next page"))
        finally:
            event.remove(db.engine, "before_cursor_execute", capture)
    selects = [(s, p) for s, p in statements if "FROM AUDIT_EVENTS" in s]
    assert len(selects) >= 2
    # SQLite's dialect writes "LIMIT ? OFFSET ?" for every LIMIT; the offset must stay 0.
    offsets = [p[-1] for s, p in selects if "OFFSET" in s]
    assert all(offset == 0 for offset in offsets), offsets


def test_times_are_shown_and_filtered_in_the_clinics_zone(app, admin):
    with app.app_context():
        # 04:30 UTC on the 15th is 23:30 on the 14th in New York; 06:00 UTC is 01:00 on the 15th.
        append_event(datetime(2026, 1, 15, 4, 30, tzinfo=UTC), "test.late", detail="n1")
        append_event(datetime(2026, 1, 15, 6, 0, tzinfo=UTC), "test.early", detail="n2")
        db.session.commit()
    page = admin.get("/admin/audit/?start=2026-01-14&end=2026-01-14")
    assert markers(page) == ["n1"]
    assert "2026-01-14 23:30:00" in page.get_data(as_text=True)
    assert markers(admin.get("/admin/audit/?start=2026-01-15&end=2026-01-15")) == ["n2"]
    assert markers(admin.get("/admin/audit/?start=2026-01-14&end=2026-01-15")) == ["n2", "n1"]


def test_filters_by_user_patient_action_and_outcome(admin, seeded):
    def shown(query):
        response = admin.get(f"/admin/audit/?{PAST_RANGE}&sort=time&dir=asc&{query}")
        assert response.status_code == 200
        found = markers(response)
        url = link(response, "Next page")
        while url:
            response = admin.get(url)
            found += markers(response)
            url = link(response, "Next page")
        return sorted(found)

    def expected(predicate):
        return sorted(r["marker"] for r in seeded if predicate(r))

    assert shown("user=bob") == expected(lambda r: r["username"] == "bob")
    assert shown("patient=2") == expected(lambda r: r["patient_id"] == 2)
    assert shown("action=test.beta") == expected(lambda r: r["action"] == "test.beta")
    assert shown("outcome=denied") == expected(lambda r: r["outcome"] == "denied")
    assert shown("user=ann&action=test.alpha") == expected(
        lambda r: r["username"] == "ann" and r["action"] == "test.alpha"
    )
    assert shown("user=nobody") == []


def test_user_filter_finds_a_staff_members_events_by_their_account(app, admin, signed_in):
    signed_in("nurse", through_the_form=True).get("/admin/users")  # a sign-in, a refused page
    page = admin.get("/admin/audit/?user=nurse&sort=action&dir=asc")
    text = page.get_data(as_text=True)
    assert re.findall(r"<code>([\w.]+)</code>", text) == ["access.denied", "auth.sign_in"]


def test_action_choices_list_every_action_in_the_trail(signed_in, seeded):
    admin = signed_in("admin", through_the_form=True)  # its sign-in is one of the actions
    text = admin.get("/admin/audit/").get_data(as_text=True)
    options = re.findall(
        r'<option value="([^"]*)"', text.split('id="action"', 1)[1].split("</select>")[0]
    )
    assert options == ["", "auth.sign_in", "test.alpha", "test.beta", "test.gamma"]


def test_viewing_the_report_is_audited_with_its_filters(app, admin):
    before = len(events(app, "audit.report_view"))
    response = admin.get(
        "/admin/audit/?user=nurse&patient=42&action=auth.sign_in&sort=user&dir=asc"
    )
    assert response.status_code == 200
    views = events(app, "audit.report_view")
    assert len(views) == before + 1
    view = views[-1]
    assert view.username == "admin" and view.user_roles == "admin"
    assert view.category == "audit trail"
    assert view.patient_id == 42
    assert "user=nurse" in view.detail and "action=auth.sign_in" in view.detail
    assert "sort user asc" in view.detail


def test_htmx_filter_change_returns_only_the_table(admin, seeded):
    response = admin.get(
        f"/admin/audit/?{PAST_RANGE}&action=test.alpha&sort=action&dir=asc",
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    assert "HX-Request" in response.headers.get("Vary", "")
    text = response.get_data(as_text=True)
    assert "<html" not in text and "<table" in text
    assert 'id="audit-sort-state" hx-swap-oob="true"' in text
    assert 'name="sort" value="action"' in text
    full = admin.get(f"/admin/audit/?{PAST_RANGE}")
    assert "<html" in full.get_data(as_text=True)
    assert 'hx-get="/admin/audit/"' in full.get_data(as_text=True)


def test_bad_filters_get_a_message_beside_the_field_and_are_kept(admin):
    response = admin.get("/admin/audit/?start=2026-03-10&end=2026-03-01&user=nurse")
    assert response.status_code == 422
    text = response.get_data(as_text=True)
    assert 'id="end-error"' in text and "before the start date" in text
    assert 'value="nurse"' in text and 'value="2026-03-10"' in text
    fragment = admin.get("/admin/audit/?patient=abc", headers={"HX-Request": "true"})
    assert fragment.status_code == 422
    assert "Patient: Not a patient id" in fragment.get_data(as_text=True)


def test_a_tampered_page_link_falls_back_to_the_first_page(admin, seeded):
    response = admin.get(f"/admin/audit/?{PAST_RANGE}&sort=time&after=12:not-a-time")
    assert response.status_code == 200
    assert "out of date" in response.get_data(as_text=True)
    assert len(markers(response)) == 5


@pytest.mark.parametrize(
    "after",
    [
        "9" * 20 + ":2026-01-01T00:00:00%2B00:00",  # beyond BIGINT, the events' ids
        "9" * 5000,
    ],
)
def test_a_page_link_with_an_impossible_id_falls_back_to_the_first_page(admin, seeded, after):
    """Ids beyond the columns' range used to reach the query (a 500)."""
    response = admin.get(f"/admin/audit/?{PAST_RANGE}&sort=time&after={after}")
    assert response.status_code == 200
    assert "out of date" in response.get_data(as_text=True)
    patient_page = admin.get(f"/admin/audit/?{PAST_RANGE}&sort=patient&after=5:{'9' * 20}")
    assert patient_page.status_code == 200
    assert "out of date" in patient_page.get_data(as_text=True)


def test_a_patient_id_beyond_the_database_range_is_refused_beside_the_filter(admin):
    page = admin.get(f"/admin/audit/?patient={'9' * 20}")
    assert page.status_code == 422
    text = page.get_data(as_text=True)
    assert 'id="patient-error"' in text and "Not a patient id" in text
    # Nobody types an id any more (the lookup chooses the patient): a bad one is only ever a
    # tampered address, and it is not carried on into the next filter change.
    assert f'value="{"9" * 20}"' not in text


def test_csv_export_streams_every_matching_row_and_is_audited(app, admin, seeded):
    app.config["AUDIT_EXPORT_BATCH_SIZE"] = 3  # several keyset batches, split inside ties
    with app.app_context():
        append_event(
            datetime(2026, 1, 20, 12, 0, tzinfo=UTC),
            "test.alpha",
            username="ann",
            detail='=HYPERLINK("http://evil.example")',
        )
        db.session.commit()
    response = admin.get(
        f"/admin/audit/export.csv?{PAST_RANGE}&action=test.alpha&sort=time&dir=asc"
    )
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.is_streamed
    assert "attachment" in response.headers["Content-Disposition"]
    assert response.headers["Cache-Control"] == "no-store"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    expected = [r["marker"] for r in seeded if r["action"] == "test.alpha"]
    assert [r["detail"] for r in rows[:-1]] == expected  # more rows than one page holds
    assert len(rows) > 5
    assert rows[-1]["detail"] == '\'=HYPERLINK("http://evil.example")'  # inert in a spreadsheet
    assert {r["action"] for r in rows} == {"test.alpha"}
    first = rows[0]
    assert first["time_utc"] == "2026-01-10T15:00:00.000000Z"
    assert first["time_local"] == "2026-01-10T10:00:00-05:00"
    export = events(app, "audit.export")[-1]
    assert export.username == "admin" and export.category == "audit trail"
    assert "action=test.alpha" in export.detail


def test_export_is_a_snapshot_without_its_own_event(signed_in):
    admin = signed_in("admin", through_the_form=True)  # a sign-in event to export
    response = admin.get("/admin/audit/export.csv")
    actions = [r["action"] for r in csv.DictReader(io.StringIO(response.get_data(as_text=True)))]
    assert "audit.export" not in actions
    assert "auth.sign_in" in actions


@pytest.mark.parametrize("role", ["front_desk", "nurse", "prescriber"])
def test_only_auditors_see_the_report_or_export(signed_in, role):
    browser = signed_in(role)
    assert browser.get("/admin/audit/").status_code == 403
    assert browser.get("/admin/audit/export.csv").status_code == 403


@pytest.mark.parametrize("direction", ["asc", "desc"])
@pytest.mark.parametrize("sort", ["user", "patient", "category", "time"])
def test_csv_export_keeps_the_report_order_across_batches(app, admin, seeded, sort, direction):
    app.config["AUDIT_EXPORT_BATCH_SIZE"] = 4
    response = admin.get(f"/admin/audit/export.csv?{PAST_RANGE}&sort={sort}&dir={direction}")
    details = [r["detail"] for r in csv.DictReader(io.StringIO(response.get_data(as_text=True)))]
    assert details == expected_order(seeded, sort, direction)
