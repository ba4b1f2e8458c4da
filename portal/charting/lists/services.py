"""Use cases of the patient's lists: problems, allergies (and "no known allergies"),
medications, and what a visit does with them (diagnoses addressed, reconciliation).

Each public function that changes something (or audits a read) is one use case: the
change, a ChartItemRevision holding the changed fields' values before and after, and the
audit event commit together or not at all. Edits carry the version the form showed; an edit
of an older version is refused with ``StaleEdit`` (the rows' ``version_id_col`` also catches
the race between reading and writing), so nobody silently overwrites another's change.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import and_, bindparam, case, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm.exc import StaleDataError

from portal.audit import services as audit
from portal.charting.encounters.services import get_encounter_for
from portal.charting.models import (
    ALLERGY_CRITICALITIES,
    ALLERGY_SEVERITIES,
    ALLERGY_STATUSES,
    MEDICATION_SOURCES,
    MEDICATION_STATUSES,
    PROBLEM_STATUSES,
    RECONCILIATION_ACTIONS,
    SUBSTANCE_KINDS,
    Allergy,
    ChartItemRevision,
    DiagnosisFavourite,
    DiagnosisUse,
    Encounter,
    Medication,
    MedicationReconciliation,
    NoKnownAllergies,
    Problem,
)
from portal.extensions import db
from portal.patients.models import Patient
from portal.patients.services import get_patient_for, get_row_of_patient, lock_patient
from portal.terminology import icd10
from portal.terminology.allergy_classes import find_class
from portal.terminology.rxnorm import coded_ingredient
from portal.timeutil import utcnow
from portal.transaction import Conflict, Refused, use_case

NOT_A_CLASS = (
    "Choose a drug class from the list (such as Penicillins, Sulfonamide antibiotics or "
    "NSAIDs); for a single drug, choose the kind “Drug”."
)
CATEGORIES = {"problem": "problem list", "allergy": "allergies", "medication": "medications"}
MODELS = {"problem": Problem, "allergy": Allergy, "medication": Medication}
# The fields whose changes are kept in the history, with the labels the history shows.
REVISED_FIELDS = {
    "problem": {
        "icd10_code": "ICD-10-CM code",
        "description": "Diagnosis",
        "onset_date": "Onset",
        "status": "Status",
        "comment": "Comment",
    },
    "allergy": {
        "substance_kind": "Kind",
        "substance": "Substance",
        "rxnorm_code": "RxNorm code",
        "drug_class_code": "Drug class code",
        "reactions": "Reactions",
        "severity": "Severity",
        "criticality": "Criticality",
        "onset_date": "Onset",
        "status": "Status",
        "comment": "Comment",
    },
    "medication": {
        "drug": "Drug",
        "rxnorm_code": "RxNorm code",
        "dose": "Dose",
        "route": "Route",
        "frequency": "Frequency",
        "start_date": "Start",
        "stop_date": "Stop",
        "prescriber": "Prescriber",
        "source": "Source",
        "status": "Status",
        "stop_reason": "Reason stopped",
    },
}
VALUE_LABELS = {
    "status": {**PROBLEM_STATUSES, **ALLERGY_STATUSES, **MEDICATION_STATUSES},
    "substance_kind": SUBSTANCE_KINDS,
    "severity": ALLERGY_SEVERITIES,
    "criticality": ALLERGY_CRITICALITIES,
    "source": MEDICATION_SOURCES,
}


class StaleEdit(Conflict):
    """The item changed since the form was loaded; ``current`` is the item as it is now."""

    def __init__(self, item_type: str, current):
        super().__init__(
            f"Someone else changed this {item_type} since you opened the form. "
            "Nothing of yours was saved: the current values are shown; review them and save "
            "again if your change is still needed."
        )
        self.current = current


# ---------------------------------------------------------------------------------------
# Shared machinery: loading items of a patient, revisions, the patient's lock


def _item_of(item_type: str, patient: Patient, item_id: int):
    """The patient's item, or 404: an id of another patient's item is as unknown as any."""
    return get_row_of_patient(patient, MODELS[item_type], item_id)


def _plain(value):
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, list):
        return list(value)
    return value


def _snapshot(item_type: str, item) -> dict:
    return {name: _plain(getattr(item, name)) for name in REVISED_FIELDS[item_type]}


def _record_change(actor, item_type: str, item, before: dict | None, action: str, detail=""):
    """Write the item's revision and audit event; returns the names of the changed fields
    (all of them for a new item, none when nothing changed: then nothing is written)."""
    db.session.flush()
    after = _snapshot(item_type, item)
    if before is None:
        changed = [name for name, value in after.items() if value not in (None, "", [])]
        revision_before, revision_after = None, after
    else:
        changed = [name for name in after if before[name] != after[name]]
        if not changed:
            return []
        revision_before = {name: before[name] for name in changed}
        revision_after = {name: after[name] for name in changed}
    db.session.add(
        ChartItemRevision(
            item_type=item_type,
            item_id=item.id,
            patient_id=item.patient_id,
            changed_by_id=actor.id,
            before=revision_before,
            after=revision_after,
        )
    )
    audit.record(
        actor,
        action,
        patient_id=item.patient_id,
        obj=item,
        category=CATEGORIES[item_type],
        detail=" ".join(part for part in (detail, "fields " + ",".join(changed)) if part),
    )
    return changed


def _check_version(item_type: str, item, version: int | None) -> None:
    if version is None or item.version != version:
        raise StaleEdit(item_type, item)


def _editable(actor, patient_id: int, item_type: str, item_id: int, version: int | None):
    """(item, its revised fields as they are) for an edit: 404 for an item the actor may not
    see through this patient, ``StaleEdit`` when the form showed an older version."""
    item = _item_of(item_type, get_patient_for(actor, patient_id), item_id)
    _check_version(item_type, item, version)
    return item, _snapshot(item_type, item)


@contextmanager
def _editing(item_type: str, item_id: int):
    """The use case of an edit of one item. A concurrent save that won the race between
    this edit's read and its write (the rows' ``version_id_col``, checked at every flush and
    at the commit) becomes ``StaleEdit`` carrying the item as it is now (read after the
    use case rolled back)."""
    try:
        with use_case():
            yield
    except StaleDataError:
        raise StaleEdit(item_type, db.session.get(MODELS[item_type], item_id)) from None


def _view(actor, patient: Patient, item_type: str, action: str, obj=None) -> None:
    audit.record(
        actor,
        action,
        patient=patient,
        obj=obj,
        object_type=None if obj is not None else MODELS[item_type].__tablename__,
        category=CATEGORIES[item_type],
    )


def load_item(actor, patient_id: int, item_type: str, item_id: int):
    """(patient, item) for an edit or stop form; audited as a view of the item."""
    with use_case():
        patient = get_patient_for(actor, patient_id)
        item = _item_of(item_type, patient, item_id)
        _view(actor, patient, item_type, f"{item_type}.view", obj=item)
    return patient, item


def item_history(actor, patient_id: int, item_type: str, item_id: int):
    """(patient, item, revisions oldest first) for the history page; the view is audited."""
    with use_case():
        patient = get_patient_for(actor, patient_id)
        item = _item_of(item_type, patient, item_id)
        revisions = list(
            db.session.scalars(
                select(ChartItemRevision)
                .where(
                    ChartItemRevision.item_type == item_type, ChartItemRevision.item_id == item.id
                )
                .order_by(ChartItemRevision.changed_at, ChartItemRevision.id)
            )
        )
        _view(actor, patient, item_type, f"{item_type}.history_view", obj=item)
    return patient, item, revisions


def shown_value(name: str, value) -> str:
    """A revision's stored value as the history shows it."""
    if value in (None, "", []):
        return "—"
    if isinstance(value, list):
        return ", ".join(value)
    return VALUE_LABELS.get(name, {}).get(value, str(value))


def describe_revision(item_type: str, revision: ChartItemRevision) -> list[tuple[str, str, str]]:
    """(field label, previous value, new value) for each field the revision changed."""
    labels = REVISED_FIELDS[item_type]
    before = revision.before or {}
    return [
        (labels.get(name, name), shown_value(name, before.get(name)), shown_value(name, value))
        for name, value in revision.after.items()
        if revision.before is not None or value not in (None, "", [])
    ]


# ---------------------------------------------------------------------------------------
# Problems

_PROBLEM_ORDER = (
    case((Problem.status == "active", 0), (Problem.status == "inactive", 1), else_=2),
    Problem.onset_date.desc(),
    Problem.id.desc(),
)


def _patient_problems(patient_id: int) -> list[Problem]:
    return list(
        db.session.scalars(
            select(Problem).where(Problem.patient_id == patient_id).order_by(*_PROBLEM_ORDER)
        )
    )


def view_problems(actor, patient_id: int) -> tuple[Patient, list[Problem]]:
    """The patient and their problems: active first, then inactive, then resolved."""
    with use_case():
        patient = get_patient_for(actor, patient_id)
        problems = _patient_problems(patient.id)
        _view(actor, patient, "problem", "problem.list_view")
    return patient, problems


# ---------------------------------------------------------------------------------------
# ICD-10-CM search: a clinician's favourites and the clinic's own use rank first

# A code the clinic used once or twice (a one-off "portal hypertension") does not jump ahead of
# primary care's ranking; from the third use on it does, most used first.
CLINIC_MIN_USES = 3
CLINIC_CODES = 300  # the clinic's most used codes a search considers
MAX_FAVOURITES = 200
FAVOURITES_CATEGORY = "diagnosis favourites"


@dataclass(frozen=True)
class DiagnosisOption:
    """A search result as the picker shows it: the diagnosis, and whether it is a favourite."""

    code: str
    description: str
    favourite: bool


def favourite_codes(user_id: int | None) -> list[str]:
    """The user's favourite codes, the earliest starred first."""
    if user_id is None:
        return []
    return list(
        db.session.scalars(
            select(DiagnosisFavourite.icd10_code)
            .where(DiagnosisFavourite.user_id == user_id)
            .order_by(DiagnosisFavourite.created_at, DiagnosisFavourite.icd10_code)
        )
    )


def clinic_codes() -> list[str]:
    """The clinic's most used codes, most used first (one indexed read of a small table)."""
    return list(
        db.session.scalars(
            select(DiagnosisUse.icd10_code)
            .where(DiagnosisUse.uses >= CLINIC_MIN_USES)
            .order_by(DiagnosisUse.uses.desc(), DiagnosisUse.icd10_code.desc())
            .limit(CLINIC_CODES)
        )
    )


def search_diagnoses(actor, query: str) -> list[DiagnosisOption]:
    """Billable codes matching ``query`` for this actor: their favourites first, then the
    clinic's most used codes, then primary care's (terminology.icd10 ranks the rest). Reads
    reference data and preferences only: no patient data, nothing audited."""
    favourites = favourite_codes(actor.id)
    found = icd10.search(query, preferred=favourites + clinic_codes())
    starred = set(favourites)
    return [DiagnosisOption(d.code, d.description, d.code in starred) for d in found]


def favourite_diagnoses(actor) -> list[DiagnosisOption]:
    """The actor's favourites with their descriptions (a code no longer billable is left out)."""
    found = (icd10.billable(code) for code in favourite_codes(actor.id))
    return [DiagnosisOption(d.code, d.description, True) for d in found if d is not None]


def star_diagnosis(actor, code: str) -> icd10.Diagnosis:
    """Add a billable code to the actor's favourites (starring it again changes nothing)."""
    diagnosis = _billable(code)
    with use_case():
        if db.session.get(DiagnosisFavourite, (actor.id, diagnosis.code)) is None:
            count = len(favourite_codes(actor.id))
            if count >= MAX_FAVOURITES:
                raise Refused(
                    f"You have {MAX_FAVOURITES} favourites: remove one before adding another.",
                    "icd10_code",
                )
            db.session.add(DiagnosisFavourite(user_id=actor.id, icd10_code=diagnosis.code))
            audit.record(
                actor,
                "diagnosis_favourite.add",
                object_type="diagnosis_favourite",
                object_id=diagnosis.code,
                category=FAVOURITES_CATEGORY,
                detail=f"icd10 {diagnosis.code}",
            )
    return diagnosis


def unstar_diagnosis(actor, code: str) -> None:
    """Remove a code from the actor's favourites (removing one that is not there is harmless)."""
    bare = (code or "").strip().upper()
    with use_case():
        removed = db.session.execute(
            delete(DiagnosisFavourite).where(
                DiagnosisFavourite.user_id == actor.id, DiagnosisFavourite.icd10_code == bare
            )
        ).rowcount
        if removed:
            audit.record(
                actor,
                "diagnosis_favourite.remove",
                object_type="diagnosis_favourite",
                object_id=bare,
                category=FAVOURITES_CATEGORY,
                detail=f"icd10 {bare}",
            )


def _count_uses(codes: list[str]) -> None:
    """Count one use of each code for the clinic's ranking, in the caller's transaction. An
    upsert, so two visits using a new code at once both count; codes in sorted order, so two
    transactions never wait on each other's rows in opposite orders."""
    table = DiagnosisUse.__table__
    dialect = postgresql if db.session.get_bind().dialect.name == "postgresql" else sqlite
    for code in sorted(codes):
        statement = dialect.insert(table).values(icd10_code=code, uses=1)
        db.session.execute(
            statement.on_conflict_do_update(
                index_elements=[table.c.icd10_code], set_={"uses": table.c.uses + 1}
            )
        )


def _billable(code: str) -> icd10.Diagnosis:
    diagnosis = icd10.billable(code)
    if diagnosis is None:
        raise Refused(
            "Not a billable ICD-10-CM code: choose a specific code from the search "
            "(a category such as E11 is not enough).",
            "icd10_code",
        )
    return diagnosis


def _apply_problem(problem: Problem, values: dict) -> None:
    diagnosis = _billable(values["icd10_code"])
    problem.icd10_code = diagnosis.code
    problem.description = diagnosis.description
    problem.onset_date = values.get("onset_date")
    problem.status = values.get("status") or "active"
    problem.comment = values.get("comment") or None


def add_problem(actor, patient_id: int, values: dict, *, encounter_id: int | None = None):
    """Add a coded problem (and, from a visit, mark it addressed by that encounter)."""
    with use_case():
        patient = get_patient_for(actor, patient_id)
        problem = insert_problem(actor, patient, values, count_use=False)
        if encounter_id is not None:
            encounter = get_row_of_patient(patient, Encounter, encounter_id)
            encounter.problems_addressed.append(problem)
            audit.record(
                actor,
                "encounter.diagnoses_update",
                patient=patient,
                obj=encounter,
                category=CATEGORIES["problem"],
                detail=f"added problem {problem.id}",
            )
        # One use for the problem list, one more when a visit addressed it.
        _count_uses([problem.icd10_code] * (1 if encounter_id is None else 2))
    return problem


def insert_problem(actor, patient: Patient, values: dict, *, count_use: bool = True) -> Problem:
    """Add a coded problem to the patient's list with its revision and audit event (and,
    unless the caller counts it, one use of its code); flushes only."""
    problem = Problem(patient_id=patient.id, created_by_id=actor.id)
    _apply_problem(problem, values)
    db.session.add(problem)
    _record_change(actor, "problem", problem, None, "problem.create", f"icd10 {problem.icd10_code}")
    if count_use:
        _count_uses([problem.icd10_code])
    return problem


def update_problem(actor, patient_id: int, problem_id: int, version: int | None, values: dict):
    """Edit a problem (code, onset, status, comment); returns the changed field names."""
    with _editing("problem", problem_id):
        problem, before = _editable(actor, patient_id, "problem", problem_id, version)
        old_code = problem.icd10_code
        _apply_problem(problem, values)
        if problem.icd10_code != old_code:
            _count_uses([problem.icd10_code])  # recoded: the new code is now in use
        detail = f"icd10 {problem.icd10_code}"
        return _record_change(actor, "problem", problem, before, "problem.update", detail)


# ---------------------------------------------------------------------------------------
# Allergies and "no known allergies"


@dataclass
class AllergyState:
    """What the banner and the summary say about allergies: the active ones, or NKA (dated),
    or neither (not yet asked)."""

    allergies: list = field(default_factory=list)
    nka_recorded_at: datetime | None = None

    @property
    def recorded(self) -> bool:
        return bool(self.allergies) or self.nka_recorded_at is not None


@dataclass(frozen=True)
class BannerAllergy:
    """An active allergy as the patient banner shows it."""

    id: int
    substance: str
    severity: str | None
    criticality: str | None
    reactions: list

    @property
    def serious(self) -> bool:
        """Severe reactions or a high risk of one: the banner marks these."""
        return self.severity == "severe" or self.criticality == "high"


# Built once: the banner runs it on every patient page.
_ALLERGY_STATE = (
    select(
        NoKnownAllergies.recorded_at,
        Allergy.id,
        Allergy.substance,
        Allergy.severity,
        Allergy.criticality,
        Allergy.reactions,
    )
    .select_from(Patient)
    .outerjoin(NoKnownAllergies, NoKnownAllergies.patient_id == Patient.id)
    .outerjoin(Allergy, and_(Allergy.patient_id == Patient.id, Allergy.status == "active"))
    .where(Patient.id == bindparam("patient_id"))
    .order_by(Allergy.substance, Allergy.id)
)


def allergy_state(patient_id: int) -> AllergyState:
    """Active allergies and the NKA statement of a patient in one small query (the banner
    runs it on every patient page; the chart summary's allergy section shows it too)."""
    rows = db.session.execute(_ALLERGY_STATE, {"patient_id": patient_id}).all()
    state = AllergyState()
    for row in rows:
        state.nka_recorded_at = row.recorded_at
        if row.id is not None:
            state.allergies.append(
                BannerAllergy(
                    row.id, row.substance, row.severity, row.criticality, row.reactions or []
                )
            )
    if state.allergies:
        state.nka_recorded_at = None  # stale NKA never shows beside a recorded allergy
    return state


_ALLERGY_ORDER = (
    case((Allergy.status == "active", 0), (Allergy.status == "inactive", 1), else_=2),
    Allergy.substance,
    Allergy.id,
)


def view_allergies(actor, patient_id: int):
    """(patient, allergies active first, the NKA statement or None); audited."""
    with use_case():
        patient = get_patient_for(actor, patient_id)
        allergies = list(
            db.session.scalars(
                select(Allergy).where(Allergy.patient_id == patient.id).order_by(*_ALLERGY_ORDER)
            )
        )
        nka = db.session.get(NoKnownAllergies, patient.id)
        _view(actor, patient, "allergy", "allergy.list_view")
    return patient, allergies, nka


def _apply_allergy(allergy: Allergy, values: dict) -> None:
    kind = values["substance_kind"]
    substance = values["substance"].strip()
    # A class typed with the kind "Drug" ("Penicillins") is the class: recorded as one, so
    # that prescriptions are checked against its members. A drug allergy whose substance
    # the edit leaves as it was keeps its kind (a change of severity changes nothing else).
    kept = kind == allergy.substance_kind and substance == allergy.substance
    as_class = kind == "drug_class" or (kind == "drug" and not kept)
    drug_class = find_class(substance) if as_class else None
    if kind == "drug_class" and drug_class is None:
        raise Refused(NOT_A_CLASS, "substance")
    if drug_class is not None:
        allergy.substance_kind = "drug_class"
        allergy.substance, allergy.drug_class_code = drug_class.name, drug_class.code
        allergy.rxnorm_code = None
    else:
        allergy.substance_kind = kind
        coded = coded_ingredient(substance) if kind == "drug" else None
        allergy.substance, allergy.rxnorm_code = coded if coded else (substance, None)
        allergy.drug_class_code = None
    allergy.reactions = list(values.get("reactions") or [])
    allergy.severity = values.get("severity") or None
    allergy.criticality = values.get("criticality") or None
    allergy.onset_date = values.get("onset_date")
    allergy.status = values.get("status") or "active"
    allergy.comment = values.get("comment") or None


def add_allergy(actor, patient_id: int, values: dict) -> Allergy:
    """Record an allergy; it replaces a "no known allergies" statement."""
    with use_case():
        allergy = insert_allergy(actor, get_patient_for(actor, patient_id), values)
    return allergy


def insert_allergy(actor, patient: Patient, values: dict) -> Allergy:
    """Add an allergy (replacing a "no known allergies" statement) with its revision and
    audit event; flushes only."""
    lock_patient(patient.id)  # against "no known allergies" recorded at the same moment
    allergy = Allergy(patient_id=patient.id, created_by_id=actor.id)
    _apply_allergy(allergy, values)
    db.session.add(allergy)
    nka = db.session.get(NoKnownAllergies, patient.id)
    if nka is not None:
        db.session.delete(nka)
    detail = f"rxcui {allergy.rxnorm_code}" if allergy.rxnorm_code else ""
    if allergy.drug_class_code:
        detail = f"class {allergy.drug_class_code}"
    if nka is not None:
        detail = (detail + " nka removed").strip()
    _record_change(actor, "allergy", allergy, None, "allergy.create", detail)
    return allergy


def update_allergy(actor, patient_id: int, allergy_id: int, version: int | None, values: dict):
    """Edit an allergy; an active one removes a "no known allergies" statement. Returns the
    changed field names."""
    with _editing("allergy", allergy_id):
        allergy, before = _editable(actor, patient_id, "allergy", allergy_id, version)
        # Before any change is flushed: against "no known allergies" recorded meanwhile.
        lock_patient(patient_id)
        _apply_allergy(allergy, values)
        nka = db.session.get(NoKnownAllergies, patient_id) if allergy.status == "active" else None
        if nka is not None:
            db.session.delete(nka)  # an active allergy contradicts "no known allergies"
        return _record_change(actor, "allergy", allergy, before, "allergy.update")


def record_no_known_allergies(actor, patient_id: int) -> None:
    """State (dated, signed by ``actor``) that the patient has no known allergies.

    The patient's row is locked first: an allergy recorded meanwhile (which removes the
    statement) waits for this commit, or this check waits for its commit and sees it. Two
    statements posted together likewise queue, and the second re-dates the first.
    """
    with use_case():
        state_no_known_allergies(actor, get_patient_for(actor, patient_id))


def state_no_known_allergies(actor, patient: Patient, recorded_at: datetime | None = None):
    """The work of ``record_no_known_allergies`` (``Conflict`` beside an active allergy);
    flushes only. ``recorded_at``: when it was stated, if not now (an imported record)."""
    lock_patient(patient.id)
    active = db.session.scalar(
        select(Allergy.id).where(Allergy.patient_id == patient.id, Allergy.status == "active")
    )
    if active is not None:
        raise Conflict(
            "This patient has active allergies: mark them inactive or entered in error first."
        )
    nka = db.session.get(NoKnownAllergies, patient.id)
    if nka is None:
        nka = NoKnownAllergies(patient_id=patient.id)
        db.session.add(nka)
    nka.recorded_at = recorded_at or utcnow()
    nka.recorded_by_id = actor.id
    audit.record(
        actor,
        "allergy.nka_record",
        patient=patient,
        object_type="no_known_allergies",
        object_id=patient.id,
        category=CATEGORIES["allergy"],
    )


# ---------------------------------------------------------------------------------------
# Medications

_MEDICATION_ORDER = (
    case((Medication.status == "active", 0), (Medication.status == "stopped", 1), else_=2),
    Medication.drug,
    Medication.id,
)


def view_medications(actor, patient_id: int):
    """(patient, medications: active first, then stopped, then entered in error); audited."""
    with use_case():
        patient = get_patient_for(actor, patient_id)
        medications = list(
            db.session.scalars(
                select(Medication)
                .where(Medication.patient_id == patient.id)
                .order_by(*_MEDICATION_ORDER)
            )
        )
        _view(actor, patient, "medication", "medication.list_view")
    return patient, medications


MEDICATION_VALUE_FIELDS = (
    "dose",
    "route",
    "frequency",
    "start_date",
    "stop_date",
    "prescriber",
    "source",
    "status",
    "stop_reason",
)


def _apply_medication(medication: Medication, values: dict) -> None:
    drug = values["drug"].strip()
    coded = coded_ingredient(drug)
    medication.drug, medication.rxnorm_code = coded if coded else (drug, None)
    for name in MEDICATION_VALUE_FIELDS:
        if name in values:
            value = values[name]
            setattr(medication, name, value.strip() or None if isinstance(value, str) else value)
    medication.source = medication.source or "self_reported"
    medication.status = medication.status or "active"


def add_medication(actor, patient_id: int, values: dict) -> Medication:
    """Add a medication (coded with RxNorm when its ingredient is one of the listed ones)."""
    with use_case():
        medication = insert_medication(actor, get_patient_for(actor, patient_id), values)
    return medication


def insert_medication(actor, patient: Patient, values: dict) -> Medication:
    """Add a medication with its revision and audit event (``add_medication``'s work);
    flushes only."""
    medication = Medication(patient_id=patient.id, created_by_id=actor.id)
    _apply_medication(medication, values)
    db.session.add(medication)
    detail = f"rxcui {medication.rxnorm_code}" if medication.rxnorm_code else ""
    _record_change(actor, "medication", medication, None, "medication.create", detail)
    return medication


def record_prescribed_medication(actor, patient: Patient, values: dict) -> Medication:
    """Put a medication prescribed here (through e-prescribing) on the patient's list, with
    its revision and audit event; flushes only: the prescriptions domain calls it inside the
    use case that records the prescription, so the two are written together or not at all.
    ``values`` as for ``add_medication``; ``rxnorm_code`` given by the vendor is kept."""
    medication = Medication(patient_id=patient.id, created_by_id=actor.id)
    _apply_medication(medication, {**values, "source": "prescribed_here"})
    if values.get("rxnorm_code"):
        medication.rxnorm_code = values["rxnorm_code"]
    db.session.add(medication)
    detail = f"rxcui {medication.rxnorm_code}" if medication.rxnorm_code else ""
    _record_change(actor, "medication", medication, None, "medication.create", detail)
    return medication


def update_medication(
    actor, patient_id: int, medication_id: int, version: int | None, values: dict
):
    """Edit a medication; returns the changed field names."""
    with _editing("medication", medication_id):
        medication, before = _editable(actor, patient_id, "medication", medication_id, version)
        _apply_medication(medication, values)
        return _record_change(actor, "medication", medication, before, "medication.update")


def stop_medication(
    actor, patient_id: int, medication_id: int, version: int | None, stop_date: date, reason: str
):
    """Stop an active medication on ``stop_date``, saying why."""
    with _editing("medication", medication_id):
        medication, before = _editable(actor, patient_id, "medication", medication_id, version)
        _stop(medication, stop_date, reason)
        _record_change(actor, "medication", medication, before, "medication.stop")


def _stop(medication: Medication, stop_date: date, reason: str) -> None:
    if medication.status != "active":
        raise Refused("This medication is not active.")
    if medication.start_date and stop_date < medication.start_date:
        raise Refused("The stop date is before the start date.", "stop_date")
    medication.status = "stopped"
    medication.stop_date = stop_date
    medication.stop_reason = reason.strip()


# ---------------------------------------------------------------------------------------
# A visit: diagnoses addressed and medication reconciliation


def _patient_and_encounter(actor, encounter_id: int) -> tuple[Patient, Encounter]:
    """(patient, encounter) the actor may see, or 404."""
    encounter = get_encounter_for(actor, encounter_id)
    return db.session.get(Patient, encounter.patient_id), encounter


def set_diagnoses_addressed(actor, encounter_id: int, problem_ids: list[int]) -> None:
    """The encounter addressed exactly these problems of its patient."""
    wanted = set(problem_ids)
    with use_case():
        patient, encounter = _patient_and_encounter(actor, encounter_id)
        problems = (
            list(
                db.session.scalars(
                    select(Problem).where(Problem.patient_id == patient.id, Problem.id.in_(wanted))
                )
            )
            if wanted
            else []
        )
        if len(problems) != len(wanted):
            raise Refused("Choose problems from this patient's list.", "problem_ids")
        already = {p.id for p in encounter.problems_addressed}
        _count_uses([p.icd10_code for p in problems if p.id not in already])
        encounter.problems_addressed = problems
        audit.record(
            actor,
            "encounter.diagnoses_update",
            patient=patient,
            obj=encounter,
            category=CATEGORIES["problem"],
            detail="problems " + (",".join(str(p.id) for p in problems) or "none"),
        )


def _repeated_decision(
    actor,
    encounter_id: int,
    medication: Medication,
    version: int | None,
    action: str,
    reason: str | None,
    changes: dict | None,
) -> MedicationReconciliation | None:
    """The decision this post repeats, if any: the visit's latest about this medication,
    made by the same user with the same choice (the same reason, the same new values), and
    nothing changed on the medication since (its ``updated_at`` is still that decision's
    time). The form showed the medication as it was just before that decision (a
    double-submitted form) or just after it (the same choice pressed again)."""
    latest = db.session.scalar(
        select(MedicationReconciliation)
        .where(
            MedicationReconciliation.encounter_id == encounter_id,
            MedicationReconciliation.medication_id == medication.id,
        )
        .order_by(MedicationReconciliation.recorded_at.desc(), MedicationReconciliation.id.desc())
        .limit(1)
    )
    if (
        latest is None
        or latest.recorded_by_id != actor.id
        or latest.action != action
        or medication.updated_at != latest.recorded_at
        or version not in (medication.version - 1, medication.version)
    ):
        return None
    if action == "stop" and latest.reason != ((reason or "").strip() or None):
        return None
    if action == "change":
        for name, value in (changes or {}).items():
            if (value or "").strip() and value.strip() != getattr(medication, name):
                return None
    return latest


def reconcile_medication(
    actor,
    encounter_id: int,
    medication_id: int,
    version: int | None,
    action: str,
    *,
    reason: str | None = None,
    changes: dict | None = None,
    today: date,
) -> MedicationReconciliation:
    """Continue, stop (with a reason) or change (dose, route, frequency) one active
    medication at a visit, recording who decided and when.

    The same decision sent again (a double-clicked button, a form submitted twice) records
    nothing more and answers with the first one. Every decision moves the medication's
    version on, "continue" too: of two decisions made at the same moment from forms showing
    the same version, the second is refused as stale (or, when it repeats the first, answered
    with it), so a race cannot record both.
    """
    if action not in RECONCILIATION_ACTIONS:
        raise Refused("Choose continue, stop or change.", "action")
    try:
        with use_case():
            return _reconcile(
                actor, encounter_id, medication_id, version, action, reason, changes, today
            )
    except StaleDataError:
        # Another decision about this medication committed since it was read.
        current = db.session.get(Medication, medication_id)
        repeated = _repeated_decision(
            actor, encounter_id, current, version, action, reason, changes
        )
        if repeated is not None:
            return repeated
        raise StaleEdit("medication", current) from None


def _reconcile(
    actor,
    encounter_id: int,
    medication_id: int,
    version: int | None,
    action: str,
    reason: str | None,
    changes: dict | None,
    today: date,
) -> MedicationReconciliation:
    patient, encounter = _patient_and_encounter(actor, encounter_id)
    medication = _item_of("medication", patient, medication_id)
    repeated = _repeated_decision(actor, encounter.id, medication, version, action, reason, changes)
    if repeated is not None:
        return repeated
    _check_version("medication", medication, version)
    if medication.status != "active":
        raise Refused("This medication is not active.")
    before = _snapshot("medication", medication)
    if action == "stop":
        if not (reason or "").strip():
            raise Refused("Say why the medication is stopped.", "reason")
        _stop(medication, today, reason)
    elif action == "change":
        # Blank means "as before": the form shows the current values to edit.
        for name, value in (changes or {}).items():
            if (value or "").strip():
                setattr(medication, name, value.strip())
        if _snapshot("medication", medication) == before:
            raise Refused("Change the dose, route or frequency (or choose Continue).", "dose")
    now = utcnow()
    # The row changes with every decision (its version_id_col moves on); the shared time
    # is how a repeat of this decision recognises it (_repeated_decision).
    medication.updated_at = now
    reconciliation = MedicationReconciliation(
        encounter_id=encounter.id,
        medication_id=medication.id,
        action=action,
        reason=(reason or "").strip() or None,
        recorded_by_id=actor.id,
        recorded_at=now,
    )
    db.session.add(reconciliation)
    if action != "continue":
        _record_change(actor, "medication", medication, before, f"medication.reconcile_{action}")
    audit.record(
        actor,
        "medication.reconcile",
        patient=patient,
        obj=reconciliation,
        category=CATEGORIES["medication"],
        detail=f"encounter {encounter_id} medication {medication_id} {action}",
    )
    return reconciliation


@dataclass
class EncounterLists:
    """What the encounter page's problem and medication sections show."""

    encounter: Encounter
    patient_id: int
    problems: list  # active problems, and any addressed here that are no longer active
    addressed_ids: set
    medications: list  # active, and any reconciled at this visit
    decisions: dict  # medication id -> the latest MedicationReconciliation of this visit
    # After a post: refused forms to show again ("med_<id>", "new_problem", "diagnoses")
    # or what was just saved ("saved").
    shown: dict = field(default_factory=dict)


def encounter_lists_context(encounter, **shown) -> dict:
    """What the encounter page's problem and medication sections need (key ``lists``); no
    audit event: the page that shows them records its own view."""
    addressed_ids = {problem.id for problem in encounter.problems_addressed}
    problems = list(
        db.session.scalars(
            select(Problem)
            .where(
                Problem.patient_id == encounter.patient_id,
                (Problem.status == "active") | Problem.id.in_(addressed_ids),
            )
            .order_by(*_PROBLEM_ORDER)
        )
    )
    decisions: dict[int, MedicationReconciliation] = {}
    for decision in db.session.scalars(
        select(MedicationReconciliation)
        .where(MedicationReconciliation.encounter_id == encounter.id)
        .order_by(MedicationReconciliation.recorded_at, MedicationReconciliation.id)
    ):
        decisions[decision.medication_id] = decision
    medications = list(
        db.session.scalars(
            select(Medication)
            .where(
                Medication.patient_id == encounter.patient_id,
                (Medication.status == "active") | Medication.id.in_(decisions),
            )
            .order_by(*_MEDICATION_ORDER)
        )
    )
    return {
        "lists": EncounterLists(
            encounter=encounter,
            patient_id=encounter.patient_id,
            problems=problems,
            addressed_ids=addressed_ids,
            medications=medications,
            decisions=decisions,
            shown=shown,
        )
    }
