"""Demo patients: realistic, deterministic, fast enough for a million."""

from __future__ import annotations

import random
from datetime import date, timedelta

from faker import Faker
from sqlalchemy import insert, select

from portal.extensions import db
from portal.patients.identifiers import luhn_check_digit, search_key
from portal.patients.models import Patient, remember_names
from portal.timeutil import utcnow
from portal.transaction import use_case

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


def seed_patients(count: int, *, seed: int = 1, batch_size: int = 10_000) -> int:
    """Bulk-insert ``count`` realistic, deterministic patients (1,000,000 in minutes).

    Faker is slow per call, so it fills pools of names and streets once; each patient is
    then a handful of choices from a seeded random generator.
    """

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
    now = utcnow()
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
        with use_case():
            db.session.execute(insert(table), rows)
            # A bulk insert skips the ORM's events: the names list is kept here.
            names = [row["family_key"] for row in rows] + [row["given_key"] for row in rows]
            remember_names(db.session.connection(), names)
        created += len(rows)
    return created


def _member_id(rng: random.Random) -> str:
    return f"{rng.choice('ABCDEFGHJKLMNPQRSTUVWXYZ')}{rng.randrange(10**8, 10**9)}"


def _phone(rng: random.Random) -> str:
    return f"+1{rng.choice(AREA_CODES)}{rng.randrange(200, 1000)}{rng.randrange(10000):04d}"
