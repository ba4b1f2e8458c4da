"""The flow board: today's appointments at a location by status, time in status and waiting
time, a polled fragment without form fields, audited without names."""

from __future__ import annotations

import re
from datetime import timedelta

from portal.extensions import db
from tests.scheduling.flow_support import actor, audit_events, make_appointment, today_at


def _advance(app, appointment_id, steps):
    """Walk an appointment through ``steps`` [(status, at, extra)] with the real service."""
    from portal.scheduling.flow import services as flow
    from portal.scheduling.models import Appointment

    with app.app_context():
        for status, at, extra in steps:
            version = db.session.get(Appointment, appointment_id).version
            flow.change_status(actor("frontdesk"), appointment_id, status, version, now=at, **extra)
            db.session.expire_all()


CONFIRMED = {"demographics_confirmed": True, "insurance_confirmed": True}


def test_the_board_groups_todays_appointments_with_times_in_status_and_waiting(app, schedule):
    from portal.scheduling.flow.board import flow_board

    nine = today_at(9)
    waiting = make_appointment(app, schedule, starts_at=nine, patient=0)
    seen = make_appointment(app, schedule, starts_at=nine, patient=1, provider="drpatel")
    expected = make_appointment(app, schedule, starts_at=today_at(11), patient=2)
    make_appointment(app, schedule, starts_at=today_at(11, 30), patient=3, status="cancelled")
    make_appointment(
        app, schedule, starts_at=today_at(10), patient=3, location_id=schedule.westside
    )
    make_appointment(app, schedule, starts_at=today_at(10) + timedelta(days=1), patient=3)
    _advance(app, waiting, [("arrived", nine - timedelta(minutes=10), CONFIRMED)])
    _advance(
        app,
        seen,
        [
            ("arrived", nine - timedelta(minutes=5), CONFIRMED),
            ("roomed", nine, {"room_id": schedule.exam_room_1}),
            ("with_provider", nine + timedelta(minutes=12), {}),
        ],
    )
    now = nine + timedelta(minutes=30)
    with app.app_context():
        board = flow_board(actor("frontdesk"), schedule.main_street, now=now)
        columns = {key: cards for key, _, cards in board.columns}
        assert [c.appointment_id for c in columns["expected"]] == [expected]
        assert [c.appointment_id for c in columns["arrived"]] == [waiting]
        assert [c.appointment_id for c in columns["with_provider"]] == [seen]
        assert columns["roomed"] == [] and columns["done"] == []
        assert board.count == 3  # not the cancelled one, Westside's, or tomorrow's
        checked_in = columns["arrived"][0]
        assert (checked_in.in_status_minutes, checked_in.waiting_minutes) == (40, 40)
        with_provider = columns["with_provider"][0]
        # In status since 09:12; waited from check-in (08:55) until the provider came in.
        assert (with_provider.in_status_minutes, with_provider.waiting_minutes) == (18, 17)
        assert with_provider.provider_name == "Anita Patel"
        assert columns["expected"][0].waiting_minutes is None
        assert [card.time_label for card in columns["expected"]] == ["11:00"]  # clinic time
        event = audit_events("flow_board.view")[-1]
        assert event.category == "appointments"
        assert re.fullmatch(
            rf"location={schedule.main_street} appointments=3 shown=[0-9a-f]{{16}}", event.detail
        )


def test_the_page_polls_a_fragment_that_holds_no_form_field(app, schedule, signed_in):
    appointment_id = make_appointment(app, schedule, starts_at=today_at(9))
    browser = signed_in("nurse")
    page = browser.get(f"/schedule/flow-board?location_id={schedule.main_street}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'hx-trigger="every 15s, flow-changed from:body"' in html
    assert f'hx-get="/schedule/flow-board?location_id={schedule.main_street}"' in html
    assert "Lovelace, Ada" in html

    fragment = browser.get(
        f"/schedule/flow-board?location_id={schedule.main_street}",
        headers={"HX-Request": "true"},
    )
    assert fragment.status_code == 200
    assert "HX-Request" in fragment.headers["Vary"]
    body = fragment.get_data(as_text=True)
    assert "<html" not in body
    assert f'id="flow-card-{appointment_id}"' in body
    # The card opens the appointment's panel; its start shows in clinic time.
    assert f'href="/schedule/appointments/{appointment_id}/status"' in body
    assert f'hx-get="/schedule/appointments/{appointment_id}/status"' in body
    assert 'data-status="scheduled"' in body or 'data-status="confirmed"' in body
    assert not re.search(r"<(input|select|textarea|form|button)\b", body)
    with app.app_context():
        for event in audit_events("flow_board.view"):
            assert "Lovelace" not in (event.detail or "")


def test_polls_are_audited_only_when_the_board_shows_other_appointments(app, schedule, signed_in):
    make_appointment(app, schedule, starts_at=today_at(9))
    board = f"/schedule/flow-board?location_id={schedule.main_street}"
    poll = {"HX-Request": "true", "X-Portal-Background": "1"}

    def views():
        with app.app_context():
            return [event.detail for event in audit_events("flow_board.view")]

    nurse = signed_in("nurse")
    assert nurse.get(board).status_code == 200  # opening the board is a view
    for _ in range(3):
        assert nurse.get(board, headers=poll).status_code == 200
    assert len(views()) == 1  # the same appointments polled again: nothing new seen
    added = make_appointment(app, schedule, starts_at=today_at(10), patient=1)
    assert f'id="flow-card-{added}"' in nurse.get(board, headers=poll).get_data(as_text=True)
    first, second = views()
    assert "appointments=1 " in first and "appointments=2 " in second
    nurse.get(board, headers=poll)
    assert len(views()) == 2
    # Opening the page again, or another user's screen, is always a view of its own.
    nurse.get(board)
    assert views()[-1] == second and len(views()) == 3
    signed_in("front_desk").get(board, headers=poll)
    assert views()[-1] == second and len(views()) == 4


def test_the_board_defaults_to_the_first_location_and_refuses_unknown_ones(
    app, schedule, signed_in
):
    browser = signed_in("front_desk")
    page = browser.get("/schedule/flow-board")
    assert page.status_code == 200
    assert "Flow board" in page.get_data(as_text=True)
    assert browser.get("/schedule/flow-board?location_id=987654").status_code == 404


def test_an_empty_board_says_none_and_is_not_audited(app, schedule, signed_in):
    browser = signed_in("front_desk")
    page = browser.get(f"/schedule/flow-board?location_id={schedule.westside}")
    assert "0 appointments today" in page.get_data(as_text=True)
    with app.app_context():
        assert audit_events("flow_board.view") == []


def test_the_boards_day_is_the_clinics_day_across_the_fall_back_change(app, schedule):
    """1 Nov 2026 has 25 hours in New York: 01:30 happens twice, and both belong to it."""
    from datetime import UTC, datetime

    from portal.scheduling.flow.board import flow_board

    first_0130 = datetime(2026, 11, 1, 5, 30, tzinfo=UTC)  # 01:30 EDT
    second_0130 = datetime(2026, 11, 1, 6, 30, tzinfo=UTC)  # 01:30 EST, an hour later
    late = datetime(2026, 11, 2, 4, 50, tzinfo=UTC)  # 23:50 EST
    next_day = datetime(2026, 11, 2, 5, 10, tzinfo=UTC)  # 00:10 on 2 Nov
    day_before = datetime(2026, 11, 1, 3, 50, tzinfo=UTC)  # 23:50 EDT on 31 Oct
    ids = [
        make_appointment(app, schedule, starts_at=at, patient=n % 4, provider=provider)
        for n, (at, provider) in enumerate(
            [
                (first_0130, "drlee"),
                (second_0130, "drpatel"),
                (late, "drlee"),
                (next_day, "drpatel"),
                (day_before, "drpatel"),
            ]
        )
    ]
    with app.app_context():
        board = flow_board(
            actor("frontdesk"), schedule.main_street, now=datetime(2026, 11, 1, 17, tzinfo=UTC)
        )
        shown = [card.appointment_id for _, _, cards in board.columns for card in cards]
        assert board.day.isoformat() == "2026-11-01"
        assert shown == ids[:3]


def test_polling_does_not_keep_an_unattended_session_alive(app, schedule, signed_in):
    from tests.auth.helpers import age_session, session_row, session_token

    browser = signed_in("front_desk", through_the_form=True)
    page = browser.get("/schedule/flow-board").get_data(as_text=True)
    assert """hx-headers='{"X-Portal-Background": "1"}'""" in page
    token = session_token(browser)
    poll = {"HX-Request": "true", "X-Portal-Background": "1"}
    age_session(app, token, last_seen_at=timedelta(minutes=10))
    seen = session_row(app, token).last_seen_at
    assert browser.get("/schedule/flow-board", headers=poll).status_code == 200
    assert session_row(app, token).last_seen_at == seen  # a poll is not the user
    age_session(app, token, last_seen_at=timedelta(minutes=6))
    timed_out = browser.get("/schedule/flow-board", headers=poll)
    assert timed_out.status_code == 401
    assert "/auth/sign-in" in timed_out.headers["HX-Redirect"]
    # Whereas anything the user does counts as being there.
    other = signed_in("nurse", through_the_form=True)
    other_token = session_token(other)
    age_session(app, other_token, last_seen_at=timedelta(minutes=10))
    before = session_row(app, other_token).last_seen_at
    other.get("/schedule/flow-board", headers={"HX-Request": "true"})
    assert session_row(app, other_token).last_seen_at > before


def test_the_board_reads_a_fixed_number_of_statements_however_many_visits(app, schedule):
    """The board polls from every front-desk screen: its reads must not grow per card."""
    from sqlalchemy import event

    from portal.scheduling.flow.board import flow_board

    def statements_for_board():
        statements = []

        def count(_conn, _cursor, statement, *_args):
            statements.append(statement)

        with app.app_context():
            event.listen(db.engine, "before_cursor_execute", count)
            try:
                board = flow_board(actor("frontdesk"), schedule.main_street)
            finally:
                event.remove(db.engine, "before_cursor_execute", count)
        return board, statements

    first = make_appointment(app, schedule, starts_at=today_at(8), patient=0)
    _advance(app, first, [("arrived", today_at(7, 50), CONFIRMED)])
    statements_for_board()  # warm up (the clinic's cached settings)
    few_board, few = statements_for_board()
    for index in range(12):
        appointment_id = make_appointment(
            app,
            schedule,
            starts_at=today_at(9) + timedelta(minutes=20 * index),
            patient=index % 4,
            provider="drpatel" if index % 2 else "drlee",
        )
        if index % 3 == 0:
            _advance(
                app,
                appointment_id,
                [
                    ("arrived", today_at(8, 30), CONFIRMED),
                    ("roomed", today_at(8, 40), {"room_id": schedule.exam_room_1}),
                ],
            )
    many_board, many = statements_for_board()
    assert (few_board.count, many_board.count) == (1, 13)
    assert len(many) == len(few), "\n".join(many)
    roomed = {key: cards for key, _, cards in many_board.columns}["roomed"]
    assert len(roomed) == 4 and {card.room_name for card in roomed} == {"Exam 1"}
