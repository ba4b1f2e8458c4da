"""The demo's Rx inbox: Dr. Lee's lisinopril for one of the charted patients, signed and
waiting in the outbox, so that the first `make run` sends it to the DoseSpot sandbox, which
(started with ``--demo-renewal``) then asks for its renewal: Dr. Lee's Rx inbox shows one
request, to approve with refills and sign, or to deny.

Demo data, written as seeded notes are: the prescription is stored signed (with its digest)
without the signing dialog's factors; nothing else in the portal signs this way.
"""

from __future__ import annotations

import json

from sqlalchemy import select

from portal.audit import services as audit
from portal.auth.models import User
from portal.demo.clinic import SEED_DEMO
from portal.extensions import db
from portal.integrations import outbox
from portal.integrations.dosespot.patients import patient_problems
from portal.integrations.models import ConnectorSetting, ExternalId
from portal.patients.models import Patient
from portal.prescriptions import states
from portal.prescriptions.models import Prescription
from portal.prescriptions.services import SEND_OPERATION, patient_snapshot
from portal.prescriptions.signing.services import (
    SIGNED_ELEMENTS,
    digest_of,
    send_key,
    send_payload,
)
from portal.timeutil import utcnow
from portal.transaction import use_case

DEMO_PHARMACY = ("3001", "Sandbox Pharmacy Main Street")  # the sandbox's fixtures
CANDIDATES = 50


def seed_renewal_demo() -> bool:
    """One signed lisinopril of Dr. Lee's, queued for the sandbox; True when it made it (once,
    with e-prescribing enabled and a charted patient the vendor would accept)."""
    with use_case():
        if db.session.scalar(select(Prescription.id).limit(1)) is not None:
            return False
        setting = db.session.scalars(
            select(ConnectorSetting).where(
                ConnectorSetting.connector == "dosespot", ConnectorSetting.enabled.is_(True)
            )
        ).first()
        doctor = db.session.scalars(select(User).where(User.username == "drlee")).first()
        if setting is None or doctor is None:
            return False
        clinician = db.session.scalar(
            select(ExternalId.external_id).where(
                ExternalId.connector == "dosespot",
                ExternalId.kind == "clinician",
                ExternalId.local_id == doctor.id,
            )
        )
        if clinician is None:
            return False
        today = utcnow().date()
        patient = next(
            (
                p
                for p in db.session.scalars(select(Patient).order_by(Patient.id).limit(CANDIDATES))
                if p.status != "deceased" and not patient_problems(patient_snapshot(p), today)
            ),
            None,
        )
        if patient is None:
            return False
        now = utcnow()
        rx = Prescription(
            patient_id=patient.id,
            origin="portal",
            state=states.DRAFT,
            fhir_status="draft",
            prescriber_id=doctor.id,
            drug="lisinopril 10 MG Oral Tablet",
            rxcui="314076",
            ingredient_rxcuis="29046",
            strength="10 MG",
            dose_form="Oral Tablet",
            route="oral",
            directions="Take 1 tablet by mouth once daily for 30 days",
            quantity="30",
            dispense_unit="tablet",
            days_supply=30,
            refills="0",
            substitution_allowed=True,
            pharmacy_id=DEMO_PHARMACY[0],
            pharmacy_name=DEMO_PHARMACY[1],
            created_at=now,
            updated_at=now,
        )
        db.session.add(rx)
        db.session.flush()
        rx.written_on = today
        rx.alerts = json.dumps([])
        rx.overrides = json.dumps([])
        rx.signed_at = now
        rx.signed_by_id = doctor.id
        rx.digest = digest_of({"id": rx.id, **{n: getattr(rx, n) for n in SIGNED_ELEMENTS}})
        rx.state = states.QUEUED
        rx.fhir_status = "active"
        db.session.flush()
        outbox.enqueue(
            "dosespot",
            SEND_OPERATION,
            send_payload("dosespot", clinician, patient, rx),
            idempotency_key=send_key("dosespot", rx.id),
            patient_id=patient.id,
            prescription_id=rx.id,
        )
        audit.record(
            SEED_DEMO,
            "prescription.signed",
            patient_id=patient.id,
            obj=rx,
            detail=f"digest {rx.digest}; demo data; queued for dosespot",
            category="prescriptions",
        )
    return True
