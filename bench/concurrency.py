"""Many users at once: the home page, the patient page, the day view and a draft autosave,
under 8 and 32 concurrent clients, served as deployed (gunicorn, 2 workers x 4 threads).

Each client is a signed-in prescriber with a session of its own (made directly in the
database: signing 32 clients in through argon2 and TOTP measures nothing of interest) and a
draft note of its own to autosave. Clients run in closed loops (send, wait for the answer,
send the next) for a fixed time, spread over a few load-generator processes so that
Python's GIL in the generator does not add its own queueing to the figures.

Scenarios:
- "mixed": every client picks at random, by weight, among the four requests (a clinic's
  day: pages opened, schedules looked at, notes typed), so reads meet writes. This is
  where SQLite readers used to queue behind writers.
- one scenario per request alone, for its throughput and its worker CPU per request
  (the patient page is audited; the home page of a clinician with nothing waiting is not).

Everything is checked: a request counts as failed unless it answers 200 with what the page
must hold (an autosave must return the new version).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import multiprocessing
import random
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlencode

from sqlalchemy import create_engine, insert, select, text

from bench import cpu, databases, report
from portal.auth.models import ServerSession, User, UserRole
from portal.charting.models import Encounter, Note
from portal.patients.models import Patient

CLINICIAN = "bench-rx"
COOKIE = "portal_session"
WORKERS = 2
THREADS = 4
LOAD_PROCESSES = 4
WARMUP_SECONDS = 3.0
# Request -> weight in the mixed scenario.
MIX = {"patient page": 40, "home page": 25, "day view": 20, "autosave": 15}
SCENARIOS = ("mixed", "patient page", "home page", "day view", "autosave")
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
VERSION_FIELD = re.compile(r'id="note-\d+-version" value="(\d+)"')
DRAFT_TEXT = "Bench draft, client {client}, keystroke {n}."


@dataclass
class Fixture:
    """What the clients need from the database: who, which notes, which day, how many."""

    clinician_id: int
    note_ids: list[int]
    day: str  # the day view's date (one that holds visits)
    patient_max_id: int


@dataclass
class ClientSetup:
    number: int
    token: str  # the session cookie
    note_id: int
    note_version: int


@dataclass
class Sample:
    kind: str
    started: float  # seconds since the scenario started
    latency_ms: float
    error: str | None


@dataclass
class ScenarioResult:
    scenario: str
    clients: int
    seconds: float
    samples: list[Sample] = field(default_factory=list)
    worker_cpu_seconds: float | None = None
    other_busy: float | None = None


# --- the database ---------------------------------------------------------------------------


def ensure_fixture(target: databases.Target, clients: int, log) -> Fixture:
    """The bench prescriber, the demo schedule and one draft note per client (made once)."""
    from portal.demo.scheduling import seed_schedule
    from portal.extensions import db

    app = databases.app_for(target.url)
    with app.app_context():
        if not db.session.scalar(text("SELECT count(*) FROM appointment_types")):
            log("  seeding the demo schedule ...")
            seed_schedule(seed=databases.SEED, days=7)
        db.session.remove()
        db.engine.dispose()
    engine = create_engine(target.url)
    with engine.begin() as connection:
        clinician_id = _ensure_clinician(connection)
        note_ids = _ensure_notes(connection, clinician_id, clients)
        day = connection.execute(
            text("SELECT starts_at FROM appointments ORDER BY starts_at DESC LIMIT 1")
        ).scalar()
        patient_max_id = connection.execute(text("SELECT max(id) FROM patients")).scalar()
    engine.dispose()
    day_value = day if isinstance(day, datetime) else datetime.fromisoformat(str(day))
    return Fixture(clinician_id, note_ids, day_value.date().isoformat(), patient_max_id)


def _ensure_clinician(connection) -> int:
    found = connection.execute(select(User.id).where(User.username == CLINICIAN)).scalar()
    if found:
        return found
    user_id = connection.execute(
        insert(User.__table__)
        .values(
            username=CLINICIAN,
            full_name="Dr. Bench Concurrency",
            password_hash="!",  # noqa: S106  (no password: sessions are made directly)
            is_enabled=True,
            mfa_enabled=False,
            failed_sign_ins=0,
        )
        .returning(User.__table__.c.id)
    ).scalar()
    connection.execute(insert(UserRole.__table__).values(user_id=user_id, role="prescriber"))
    return user_id


def _ensure_notes(connection, clinician_id: int, clients: int) -> list[int]:
    """One ad hoc encounter with a draft provider note per client (patients 1..clients)."""
    note_ids = list(
        connection.execute(
            select(Note.id)
            .join(Encounter, Encounter.id == Note.encounter_id)
            .where(Encounter.created_by_id == clinician_id, Note.signed_at.is_(None))
            .order_by(Note.id)
        ).scalars()
    )
    patient_ids = list(
        connection.execute(select(Patient.id).order_by(Patient.id).limit(clients)).scalars()
    )
    now = datetime.now(UTC)
    for patient_id in patient_ids[len(note_ids) :]:
        encounter_id = connection.execute(
            insert(Encounter.__table__)
            .values(
                patient_id=patient_id,
                provider_id=clinician_id,
                kind="office",
                chief_complaint="Bench concurrency visit",
                occurred_at=now,
                created_by_id=clinician_id,
            )
            .returning(Encounter.__table__.c.id)
        ).scalar()
        note_ids.append(
            connection.execute(
                insert(Note.__table__)
                .values(
                    encounter_id=encounter_id,
                    patient_id=patient_id,
                    author_id=clinician_id,
                    kind="provider",
                    text="",
                    version=1,
                    saved_at=now,
                    saved_by_id=clinician_id,
                    created_at=now,
                )
                .returning(Note.__table__.c.id)
            ).scalar()
        )
    return note_ids[:clients]


def new_clients(url: str, fixture: Fixture, count: int) -> list[ClientSetup]:
    """``count`` clients: each a fresh signed-in session of the bench prescriber (made in
    the database) and a draft note, with the note's current version."""
    tokens = _new_sessions(url, fixture.clinician_id, count)
    engine = create_engine(url)
    with engine.connect() as connection:
        versions = dict(
            connection.execute(
                select(Note.id, Note.version).where(Note.id.in_(fixture.note_ids[:count]))
            ).all()
        )
    engine.dispose()
    return [
        ClientSetup(n, tokens[n], fixture.note_ids[n], versions[fixture.note_ids[n]])
        for n in range(count)
    ]


def _new_sessions(url: str, clinician_id: int, count: int) -> list[str]:
    """``count`` fresh signed-in sessions of the bench prescriber; returns their cookies."""
    engine = create_engine(url)
    table_rows = []
    tokens = []
    now = datetime.now(UTC)
    for _ in range(count):
        token = secrets.token_urlsafe(32)
        tokens.append(token)
        table_rows.append(
            {
                "token_hash": hashlib.sha256(token.encode()).hexdigest(),
                "user_id": clinician_id,
                "data": json.dumps({"_user_id": str(clinician_id), "_fresh": True}),
                "created_at": now,
                "last_seen_at": now,
                "source_address": "127.0.0.1",
                "user_agent": "practice-portal-bench/concurrency",
            }
        )
    with engine.begin() as connection:
        connection.execute(
            text("DELETE FROM server_sessions WHERE user_id = :id"), {"id": clinician_id}
        )
        connection.execute(insert(ServerSession.__table__), table_rows)
    engine.dispose()
    return tokens


# --- the clients ----------------------------------------------------------------------------


class Client:
    """One browser: a keep-alive connection, a session cookie, a CSRF token, a draft note."""

    def __init__(self, port: int, setup: ClientSetup, fixture: Fixture, seed: int):
        self.port = port
        self.setup = setup
        self.fixture = fixture
        self.rng = random.Random(seed)
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.headers = {
            "Cookie": f"{COOKIE}={setup.token}",
            "User-Agent": "practice-portal-bench/concurrency",
        }
        self.csrf = None
        self.version = setup.note_version
        self.keystroke = 0

    def request(self, method: str, path: str, body: str | None = None, headers=None):
        all_headers = dict(self.headers, **(headers or {}))
        try:
            self.connection.request(method, path, body=body, headers=all_headers)
            response = self.connection.getresponse()
            data = response.read().decode("utf-8", "replace")
        except (http.client.HTTPException, OSError):
            self.connection.close()
            self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            raise
        return response.status, data

    def prepare(self) -> None:
        """The CSRF token, from a page, as a browser has it."""
        status, body = self.request("GET", "/")
        match = CSRF_META.search(body)
        if status != 200 or not match:
            raise RuntimeError(f"home page answered {status} without a CSRF token")
        self.csrf = match.group(1)

    def one(self, kind: str) -> str | None:
        """Send one request of ``kind``; None when the answer is right, else what is wrong."""
        if kind == "home page":
            status, body = self.request("GET", "/")
            return _check(status, body, "Practice Portal")
        if kind == "patient page":
            patient_id = self.rng.randint(1, self.fixture.patient_max_id)
            status, body = self.request("GET", f"/patients/{patient_id}")
            return _check(status, body, "Record status")
        if kind == "day view":
            status, body = self.request("GET", f"/schedule/day?day={self.fixture.day}")
            return _check(status, body, "Dr. Jordan Lee")
        self.keystroke += 1
        form = {
            "text": DRAFT_TEXT.format(client=self.setup.number, n=self.keystroke),
            "version": str(self.version),
            "csrf_token": self.csrf,
        }
        status, body = self.request(
            "POST",
            f"/chart/notes/{self.setup.note_id}/draft",
            body=urlencode(form),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "HX-Request": "true",
                "X-CSRFToken": self.csrf,
            },
        )
        match = VERSION_FIELD.search(body)
        if status != 200 or not match:
            return f"autosave answered {status}"
        self.version = int(match.group(1))
        return None


def _check(status: int, body: str, must: str) -> str | None:
    if status != 200:
        return f"HTTP {status}"
    if must not in body:
        return f"{must!r} missing"
    return None


def _load_process(port, setups, fixture, kinds, weights, seconds, start_at, seed, pipe) -> None:
    """One load-generator process: a thread per client, closed loops until the deadline."""
    samples: list[tuple] = []
    lock = threading.Lock()
    errors: list[str] = []

    def run(setup: ClientSetup) -> None:
        try:
            client = Client(port, setup, fixture, seed + setup.number)
            client.prepare()
        except Exception as error:  # reported, the run counts it
            errors.append(f"client {setup.number}: {error}")
            return
        rng = random.Random(seed * 1000 + setup.number)
        while time.time() < start_at:
            time.sleep(0.001)
        deadline = start_at + seconds
        local = []
        while (now := time.time()) < deadline:
            kind = rng.choices(kinds, weights)[0]
            began = time.perf_counter()
            try:
                problem = client.one(kind)
            except Exception as error:  # a dropped connection is a failed request
                problem = f"{type(error).__name__}: {error}"
            latency = (time.perf_counter() - began) * 1000
            local.append((kind, now - start_at, latency, problem))
        with lock:
            samples.extend(local)

    threads = [threading.Thread(target=run, args=(setup,)) for setup in setups]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    pipe.send((samples, errors))
    pipe.close()


def run_scenario(port, server_pids, setups, fixture, scenario, seconds) -> ScenarioResult:
    """``clients`` clients for ``seconds`` (after a warm-up whose samples are dropped)."""
    kinds = list(MIX) if scenario == "mixed" else [scenario]
    weights = [MIX[kind] for kind in kinds]
    clients = len(setups)
    processes = min(LOAD_PROCESSES, clients)
    start_at = time.time() + 2.0  # every client prepared and waiting
    total = WARMUP_SECONDS + seconds
    context = multiprocessing.get_context("fork")
    workers = []
    for index in range(processes):
        receiver, sender = context.Pipe(duplex=False)
        process = context.Process(
            target=_load_process,
            args=(
                port,
                setups[index::processes],
                fixture,
                kinds,
                weights,
                total,
                start_at,
                index + 1,
                sender,
            ),
        )
        process.start()
        workers.append((process, receiver))
    while time.time() < start_at + WARMUP_SECONDS:
        time.sleep(0.01)
    cpu_before = sum(cpu.process_cpu_seconds(pid) or 0 for pid in server_pids)
    machine_before = cpu.machine_jiffies()
    load_before = [cpu.process_cpu_seconds(process.pid) or 0 for process, _ in workers]
    time.sleep(max(0.0, start_at + total - time.time()))
    cpu_after = sum(cpu.process_cpu_seconds(pid) or 0 for pid in server_pids)
    machine_after = cpu.machine_jiffies()
    load_after = [cpu.process_cpu_seconds(process.pid) or 0 for process, _ in workers]
    result = ScenarioResult(scenario, clients, seconds)
    errors = []
    for process, receiver in workers:
        samples, process_errors = receiver.recv()
        process.join()
        errors += process_errors
        result.samples += [
            Sample(kind, started - WARMUP_SECONDS, latency, problem)
            for kind, started, latency, problem in samples
            if started >= WARMUP_SECONDS
        ]
    if errors:
        raise RuntimeError("clients could not start: " + "; ".join(errors[:3]))
    result.worker_cpu_seconds = cpu_after - cpu_before
    ours = result.worker_cpu_seconds + sum(load_after) - sum(load_before)
    result.other_busy = cpu.other_fraction(machine_before, machine_after, ours)
    return result


# --- the run --------------------------------------------------------------------------------


def measure(target, server, fixture, db_report, *, clients_list, seconds, stamp, log) -> None:
    """Every scenario at every client count on one database; rows go into ``db_report``."""
    pids = server.worker_pids()
    for clients in clients_list:
        for scenario in SCENARIOS:
            setups = new_clients(target.url, fixture, clients)
            outcome = run_scenario(server.port, pids, setups, fixture, scenario, seconds)
            for row in summarise(outcome, db_report.label, target.rows, stamp):
                db_report.results.append(row)
                log(
                    f"  {row.benchmark:<44} {row.throughput_per_s:7.1f}/s  p50 {row.p50_ms:6.1f}"
                    f"  p95 {row.p95_ms:6.1f}  p99 {row.p99_ms:6.1f} ms"
                    + (f"  worker CPU {row.worker_cpu_ms:.1f} ms/req" if row.worker_cpu_ms else "")
                    + (f"  FAILED {row.failures}: {row.first_failure}" if row.failures else "")
                    + f"  others {row.other_busy:.0%}"
                )


def summarise(outcome: ScenarioResult, database: str, rows: int, stamp: str) -> list:
    """One result row per request kind of the scenario (the mixed one: one per kind)."""
    results = []
    kinds = sorted({sample.kind for sample in outcome.samples}, key=list(MIX).index)
    total = len(outcome.samples)
    for kind in kinds:
        mine = [sample for sample in outcome.samples if sample.kind == kind]
        latencies = [sample.latency_ms for sample in mine]
        failures = [sample for sample in mine if sample.error]
        where = "mixed" if outcome.scenario == "mixed" else "alone"
        worker_ms = None
        if outcome.worker_cpu_seconds is not None and total and outcome.scenario != "mixed":
            worker_ms = round(outcome.worker_cpu_seconds * 1000 / total, 2)
        results.append(
            report.Result(
                benchmark=f"concurrency: {kind}, {where}, {outcome.clients} clients",
                database=database,
                rows=rows,
                requests=len(mine),
                p50_ms=round(report.percentile(latencies, 50), 2),
                p95_ms=round(report.percentile(latencies, 95), 2),
                p99_ms=round(report.percentile(latencies, 99), 2),
                floor_p95_ms=None,
                date=stamp,
                failures=len(failures),
                first_failure=failures[0].error if failures else None,
                worker_cpu_ms=worker_ms,
                other_busy=outcome.other_busy,
                throughput_per_s=round(len(mine) / outcome.seconds, 1),
                clients=outcome.clients,
            )
        )
    return results
