"""Flask commands: ``seed-demo``, ``create-user``, ``audit verify``/``checkpoint``, ``worker``."""

from __future__ import annotations

import getpass
import logging
import os
import random
import secrets
import sys
import time
from datetime import UTC, date, timedelta
from pathlib import Path

import click
import pyotp
from faker import Faker
from flask import current_app
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import func, insert, select

from portal import worker
from portal.actors import SOURCE_CLI, Actor
from portal.audit import checkpoints, sealing
from portal.audit import services as audit
from portal.audit.verification import verify
from portal.extensions import db
from portal.transaction import use_case

DEMO_USERS = (
    # username, full name, roles
    ("frontdesk", "Maria Alvarez", ["front_desk"]),
    ("nurse", "Sam Okafor", ["nurse"]),
    ("drlee", "Dr. Jordan Lee", ["prescriber"]),
    ("admin", "Pat Kim", ["admin"]),
)
# Area codes of real US regions, so generated numbers pass phonenumbers' validation.
AREA_CODES = (
    "201",
    "212",
    "215",
    "303",
    "312",
    "404",
    "415",
    "503",
    "512",
    "602",
    "612",
    "617",
    "702",
    "713",
    "718",
    "773",
    "801",
    "804",
    "919",
    "971",
)
PAYERS = (
    "Aetna",
    "Blue Cross Blue Shield",
    "Cigna",
    "Humana",
    "Kaiser Permanente",
    "Medicare",
    "Medicaid",
    "UnitedHealthcare",
    None,
)
LANGUAGES = ("English",) * 16 + ("Spanish",) * 3 + ("Vietnamese", "Mandarin", "Arabic")


def register(app) -> None:
    app.cli.add_command(seed_demo)
    app.cli.add_command(create_user_command)
    app.cli.add_command(audit_cli)
    app.cli.add_command(purge_sessions)
    app.cli.add_command(worker_command)


@click.command("seed-demo")
@with_appcontext
@click.option("--patients", "patient_count", default=200, show_default=True, type=int)
@click.option("--seed", default=1, show_default=True, type=int, help="same seed, same data")
@click.option("--if-empty", is_flag=True, help="do nothing when users already exist")
@click.option("--batch-size", default=10_000, show_default=True, type=int)
def seed_demo(patient_count: int, seed: int, if_empty: bool, batch_size: int) -> None:
    """Create the demo clinic, one user per role and PATIENTS patients."""
    from portal.auth.models import User

    if if_empty and db.session.scalar(select(func.count()).select_from(User)):
        click.echo("Demo data already present; nothing to do.")
        return
    credentials = seed_clinic_and_users()
    started = time.perf_counter()
    created = seed_patients(patient_count, seed=seed, batch_size=batch_size)
    elapsed = time.perf_counter() - started
    click.echo(f"{created} patients in {elapsed:.1f} s.")
    booked = seed_schedule(seed=seed)
    click.echo(f"Schedule: appointment types, rooms, Dr. Lee's weekly hours, {booked} visits.")
    charted = seed_charting(seed=seed)
    click.echo(f"Charting: note templates, snippets, and past visits of {charted} patients.")
    write_credentials(credentials)


def seed_clinic_and_users() -> list[dict]:
    """The demo clinic, its two locations and one user per role (random passwords)."""
    from portal.actors import SOURCE_CLI, Actor
    from portal.audit import services as audit
    from portal.auth.models import User
    from portal.auth.passwords import hash_password
    from portal.auth.services import mfa_required_for
    from portal.clinic.models import Clinic, Location
    from portal.crypto import encrypt_text

    seed_demo = Actor(id=None, username="seed-demo", source=SOURCE_CLI)
    clinic = db.session.scalars(select(Clinic)).first()
    if clinic is None:
        clinic = Clinic(
            name="Riverside Family Practice",
            address="100 Main Street, Springfield, MA 01103",
            phone="+14135550100",
            time_zone="America/New_York",
        )
        clinic.locations = [
            Location(
                name="Main Street",
                address="100 Main Street, Springfield, MA 01103",
                phone="+14135550100",
            ),
            Location(
                name="Westside",
                address="45 Elm Avenue, West Springfield, MA 01089",
                phone="+14135550188",
            ),
        ]
        db.session.add(clinic)
        audit.record(seed_demo, "clinic.create", obj=clinic)
    credentials = []
    for username, full_name, roles in DEMO_USERS:
        if db.session.scalars(select(User).where(User.username == username)).first():
            continue
        password = "-".join(secrets.token_hex(3) for _ in range(4))  # 27 chars, random
        user = User(username=username, full_name=full_name, password_hash=hash_password(password))
        user.set_roles(roles)
        secret = None
        if mfa_required_for(user):
            secret = pyotp.random_base32()
            user.totp_secret_encrypted = encrypt_text(secret)
            user.mfa_enabled = True
        db.session.add(user)
        audit.record(seed_demo, "user.create", obj=user, category="user accounts")
        credentials.append(
            {
                "username": username,
                "name": full_name,
                "roles": roles,
                "password": password,
                "totp_secret": secret,
            }
        )
    db.session.commit()
    return credentials


DEMO_TYPES = (
    # name, minutes, colour, visit kind, modality
    ("Follow-up", 20, "#2a7ab0", "follow_up", "in_person"),
    ("New patient", 40, "#3c8d5a", "new", "in_person"),
    ("Annual physical", 40, "#7a4fa0", "follow_up", "in_person"),
    ("Telehealth follow-up", 20, "#b06a2a", "follow_up", "telehealth"),
)


def seed_schedule(*, seed: int = 1, days: int = 5) -> int:
    """Appointment types, rooms, Dr. Lee's weekday hours and a few days of visits.

    Visits start today (clinic time) and are laid end to end with gaps, so they never
    overlap; returns how many were booked. Does nothing when types already exist.
    """
    from datetime import datetime, time
    from zoneinfo import ZoneInfo

    from portal.auth.models import User
    from portal.clinic.models import Clinic, Location
    from portal.patients.models import Patient
    from portal.scheduling.models import Appointment, AppointmentType, AvailabilityBlock, Room
    from portal.timeutil import utcnow

    if db.session.scalar(select(func.count()).select_from(AppointmentType)):
        return 0
    rng = random.Random(seed)
    doctor = db.session.scalars(select(User).where(User.username == "drlee")).first()
    frontdesk = db.session.scalars(select(User).where(User.username == "frontdesk")).first()
    clinic = db.session.scalars(select(Clinic)).first()
    locations = db.session.scalars(select(Location).order_by(Location.id)).all()
    if doctor is None or clinic is None or not locations:
        return 0
    types = [
        AppointmentType(
            name=name,
            default_minutes=minutes,
            colour=colour,
            visit_kind=kind,
            modality=modality,
            providers=[doctor],
        )
        for name, minutes, colour, kind, modality in DEMO_TYPES
    ]
    db.session.add_all(types)
    for location in locations:
        db.session.add_all(Room(location_id=location.id, name=f"Exam {n}") for n in (1, 2, 3))
    main_street = locations[0]
    for weekday in range(5):
        for start, end in ((time(8), time(12)), (time(13), time(17))):
            db.session.add(
                AvailabilityBlock(
                    provider_id=doctor.id,
                    location_id=main_street.id,
                    weekday=weekday,
                    start_time=start,
                    end_time=end,
                )
            )
    db.session.flush()
    patient_ids = db.session.scalars(select(Patient.id).order_by(Patient.id).limit(500)).all()
    if not patient_ids:
        db.session.commit()
        return 0
    zone = ZoneInfo(clinic.time_zone)
    today = utcnow().astimezone(zone).date()
    booked = 0
    for offset in range(days):
        day = today + timedelta(days=offset)
        if day.weekday() >= 5:
            continue
        for session_start, session_end in ((time(8), time(12)), (time(13), time(17))):
            cursor = datetime.combine(day, session_start, tzinfo=zone)
            end_of_session = datetime.combine(day, session_end, tzinfo=zone)
            while True:
                kind = rng.choice(types)
                ends = cursor + timedelta(minutes=kind.default_minutes)
                if ends > end_of_session:
                    break
                if rng.random() < 0.7:  # some slots stay free
                    db.session.add(
                        Appointment(
                            patient_id=rng.choice(patient_ids),
                            provider_id=doctor.id,
                            location_id=main_street.id,
                            appointment_type_id=kind.id,
                            starts_at=cursor.astimezone(UTC),
                            ends_at=ends.astimezone(UTC),
                            reason=rng.choice(
                                (
                                    "Follow-up",
                                    "Check-up",
                                    "Cough",
                                    "Back pain",
                                    "Medication review",
                                    "Blood pressure",
                                )
                            ),
                            created_by_id=frontdesk.id if frontdesk else None,
                        )
                    )
                    booked += 1
                cursor = ends
    db.session.commit()
    return booked


SOAP_TEMPLATE = "Subjective:\n\nObjective:\n\nAssessment:\n\nPlan:\n"
NURSING_TEMPLATE = (
    "Reason for visit:\n\nVital signs reviewed:\n\nInterventions:\n\nPatient education:\n"
)
DEMO_SNIPPETS = (
    (
        ".ros",
        "Review of systems: no fever, chills or weight loss. No chest pain or shortness of "
        "breath. No abdominal pain, nausea or vomiting. No dysuria. No rash. No headache.",
    ),
    (
        ".pe",
        "Physical exam: alert and oriented. Heart: regular rate and rhythm, no murmur. "
        "Lungs: clear to auscultation bilaterally. Abdomen: soft, non-tender.",
    ),
    (".nad", "No acute distress."),
)
# (billable ICD-10-CM code, its description in the current release)
DEMO_PROBLEMS = (
    ("I10", "Essential (primary) hypertension"),
    ("E11.9", "Type 2 diabetes mellitus without complications"),
    ("E78.5", "Hyperlipidemia, unspecified"),
    ("J45.909", "Unspecified asthma, uncomplicated"),
    ("M54.50", "Low back pain, unspecified"),
    ("F41.1", "Generalized anxiety disorder"),
    ("K21.9", "Gastro-esophageal reflux disease without esophagitis"),
    ("E03.9", "Hypothyroidism, unspecified"),
)
DEMO_MEDICATIONS = (
    # drug, RxNorm ingredient, dose, route, frequency
    ("Lisinopril", "29046", "10 mg", "oral", "once daily"),
    ("Metformin", "6809", "500 mg", "oral", "twice daily"),
    ("Atorvastatin", "83367", "20 mg", "oral", "once daily at bedtime"),
    ("Albuterol inhaler", "435", "90 mcg, 2 puffs", "inhaled", "every 4 hours as needed"),
    ("Levothyroxine", "10582", "50 mcg", "oral", "once daily before breakfast"),
    ("Omeprazole", "7646", "20 mg", "oral", "once daily"),
)
DEMO_ALLERGIES = (
    # substance, kind, RxNorm ingredient, reactions, severity, criticality
    ("Penicillin", "drug", "7980", ["Hives"], "moderate", "high"),
    ("Sulfamethoxazole", "drug", "10180", ["Rash"], "mild", "low"),
    ("Peanut", "food", None, ["Anaphylaxis"], "severe", "high"),
    ("Cat dander", "environmental", None, ["Sneezing", "Itchy eyes"], "mild", "low"),
)
DEMO_COMPLAINTS = (
    ("Follow-up of blood pressure", "Blood pressure well controlled on current dose."),
    ("Cough for five days", "Viral upper respiratory infection; supportive care."),
    ("Annual physical", "Healthy adult; screening up to date."),
    ("Medication review", "Medications reconciled; no changes."),
    ("Low back pain after lifting", "Mechanical low back pain; stretches and ibuprofen."),
)
CHARTED_PATIENTS = 20


def seed_charting(*, seed: int = 1, patients: int = CHARTED_PATIENTS) -> int:
    """Note templates, clinic-wide snippets, and a chart for the first ``patients`` patients.

    Each charted patient gets past encounters with signed SOAP notes and vital signs,
    problems (billable ICD-10-CM codes), allergies (or an explicit "no known allergies", or
    nothing: not yet asked), medications and immunizations; Dr. Lee is left one unsigned
    note older than a day, so the home page has something to show. Deterministic for a
    seed; does nothing when note templates already exist. Returns the patients charted.
    """
    import hashlib

    from portal.auth.models import User
    from portal.charting.models import (
        Allergy,
        Encounter,
        Immunization,
        Medication,
        NoKnownAllergies,
        Note,
        NoteSnippet,
        NoteTemplate,
        Problem,
        VitalSigns,
        encounter_problems,
    )
    from portal.clinic.models import Location
    from portal.patients.models import Patient
    from portal.timeutil import utcnow

    if db.session.scalar(select(func.count()).select_from(NoteTemplate)):
        return 0
    db.session.add_all(
        [
            NoteTemplate(name="SOAP note", note_kind="provider", body=SOAP_TEMPLATE),
            NoteTemplate(name="Nursing note", note_kind="nursing", body=NURSING_TEMPLATE),
            *(NoteSnippet(owner_id=None, trigger=t, body=b) for t, b in DEMO_SNIPPETS),
        ]
    )
    doctor = db.session.scalars(select(User).where(User.username == "drlee")).first()
    nurse = db.session.scalars(select(User).where(User.username == "nurse")).first()
    location_id = db.session.scalar(select(Location.id).order_by(Location.id).limit(1))
    patient_ids = db.session.scalars(select(Patient.id).order_by(Patient.id).limit(patients)).all()
    if doctor is None or not patient_ids:
        db.session.commit()
        return 0
    rng = random.Random(seed)
    now = utcnow()
    draft_left = False
    for index, patient_id in enumerate(patient_ids):
        problems = [
            Problem(
                patient_id=patient_id,
                icd10_code=code,
                description=description,
                onset_date=(now - timedelta(days=rng.randrange(200, 3000))).date(),
                created_by_id=doctor.id,
            )
            for code, description in rng.sample(DEMO_PROBLEMS, rng.randrange(1, 4))
        ]
        db.session.add_all(problems)
        if index % 3 == 0:
            db.session.add(NoKnownAllergies(patient_id=patient_id, recorded_by_id=nurse.id))
        elif index % 3 == 1:
            substance, kind, rxnorm, reactions, severity, criticality = rng.choice(DEMO_ALLERGIES)
            db.session.add(
                Allergy(
                    patient_id=patient_id,
                    substance_kind=kind,
                    substance=substance,
                    rxnorm_code=rxnorm,
                    reactions=reactions,
                    severity=severity,
                    criticality=criticality,
                    created_by_id=nurse.id,
                )
            )
        # index % 3 == 2: allergies not yet asked.
        for drug, rxnorm, dose, route, frequency in rng.sample(
            DEMO_MEDICATIONS, rng.randrange(0, 4)
        ):
            db.session.add(
                Medication(
                    patient_id=patient_id,
                    drug=drug,
                    rxnorm_code=rxnorm,
                    dose=dose,
                    route=route,
                    frequency=frequency,
                    start_date=(now - timedelta(days=rng.randrange(30, 1500))).date(),
                    source="self_reported",
                    created_by_id=nurse.id,
                )
            )
        db.session.add(
            Immunization(
                patient_id=patient_id,
                cvx_code="141",
                vaccine="Influenza, seasonal, injectable",
                occurred_on=(now - timedelta(days=rng.randrange(20, 300))).date(),
                source="historical",
                recorded_by_id=nurse.id,
            )
        )
        for visit in range(rng.randrange(1, 4)):
            occurred = now - timedelta(days=30 * (visit + 1) + rng.randrange(0, 20), hours=3)
            complaint, assessment = rng.choice(DEMO_COMPLAINTS)
            encounter = Encounter(
                patient_id=patient_id,
                provider_id=doctor.id,
                location_id=location_id,
                kind="office",
                chief_complaint=complaint,
                occurred_at=occurred,
                created_by_id=doctor.id,
            )
            db.session.add(encounter)
            db.session.flush()
            db.session.execute(
                insert(encounter_problems),
                [{"encounter_id": encounter.id, "problem_id": problems[0].id}],
            )
            weight = round(rng.uniform(55, 110), 1)
            height = round(rng.uniform(152, 192), 1)
            db.session.add(
                VitalSigns(
                    patient_id=patient_id,
                    encounter_id=encounter.id,
                    taken_at=occurred + timedelta(minutes=5),
                    recorded_by_id=nurse.id,
                    systolic_mmhg=rng.randrange(105, 150),
                    diastolic_mmhg=rng.randrange(65, 95),
                    bp_position="sitting",
                    heart_rate_per_min=rng.randrange(58, 96),
                    respiratory_rate_per_min=rng.randrange(12, 19),
                    temperature_cel=round(rng.uniform(36.3, 37.4), 1),
                    spo2_percent=rng.randrange(95, 100),
                    weight_kg=weight,
                    height_cm=height,
                    bmi=round(weight / (height / 100) ** 2, 1),
                    pain_score=rng.randrange(0, 4),
                )
            )
            text = (
                f"Subjective:\n{complaint}.\n\nObjective:\nNo acute distress. Vital signs "
                f"reviewed.\n\nAssessment:\n{assessment}\n\nPlan:\nFollow up as needed."
            )
            leave_draft = not draft_left and visit == 0 and index == 1
            signed_at = None if leave_draft else occurred + timedelta(hours=2)
            db.session.add(
                Note(
                    encounter_id=encounter.id,
                    patient_id=patient_id,
                    author_id=doctor.id,
                    kind="provider",
                    text=text,
                    saved_at=occurred + timedelta(hours=1),
                    saved_by_id=doctor.id,
                    signed_at=signed_at,
                    signed_by_id=None if leave_draft else doctor.id,
                    signed_text_sha256=None
                    if leave_draft
                    else hashlib.sha256(text.encode()).hexdigest(),
                    created_at=occurred,
                )
            )
            draft_left = draft_left or leave_draft
    db.session.commit()
    return len(patient_ids)


def write_credentials(credentials: list[dict]) -> None:
    if not credentials:
        return
    lines = ["Practice Portal demo sign-ins (demo data only; keep this file private)", ""]
    for entry in credentials:
        lines.append(f"{entry['username']:<10} {entry['name']} ({', '.join(entry['roles'])})")
        lines.append(f"           password:    {entry['password']}")
        if entry["totp_secret"]:
            lines.append(
                f"           TOTP secret: {entry['totp_secret']}  (add it to an "
                'authenticator app, or run: python -c "import pyotp; '
                f"print(pyotp.TOTP('{entry['totp_secret']}').now())\")"
            )
    text = "\n".join(lines) + "\n"
    click.echo(text)
    path = Path(current_app.instance_path) / "demo-credentials.txt"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)
    click.echo(f"Written to {path}")


def seed_patients(count: int, *, seed: int = 1, batch_size: int = 10_000) -> int:
    """Bulk-insert ``count`` realistic, deterministic patients (1,000,000 in minutes).

    Faker is slow per call, so it fills pools of names and streets once; each patient is
    then a handful of choices from a seeded random generator.
    """
    from portal.patients.identifiers import luhn_check_digit, search_key
    from portal.patients.models import Patient

    if count <= 0:
        return 0
    rng = random.Random(seed)
    fake = Faker("en_US")
    fake.seed_instance(seed)
    female = [fake.first_name_female() for _ in range(1500)]
    male = [fake.first_name_male() for _ in range(1500)]
    families = [fake.last_name() for _ in range(3000)]
    # A few names with accents, so accent-insensitive search has something to find.
    families += ["Muñoz", "Peña", "Gómez", "Nguyễn", "Müller", "Đặng", "Ibáñez", "Lefèvre"]
    streets = [fake.street_name() for _ in range(2000)]
    cities = [(fake.city(), fake.state_abbr(), fake.postcode()) for _ in range(500)]
    existing = set(db.session.scalars(select(Patient.mrn)))
    today = date.today()
    table = Patient.__table__
    now = _utc_now()
    created = 0
    while created < count:
        rows = []
        for _ in range(min(batch_size, count - created)):
            sex = "unknown" if rng.random() < 0.005 else rng.choice(("female", "male"))
            given = rng.choice(female if sex == "female" else male)
            family = rng.choice(families)
            while True:
                body = str(rng.randrange(10_000_000, 100_000_000))
                mrn = body + luhn_check_digit(body)
                if mrn not in existing:
                    existing.add(mrn)
                    break
            birth = today - timedelta(days=rng.randrange(0, 95 * 365))
            city, state, postcode = rng.choice(cities)
            rows.append(
                {
                    "mrn": mrn,
                    "given_name": given,
                    "family_name": family,
                    "preferred_name": None,
                    "given_key": search_key(given),
                    "family_key": search_key(family),
                    "birth_date": birth,
                    "sex_at_birth": sex,
                    "phone_mobile": _phone(rng),
                    "phone_home": _phone(rng) if rng.random() < 0.3 else None,
                    "phone_work": None,
                    "email": f"{given}.{family}{rng.randrange(100)}@example.com".lower()
                    if rng.random() < 0.6
                    else None,
                    "address_line1": f"{rng.randrange(1, 9999)} {rng.choice(streets)}",
                    "city": city,
                    "state": state,
                    "postal_code": postcode,
                    "country": "US",
                    "preferred_language": rng.choice(LANGUAGES),
                    "insurance_payer": (payer := rng.choice(PAYERS)),
                    "insurance_member_id": _member_id(rng) if payer else None,
                    "insurance_group": str(rng.randrange(10000, 99999)) if payer else None,
                    "status": "active",
                    "created_at": now,
                    "updated_at": now,
                }
            )
        db.session.execute(insert(table), rows)
        db.session.commit()
        created += len(rows)
    return created


def _member_id(rng: random.Random) -> str:
    return f"{rng.choice('ABCDEFGHJKLMNPQRSTUVWXYZ')}{rng.randrange(10**8, 10**9)}"


def _phone(rng: random.Random) -> str:
    return f"+1{rng.choice(AREA_CODES)}{rng.randrange(200, 1000)}{rng.randrange(10000):04d}"


def _utc_now():
    from portal.timeutil import utcnow

    return utcnow()


@click.command("create-user")
@with_appcontext
@click.option("--username", prompt=True)
@click.option("--full-name", prompt=True)
@click.option(
    "--role",
    "roles",
    multiple=True,
    required=True,
    type=click.Choice(["front_desk", "nurse", "prescriber", "admin"]),
)
@click.option("--email", default=None)
@click.password_option()
def create_user_command(username, full_name, roles, email, password):
    """Create a staff account (for the first admin of a new installation)."""
    from portal.auth import services

    try:
        user = services.create_user(
            actor=None,
            username=username,
            full_name=full_name,
            email=email,
            roles=list(roles),
            password=password,
        )
    except services.AccountError as error:
        raise click.ClickException(error.message) from error
    click.echo(f"Created {user.username} ({', '.join(user.roles)}).")
    if services.mfa_required_for(user):
        click.echo("Two-step sign-in is required for this role: it is set up at first sign-in.")


@click.command("purge-sessions")
@with_appcontext
@click.option("--keep-days", default=30, show_default=True, type=int)
def purge_sessions(keep_days: int) -> None:
    """Delete ended sessions older than KEEP_DAYS and abandoned anonymous ones (run daily)."""
    from portal.auth.models import ServerSession
    from portal.timeutil import utcnow

    now = utcnow()
    lifetime = timedelta(hours=current_app.config["SESSION_ABSOLUTE_HOURS"])
    ended = db.session.execute(
        db.delete(ServerSession).where(ServerSession.ended_at < now - timedelta(days=keep_days))
    ).rowcount
    abandoned = db.session.execute(
        db.delete(ServerSession).where(
            ServerSession.ended_at.is_(None), ServerSession.created_at < now - lifetime
        )
    ).rowcount
    db.session.commit()
    click.echo(f"Deleted {ended} ended and {abandoned} expired sessions.")


audit_cli = AppGroup("audit", help="The audit trail.")


@audit_cli.command("verify")
@click.option("--batch-size", default=5000, show_default=True, type=int, hidden=True)
def audit_verify(batch_size: int):
    """Check every event, link and checkpoint; exit 1 naming the first problem.

    The run is itself audited (who checked, and what was found), like reading the report.
    """

    report = verify(batch_size=batch_size)
    with use_case():
        audit.record(
            Actor(id=None, username=f"cli:{_os_user()}", source=SOURCE_CLI),
            "audit.verify",
            category="audit trail",
            object_type="audit_events",
            outcome="success" if report.ok else "error",
            detail=(
                f"{report.verified} events, {len(report.problems) + report.more_problems} "
                f"problems" + (f"; first: {report.problems[0]}" if report.problems else "")
            ),
        )
    summary = (
        f"{report.verified} events verified ({report.sealed} sealed, {report.legacy} of them "
        f"legacy; {report.unsealed} awaiting the sealer"
        + (
            f", the oldest since {report.oldest_unsealed:%Y-%m-%d %H:%M:%S} UTC"
            if report.oldest_unsealed
            else ""
        )
        + ")."
    )
    latest = report.latest_checkpoint
    reach = (
        f"Checkpoints: {report.checkpoints} in {report.checkpoint_file}; the newest, "
        f"#{latest.seq} at {latest.at}, matches."
        if latest and report.ok
        else None
    )
    for warning in report.warnings:
        click.echo(f"Warning: {warning}", err=True)
    if not report.ok:
        click.echo(f"Audit trail BROKEN: {report.problems[0]}", err=True)
        for problem in report.problems[1:]:
            click.echo(f"  also: {problem}", err=True)
        if report.more_problems:
            click.echo(f"  and {report.more_problems} more problems", err=True)
        click.echo(summary, err=True)
        sys.exit(1)
    click.echo(f"Audit trail intact: {summary}")
    if reach:
        click.echo(reach)


@audit_cli.command("checkpoint")
def audit_checkpoint():
    """Seal pending events and append the chain's head to the checkpoint file."""

    written = sealing.checkpoint()
    if written is None:
        click.echo("The audit trail is empty: nothing to checkpoint.")
        return
    click.echo(
        f"Checkpoint #{written.seq} at {written.at} appended to {checkpoints.checkpoint_path()}."
    )


def _os_user() -> str:
    """Who runs the command, as the operating system knows them."""

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@click.command("worker")
@with_appcontext
def worker_command():
    """Run the background jobs (seal audit events, write checkpoints) until stopped."""

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    worker.run_until_signalled(current_app._get_current_object())
