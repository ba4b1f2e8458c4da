"""Scheduling set-up pages (admin, schedule.manage): what is saved, what is refused, the audit."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from sqlalchemy import func, select

from portal.audit.models import AuditEvent
from portal.auth.models import User
from portal.clinic.models import Clinic
from portal.extensions import db
from portal.scheduling.availability.services import find_open_slots
from portal.scheduling.models import (
    AppointmentType,
    AvailabilityBlock,
    AvailabilityException,
    ClinicClosure,
    Room,
)
from tests.scheduling.future_dates import a_winter_monday

LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)
# Pages list current and upcoming entries only: those tests use a date that stays ahead.
M = a_winter_monday()


@pytest.fixture
def admin(signed_in, schedule):
    return signed_in("admin")


def _count(app, model, *where) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


def _audited(app, action: str) -> list[AuditEvent]:
    with app.app_context():
        return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def _text(response) -> str:
    return response.get_data(as_text=True).replace("&#39;", "'")


# --- appointment types ----------------------------------------------------------------------


def _type_data(s, **changes):
    data = {
        "name": "Annual physical",
        "default_minutes": "30",
        "colour": "#aa3355",
        "visit_kind": "follow_up",
        "modality": "in_person",
        "provider_ids": [str(s.drlee), str(s.drpatel)],
        "is_active": "y",
    }
    data.update(changes)
    return data


def test_add_an_appointment_type(app, admin, schedule):
    s = schedule
    response = admin.post_form("/schedule/setup/types", _type_data(s))
    assert response.status_code == 302
    with app.app_context():
        saved = db.session.scalars(select(AppointmentType).filter_by(name="Annual physical")).one()
        assert saved.default_minutes == 30 and saved.colour == "#aa3355"
        assert {p.id for p in saved.providers} == {s.drlee, s.drpatel}
    (event,) = _audited(app, "appointment_type.create")
    assert event.category == "appointments" and event.user_id is not None
    assert "Annual physical" in admin.get("/schedule/setup/types").get_data(as_text=True)


@pytest.mark.parametrize("minutes", ["0", "1440", "4", "-20"])
def test_a_visit_of_0_or_24_hours_is_refused(app, admin, schedule, minutes):
    response = admin.post_form(
        "/schedule/setup/types", _type_data(schedule, default_minutes=minutes)
    )
    html = _text(response)
    assert response.status_code == 422
    assert "A visit lasts between 5 minutes and 12 hours." in html
    assert 'value="Annual physical"' in html  # what was typed is kept
    assert _count(app, AppointmentType, AppointmentType.name == "Annual physical") == 0


def test_duplicate_type_name_refused_and_edit_keeps_its_own_name(app, admin, schedule):
    s = schedule
    response = admin.post_form("/schedule/setup/types", _type_data(s, name="Follow-up"))
    assert response.status_code == 422
    assert "Another appointment type already has this name." in _text(response)
    response = admin.post_form(
        f"/schedule/setup/types/{s.procedure}",
        _type_data(s, name="Procedure", default_minutes="90", provider_ids=[str(s.drpatel)]),
    )
    assert response.status_code == 302
    with app.app_context():
        procedure = db.session.get(AppointmentType, s.procedure)
        assert procedure.default_minutes == 90
        assert [p.id for p in procedure.providers] == [s.drpatel]
    assert len(_audited(app, "appointment_type.update")) == 1
    assert admin.get("/schedule/setup/types/987654").status_code == 404


# --- rooms ----------------------------------------------------------------------------------


def test_rooms_per_location(app, admin, schedule):
    s = schedule
    response = admin.post_form(
        "/schedule/setup/rooms", {"location_id": str(s.westside), "name": "Exam 1"}
    )
    assert response.status_code == 302  # the same name at another location is fine
    response = admin.post_form(
        "/schedule/setup/rooms", {"location_id": str(s.main_street), "name": "Exam 2"}
    )
    assert response.status_code == 422
    assert "Main Street already has a room with this name." in _text(response)
    assert _count(app, Room, Room.location_id == s.westside) == 1
    response = admin.post_form(f"/schedule/setup/rooms/{s.exam_room_2}", {"name": "Exam 2 (small)"})
    assert response.status_code == 302
    with app.app_context():
        room = db.session.get(Room, s.exam_room_2)
        assert room.name == "Exam 2 (small)" and not room.is_active  # box left unticked
    assert len(_audited(app, "room.create")) == 1 and len(_audited(app, "room.update")) == 1


# --- weekly templates -----------------------------------------------------------------------


def _block(s, **changes):
    data = {
        "provider_id": str(s.drpatel),
        "weekday": "5",
        "start_time": "09:00",
        "end_time": "12:00",
        "location_id": str(s.westside),
        "valid_from": "",
        "valid_until": "",
    }
    data.update(changes)
    return data


def test_add_a_block_and_it_opens_slots(app, admin, schedule):
    s = schedule
    response = admin.post_form("/schedule/setup/templates", _block(s))
    assert response.status_code == 302
    assert f"provider_id={s.drpatel}" in response.location
    page = admin.get(response.location).get_data(as_text=True)
    assert "Saturday" in page and "09:00" in page and "Westside" in page
    (event,) = _audited(app, "availability_block.create")
    assert event.category == "appointments"
    with app.app_context():
        saturday = date(2027, 1, 16)
        got = find_open_slots(s.follow_up, [s.drpatel], saturday, saturday, not_before=LONG_AGO)
        assert len(got) == 9 and got[0].location_id == s.westside


def test_the_templates_page_for_an_impossible_provider_shows_no_provider(admin, schedule):
    """A provider id beyond the integer columns' range used to reach the query (a 500)."""
    response = admin.get(f"/schedule/setup/templates?provider_id={'9' * 20}")
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"end_time": "08:30"}, "The block must end after it starts."),
        ({"end_time": "09:00"}, "The block must end after it starts."),
        ({"weekday": "0", "start_time": "11:00", "end_time": "13:30"}, "This overlaps"),
        (
            {"weekday": "0", "start_time": "07:00", "end_time": "08:05", "location_id": "WEST"},
            "This overlaps",
        ),
        ({"valid_from": "1900-01-01"}, "Enter a date between 2000 and"),
        ({"valid_from": "2027-02-01", "valid_until": "2027-01-01"}, "The last day can't be"),
        ({"allowed_type_ids": "PROCEDURE"}, "Anita Patel doesn't offer Procedure."),
        ({"start_time": ""}, "Enter the start time."),
    ],
)
def test_bad_blocks_are_refused(app, admin, schedule, changes, message):
    s = schedule
    replacements = {"WEST": str(s.westside), "PROCEDURE": str(s.procedure)}
    changes = {key: replacements.get(value, value) for key, value in changes.items()}
    before = _count(app, AvailabilityBlock)
    response = admin.post_form("/schedule/setup/templates", _block(s, **changes))
    assert response.status_code == 422
    assert message in _text(response)
    assert _count(app, AvailabilityBlock) == before
    assert _audited(app, "availability_block.create") == []


def test_blocks_with_separate_validity_periods_may_share_hours(app, admin, schedule):
    s = schedule
    first = _block(s, valid_from="2027-01-01", valid_until="2027-03-31")
    second = _block(s, valid_from="2027-04-01", start_time="10:00", end_time="13:00")
    assert admin.post_form("/schedule/setup/templates", first).status_code == 302
    assert admin.post_form("/schedule/setup/templates", second).status_code == 302
    overlapping = _block(s, valid_from="2027-03-31", valid_until="2027-04-01")
    assert admin.post_form("/schedule/setup/templates", overlapping).status_code == 422


def test_remove_a_block(app, admin, schedule):
    s = schedule
    with app.app_context():
        block_id = db.session.scalar(
            select(AvailabilityBlock.id).filter_by(
                provider_id=s.drlee, weekday=0, start_time=time(8)
            )
        )
    response = admin.post_form(f"/schedule/setup/templates/blocks/{block_id}/delete")
    assert response.status_code == 302
    assert _count(app, AvailabilityBlock, AvailabilityBlock.id == block_id) == 0
    assert len(_audited(app, "availability_block.delete")) == 1
    assert admin.post_form(f"/schedule/setup/templates/blocks/{block_id}/delete").status_code == 404


# --- exceptions -----------------------------------------------------------------------------


def test_time_off_typed_in_clinic_time_is_stored_in_utc_and_closes_slots(app, admin, schedule):
    s = schedule
    response = admin.post_form(
        "/schedule/setup/exceptions",
        {
            "provider_id": str(s.drlee),
            "kind": "time_off",
            "starts_at": f"{M}T08:00",
            "ends_at": f"{M}T12:00",
            "reason": "Training",
        },
    )
    assert response.status_code == 302
    with app.app_context():
        off = db.session.scalars(select(AvailabilityException)).one()
        assert (off.starts_at, off.ends_at) == (
            datetime(M.year, M.month, M.day, 13, tzinfo=UTC),
            datetime(M.year, M.month, M.day, 17, tzinfo=UTC),
        )
        monday = M
        got = find_open_slots(s.follow_up, [s.drlee], monday, monday, not_before=LONG_AGO)
        assert len(got) == 12 and got[0].starts_at == datetime(
            M.year, M.month, M.day, 18, tzinfo=UTC
        )
    assert len(_audited(app, "availability_exception.create.time_off")) == 1
    page = admin.get("/schedule/setup/exceptions").get_data(as_text=True)
    assert f"{M} 08:00" in page and "Training" in page


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"ends_at": "2027-01-11T07:00"}, "It must end after it starts."),
        ({"starts_at": "1900-01-11T08:00"}, "Enter a date between 2000 and"),
        ({"kind": "extra", "location_id": ""}, "Choose an open location from the list."),
        ({"ends_at": ""}, "Enter when it ends."),
        ({"provider_id": "FRONTDESK"}, "Not a valid choice."),
    ],
)
def test_bad_exceptions_are_refused(app, admin, schedule, changes, message):
    s = schedule
    data = {
        "provider_id": str(s.drlee),
        "kind": "time_off",
        "starts_at": "2027-01-11T08:00",
        "ends_at": "2027-01-11T12:00",
    }
    data.update(changes)
    if data["provider_id"] == "FRONTDESK":  # a user who is not a provider
        with app.app_context():
            data["provider_id"] = str(
                db.session.scalar(select(User.id).where(User.username == "frontdesk"))
            )
    response = admin.post_form("/schedule/setup/exceptions", data)
    assert response.status_code == 422
    assert message in _text(response)
    assert _count(app, AvailabilityException) == 0


def test_extra_session_needs_a_place_and_then_opens_slots(app, admin, schedule):
    s = schedule
    response = admin.post_form(
        "/schedule/setup/exceptions",
        {
            "provider_id": str(s.drpatel),
            "kind": "extra",
            "starts_at": "2027-01-16T09:00",
            "ends_at": "2027-01-16T10:00",
            "location_id": str(s.westside),
        },
    )
    assert response.status_code == 302
    with app.app_context():
        saturday = date(2027, 1, 16)
        got = find_open_slots(s.follow_up, [s.drpatel], saturday, saturday, not_before=LONG_AGO)
        assert [slot.location_id for slot in got] == [s.westside] * 3


# --- closures -------------------------------------------------------------------------------


def test_closure_of_the_whole_clinic(app, admin, schedule):
    s = schedule
    response = admin.post_form(
        "/schedule/setup/closures",
        {"location_id": "None", "first_day": M.isoformat(), "last_day": "", "reason": "Snow"},
    )
    assert response.status_code == 302
    with app.app_context():
        closure = db.session.scalars(select(ClinicClosure)).one()
        assert (closure.first_day, closure.last_day, closure.location_id) == (
            M,
            M,
            None,
        )
        monday = M
        assert find_open_slots(s.follow_up, None, monday, monday, not_before=LONG_AGO) == []
    assert len(_audited(app, "clinic_closure.create")) == 1
    closure_page = admin.get("/schedule/setup/closures").get_data(as_text=True)
    assert "The whole clinic" in closure_page and "Snow" in closure_page


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"last_day": "2027-01-10"}, "The last day can't be before the first day."),
        ({"first_day": "1900-01-11", "last_day": ""}, "Enter a date between 2000 and"),
        ({"first_day": ""}, "Enter the first day."),
    ],
)
def test_bad_closures_are_refused(app, admin, schedule, changes, message):
    data = {"location_id": str(schedule.main_street), "first_day": "2027-01-11", "last_day": ""}
    data.update(changes)
    response = admin.post_form("/schedule/setup/closures", data)
    assert response.status_code == 422
    assert message in _text(response)
    assert _count(app, ClinicClosure) == 0


# --- the calendar-feed setting --------------------------------------------------------------


def test_feed_names_setting(app, admin, schedule):
    assert admin.post_form("/schedule/setup", {"calendar_feed_shows_names": "y"}).status_code == 302
    with app.app_context():
        assert db.session.scalars(select(Clinic)).first().calendar_feed_shows_names is True
    assert admin.post_form("/schedule/setup", {}).status_code == 302
    with app.app_context():
        assert db.session.scalars(select(Clinic)).first().calendar_feed_shows_names is False
    events = _audited(app, "clinic.calendar_feed_names")
    assert [e.detail for e in events] == ["shows_names=yes", "shows_names=no"]


def test_set_up_is_for_admins_only(signed_in, schedule):
    front_desk = signed_in("front_desk")
    assert front_desk.get("/schedule/setup/types").status_code == 403
    assert (
        front_desk.post_form("/schedule/setup/closures", {"first_day": "2027-01-11"}).status_code
        == 403
    )


def test_time_off_over_booked_visits_warns_that_they_stay_booked(app, admin, schedule):
    s = schedule
    from portal.scheduling.models import Appointment

    with app.app_context():
        for minutes, status in ((0, "scheduled"), (20, "cancelled"), (40, "confirmed")):
            starts_at = datetime(2027, 1, 11, 13, minutes, tzinfo=UTC)
            db.session.add(
                Appointment(
                    patient_id=s.patients[0],
                    provider_id=s.drlee,
                    location_id=s.main_street,
                    appointment_type_id=s.follow_up,
                    starts_at=starts_at,
                    ends_at=starts_at + timedelta(minutes=20),
                    status=status,
                )
            )
        db.session.commit()
    response = admin.post_form(
        "/schedule/setup/exceptions",
        {
            "provider_id": str(s.drlee),
            "kind": "time_off",
            "starts_at": "2027-01-11T08:00",
            "ends_at": "2027-01-11T09:00",
        },
        follow_redirects=True,
    )
    assert "2 booked appointment(s) fall in this time off" in response.get_data(as_text=True)
