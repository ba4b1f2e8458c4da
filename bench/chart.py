"""Charting benchmarks: one patient with a long chart among a million, and the pages
a clinician opens on it: the chart summary, an encounter page, a vitals trend chart, and the
note editor's draft autosave, each beside its SQL floor.

Seeding adds, to a database already seeded with patients: a bench prescriber (with a TOTP
second factor the bench knows, as the role requires), and for one patient in the middle of the
table 1,000 encounters each with a signed note, 5,000 sets of vital signs, 100 problems,
50 medications, and one draft note for the autosave benchmark.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import time
from dataclasses import dataclass
from datetime import timedelta

import pyotp
import requests
from flask import g
from sqlalchemy import create_engine, insert, select, text

from bench.databases import BENCH_PASSWORD, OUT, app_for

CLINICIAN = "benchdoc"
# Only ever set on the bench's own throw-away databases.
CLINICIAN_TOTP = "JBSWY3DPEHPK3PXPBENCHCHARTJBSWY3"
ENCOUNTERS = 1_000
VITALS = 5_000
PROBLEMS = 100
ACTIVE_PROBLEMS = 80
MEDICATIONS = 50
ACTIVE_MEDICATIONS = 30
YEARS = 10
# benchmark kind -> (name, the endpoint that must exist in this build)
BENCHMARKS = (
    ("summary", "chart: summary (1,000 encounters, 5,000 vitals)", "charting.chart_summary"),
    ("encounter", "chart: encounter page", "charting.encounter_page"),
    ("trend", "chart: vitals trend chart (SVG)", "charting.vitals_chart"),
    ("autosave", "chart: draft autosave", "charting.save_draft"),
)
VERSION_FIELD = re.compile(r'id="note-\d+-version" value="(\d+)"')
NOTE_BODY = (
    "Subjective:\nFollow-up visit {n}. Reports feeling well; no new complaints. Taking "
    "medications as prescribed; no side effects. Sleep and appetite normal.\n\n"
    "Objective:\nAlert and oriented, no acute distress. Heart regular rate and rhythm, no "
    "murmur. Lungs clear to auscultation bilaterally. Abdomen soft, non-tender.\n\n"
    "Assessment:\nChronic conditions stable.\n\n"
    "Plan:\nContinue current medications. Labs before the next visit. Return in three months "
    "or sooner if symptoms change."
)
DRAFT_COMPLAINT = "Bench draft visit"
TREND_CHARTS = ("bp", "weight", "heart-rate", "temperature")


@dataclass
class ChartSetup:
    patient_id: int
    encounter_ids: list[int]
    draft_note_id: int
    draft_version: int


def _meta_path(target):
    return OUT / f"{target.key}-charting.json"


def ensure_chart(target, *, log) -> dict:
    """Seed the long chart unless this database already holds it."""
    meta_path = _meta_path(target)
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    if meta.get("patients") == target.rows and meta.get("encounters") == ENCOUNTERS:
        engine = create_engine(target.url)
        with engine.connect() as connection:
            found = connection.execute(
                text("SELECT count(*) FROM encounters WHERE patient_id = :p"),
                {"p": meta["patient_id"]},
            ).scalar()
        engine.dispose()
        if found == ENCOUNTERS + 1:
            log(
                f"  reusing the long chart (seeded {meta['seeded_at']} in {meta['seed_seconds']} s)"
            )
            _ensure_clinician(target.url)
            meta["reused"] = True
            return meta
    log(
        f"  seeding one chart: {ENCOUNTERS:,} encounters with signed notes, {VITALS:,} vitals, "
        f"{PROBLEMS} problems, {MEDICATIONS} medications ..."
    )
    started = time.perf_counter()
    _ensure_clinician(target.url)
    app = app_for(target.url)
    with app.app_context():
        from portal.extensions import db

        patient_id = _seed_chart()
        if target.dialect == "postgresql":
            db.session.execute(text("ANALYZE"))
            db.session.commit()
        db.session.remove()
        db.engine.dispose()
    seconds = time.perf_counter() - started
    meta = {
        "patients": target.rows,
        "encounters": ENCOUNTERS,
        "patient_id": patient_id,
        "seed_seconds": round(seconds, 1),
        "seeded_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    log(f"  long chart seeded in {seconds:.1f} s")
    meta["reused"] = False
    return meta


def _ensure_clinician(url: str) -> None:
    """The bench's prescriber, with the password and TOTP secret the bench knows."""
    app = app_for(url)
    with app.app_context():
        from portal.auth.models import User
        from portal.auth.passwords import hash_password
        from portal.crypto import encrypt_text
        from portal.extensions import db

        user = db.session.scalars(select(User).where(User.username == CLINICIAN)).first()
        if user is None:
            user = User(username=CLINICIAN, full_name="Dr. Bench Chart", password_hash="")
            db.session.add(user)
        user.password_hash = hash_password(BENCH_PASSWORD)
        user.set_roles(["prescriber"])
        user.is_enabled = True
        user.totp_secret_encrypted = encrypt_text(CLINICIAN_TOTP)
        user.mfa_enabled = True
        user.totp_last_step = None
        user.failed_sign_ins = 0
        user.locked_until = None
        db.session.commit()
        db.session.remove()
        db.engine.dispose()


def _seed_chart() -> int:
    """The long chart (Core inserts); returns the patient's id."""
    from portal.auth.models import User
    from portal.charting.models import (
        Encounter,
        Medication,
        Note,
        Problem,
        VitalSigns,
        encounter_problems,
    )
    from portal.extensions import db
    from portal.timeutil import utcnow

    low, high = db.session.execute(text("SELECT min(id), max(id) FROM patients")).one()
    patient_id = (low + high) // 2
    doctor_id = db.session.scalar(select(User.id).where(User.username == CLINICIAN))
    if db.session.scalar(
        text("SELECT count(*) FROM encounters WHERE patient_id = :p"), {"p": patient_id}
    ):
        # Signed notes refuse DELETE (signed is signed): seed again from a fresh database.
        raise SystemExit("The bench patient already has a chart: run with --reseed.")
    rng = random.Random(4)
    now = utcnow()
    start = now - timedelta(days=365 * YEARS)
    step = (now - start) / (ENCOUNTERS + 1)
    problems = [
        {
            "patient_id": patient_id,
            "icd10_code": f"Z{n // 10:02d}.{n % 10}",
            "description": f"Bench problem {n:03d}",
            "status": "active" if n < ACTIVE_PROBLEMS else "resolved",
            "version": 1,
            "created_by_id": doctor_id,
            "created_at": now,
            "updated_at": now,
        }
        for n in range(PROBLEMS)
    ]
    db.session.execute(insert(Problem.__table__), problems)
    db.session.execute(
        insert(Medication.__table__),
        [
            {
                "patient_id": patient_id,
                "drug": f"Bench drug {n:02d}",
                "dose": "10 mg",
                "route": "oral",
                "frequency": "once daily",
                "source": "self_reported",
                "status": "active" if n < ACTIVE_MEDICATIONS else "stopped",
                "version": 1,
                "created_by_id": doctor_id,
                "created_at": now,
                "updated_at": now,
            }
            for n in range(MEDICATIONS)
        ],
    )
    encounters = [
        {
            "patient_id": patient_id,
            "provider_id": doctor_id,
            "kind": "office",
            "chief_complaint": f"Bench visit {n:04d}",
            "occurred_at": start + step * n,
            "created_by_id": doctor_id,
            "created_at": now,
        }
        for n in range(ENCOUNTERS)
    ]
    encounters.append({**encounters[-1], "chief_complaint": DRAFT_COMPLAINT, "occurred_at": now})
    db.session.execute(insert(Encounter.__table__), encounters)
    encounter_rows = db.session.execute(
        select(Encounter.id, Encounter.occurred_at, Encounter.chief_complaint)
        .where(Encounter.patient_id == patient_id)
        .order_by(Encounter.occurred_at, Encounter.id)
    ).all()
    problem_ids = db.session.scalars(
        select(Problem.id).where(Problem.patient_id == patient_id).order_by(Problem.id)
    ).all()
    notes, links = [], []
    for n, row in enumerate(encounter_rows):
        draft = row.chief_complaint == DRAFT_COMPLAINT
        body = NOTE_BODY.format(n=n)
        notes.append(
            {
                "encounter_id": row.id,
                "patient_id": patient_id,
                "author_id": doctor_id,
                "kind": "provider",
                "text": body,
                "version": 1,
                "saved_at": row.occurred_at,
                "saved_by_id": doctor_id,
                "signed_at": None if draft else row.occurred_at + timedelta(hours=1),
                "signed_by_id": None if draft else doctor_id,
                "signed_text_sha256": None if draft else hashlib.sha256(body.encode()).hexdigest(),
                "created_at": row.occurred_at,
            }
        )
        links += [
            {"encounter_id": row.id, "problem_id": problem_ids[(n + k) % ACTIVE_PROBLEMS]}
            for k in range(2)
        ]
    db.session.execute(insert(Note.__table__), notes)
    db.session.execute(insert(encounter_problems), links)
    per_encounter = VITALS // ENCOUNTERS
    vitals = []
    for n, row in enumerate(encounter_rows[:ENCOUNTERS]):
        for k in range(per_encounter):
            weight = round(70 + 8 * rng.random() + n / 200, 1)
            vitals.append(
                {
                    "patient_id": patient_id,
                    "encounter_id": row.id,
                    "taken_at": row.occurred_at + timedelta(minutes=10 * k),
                    "recorded_by_id": doctor_id,
                    "systolic_mmhg": rng.randrange(105, 160),
                    "diastolic_mmhg": rng.randrange(60, 100),
                    "bp_position": "sitting",
                    "heart_rate_per_min": rng.randrange(55, 110),
                    "respiratory_rate_per_min": rng.randrange(12, 22),
                    "temperature_cel": round(36.2 + rng.random() * 1.6, 1),
                    "spo2_percent": rng.randrange(92, 100),
                    "weight_kg": weight,
                    "height_cm": 175.0,
                    "bmi": round(weight / 1.75**2, 1),
                    "pain_score": rng.randrange(0, 6),
                    "entered_in_error": False,
                    "created_at": now,
                }
            )
    db.session.execute(insert(VitalSigns.__table__), vitals)
    db.session.commit()
    return patient_id


def load_setup(url: str, patient_id: int) -> ChartSetup:
    engine = create_engine(url)
    with engine.connect() as connection:
        encounter_ids = list(
            connection.execute(
                text("SELECT id FROM encounters WHERE patient_id = :p ORDER BY id"),
                {"p": patient_id},
            ).scalars()
        )
        draft_id, version = connection.execute(
            text(
                "SELECT n.id, n.version FROM notes n JOIN encounters e ON e.id = n.encounter_id "
                "WHERE e.patient_id = :p AND n.signed_at IS NULL"
            ),
            {"p": patient_id},
        ).one()
    engine.dispose()
    return ChartSetup(patient_id, encounter_ids, draft_id, version)


# --- HTTP ---------------------------------------------------------------------------------------


def sign_in_clinician(base: str) -> tuple[requests.Session, str]:
    """Password, then a TOTP code: the prescriber role always has a second factor."""
    from bench.workload import USER_AGENT, SignInFailed, _csrf

    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    token = _csrf(session.get(base + "/auth/sign-in", timeout=30).text)
    response = session.post(
        base + "/auth/sign-in",
        data={"csrf_token": token, "username": CLINICIAN, "password": BENCH_PASSWORD},
        allow_redirects=False,
        timeout=60,
    )
    if "second-factor" not in response.headers.get("Location", ""):
        raise SignInFailed(f"sign-in answered {response.status_code} without a second factor")
    token = _csrf(session.get(base + "/auth/second-factor", timeout=30).text)
    response = session.post(
        base + "/auth/second-factor",
        data={"csrf_token": token, "code": pyotp.TOTP(CLINICIAN_TOTP).now()},
        allow_redirects=False,
        timeout=60,
    )
    if response.status_code not in (302, 303) or "auth/" in response.headers.get("Location", ""):
        raise SignInFailed(f"second factor answered {response.status_code}")
    return session, _csrf(session.get(base + "/", timeout=30).text)


class Requester:
    """The requests of one benchmark kind, with the check of each answer."""

    def __init__(self, kind: str, setup: ChartSetup, session, base: str, token: str):
        self.kind, self.setup, self.session, self.base, self.token = (
            kind,
            setup,
            session,
            base,
            token,
        )
        self.version = setup.draft_version
        self.rng = random.Random(17)

    def __call__(self, index: int) -> tuple[float, str | None]:
        setup = self.setup
        if self.kind == "autosave":
            return self._autosave(index)
        if self.kind == "summary":
            path, must = f"/chart/patients/{setup.patient_id}", "Recent encounters"
        elif self.kind == "encounter":
            encounter_id = setup.encounter_ids[self.rng.randrange(len(setup.encounter_ids) - 1)]
            path, must = f"/chart/encounters/{encounter_id}", "Bench visit"
        else:
            chart = TREND_CHARTS[index % len(TREND_CHARTS)]
            path, must = f"/chart/patients/{setup.patient_id}/vitals/{chart}.svg", "<svg"
        started = time.perf_counter()
        response = self.session.get(self.base + path, timeout=60)
        body = response.text
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            return elapsed, f"HTTP {response.status_code} for {path}"
        if must not in body:
            return elapsed, f"{must!r} missing from {path}"
        return elapsed, None

    def _autosave(self, index: int) -> tuple[float, str | None]:
        note_id = self.setup.draft_note_id
        started = time.perf_counter()
        response = self.session.post(
            f"{self.base}/chart/notes/{note_id}/draft",
            data={
                "text": NOTE_BODY.format(n=index) + f"\n\nTyping {index}",
                "version": str(self.version),
            },
            headers={"HX-Request": "true", "X-CSRFToken": self.token},
            timeout=60,
        )
        body = response.text
        elapsed = (time.perf_counter() - started) * 1000
        match = VERSION_FIELD.search(body)
        if response.status_code != 200 or not match:
            return elapsed, f"autosave answered {response.status_code}"
        self.version = int(match.group(1))
        return elapsed, None


# --- floors: the pages' SQL, run directly -----------------------------------------------------


def floor(url: str, kind: str, setup: ChartSetup, count: int, warmup: int) -> list[float]:
    """Latencies (ms) of the queries behind each page, without HTTP, templates or audit."""
    from portal.charting.models import Note, VitalSigns

    app = app_for(url)
    latencies = []
    rng = random.Random(17)
    # A request context: the encounter page's vitals section builds its (empty) form.
    with app.test_request_context():
        from portal.auth.models import User
        from portal.charting.summary import services as summary
        from portal.extensions import db
        from portal.patients.models import Patient
        from portal.timeutil import utcnow

        clinician_id = db.session.scalar(select(User.id).where(User.username == CLINICIAN))

        for index in range(warmup + count):
            started = time.perf_counter()
            if kind == "summary":
                db.session.get(Patient, setup.patient_id)
                summary.chart_summary_data(setup.patient_id)
            elif kind == "encounter":
                encounter_id = setup.encounter_ids[rng.randrange(len(setup.encounter_ids) - 1)]
                encounter_page_reads(encounter_id, clinician_id)
            elif kind == "trend":
                # The trend chart's own query: the chart's columns over its default window.
                from portal.charting.vitals import charts as vitals_charts

                chart = vitals_charts.CHARTS[TREND_CHARTS[index % len(TREND_CHARTS)]]
                columns = [vitals_charts._column(name) for name in chart.fields]
                days = vitals_charts.WINDOWS[vitals_charts.DEFAULT_WINDOW][1]
                query = (
                    select(VitalSigns.taken_at, *columns)
                    .where(
                        VitalSigns.patient_id == setup.patient_id,
                        VitalSigns.entered_in_error.is_(False),
                    )
                    .where(*(column.is_not(None) for column in columns))
                    .order_by(VitalSigns.taken_at)
                )
                if days is not None:
                    query = query.where(VitalSigns.taken_at >= utcnow() - timedelta(days=days))
                db.session.execute(query).fetchall()
            else:
                db.session.execute(
                    Note.__table__.update()
                    .where(Note.id == setup.draft_note_id)
                    .values(text=NOTE_BODY.format(n=index), version=Note.version + 1)
                )
                db.session.commit()
            elapsed = (time.perf_counter() - started) * 1000
            # As between two requests: nothing loaded is kept, the clinic's row included.
            db.session.rollback()
            db.session.expunge_all()
            g.pop("clinic", None)
            if index >= warmup:
                latencies.append(elapsed)
        db.session.remove()
        db.engine.dispose()
    return latencies


def encounter_page_reads(encounter_id: int, clinician_id: int) -> None:
    """What the encounter page reads, through the same service calls, without the audit
    write, the template or HTTP: encounter, patient, notes with addenda, the banner's
    allergies, snippets, co-signers, the vitals section and the problem and medication
    sections."""
    from portal.actors import Actor
    from portal.auth.models import User
    from portal.charting.encounters import services as encounters
    from portal.charting.lists import services as clinical_lists
    from portal.charting.notes import services as notes
    from portal.charting.vitals.views import encounter_vitals_context
    from portal.extensions import db

    actor = Actor.for_user(db.session.get(User, clinician_id), "127.0.0.1")
    page = encounters.load_encounter(actor, encounter_id)
    clinical_lists.allergy_state(page.patient.id)
    notes.snippets_for(clinician_id)
    encounters.prescriber_names()
    encounter_vitals_context(page.encounter)
    clinical_lists.encounter_lists_context(page.encounter)


def explain(url: str, dialect: str, patient_id: int) -> str:
    """The plans of the summary's two heaviest queries (recent encounters, encounter count)."""
    prefix = "EXPLAIN ANALYZE" if dialect == "postgresql" else "EXPLAIN QUERY PLAN"
    queries = (
        "SELECT id, occurred_at FROM encounters WHERE patient_id = :p "
        "ORDER BY occurred_at DESC, id DESC LIMIT 10",
        "SELECT count(*) FROM encounters WHERE patient_id = :p",
        "SELECT * FROM vital_signs WHERE patient_id = :p AND entered_in_error = false "
        "ORDER BY taken_at DESC, id DESC LIMIT 1",
    )
    engine = create_engine(url)
    lines = []
    with engine.connect() as connection:
        for query in queries:
            lines.append(query)
            for row in connection.execute(text(f"{prefix} {query}"), {"p": patient_id}):
                lines.append("  " + " ".join(str(value) for value in row))
    engine.dispose()
    return "\n".join(lines)
