"""``python -m bench.labs_results``: the results inbox with 10,000 unreviewed results
(p95 <= 80 ms; its first page, and "Show more" after its 5,000th row) and a patient's
results page with 5,000 results (p95 <= 100 ms), over HTTP
to gunicorn as deployed, on SQLite and PostgreSQL, each beside its SQL floor.

Seeding (a fresh database each run): the demo clinic, 2,000 patients, and rows shaped as
filing leaves them (``portal.labs.services``: one stored message, orders with their tests,
results with LOINC codes, values, units, ranges, flags, statuses):

- the bench prescriber's 2,500 orders with 10,000 unreviewed current results (2% critical,
  18% abnormal, the rest normal), plus 2,000 of their results already reviewed and 2,000
  superseded by a correction: the inbox must skip both;
- another prescriber's 10,000 unreviewed results: the inbox must not read them in;
- one patient with 5,000 current results (20 analytes over ten years) for the results page.

The prescriber's session is made directly in ``server_sessions`` (as the tests do): the
pages are timed, not the sign-in. Each page is one keep-alive ``requests`` session, sequential;
the page's own audit events are written each time (the inbox: one per patient shown).

The floor: the page's SELECTs, captured from one in-process call of the page's service and
replayed on a plain DB-API cursor (no ORM, no templates, no audit). Beside the wall times:
the gunicorn worker's CPU per request and the share of the machine other processes used.
Rows go to bench/results.json (kept beside the other benchmarks') and bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import socket
import sys
import time
from datetime import UTC, datetime, timedelta

import requests
from sqlalchemy import event, insert, select, text

from bench import cpu, report
from bench.databases import (
    DEFAULT_POSTGRES_SERVER,
    OUT,
    ROOT,
    app_for,
    fresh_postgres_url,
    fresh_sqlite_url,
    postgres_reachable,
)
from bench.server import Server

DATABASE = "portal_bench_labs_results"
PATIENTS = 2_000
INBOX_ORDERS = 2_500
PER_ORDER = 4
LONG_RESULTS = 5_000
INBOX_BUDGET_MS = 80.0
PAGE_BUDGET_MS = 100.0
QUIET_THRESHOLD = 0.5  # wait (up to --quiet-wait s) for the machine under 50% busy
INBOX = "results inbox (10,000 unreviewed results)"
INBOX_MORE = "results inbox, Show more at row 5,000 (10,000 unreviewed results)"
MORE_AT = 5_000  # "Show more" deep in the inbox: the keyset page after this row
PAGE = "patient's results page (5,000 results)"
ANALYTES = [
    ("2093-3", "Cholesterol", "mg/dL", "<200"),
    ("2085-9", "HDL Cholesterol", "mg/dL", ">39"),
    ("13457-7", "LDL Cholesterol", "mg/dL", "0-99"),
    ("2571-8", "Triglyceride", "mg/dL", "0-149"),
    ("4548-4", "Hemoglobin A1c", "%", "4.0-5.6"),
    ("2345-7", "Glucose", "mg/dL", "70-99"),
    ("2823-3", "Potassium", "mmol/L", "3.5-5.1"),
    ("2951-2", "Sodium", "mmol/L", "135-145"),
    ("2160-0", "Creatinine", "mg/dL", "0.6-1.2"),
    ("3094-0", "Urea nitrogen", "mg/dL", "7-20"),
    ("3016-3", "TSH", "m[IU]/L", "0.4-4.0"),
    ("718-7", "Hemoglobin", "g/dL", "12.0-16.0"),
    ("6690-2", "Leukocytes", "10*3/uL", "4.5-11.0"),
    ("777-3", "Platelets", "10*3/uL", "150-400"),
    ("1742-6", "ALT", "U/L", "7-56"),
    ("1920-8", "AST", "U/L", "10-40"),
    ("17861-6", "Calcium", "mg/dL", "8.5-10.5"),
    ("2075-0", "Chloride", "mmol/L", "98-107"),
    ("1751-7", "Albumin", "g/dL", "3.5-5.0"),
    ("1975-2", "Bilirubin total", "mg/dL", "0.1-1.2"),
]


def log(message: str) -> None:
    print(message, flush=True)


def _flag(rng: random.Random) -> str:
    roll = rng.random()
    return rng.choice(("HH", "LL")) if roll < 0.02 else ("H" if roll < 0.20 else "N")


def _seed(url: str) -> dict:
    """Migrate and seed (module notes); returns the ids the measurements need."""
    from flask_migrate import upgrade

    from portal.auth.models import User
    from portal.demo.clinic import seed_clinic_and_users
    from portal.extensions import db
    from portal.labs.models import LabMessage, LabOrder, LabOrderTest, LabResult, review_rank_of
    from portal.patients.identifiers import search_key
    from portal.patients.models import Patient
    from portal.timeutil import utcnow

    app = app_for(url)
    rng = random.Random(12)
    now = utcnow()
    with app.app_context():
        upgrade()
        seed_clinic_and_users()
        users = []
        for username, name in (("benchlabs", "Bench Labs"), ("benchother", "Bench Other")):
            user = User(username=username, full_name=name, password_hash="!")  # noqa: S106
            user.set_roles(["prescriber"])
            db.session.add(user)
            users.append(user)
        db.session.flush()
        me, other = (user.id for user in users)
        patient_rows = []
        for number in range(PATIENTS):
            family = rng.choice(["Doe", "Nguyen", "Garcia", "Smith", "Okafor", "Kowalski"])
            patient_rows.append(
                {
                    "mrn": f"L{number:07d}",
                    "given_name": "Pat",
                    "family_name": family,
                    "given_key": search_key("Pat"),
                    "family_key": search_key(family),
                    "birth_date": datetime(1950 + number % 50, 1 + number % 12, 1).date(),
                    "sex_at_birth": "female",
                }
            )
        db.session.execute(insert(Patient), patient_rows)
        patient_ids = db.session.scalars(select(Patient.id).order_by(Patient.id)).all()
        message = LabMessage(
            direction="in",
            connector="hl7lab",
            sending_facility="BENCH LAB",
            control_id="BENCH-1",
            message_type="ORU^R01",
            version="2.5.1",
            raw=b"MSH|^~\\&|LIS|BENCH LAB|PORTAL|CLINIC|20261206||ORU^R01|BENCH-1|P|2.5.1\r",
            received_at=now,
            state="processed",
            ack_code="AA",
            attempts=1,
        )
        db.session.add(message)
        db.session.flush()
        result_rows: list[dict] = []

        def result(patient_id, order_id, test_id, analyte, at, reviewer=None, **extra):
            code, name, units, reference = analyte
            value = round(rng.uniform(1, 200), 1)
            flag = _flag(rng)
            row = {
                "message_id": message.id,
                "patient_id": patient_id,
                "order_id": order_id,
                "order_test_id": test_id,
                "filler_order_number": f"F{len(result_rows)}",
                "loinc": code,
                "code": code,
                "code_system": "LN",
                "name": name,
                "value_type": "NM",
                "value_text": str(value),
                "value_numeric": value,
                "units": units,
                "reference_range": reference,
                "abnormal_flag": flag,
                "review_rank": review_rank_of(flag),
                "reviewer_id": reviewer,
                "status": "F",
                "observed_at": at,
                "performing_lab": "Bench Lab",
                "received_at": at + timedelta(hours=4),
                "reviewed_at": None,
                "reviewed_by_id": None,
                "superseded_at": None,
            }
            row.update(extra)
            result_rows.append(row)

        def orders_of(provider: int, count: int, tag: str, *, reviewed=0, superseded=0):
            for number in range(count):
                patient_id = patient_ids[rng.randrange(len(patient_ids))]
                at = now - timedelta(days=rng.randrange(60), minutes=rng.randrange(1440))
                order = LabOrder(
                    placer_order_number=f"B{tag}-{number}",
                    patient_id=patient_id,
                    ordering_provider_id=provider,
                    status="resulted",
                    priority="routine",
                    fasting=False,
                    created_at=at - timedelta(days=1),
                    signed_at=at - timedelta(days=1),
                )
                order.tests = [LabOrderTest(loinc="24323-8", name="Comprehensive metabolic")]
                db.session.add(order)
                db.session.flush()
                test_id = order.tests[0].id
                for analyte in rng.sample(ANALYTES, PER_ORDER):
                    result(patient_id, order.id, test_id, analyte, at, provider)
            for row in result_rows[-(reviewed + superseded) :][:reviewed]:
                row.update(reviewed_at=now, reviewed_by_id=provider)
            if superseded:
                for row in result_rows[-superseded:]:
                    row.update(superseded_at=now)

        orders_of(me, INBOX_ORDERS, "mine")
        orders_of(me, 1000, "done", reviewed=2000, superseded=2000)  # in nobody's inbox
        orders_of(other, INBOX_ORDERS, "other")
        long_patient = patient_ids[PATIENTS // 2]
        start = now - timedelta(days=3650)
        for number in range(LONG_RESULTS):
            at = start + timedelta(hours=number * 17)
            result(
                long_patient,
                None,
                None,
                ANALYTES[number % len(ANALYTES)],
                at,
                reviewed_at=now,
                reviewed_by_id=other,
            )
        for chunk in range(0, len(result_rows), 5000):
            db.session.execute(insert(LabResult), result_rows[chunk : chunk + 5000])
        db.session.commit()
        if db.engine.dialect.name == "postgresql":
            # What autovacuum does after a bulk load: statistics, and the visibility map
            # that lets the inbox's counts be index-only scans.
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.exec_driver_sql("VACUUM ANALYZE")
        db.session.remove()
        db.engine.dispose()
    return {"me": me, "patient": long_patient, "results": len(result_rows)}


def _session_cookie(url: str, username: str) -> tuple[str, str]:
    """A signed-in server session made directly (as tests/support/clients.py does)."""
    from flask import session
    from flask_login import login_user
    from flask_wtf.csrf import generate_csrf

    from portal.auth.models import ServerSession, User
    from portal.auth.sessions import hash_token
    from portal.extensions import db
    from portal.timeutil import utcnow

    app = app_for(url)
    token = secrets.token_urlsafe(32)
    with app.test_request_context():
        user = db.session.scalars(select(User).filter_by(username=username)).one()
        login_user(user)
        generate_csrf()
        data, user_id = dict(session), user.id
    with app.app_context(), db.engine.begin() as connection:
        now = utcnow()
        connection.execute(
            insert(ServerSession.__table__).values(
                token_hash=hash_token(token),
                user_id=user_id,
                data=json.dumps(data),
                created_at=now,
                last_seen_at=now,
                source_address="127.0.0.1",
            )
        )
        name = app.session_interface.cookie_name(app)
        db.engine.dispose()
    return name, token


def _floor(url: str, username: str, call) -> tuple[list, int]:
    """The SELECTs one in-process call of the page's service makes, for replaying."""
    from portal.actors import Actor
    from portal.auth.models import User
    from portal.extensions import db

    app = app_for(url)
    captured = []
    with app.test_request_context():
        actor = Actor.for_user(
            db.session.scalars(select(User).filter_by(username=username)).one(), "bench"
        )

        def capture(conn, cursor, statement, parameters, context_, executemany):
            if statement.lstrip().upper().startswith("SELECT"):
                captured.append((statement, parameters))

        event.listen(db.engine, "before_cursor_execute", capture)
        shown = call(actor)
        event.remove(db.engine, "before_cursor_execute", capture)
        db.session.remove()
        db.engine.dispose()
    return captured, shown


def _replay(url: str, captured: list, count: int) -> list[float]:
    from sqlalchemy import create_engine

    engine = create_engine(url)
    samples = []
    with engine.connect() as connection:
        cursor = connection.connection.driver_connection.cursor()
        for index in range(count + 10):
            started = time.perf_counter()
            for statement, parameters in captured:
                cursor.execute(statement, parameters)
                cursor.fetchall()
            if index >= 10:
                samples.append((time.perf_counter() - started) * 1000)
        cursor.close()
        connection.rollback()
    engine.dispose()
    return samples


def _cursor_at(url: str, username: str, position: int) -> int:
    """The id of the inbox's ``position``-th row (1-based), as "Show more" would name it."""
    from portal.auth.models import User
    from portal.extensions import db
    from portal.labs.models import WAITING_FOR_REVIEW, LabResult

    app = app_for(url)
    with app.app_context():
        user_id = db.session.scalar(select(User.id).filter_by(username=username))
        result_id = db.session.scalar(
            select(LabResult.id)
            .where(LabResult.reviewer_id == user_id, text(WAITING_FOR_REVIEW))
            .order_by(LabResult.review_rank, LabResult.received_at, LabResult.id)
            .offset(position - 1)
            .limit(1)
        )
        db.session.remove()
        db.engine.dispose()
    return result_id


def _time_page(
    server: Server,
    cookie: tuple[str, str],
    path: str,
    count: int,
    check: str,
    quiet: float,
    headers: dict | None = None,
):
    if quiet:
        cpu.wait_for_quiet(quiet, QUIET_THRESHOLD, log)
    http = requests.Session()
    http.headers.update(headers or {})
    http.cookies.set(cookie[0], cookie[1], domain="127.0.0.1")
    failures: list[str] = []
    for _ in range(10):  # warm-up: the worker's caches, the connection pool
        http.get(server.base + path, timeout=30)
    pids = server.worker_pids()
    worker_before = sum(cpu.process_cpu_seconds(pid) or 0 for pid in pids)
    machine_before = cpu.machine_jiffies()
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        response = http.get(server.base + path, timeout=30)
        samples.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200 or check not in response.text:
            failures.append(f"{response.status_code} {response.url}")
    worker = sum(cpu.process_cpu_seconds(pid) or 0 for pid in pids) - worker_before
    # "Others": everything but the gunicorn worker (this client and the database included).
    other = cpu.other_fraction(machine_before, cpu.machine_jiffies(), worker)
    return samples, round(worker / count * 1000, 2), round(other, 2), failures


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run(
    label: str, url: str, count: int, stamp: str, quiet: float = 0.0
) -> tuple[list[report.Result], dict]:
    from portal.labs.results import services

    log(f"\n== {label}: seeding")
    started = time.perf_counter()
    seeded = _seed(url)
    log(f"  {seeded['results']:,} results seeded in {time.perf_counter() - started:.0f} s")
    cookie = _session_cookie(url, "benchlabs")
    inbox_floor, inbox_rows = _floor(url, "benchlabs", lambda actor: services.inbox(actor))
    after = _cursor_at(url, "benchlabs", MORE_AT)
    more_floor, more_rows = _floor(
        url, "benchlabs", lambda actor: services.more_results(actor, after)
    )
    assert len(more_rows.rows) == services.INBOX_LIMIT and more_rows.more, more_rows
    page_floor, page_view = _floor(
        url, "benchlabs", lambda actor: services.patient_results(actor, seeded["patient"])
    )
    assert inbox_rows.counts.total == INBOX_ORDERS * PER_ORDER, inbox_rows.counts
    assert page_view.total == LONG_RESULTS, page_view.total
    results = []
    notes = {"load before": os.getloadavg()}
    with Server(url, _free_port(), threads=4) as server:
        for name, path, check, floor, budget, headers in (
            (INBOX, "/labs/inbox", "10000 waiting for review", inbox_floor, INBOX_BUDGET_MS, {}),
            (
                INBOX_MORE,
                f"/labs/inbox?after={after}",
                "Show more results",
                more_floor,
                INBOX_BUDGET_MS,
                {"HX-Request": "true"},  # the rows alone, as the page's htmx asks
            ),
            (
                PAGE,
                f"/labs/patients/{seeded['patient']}/results",
                "Tests (5000 results)",
                page_floor,
                PAGE_BUDGET_MS,
                {},
            ),
        ):
            samples, worker_ms, other, failures = _time_page(
                server, cookie, path, count, check, quiet, headers
            )
            floor_samples = _replay(url, floor, count)
            result = report.Result(
                benchmark=name,
                database=label,
                rows=PATIENTS,
                requests=count,
                p50_ms=round(report.percentile(samples, 50), 2),
                p95_ms=round(report.percentile(samples, 95), 2),
                p99_ms=round(report.percentile(samples, 99), 2),
                floor_p95_ms=round(report.percentile(floor_samples, 95), 2),
                date=stamp,
                failures=len(failures),
                first_failure=failures[0] if failures else None,
                worker_cpu_ms=worker_ms,
                other_busy=other,
            )
            results.append(result)
            log(
                f"  {name}: p50 {result.p50_ms} ms, p95 {result.p95_ms} ms (budget {budget:.0f}),"
                f" floor p95 {result.floor_p95_ms} ms ({len(floor)} SELECTs), worker CPU "
                f"{worker_ms} ms/request, others {other:.0%}"
                + (f", FAILURES {len(failures)}: {failures[0]}" if failures else "")
            )
    notes["load after"] = os.getloadavg()
    return results, notes


def markdown(stamp: str, info: dict, sections) -> str:
    lines = [
        f"\n## Lab results pages, {stamp}\n",
        f"{info['cpu']}, {info['cores']} cores, load before {info['load']}. gunicorn (1 "
        "gthread worker) on loopback, one keep-alive client, sequential; audit events written "
        "by every request. The floor replays the page service's SELECTs on a DB-API cursor. "
        f"Budgets: inbox p95 ≤ {INBOX_BUDGET_MS:.0f} ms, results page p95 ≤ "
        f"{PAGE_BUDGET_MS:.0f} ms.\n",
        "| benchmark | database | p50 ms | p95 ms | p99 ms | SQL floor p95 ms | worker CPU "
        "ms/request | others' CPU | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += report.section_rows(
        sections,
        lambda r: INBOX_BUDGET_MS if r.benchmark in (INBOX, INBOX_MORE) else PAGE_BUDGET_MS,
    )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES_SERVER)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--quick", action="store_true", help="results to bench/out/ only")
    parser.add_argument("--quiet-wait", type=float, default=60.0)
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    engines = [] if args.no_sqlite else [("SQLite", lambda: fresh_sqlite_url("labs-results"))]
    if not args.no_postgres and postgres_reachable(args.postgres):
        engines.append(("PostgreSQL", lambda: fresh_postgres_url(args.postgres, DATABASE)))
    sections, results = [], []
    for label, make in engines:
        rows, notes = run(label, make(), args.requests, stamp, args.quiet_wait)
        sections.append((label, rows, notes))
        results += rows
    text_ = markdown(stamp, report.machine(), sections)
    if args.quick:
        md_path, json_path = OUT / "quick-RESULTS.md", OUT / "quick-results.json"
    else:
        md_path, json_path = ROOT / "bench" / "RESULTS.md", ROOT / "bench" / "results.json"
    report.append_markdown(md_path, text_)
    report.write_json(json_path, results, keep=True)
    log("\n" + text_)
    ok = all(
        not r.failures
        and r.p95_ms <= (INBOX_BUDGET_MS if r.benchmark in (INBOX, INBOX_MORE) else PAGE_BUDGET_MS)
        for r in results
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
