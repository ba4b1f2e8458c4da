"""The demo clinic, its two locations and one user per role (random passwords)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pyotp
from sqlalchemy import select

from portal.actors import SOURCE_CLI, Actor
from portal.audit import services as audit
from portal.auth.models import EpcsPermission, User
from portal.auth.passwords import hash_password
from portal.auth.services import mfa_required_for
from portal.clinic.models import Clinic, Location
from portal.crypto import encrypt_text
from portal.extensions import db
from portal.transaction import use_case

DEMO_USERS = (
    # username, full name, roles
    ("frontdesk", "Maria Alvarez", ["front_desk"]),
    ("nurse", "Sam Okafor", ["nurse"]),
    ("drlee", "Dr. Jordan Lee", ["prescriber"]),
    ("admin", "Pat Kim", ["admin"]),
)
# Demo prescribers' DEA numbers: made up (right form and check digit, no registration), so the
# demo can sign controlled prescriptions. Their EPCS grant is part of the set-up, like their
# roles: nobody proposed or approved it (a real clinic's grants take two people).
DEMO_DEA_NUMBERS = {"drlee": "BL1234563"}
# Demo prescribers' NPIs: made up with a valid check digit (Luhn over 80840 + nine digits);
# Dr. Lee's is the one the DoseSpot sandbox's prescriber he is linked to carries.
DEMO_NPIS = {"drlee": "1987654328"}
# Who the audit trail says made the demo data.
SEED_DEMO = Actor(id=None, username="seed-demo", source=SOURCE_CLI)


def seed_clinic_and_users() -> list[dict]:
    """The demo clinic, its two locations and one user per role (random passwords)."""
    with use_case():
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
            audit.record(SEED_DEMO, "clinic.create", obj=clinic)
        credentials = []
        for username, full_name, roles in DEMO_USERS:
            if db.session.scalars(select(User).where(User.username == username)).first():
                continue
            password = "-".join(secrets.token_hex(3) for _ in range(4))  # 27 chars, random
            user = User(
                username=username, full_name=full_name, password_hash=hash_password(password)
            )
            user.set_roles(roles)
            secret = None
            if mfa_required_for(user):
                secret = pyotp.random_base32()
                user.totp_secret_encrypted = encrypt_text(secret)
                user.mfa_enabled = True
            db.session.add(user)
            audit.record(SEED_DEMO, "user.create", obj=user, category="user accounts")
            if username in DEMO_NPIS:
                user.npi = DEMO_NPIS[username]
            if username in DEMO_DEA_NUMBERS:
                _allow_controlled(user, DEMO_DEA_NUMBERS[username])
            credentials.append(
                {
                    "username": username,
                    "name": full_name,
                    "roles": roles,
                    "password": password,
                    "totp_secret": secret,
                }
            )
        return credentials


def _allow_controlled(user: User, dea_number: str) -> None:
    user.dea_number = dea_number
    db.session.flush()
    db.session.add(EpcsPermission(user_id=user.id, dea_number=dea_number))
    audit.record(
        SEED_DEMO, "epcs.granted", obj=user, category="user accounts", detail="demo set-up"
    )


def credentials_text(credentials: list[dict]) -> str:
    """The demo sign-ins as text: usernames, passwords and TOTP secrets."""
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
    return "\n".join(lines) + "\n"


def write_credentials_file(text: str, instance_path: str) -> Path:
    """Write the demo sign-ins to the instance folder, readable by the owner only."""
    path = Path(instance_path) / "demo-credentials.txt"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)
    return path
