"""Demo charts: note templates, snippets, and past visits with signed notes, vital signs,
problems, allergies, medications and immunizations."""

from __future__ import annotations

import hashlib
import random
from datetime import timedelta

from sqlalchemy import func, insert, select

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
from portal.extensions import db
from portal.patients.models import Patient
from portal.timeutil import utcnow
from portal.transaction import use_case

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
    with use_case():
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
        births = dict(
            db.session.execute(
                select(Patient.id, Patient.birth_date).order_by(Patient.id).limit(patients)
            ).all()
        )
        patient_ids = list(births)
        if doctor is None or not patient_ids:
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
                substance, kind, rxnorm, reactions, severity, criticality = rng.choice(
                    DEMO_ALLERGIES
                )
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
                weight, height = _body_size(rng, births[patient_id], occurred.date())
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
        return len(patient_ids)


def _body_size(rng: random.Random, birth_date, on) -> tuple[float, float]:
    """A plausible weight (kg) and height (cm) for the age: a child's from the usual
    paediatric estimates (weight about 2 x age + 8 kg, height about 6 x age + 77 cm from 1
    to 12 years), not an adult's (the prescription checks read them)."""
    age = (on - birth_date).days / 365.25 if birth_date else 40
    if age < 1:
        return round(rng.uniform(3.5, 10), 1), round(rng.uniform(50, 75), 1)
    if age <= 12:
        weight = (2 * age + 8) * rng.uniform(0.85, 1.2)
        height = (6 * age + 77) * rng.uniform(0.95, 1.05)
        return round(weight, 1), round(height, 1)
    if age < 18:
        return round(rng.uniform(40, 75), 1), round(rng.uniform(148, 185), 1)
    return round(rng.uniform(55, 110), 1), round(rng.uniform(152, 192), 1)
