"""Working intervals and open slots: templates, exceptions, closures, bookings, DST.

The shared ``schedule`` fixture gives drlee and drpatel Mon-Fri 08:00-12:00 and 13:00-17:00
at Main Street (America/New_York). Dates are in 2027 so they stay in the future.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from sqlalchemy import event

from portal.extensions import db
from portal.scheduling.availability.services import (
    Interval,
    Slot,
    find_open_slots,
    working_intervals,
)
from portal.scheduling.models import (
    Appointment,
    AvailabilityBlock,
    AvailabilityException,
    ClinicClosure,
)

MONDAY = date(2027, 1, 11)  # EST, UTC-5
SATURDAY = date(2027, 1, 16)
SPRING_FORWARD = date(2027, 3, 14)  # 02:00 EST -> 03:00 EDT
FALL_BACK = date(2027, 11, 7)  # 02:00 EDT -> 01:00 EST
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def ctx(app, schedule):
    with app.app_context():
        yield schedule


def book(s, provider, starts_at, minutes=20, status="scheduled", overbooked=False, patient=0):
    appointment = Appointment(
        patient_id=s.patients[patient],
        provider_id=provider,
        location_id=s.main_street,
        appointment_type_id=s.follow_up,
        starts_at=starts_at,
        ends_at=starts_at + timedelta(minutes=minutes),
        status=status,
        overbooked=overbooked,
    )
    db.session.add(appointment)
    db.session.commit()
    return appointment


def add(*rows):
    db.session.add_all(rows)
    db.session.commit()


def slots(s, type_id=None, providers=None, first=MONDAY, last=None, **kwargs):
    kwargs.setdefault("not_before", LONG_AGO)
    return find_open_slots(type_id or s.follow_up, providers, first, last or first, **kwargs)


# --- working_intervals ----------------------------------------------------------------------


def test_weekday_template_in_utc(ctx):
    s = ctx
    got = working_intervals([s.drlee, s.drpatel], MONDAY)
    expected = [
        Interval(utc(2027, 1, 11, 13), utc(2027, 1, 11, 17), s.main_street, frozenset()),
        Interval(utc(2027, 1, 11, 18), utc(2027, 1, 11, 22), s.main_street, frozenset()),
    ]
    assert got == {s.drlee: expected, s.drpatel: expected}
    assert working_intervals([s.drlee], SATURDAY) == {s.drlee: []}


def test_template_validity_dates(ctx):
    s = ctx
    add(
        AvailabilityBlock(
            provider_id=s.drpatel,
            location_id=s.westside,
            weekday=5,
            start_time=time(9),
            end_time=time(11),
            valid_from=SATURDAY,
            valid_until=SATURDAY,
        )
    )
    assert working_intervals([s.drpatel], SATURDAY)[s.drpatel] == [
        Interval(utc(2027, 1, 16, 14), utc(2027, 1, 16, 16), s.westside)
    ]
    assert working_intervals([s.drpatel], SATURDAY + timedelta(days=7))[s.drpatel] == []
    assert working_intervals([s.drpatel], SATURDAY - timedelta(days=7))[s.drpatel] == []


def test_time_off_cuts_and_extra_session_adds(ctx):
    s = ctx
    add(
        # 09:00-10:30 local off on Monday
        AvailabilityException(
            provider_id=s.drlee,
            kind="time_off",
            starts_at=utc(2027, 1, 11, 14),
            ends_at=utc(2027, 1, 11, 15, 30),
        ),
        # extra 16:00-19:00 local: only 17:00-19:00 is new time
        AvailabilityException(
            provider_id=s.drlee,
            kind="extra",
            location_id=s.westside,
            starts_at=utc(2027, 1, 11, 21),
            ends_at=utc(2027, 1, 12, 0),
        ),
    )
    got = working_intervals([s.drlee, s.drpatel], MONDAY)
    assert got[s.drlee] == [
        Interval(utc(2027, 1, 11, 13), utc(2027, 1, 11, 14), s.main_street),
        Interval(utc(2027, 1, 11, 15, 30), utc(2027, 1, 11, 17), s.main_street),
        Interval(utc(2027, 1, 11, 18), utc(2027, 1, 11, 22), s.main_street),
        Interval(utc(2027, 1, 11, 22), utc(2027, 1, 12, 0), s.westside),
    ]
    assert len(got[s.drpatel]) == 2  # someone else's exception changes nothing


def test_time_off_over_several_days(ctx):
    s = ctx
    add(
        AvailabilityException(
            provider_id=s.drpatel,
            kind="time_off",
            starts_at=utc(2027, 1, 11, 5),
            ends_at=utc(2027, 1, 14, 5),  # Mon-Wed, whole local days
        )
    )
    for offset in range(3):
        assert working_intervals([s.drpatel], MONDAY + timedelta(days=offset))[s.drpatel] == []
    assert len(working_intervals([s.drpatel], MONDAY + timedelta(days=3))[s.drpatel]) == 2


def test_clinic_wide_closure_removes_everything_including_extras(ctx):
    s = ctx
    add(
        ClinicClosure(first_day=SATURDAY - timedelta(days=4), last_day=SATURDAY, reason="Snow"),
        AvailabilityException(
            provider_id=s.drlee,
            kind="extra",
            location_id=s.westside,
            starts_at=utc(2027, 1, 16, 14),
            ends_at=utc(2027, 1, 16, 17),
        ),
    )
    assert working_intervals([s.drlee], MONDAY)[s.drlee] != []
    assert working_intervals([s.drlee], MONDAY + timedelta(days=1))[s.drlee] == []
    assert working_intervals([s.drlee], SATURDAY)[s.drlee] == []


def test_location_closure_only_closes_that_location(ctx):
    s = ctx
    add(
        ClinicClosure(location_id=s.main_street, first_day=MONDAY, last_day=MONDAY),
        AvailabilityException(
            provider_id=s.drlee,
            kind="extra",
            location_id=s.westside,
            starts_at=utc(2027, 1, 11, 14),
            ends_at=utc(2027, 1, 11, 16),
        ),
    )
    assert working_intervals([s.drlee], MONDAY)[s.drlee] == [
        Interval(utc(2027, 1, 11, 14), utc(2027, 1, 11, 16), s.westside)
    ]


def test_block_across_the_spring_forward_gap(ctx):
    """01:00-04:00 on the spring-forward day is two real hours (02:00-03:00 does not exist)."""
    s = ctx
    add(
        AvailabilityBlock(
            provider_id=s.drpatel,
            location_id=s.main_street,
            weekday=6,
            start_time=time(1),
            end_time=time(4),
            valid_from=SPRING_FORWARD,
            valid_until=SPRING_FORWARD,
        )
    )
    assert working_intervals([s.drpatel], SPRING_FORWARD)[s.drpatel] == [
        Interval(utc(2027, 3, 14, 6), utc(2027, 3, 14, 8), s.main_street)
    ]
    # The next day's 08:00 is daylight time: 12:00 UTC, not 13:00.
    assert working_intervals([s.drpatel], SPRING_FORWARD + timedelta(days=1))[s.drpatel][
        0
    ].starts_at == utc(2027, 3, 15, 12)
    # 40-minute slots step in real time across the gap: 01:00, 01:40 EST, then 03:20 EDT.
    got = slots(s, s.new_patient, [s.drpatel], SPRING_FORWARD)
    assert [slot.starts_at for slot in got] == [
        utc(2027, 3, 14, 6),
        utc(2027, 3, 14, 6, 40),
        utc(2027, 3, 14, 7, 20),
    ]


def test_fall_back_day_a_booking_at_the_first_0130_leaves_the_second_free(ctx):
    s = ctx
    add(
        AvailabilityBlock(
            provider_id=s.drlee,
            location_id=s.main_street,
            weekday=6,
            start_time=time(0, 30),
            end_time=time(3),
            valid_from=FALL_BACK,
            valid_until=FALL_BACK,
        )
    )
    # 00:30 EDT -> 03:00 EST: three and a half real hours.
    assert working_intervals([s.drlee], FALL_BACK)[s.drlee] == [
        Interval(utc(2027, 11, 7, 4, 30), utc(2027, 11, 7, 8), s.main_street)
    ]
    first_0130 = utc(2027, 11, 7, 5, 30)  # 01:30 EDT
    second_0130 = utc(2027, 11, 7, 6, 30)  # 01:30 EST, an hour later in real time
    book(s, s.drlee, first_0130, minutes=20)
    starts = [slot.starts_at for slot in slots(s, providers=[s.drlee], first=FALL_BACK)]
    assert first_0130 not in starts
    assert second_0130 in starts
    # 04:30, 04:50, 05:10 | booked 05:30-05:50 | 05:50 ... 07:30 (07:50 would end after 08:00)
    assert len(starts) == 3 + 6
    assert starts[0] == utc(2027, 11, 7, 4, 30)
    assert starts[-1] == utc(2027, 11, 7, 7, 30)


# --- find_open_slots ------------------------------------------------------------------------


def test_open_slots_step_by_duration_within_blocks(ctx):
    s = ctx
    got = slots(s, providers=[s.drlee])
    assert len(got) == 24  # 2 blocks x 4 h / 20 min
    assert got[0] == Slot(s.drlee, s.main_street, utc(2027, 1, 11, 13), utc(2027, 1, 11, 13, 20))
    assert got[11].ends_at == utc(2027, 1, 11, 17)  # last morning slot ends at 12:00
    assert got[12].starts_at == utc(2027, 1, 11, 18)  # lunch is not a slot
    new_patient = slots(s, s.new_patient, [s.drlee])
    assert len(new_patient) == 12  # 40-minute visits: 6 per block


def test_bookings_are_busy_and_slots_realign_on_the_grid(ctx):
    s = ctx
    book(s, s.drlee, utc(2027, 1, 11, 13, 10), minutes=20)  # 08:10-08:30
    book(s, s.drlee, utc(2027, 1, 11, 14, 0), minutes=7)  # 09:00-09:07
    starts = [slot.starts_at.astimezone(UTC).time() for slot in slots(s, providers=[s.drlee])]
    # 08:30 fits before 09:00 (08:50 would not); after 09:07 the next grid point is 09:10.
    assert starts[:5] == [time(13, 30), time(14, 10), time(14, 30), time(14, 50), time(15, 10)]


def test_cancelled_frees_time_but_overbooked_and_arrived_still_occupy(ctx):
    s = ctx
    book(s, s.drlee, utc(2027, 1, 11, 13, 0), status="cancelled")
    book(s, s.drlee, utc(2027, 1, 11, 13, 0), status="no_show", patient=1)
    book(s, s.drlee, utc(2027, 1, 11, 13, 20), status="arrived", patient=2)
    book(s, s.drlee, utc(2027, 1, 11, 13, 40), overbooked=True, patient=3)
    starts = [slot.starts_at for slot in slots(s, providers=[s.drlee])]
    assert utc(2027, 1, 11, 13, 0) in starts
    assert utc(2027, 1, 11, 13, 20) not in starts
    assert utc(2027, 1, 11, 13, 40) not in starts
    assert utc(2027, 1, 11, 14, 0) in starts


def test_only_providers_who_offer_the_type(ctx):
    s = ctx
    procedure = slots(s, s.procedure)
    assert procedure and {slot.provider_id for slot in procedure} == {s.drlee}
    assert slots(s, s.procedure, [s.drpatel]) == []
    assert {slot.provider_id for slot in slots(s)} == {s.drlee, s.drpatel}


def test_block_limited_to_some_types(ctx):
    s = ctx
    from portal.scheduling.models import AppointmentType

    procedure = db.session.get(AppointmentType, s.procedure)
    morning = db.session.scalars(
        db.select(AvailabilityBlock).filter_by(provider_id=s.drlee, weekday=0, start_time=time(8))
    ).one()
    morning.allowed_types = [procedure]
    db.session.commit()
    follow_ups = slots(s, providers=[s.drlee])
    assert len(follow_ups) == 12
    assert all(slot.starts_at >= utc(2027, 1, 11, 18) for slot in follow_ups)
    assert len(slots(s, s.procedure, [s.drlee])) == 8  # 4 + 4 hour-long slots
    assert working_intervals([s.drlee], MONDAY)[s.drlee][0].allowed_type_ids == {s.procedure}


def test_exceptions_and_closures_apply_to_slots(ctx):
    s = ctx
    add(
        AvailabilityException(
            provider_id=s.drlee,
            kind="time_off",
            starts_at=utc(2027, 1, 11, 13),
            ends_at=utc(2027, 1, 11, 17),
        ),
        AvailabilityException(
            provider_id=s.drlee,
            kind="extra",
            location_id=s.westside,
            starts_at=utc(2027, 1, 16, 14),
            ends_at=utc(2027, 1, 16, 15),
        ),
        ClinicClosure(
            location_id=s.main_street,
            first_day=MONDAY + timedelta(days=1),
            last_day=MONDAY + timedelta(days=4),
        ),
    )
    got = slots(s, providers=[s.drlee], last=SATURDAY)
    assert len(got) == 12 + 3  # Monday afternoon, then Saturday's extra hour
    assert got[-1] == Slot(s.drlee, s.westside, utc(2027, 1, 16, 14, 40), utc(2027, 1, 16, 15))


def test_time_of_day_preference(ctx):
    s = ctx
    morning = slots(s, providers=[s.drlee], time_of_day="morning")
    afternoon = slots(s, providers=[s.drlee], time_of_day="afternoon")
    assert len(morning) == len(afternoon) == 12
    assert max(slot.starts_at for slot in morning) < utc(2027, 1, 11, 17)
    assert min(slot.starts_at for slot in afternoon) >= utc(2027, 1, 11, 17)
    with pytest.raises(ValueError):
        slots(s, time_of_day="evening")


def test_ordered_by_time_across_providers_and_limited(ctx):
    s = ctx
    book(s, s.drlee, utc(2027, 1, 11, 13, 0), minutes=60)  # drlee busy 08:00-09:00
    got = slots(s, last=MONDAY + timedelta(days=1), limit=5)
    assert [(slot.starts_at, slot.provider_id) for slot in got] == [
        (utc(2027, 1, 11, 13, 0), s.drpatel),
        (utc(2027, 1, 11, 13, 20), s.drpatel),
        (utc(2027, 1, 11, 13, 40), s.drpatel),
        (utc(2027, 1, 11, 14, 0), s.drlee),
        (utc(2027, 1, 11, 14, 0), s.drpatel),
    ]
    two_days = slots(s, last=MONDAY + timedelta(days=1), limit=500)
    assert len(two_days) == 2 * 2 * 24 - 3
    assert [slot.starts_at for slot in two_days] == sorted(slot.starts_at for slot in two_days)


def test_a_later_page_starts_right_after_the_last_slot_shown(ctx):
    s = ctx
    book(s, s.drlee, utc(2027, 1, 11, 13, 0), minutes=60)
    everything = slots(s, last=MONDAY + timedelta(days=1), limit=500)
    # 08:00 to 09:00 only drpatel; from 09:00 both, drlee first (the lower id) at each time.
    assert s.drlee < s.drpatel and everything[3].starts_at == everything[4].starts_at
    page = slots(s, last=MONDAY + timedelta(days=1), limit=4)
    assert page == everything[:4]
    # The page ended between two providers at 09:00: the next one starts with the second.
    last = page[-1]
    following = slots(
        s, last=MONDAY + timedelta(days=1), limit=4, after=(last.starts_at, last.provider_id)
    )
    assert following == everything[4:8]
    # A page that ended on Monday's last slot goes on with Tuesday's first.
    monday_last = next(i for i, slot in enumerate(everything) if slot.starts_at.day == 12) - 1
    tuesday = slots(
        s,
        last=MONDAY + timedelta(days=1),
        limit=3,
        after=(everything[monday_last].starts_at, everything[monday_last].provider_id),
    )
    assert tuesday == everything[monday_last + 1 : monday_last + 4]


def test_past_slots_are_left_out(ctx):
    s = ctx
    got = slots(s, providers=[s.drlee], not_before=utc(2027, 1, 11, 20, 5))
    assert got[0].starts_at == utc(2027, 1, 11, 20, 20)
    assert len(got) == 5  # 15:20 ... 16:40 local


def _statements_of(search) -> list[str]:
    statements = []

    def record(_conn, _cursor, statement, *_args):
        statements.append(statement)

    search()  # warm-up: the clinic's zone is cached per request
    db.session.expire_all()
    event.listen(db.engine, "before_cursor_execute", record)
    try:
        search()
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    return statements


def test_queries_do_not_grow_with_days_or_providers(ctx):
    s = ctx
    book(s, s.drlee, utc(2027, 1, 12, 13, 0))
    one_day = _statements_of(lambda: slots(s, first=MONDAY, last=MONDAY, limit=10))
    # A month, but the limit is met on the first day: no more work than one day.
    month = _statements_of(
        lambda: slots(s, first=MONDAY, last=MONDAY + timedelta(days=30), limit=10)
    )
    assert len(month) == len(one_day)
    # The whole month wanted: bookings are read in windows of 1, 2, 4, 8, 16 days.
    everything = _statements_of(
        lambda: slots(s, first=MONDAY, last=MONDAY + timedelta(days=30), limit=100_000)
    )
    bookings = [q for q in everything if "FROM appointments" in q]
    assert len(bookings) == 5
    assert len(everything) == len(one_day) + 4


def test_a_long_booking_that_started_before_the_block_still_blocks_it(ctx):
    s = ctx
    book(s, s.drlee, utc(2027, 1, 11, 12, 0), minutes=120)  # 07:00-09:00 local
    book(s, s.drlee, utc(2027, 1, 11, 13, 0), minutes=20, overbooked=True, patient=1)
    got = slots(s, providers=[s.drlee])
    assert got[0].starts_at == utc(2027, 1, 11, 14, 0)  # 09:00
    assert len(got) == 24 - 3


def test_an_extra_session_across_midnight_belongs_to_both_days(ctx):
    s = ctx
    add(
        AvailabilityException(
            provider_id=s.drpatel,
            kind="extra",
            location_id=s.westside,
            starts_at=utc(2027, 1, 17, 3),  # Sat 22:00 local
            ends_at=utc(2027, 1, 17, 7),  # Sun 02:00 local
        )
    )
    midnight = utc(2027, 1, 17, 5)
    assert working_intervals([s.drpatel], SATURDAY)[s.drpatel] == [
        Interval(utc(2027, 1, 17, 3), midnight, s.westside)
    ]
    assert working_intervals([s.drpatel], SATURDAY + timedelta(days=1))[s.drpatel] == [
        Interval(midnight, utc(2027, 1, 17, 7), s.westside)
    ]
    got = slots(s, providers=[s.drpatel], first=SATURDAY, last=SATURDAY + timedelta(days=1))
    assert len(got) == 12 and got[0].starts_at == utc(2027, 1, 17, 3)


def test_a_disabled_provider_offers_no_slots(ctx):
    s = ctx
    from portal.auth.models import User

    db.session.get(User, s.drpatel).is_enabled = False
    db.session.commit()
    assert {slot.provider_id for slot in slots(s)} == {s.drlee}
    assert slots(s, providers=[s.drpatel]) == []
