"""The demo's e-prescribing: the DoseSpot connector enabled against the local DoseSpot
sandbox (``make run`` starts it on port 5101) with the sandbox's demo clinic, and Dr. Lee
linked to the sandbox's first clinician, so a new user can prescribe with nothing to set up.
And its lab: the HL7 lab connector enabled against the local lab sandbox (``make run``
starts it: orders on MLLP port 2576, results back to the listener on 2575).

The credentials are the sandbox's own fixtures (made up, public); a real clinic enters
DoseSpot's in the integrations console. The settings are written without the connection
check: the sandbox may not be running yet when the demo is seeded.
"""

from __future__ import annotations

from sqlalchemy import select

from portal.audit import services as audit
from portal.auth.models import User
from portal.clinic.models import Clinic
from portal.crypto import encrypt_text
from portal.demo.clinic import SEED_DEMO
from portal.extensions import db
from portal.integrations.models import ConnectorSetting, EpcsVendorCredential, ExternalId
from portal.integrations.sandbox.dosespot.app import DEFAULTS as SANDBOX_DEFAULTS
from portal.integrations.sandbox.dosespot.state import load_fixture
from portal.timeutil import utcnow
from portal.transaction import use_case

SANDBOX_URL = "http://127.0.0.1:5101"
LAB_SANDBOX_HOST = "127.0.0.1"
LAB_SANDBOX_PORT = 2576
# What the lab sandbox calls itself (its MSH-3/4) and what our orders name as the sender.
LAB_SETTINGS = {
    "use_tls": False,
    "tls_ca_pem": "",
    "timeout_seconds": 10,
    "sending_application": "PRACTICE_PORTAL",
    "sending_facility": "PORTAL",
    "receiving_application": "SANDBOX_LIS",
    "receiving_facility": "SANDBOX_LAB",
    "lab_codes": "",
}
DEMO_PRESCRIBER = "drlee"


def _clinic_without(connector: str) -> Clinic | None:
    """The demo clinic while ``connector`` has no settings in it (each is seeded once)."""
    clinic = db.session.scalars(select(Clinic)).first()
    exists = db.session.scalars(
        select(ConnectorSetting.id).where(
            ConnectorSetting.clinic_id == clinic.id, ConnectorSetting.connector == connector
        )
    ).first()
    return clinic if exists is None else None


def seed_eprescribing(sandbox_url: str = SANDBOX_URL) -> bool:
    """Enable DoseSpot against the sandbox and link Dr. Lee (once); True when it did."""
    clinic_fixture = load_fixture("clinics.json")["clinics"][0]
    clinician_fixture = next(
        c
        for c in load_fixture("clinicians.json")["clinicians"]
        if c["ClinicId"] == clinic_fixture["ClinicId"] and c.get("EpcsEnabled")
    )
    with use_case():
        clinic = _clinic_without("dosespot")
        if clinic is None:
            return False
        now = utcnow()
        setting = ConnectorSetting(
            clinic_id=clinic.id,
            connector="dosespot",
            values={
                "clinic_id": clinic_fixture["ClinicId"],
                "admin_clinician_id": clinician_fixture["ClinicianId"],
                "api_base_url": sandbox_url,
                "sso_base_url": sandbox_url,
            },
            secrets={
                "clinic_key": encrypt_text(clinic_fixture["ClinicKey"]),
                "subscription_key": encrypt_text(clinic_fixture["SubscriptionKey"]),
                "webhook_secret": encrypt_text(SANDBOX_DEFAULTS["webhook_secret"]),
            },
            enabled=True,
            paused=False,
            enabled_at=now,
            updated_at=now,
        )
        db.session.add(setting)
        db.session.flush()
        audit.record(
            SEED_DEMO,
            "integrations.connector_enabled",
            obj=setting,
            detail="dosespot; the demo's sandbox",
            category="integrations",
        )
        prescriber = db.session.scalars(
            select(User).where(User.username == DEMO_PRESCRIBER)
        ).first()
        if prescriber is not None:
            db.session.add(
                ExternalId(
                    connector="dosespot",
                    kind="clinician",
                    local_id=prescriber.id,
                    external_id=str(clinician_fixture["ClinicianId"]),
                    created_at=now,
                    updated_at=now,
                )
            )
            audit.record(
                SEED_DEMO,
                "integrations.clinician_mapped",
                detail=f"dosespot user {prescriber.id}",
                category="integrations",
            )
            # The sandbox prescriber's EPCS PIN and token seed (public fixtures), so the
            # demo's controlled substances can be sent; a real prescriber types their own.
            db.session.add(
                EpcsVendorCredential(
                    connector="dosespot",
                    user_id=prescriber.id,
                    pin_encrypted=encrypt_text(clinician_fixture["EpcsPin"]),
                    otp_secret_encrypted=encrypt_text(clinician_fixture["EpcsOtpSecret"]),
                    set_at=now,
                )
            )
            audit.record(
                SEED_DEMO,
                "integrations.epcs_credential_set",
                object_type="user",
                object_id=prescriber.id,
                detail="dosespot; the demo's sandbox",
                category="integrations",
            )
    return True


def seed_lab(host: str = LAB_SANDBOX_HOST, port: int = LAB_SANDBOX_PORT) -> bool:
    """Enable the HL7 lab connector against the lab sandbox (once); True when it did. No
    connection check: the sandbox may not be running yet when the demo is seeded."""
    with use_case():
        clinic = _clinic_without("hl7lab")
        if clinic is None:
            return False
        now = utcnow()
        setting = ConnectorSetting(
            clinic_id=clinic.id,
            connector="hl7lab",
            values={"host": host, "port": port, **LAB_SETTINGS},
            secrets={},
            enabled=True,
            paused=False,
            enabled_at=now,
            updated_at=now,
        )
        db.session.add(setting)
        db.session.flush()
        audit.record(
            SEED_DEMO,
            "integrations.connector_enabled",
            obj=setting,
            detail="hl7lab; the demo's lab sandbox",
            category="integrations",
        )
    return True
