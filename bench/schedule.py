"""Scheduling benchmarks: seed a calendar, then time the day view, the week view,
find-next-available and booking throughput, each beside the SQL it runs.

Seeding adds, to a database already seeded with patients: 20 prescribers, three appointment
types they all offer, a weekly template (Mon-Fri 08-12 and 13-17, clinic time) and
``appointments`` visits over three years (two past, one ahead), laid end to end inside each
provider's working hours so that no two overlap (PostgreSQL's exclusion constraints stay on).
"""

from __future__ import annotations

import json
import random
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as clock

import requests
from sqlalchemy import create_engine, func, insert, select, text

from bench.databases import OUT, app_for

PROVIDERS = 20
PROVIDER_PREFIX = "benchdr"
TYPES = (("Bench follow-up", 20), ("Bench new patient", 40), ("Bench short", 10))
PAST_DAYS = 730
AHEAD_DAYS = 365
BATCH = 10_000
SESSIONS = ((clock(8), clock(12)), (clock(13), clock(17)))
FIND_DAYS = 30
BOOKING_CLIENTS = 8


def _weekdays(first: date, count_days: int) -> list[date]:
    return [
        first + timedelta(days=n)
        for n in range(count_days)
        if (first + timedelta(days=n)).weekday() < 5
    ]


def _meta_path(target) -> object:
    return OUT / f"{target.key}-schedule.json"


def ensure_schedule(target, appointments: int, *, log) -> dict:
    """Seed the scheduling data unless this database already holds the same seed."""
    meta_path = _meta_path(target)
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    if meta.get("appointments") == appointments and meta.get("patients") == target.rows:
        engine = create_engine(target.url)
        with engine.connect() as connection:
            providers = connection.execute(
                text("SELECT count(*) FROM users WHERE username LIKE :p"),
                {"p": PROVIDER_PREFIX + "%"},
            ).scalar()
        engine.dispose()
        if providers == PROVIDERS:
            log(
                f"  reusing {appointments:,} appointments (seeded {meta['seeded_at']} "
                f"in {meta['seed_seconds']} s)"
            )
            meta["reused"] = True
            return meta
    log(f"  seeding {appointments:,} appointments for {PROVIDERS} providers ...")
    started = time.perf_counter()
    app = app_for(target.url)
    with app.app_context():
        _seed(appointments)
        from portal.extensions import db

        if target.dialect == "postgresql":
            db.session.execute(text("ANALYZE"))
            db.session.commit()
        db.session.remove()
        db.engine.dispose()
    seconds = time.perf_counter() - started
    meta = {
        "appointments": appointments,
        "patients": target.rows,
        "seed_seconds": round(seconds, 1),
        "seeded_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    log(f"  {appointments:,} appointments seeded in {seconds:.1f} s")
    meta["reused"] = False
    return meta


def _seed(appointments: int) -> None:
    """Providers, types, templates and the appointments (Core inserts in batches)."""
    from portal.auth.models import User
    from portal.clinic.clock import clinic_today, local_to_utc
    from portal.clinic.models import Location
    from portal.extensions import db
    from portal.scheduling.models import (
        Appointment,
        AppointmentType,
        AvailabilityBlock,
        appointment_type_providers,
    )
    from portal.timeutil import utcnow

    # Start clean: earlier bench appointments and providers go (bookings included).
    old = select(User.id).where(User.username.like(PROVIDER_PREFIX + "%"))
    db.session.execute(text("DELETE FROM appointment_status_changes"))
    db.session.execute(Appointment.__table__.delete())
    db.session.execute(
        AvailabilityBlock.__table__.delete().where(AvailabilityBlock.provider_id.in_(old))
    )
    db.session.execute(
        appointment_type_providers.delete().where(appointment_type_providers.c.provider_id.in_(old))
    )
    db.session.execute(text("DELETE FROM calendar_preferences"))
    db.session.commit()
    location_id = db.session.scalars(select(Location.id).order_by(Location.id)).first()
    providers = []
    for number in range(1, PROVIDERS + 1):
        username = f"{PROVIDER_PREFIX}{number:02d}"
        user = db.session.scalars(select(User).where(User.username == username)).first()
        if user is None:
            user = User(username=username, full_name=f"Dr. Bench {number:02d}", password_hash="")
            db.session.add(user)
        user.set_roles(["prescriber"])
        providers.append(user)
    types = []
    for name, minutes in TYPES:
        kind = db.session.scalars(
            select(AppointmentType).where(AppointmentType.name == name)
        ).first()
        if kind is None:
            kind = AppointmentType(name=name, default_minutes=minutes)
            db.session.add(kind)
        kind.is_active = True
        types.append(kind)
    db.session.flush()
    for kind in types:
        db.session.execute(
            insert(appointment_type_providers),
            [{"appointment_type_id": kind.id, "provider_id": p.id} for p in providers],
        )
    for provider in providers:
        for weekday in range(5):
            for start, end in SESSIONS:
                db.session.add(
                    AvailabilityBlock(
                        provider_id=provider.id,
                        location_id=location_id,
                        weekday=weekday,
                        start_time=start,
                        end_time=end,
                    )
                )
    db.session.commit()

    low, high = db.session.execute(text("SELECT min(id), max(id) FROM patients")).one()
    span = high - low + 1
    today = clinic_today()
    days = _weekdays(today - timedelta(days=PAST_DAYS), PAST_DAYS + AHEAD_DAYS)
    session_starts = [
        (day, local_to_utc(day, start), local_to_utc(day, end))
        for day in days
        for start, end in SESSIONS
    ]
    per_provider = appointments // PROVIDERS
    # Working minutes are shared out evenly: each visit gets ``step`` minutes, of which it
    # uses up to its type's length, so visits never overlap and the future keeps gaps.
    working_minutes = len(session_starts) * 240
    now = utcnow()
    table = Appointment.__table__
    rows = []

    def flush():
        if rows:
            db.session.execute(insert(table), rows)
            db.session.commit()
            rows.clear()

    for index, provider in enumerate(providers):
        count = per_provider + (1 if index < appointments % PROVIDERS else 0)
        step = working_minutes / max(1, count)
        for n in range(count):
            offset = int(n * step)
            session, minute = divmod(offset, 240)
            _day, session_start, _end = session_starts[session]
            kind = types[n % len(types)]
            length = max(1, min(kind.default_minutes, int(step), 240 - minute))
            starts = session_start + timedelta(minutes=minute)
            ends = starts + timedelta(minutes=length)
            past = ends < now
            status = "completed" if past else "scheduled"
            if past and n % 20 == 0:
                status = "no_show"
            rows.append(
                {
                    # Distinct patients at any one time (their own overlap constraint):
                    # a patient comes back only ``span / PROVIDERS`` visits later.
                    "patient_id": low + (n * PROVIDERS + index) % span,
                    "provider_id": provider.id,
                    "location_id": location_id,
                    "appointment_type_id": kind.id,
                    "starts_at": starts,
                    "ends_at": ends,
                    "status": status,
                    "status_changed_at": now,
                    "overbooked": False,
                    "late_cancel": False,
                    "version": 1,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            if len(rows) >= BATCH:
                flush()
    flush()


@dataclass
class Setup:
    """What the requests need: provider ids, a type, a location, patients."""

    provider_ids: list[int]
    type_id: int
    type_minutes: int
    location_id: int
    patient_ids: list[int]
    today: date
    latest_end: datetime | None = None
    days: list[date] = field(default_factory=list)


def load_setup(url: str, count: int) -> Setup:
    app = app_for(url)
    with app.app_context():
        from portal.clinic.clock import clinic_today
        from portal.extensions import db

        provider_ids = list(
            db.session.scalars(
                text("SELECT id FROM users WHERE username LIKE :p ORDER BY id"),
                {"p": PROVIDER_PREFIX + "%"},
            )
        )
        type_id, minutes = db.session.execute(
            text("SELECT id, default_minutes FROM appointment_types WHERE name = :n"),
            {"n": TYPES[0][0]},
        ).one()
        location_id = db.session.execute(text("SELECT min(id) FROM locations")).scalar()
        low, high = db.session.execute(text("SELECT min(id), max(id) FROM patients")).one()
        today = clinic_today()
        latest = db.session.execute(
            select(func.max(text("ends_at"))).select_from(text("appointments"))
        ).scalar()
        db.session.remove()
        db.engine.dispose()
    rng = random.Random(11)
    # Distinct patients, so two bookings at one time never collide on the patient.
    patients = rng.sample(range(low, high + 1), min(high - low + 1, max(count, 1) + 2000))
    # Days shown: spread over the whole three years, weekdays mostly.
    days = [
        today - timedelta(days=rng.randint(-AHEAD_DAYS + 1, PAST_DAYS - 1)) for _ in range(count)
    ]
    if isinstance(latest, str):
        latest = datetime.fromisoformat(latest)
    return Setup(provider_ids, type_id, minutes, location_id, patients, today, latest, days)


def choose_all_providers(session: requests.Session, base: str, token: str, setup: Setup) -> None:
    """The day view's provider choice (stored per user), as the form posts it."""
    response = session.post(
        base + "/schedule/day/providers",
        data=[("provider_id", str(p)) for p in setup.provider_ids] + [("csrf_token", token)],
        headers={"X-CSRFToken": token},
        allow_redirects=False,
        timeout=30,
    )
    if response.status_code not in (302, 303):
        raise RuntimeError(f"choosing providers answered {response.status_code}")


def request_for(kind: str, setup: Setup, index: int) -> str:
    """The path and query of one request of a benchmark."""
    day = setup.days[index % len(setup.days)]
    if kind == "day":
        return f"/schedule/day?day={day.isoformat()}"
    if kind == "week":
        provider = setup.provider_ids[index % len(setup.provider_ids)]
        return f"/schedule/week?provider_id={provider}&day={day.isoformat()}"
    if kind == "flow":
        return f"/schedule/flow-board?location_id={setup.location_id}"
    first = setup.today + timedelta(days=index % 7)
    last = first + timedelta(days=FIND_DAYS - 1)
    providers = "&".join(f"provider_ids={p}" for p in setup.provider_ids)
    return (
        f"/schedule/find?appointment_type_id={setup.type_id}&{providers}"
        f"&first_day={first.isoformat()}&last_day={last.isoformat()}&time_of_day=any"
    )


BENCHMARKS = (
    ("day", "schedule: day view, 20 providers"),
    ("week", "schedule: week view, 1 provider"),
    ("find", "schedule: find next available, 20 providers, 30 days"),
    # Polled by every front-desk screen; today's visits at one location (on a weekday at the
    # bench's density, some 1,800 cards).
    ("flow", "schedule: flow board, today at one location"),
)


def timed_get(session, base: str, path: str) -> tuple[float, str | None]:
    started = time.perf_counter()
    response = session.get(base + path, timeout=60)
    body = response.text
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        return elapsed, f"HTTP {response.status_code} for {path}"
    if "Dr. Bench" not in body and "flow-board-updated" not in body:
        return elapsed, f"no bench provider on {path}"
    return elapsed, None


# --- floors: the page's main SQL, run directly --------------------------------------------


def floor(url: str, kind: str, setup: Setup, count: int, warmup: int) -> list[float]:
    """Latencies (ms) of the SQL behind each page, over the same inputs."""
    app = app_for(url)
    latencies = []
    with app.app_context():
        from portal.driver_rows import driver_rows
        from portal.extensions import db
        from portal.scheduling.availability.services import find_open_slots
        from portal.scheduling.availability.views import SLOTS_SHOWN
        from portal.scheduling.calendar.services import calendar_query
        from portal.scheduling.flow.board import board_rows

        for index in range(warmup + count):
            day = setup.days[index % len(setup.days)]
            started = time.perf_counter()
            if kind in ("day", "week"):
                if kind == "day":
                    providers, first, last = setup.provider_ids, day, day
                else:
                    providers = [setup.provider_ids[index % len(setup.provider_ids)]]
                    first = day - timedelta(days=day.weekday())
                    last = first + timedelta(days=6)
                # The page's own query, read as the page reads it (the driver's rows).
                driver_rows(calendar_query(providers, first, last))
            elif kind == "flow":
                board_rows(setup.location_id, setup.today)
            else:
                # The slot search is several queries plus interval arithmetic: its service
                # call is the floor (no request, no template, no audit).
                first = setup.today + timedelta(days=index % 7)
                find_open_slots(
                    setup.type_id,
                    setup.provider_ids,
                    first,
                    first + timedelta(days=FIND_DAYS - 1),
                    "any",
                    limit=SLOTS_SHOWN,
                )
            elapsed = (time.perf_counter() - started) * 1000
            db.session.rollback()
            if index >= warmup:
                latencies.append(elapsed)
        db.session.remove()
        db.engine.dispose()
    return latencies


# --- booking throughput ----------------------------------------------------------------------


@dataclass
class Booking:
    per_second: float
    attempts: int
    booked: int
    conflicts: int
    errors: int
    latencies_ms: list[float]
    first_error: str | None
    double_booked: int


def free_slots(setup: Setup, count: int, skip_days: int) -> list[tuple[int, date, str]]:
    """``count`` (provider, day, HH:MM) slots after every seeded and earlier-booked visit."""
    start_day = max(setup.today, (setup.latest_end.date() if setup.latest_end else setup.today))
    start_day += timedelta(days=2 + skip_days)
    slots = []
    day = start_day
    while len(slots) < count:
        if day.weekday() < 5:
            for start, _end in SESSIONS:
                for minute in range(0, 240, setup.type_minutes):
                    at = (datetime.combine(day, start) + timedelta(minutes=minute)).time()
                    for provider in setup.provider_ids:
                        slots.append((provider, day, at.strftime("%H:%M")))
        day += timedelta(days=1)
    return slots[:count]


def booking_run(sessions, base: str, tokens, setup: Setup, plans, url: str) -> Booking:
    """Each client books its own list of slots at once with the others; count the answers."""
    lock = threading.Lock()
    tally = {"booked": 0, "conflicts": 0, "errors": 0, "first": None}
    latencies: list[float] = []

    def client(number: int):
        session, token = sessions[number], tokens[number]
        for step, (provider, day, at) in enumerate(plans[number]):
            data = {
                "csrf_token": token,
                "patient_id": setup.patient_ids[
                    (number * len(plans[number]) + step) % len(setup.patient_ids)
                ],
                "provider_id": provider,
                "location_id": setup.location_id,
                "appointment_type_id": setup.type_id,
                "day": day.isoformat(),
                "start_time": at,
                "request_key": secrets.token_hex(16),
            }
            started = time.perf_counter()
            response = session.post(
                base + "/schedule/appointments",
                data=data,
                headers={"HX-Request": "true", "X-CSRFToken": token},
                timeout=60,
            )
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                latencies.append(elapsed)
                if response.status_code in (200, 201):
                    tally["booked"] += 1
                elif response.status_code == 409:
                    tally["conflicts"] += 1
                else:
                    tally["errors"] += 1
                    tally["first"] = tally["first"] or f"HTTP {response.status_code}"

    threads = [threading.Thread(target=client, args=(n,)) for n in range(len(plans))]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    double = _double_booked(url, {(p, d) for plan in plans for p, d, _ in plan})
    return Booking(
        tally["booked"] / seconds,
        len(latencies),
        tally["booked"],
        tally["conflicts"],
        tally["errors"],
        latencies,
        tally["first"],
        double,
    )


def _double_booked(url: str, _provider_days) -> int:
    """Active appointments of one provider that overlap another (must be 0)."""
    engine = create_engine(url)
    with engine.connect() as connection:
        found = connection.execute(
            text(
                "SELECT count(*) FROM appointments a JOIN appointments b "
                "ON a.provider_id = b.provider_id AND a.id < b.id "
                "AND a.starts_at < b.ends_at AND b.starts_at < a.ends_at "
                "WHERE a.status NOT IN ('cancelled', 'no_show') "
                "AND b.status NOT IN ('cancelled', 'no_show') "
                "AND a.created_by_id IS NOT NULL AND b.created_by_id IS NOT NULL"
            )
        ).scalar()
    engine.dispose()
    return found or 0
