"""The safety checks run on a prescription before it is signed: drug-allergy (with
cross-sensitivity), duplicate therapy, drug-drug interactions, and the patient's own state
(deceased; a child without a recent weight and height).

They run on the server, when the prescription is composed and again when it is signed, from
two things: the patient's context (``patient_context``: what the chart says, read in two
queries) and the drug knowledge (``portal.terminology.drugs``: products, their ingredients,
therapeutic classes, allergy groups; any implementation of its ``DrugKnowledge`` protocol, so
a licensed compendium can be plugged in), plus the shipped interaction rules
(``portal.terminology.interactions``). Both are passed in: the checks read no request, no
signed-in user and no global catalog of their own.

Severities, highest first (``SEVERITIES``):

- ``blocking``: the prescription cannot be signed; nothing overrides it (a deceased patient,
  a child without a weight and height of the last 30 days, knowledge that cannot be read).
- ``high``: signing needs an override reason (``needs_override``), stored with the
  prescription and audited by the signing step. Allergy to the drug or its group, the ONC
  high-priority interactions, and "allergies not recorded" (acknowledged or fixed by
  recording the allergies).
- ``moderate``: shown with the prescription; nothing needed (cross-sensitivity, the
  interactions of the 2013 non-interruptive list rated moderate, duplicate ingredient, an
  unmatched product).
- ``low``: shown, nothing needed (duplicate class, low interactions, uncoded medications, a
  cross-sensitivity the knowledge rates low).

The chart's medications are reduced to ingredients at each check, through the knowledge (a
product's ingredients, an ingredient's code, or its name): a medication none of these
matches is named as not checked rather than passed over.

The checks never fail open: any error reading the drug knowledge or the interaction rules
yields one ``knowledge_unavailable`` alert, which blocks signing and says why.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, literal, null, select, union_all
from sqlalchemy.orm import aliased

from portal.charting.models import Allergy, Medication, NoKnownAllergies, VitalSigns
from portal.clinic.clock import clinic_today
from portal.extensions import db
from portal.patients.models import Patient
from portal.prescriptions.models import Prescription
from portal.prescriptions.renewals import renewed_by
from portal.terminology import allergy_classes
from portal.terminology import interactions as interaction_rules
from portal.timeutil import age_on, utcnow

if TYPE_CHECKING:
    from portal.terminology.drugs import DrugKnowledge, DrugProduct

SEVERITIES = ("blocking", "high", "moderate", "low")

# Kinds of alert, as the signing step and the screens tell them apart.
ALLERGY = "allergy"
CROSS_SENSITIVITY = "cross_sensitivity"
ALLERGIES_NOT_RECORDED = "allergies_not_recorded"
DUPLICATE_INGREDIENT = "duplicate_ingredient"
DUPLICATE_CLASS = "duplicate_class"
INTERACTION = "interaction"
DECEASED = "deceased"
PAEDIATRIC_WEIGHT_MISSING = "paediatric_weight_missing"
KNOWLEDGE_UNAVAILABLE = "knowledge_unavailable"
UNMATCHED_PRODUCT = "unmatched_product"

# A child's dose depends on a current weight (and for many drugs body surface area, from the
# height): under this age both must have been measured within RECENT_MEASURE.
PAEDIATRIC_AGE_YEARS = 19
RECENT_MEASURE = timedelta(days=30)

# What a prescription's FHIR status must be for it to count as open (in force): the vendor's
# statuses map onto these in integrations/dosespot/statuses.py. Drafts are not in force (and
# the prescription being checked may itself be one).
OPEN_FHIR_STATUSES = ("active", "on-hold")
ALLERGY_KINDS_CHECKED = ("drug", "drug_class")


@dataclass(frozen=True)
class Alert:
    """One finding, in the words the prescriber reads.

    ``code`` is stable for the same finding on the same chart (e.g.
    ``interaction:onc2012-21:29046:9997``): the signing step keys overrides by it, so an
    override given at composing still answers the same alert at signing, and a new finding
    needs its own. ``evidence`` names what the chart and the knowledge say (which allergy,
    which medication, which rule); ``source`` where a rule comes from.
    """

    kind: str
    severity: str
    title: str
    evidence: tuple[str, ...]
    action: str
    source: str | None
    needs_override: bool
    code: str

    @property
    def blocks_signing(self) -> bool:
        return self.severity == "blocking"

    def as_record(self) -> dict:
        """The alert as plain data, as the signed prescription keeps it (JSON)."""
        return {
            "kind": self.kind,
            "severity": self.severity,
            "title": self.title,
            "evidence": list(self.evidence),
            "action": self.action,
            "source": self.source,
            "needs_override": self.needs_override,
            "code": self.code,
        }


@dataclass(frozen=True)
class UnmatchedDrug:
    """A product the vendor offered that the drug knowledge cannot match by RxCUI: only its
    name is known, so it is checked for allergies by name and flagged as not checked for
    interactions."""

    name: str


@dataclass(frozen=True)
class AllergyFact:
    id: int
    substance: str
    kind: str
    rxcui: str | None
    class_code: str | None
    severity: str | None


@dataclass(frozen=True)
class ActiveDrug:
    """A medication on the list, or an open prescription not (yet) on it."""

    source: str  # "medication" or "prescription"
    id: int
    name: str
    rxcui: str | None


@dataclass(frozen=True)
class Measure:
    value: float
    taken_at: datetime


@dataclass(frozen=True)
class PatientContext:
    """What the checks need to know about the patient, read once per check."""

    patient_id: int
    birth_date: date
    age_years: int
    deceased: bool
    deceased_date: date | None
    no_known_allergies: bool
    allergies: tuple[AllergyFact, ...]
    active: tuple[ActiveDrug, ...]
    weight: Measure | None
    height: Measure | None
    as_of: datetime = field(default_factory=utcnow)

    @property
    def allergies_recorded(self) -> bool:
        return self.no_known_allergies or bool(self.allergies)

    @property
    def is_child(self) -> bool:
        return self.age_years < PAEDIATRIC_AGE_YEARS


def _latest(column, patient_id):
    """The newest non-empty value of a vital sign (and when it was taken) for the patient,
    as two scalar subqueries: read in the same statement as the patient."""
    newest = (
        select(VitalSigns.id)
        .where(
            VitalSigns.patient_id == patient_id,
            column.is_not(None),
            VitalSigns.entered_in_error.is_(False),
        )
        .order_by(VitalSigns.taken_at.desc(), VitalSigns.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    value = select(column).where(VitalSigns.id == newest).scalar_subquery()
    taken = select(VitalSigns.taken_at).where(VitalSigns.id == newest).scalar_subquery()
    return value, taken


@cache
def _statements():
    """The context's two statements, built once per process with bound parameters: building
    them took most of the context's time (the database's part is a few index lookups)."""
    patient_id = bindparam("patient_id")
    weight, weight_at = _latest(VitalSigns.weight_kg, patient_id)
    height, height_at = _latest(VitalSigns.height_cm, patient_id)
    head = (
        select(
            Patient.birth_date,
            Patient.status,
            Patient.deceased_date,
            NoKnownAllergies.patient_id.is_not(None),
            weight,
            weight_at,
            height,
            height_at,
        )
        .outerjoin(NoKnownAllergies, NoKnownAllergies.patient_id == Patient.id)
        .where(Patient.id == patient_id)
    )
    allergies_q = select(
        literal("allergy").label("row_kind"),
        Allergy.id.label("id"),
        Allergy.substance.label("name"),
        Allergy.rxnorm_code.label("code"),
        Allergy.drug_class_code.label("class_code"),
        Allergy.substance_kind.label("detail"),
        Allergy.severity.label("severity"),
    ).where(Allergy.patient_id == patient_id, Allergy.status == "active")
    medications_q = select(
        literal("medication"),
        Medication.id,
        Medication.drug,
        Medication.rxnorm_code,
        null(),
        null(),
        null(),
    ).where(
        Medication.patient_id == patient_id,
        Medication.status == "active",
        # The entry standing for the prescription a renewal renews (0: none).
        Medication.id != bindparam("excluded_medication"),
    )
    prescriptions_q = select(
        literal("prescription"),
        Prescription.id,
        Prescription.drug,
        Prescription.rxcui,
        null(),
        null(),
        null(),
    ).where(
        Prescription.patient_id == patient_id,
        Prescription.fhir_status.in_(OPEN_FHIR_STATUSES),
        # One already on the list is the list's medication (if still active there).
        Prescription.medication_id.is_(None),
        Prescription.id != bindparam("excluded"),
        Prescription.id != bindparam("renewed"),
    )
    return head, union_all(allergies_q, medications_q, prescriptions_q)


def patient_context(
    patient_id: int,
    *,
    today: date | None = None,
    excluding_prescription: int | None = None,
    renewed_prescription: int | None = None,
    excluding_medication: int | None = None,
) -> PatientContext | None:
    """The patient's side of the checks, in two queries: the patient with the no-known-
    allergies statement and the latest weight and height; then the active allergies, active
    medications and open prescriptions as one UNION ALL. None for an unknown patient.
    ``excluding_prescription`` leaves out the prescription being checked (a draft's own row);
    ``renewed_prescription`` and ``excluding_medication`` the prescription a renewal renews
    and the medication-list entry standing for it (``draft_context`` works them out).

    Open prescriptions already on the medication list (``medication_id``) are left out: the
    medication stands for them. Inactive and entered-in-error rows are left out.
    """
    head_statement, rows_statement = _statements()
    head = db.session.execute(head_statement, {"patient_id": patient_id}).first()
    if head is None:
        return None
    birth_date, status, deceased_date, nka, w, w_at, h, h_at = head
    rows = db.session.execute(
        rows_statement,
        {
            "patient_id": patient_id,
            "excluded": excluding_prescription or 0,
            "renewed": renewed_prescription or 0,
            "excluded_medication": excluding_medication or 0,
        },
    )
    allergies: list[AllergyFact] = []
    active: list[ActiveDrug] = []
    for row in rows:
        if row.row_kind == "allergy":
            allergies.append(
                AllergyFact(
                    id=row.id,
                    substance=row.name,
                    kind=row.detail,
                    rxcui=row.code,
                    class_code=row.class_code,
                    severity=row.severity,
                )
            )
        else:
            active.append(ActiveDrug(source=row.row_kind, id=row.id, name=row.name, rxcui=row.code))
    on_day = today or clinic_today()
    return PatientContext(
        patient_id=patient_id,
        birth_date=birth_date,
        age_years=age_on(birth_date, on_day),
        deceased=status == "deceased" or deceased_date is not None,
        deceased_date=deceased_date,
        no_known_allergies=bool(nka),
        allergies=tuple(sorted(allergies, key=lambda a: a.id)),
        active=tuple(sorted(active, key=lambda d: (d.source, d.id))),
        weight=Measure(w, w_at) if w is not None else None,
        height=Measure(h, h_at) if h is not None else None,
    )


def draft_context(draft: Prescription, *, today: date | None = None) -> PatientContext | None:
    """The context for checking ``draft``: the patient's, without the draft itself and,
    while it renews a prescription of the same product, without the renewed one and the
    medication-list entry standing for it (``portal.prescriptions.renewals``): a renewal is
    not a duplicate of the drug it continues. Any other active drug of the same ingredient or
    class still counts, and everything else is checked as for any prescription."""
    renewed = renewed_by(draft)
    medication_id = renewed.medication_id if renewed else None
    if medication_id is not None and _also_stands_for_another(medication_id, draft, renewed):
        medication_id = None  # renewed twice: the other renewal is a duplicate, say so
    return patient_context(
        draft.patient_id,
        today=today,
        excluding_prescription=draft.id,
        renewed_prescription=renewed.prescription.id if renewed else None,
        excluding_medication=medication_id,
    )


def _also_stands_for_another(medication_id: int, draft: Prescription, renewed) -> bool:
    """Whether the medication-list entry also stands for another open prescription than the
    renewed one, itself not renewed since by a renewal that still stands (signed, open): a
    prescription renewed twice. Then the entry stays in the context, and the second renewal
    is a duplicate of the first. A renewal cancelled or stopped since renews nothing."""
    later = aliased(Prescription)
    return (
        db.session.scalar(
            select(Prescription.id)
            .where(
                Prescription.patient_id == draft.patient_id,
                Prescription.medication_id == medication_id,
                Prescription.fhir_status.in_(OPEN_FHIR_STATUSES),
                Prescription.id.not_in((draft.id, renewed.prescription.id)),
                ~select(later.id)
                .where(
                    later.renews_prescription_id == Prescription.id,
                    later.signed_at.is_not(None),
                    later.fhir_status.in_(OPEN_FHIR_STATUSES),
                )
                .exists(),
            )
            .limit(1)
        )
        is not None
    )


# --- the checks -------------------------------------------------------------------------


def check_prescription(
    context: PatientContext,
    drug: DrugProduct | UnmatchedDrug,
    *,
    knowledge: DrugKnowledge | Callable[[], DrugKnowledge],
) -> list[Alert]:
    """Every alert for prescribing ``drug`` to the patient of ``context``, most severe first.

    ``knowledge`` is a ``DrugKnowledge``, or the function that loads one (e.g.
    ``portal.terminology.drugs.knowledge``): called here, so a catalog that cannot be loaded
    is caught like one that cannot be read.

    The patient checks come first and need no knowledge; everything else reads the knowledge
    and the interaction rules, and any error there becomes one blocking alert instead of a
    partial answer.
    """
    alerts = _patient_alerts(context)
    try:
        if not hasattr(knowledge, "product"):
            knowledge = knowledge()
        alerts.extend(_knowledge_alerts(context, drug, knowledge))
    except Exception as error:  # never fail open, whatever broke: block and say so
        alerts.append(_knowledge_unavailable(error))
    return sort_alerts(alerts)


def sort_alerts(alerts: list[Alert]) -> list[Alert]:
    """Most severe first; within a severity by kind then code, so the order is stable."""
    return sorted(alerts, key=lambda a: (SEVERITIES.index(a.severity), a.kind, a.code))


# Why a prescriber goes ahead despite an alert that needs a reason: the short list the
# compose page and the signing dialog offer (keys are stored with the prescription), with
# words of their own ("other" needs them) up to MAX_OVERRIDE_COMMENT characters.
OVERRIDE_REASONS: dict[str, str] = {
    "benefit_outweighs_risk": "Benefit outweighs the risk",
    "tolerated_before": "The patient has taken it before without a reaction",
    "will_monitor": "Will monitor (levels, labs or symptoms)",
    "dose_adjusted": "Dose adjusted for it",
    "allergy_not_to_this": "The recorded allergy is not to this drug (intolerance, or wrong)",
    "allergies_reviewed": "Allergies reviewed with the patient: none to record now",
    "other": "Other (say why)",
}
MAX_OVERRIDE_COMMENT = 500


def needs_override(alerts: list[Alert]) -> list[Alert]:
    """The alerts that need a reason before signing."""
    return [alert for alert in alerts if alert.needs_override]


def _knowledge_unavailable(error: Exception) -> Alert:
    return Alert(
        kind=KNOWLEDGE_UNAVAILABLE,
        severity="blocking",
        title="Safety checks could not run",
        evidence=(
            "The drug knowledge or the interaction rules could not be read "
            f"({type(error).__name__}).",
        ),
        action="Do not sign until the checks run again; tell the clinic's administrator.",
        source=None,
        needs_override=False,
        code=KNOWLEDGE_UNAVAILABLE,
    )


def _patient_alerts(context: PatientContext) -> list[Alert]:
    alerts: list[Alert] = []
    if context.deceased:
        when = f" on {context.deceased_date.isoformat()}" if context.deceased_date else ""
        alerts.append(
            Alert(
                kind=DECEASED,
                severity="blocking",
                title="The patient is recorded as deceased",
                evidence=(f"The registry records the patient as deceased{when}.",),
                action=(
                    "No prescription can be signed. "
                    "If the record is wrong, correct it in the registry."
                ),
                source=None,
                needs_override=False,
                code=DECEASED,
            )
        )
    if context.is_child:
        since = context.as_of - RECENT_MEASURE
        missing = [
            label
            for label, measure in (("weight", context.weight), ("height", context.height))
            if measure is None or measure.taken_at < since
        ]
        if missing:
            needed = " and ".join(missing)
            last = [
                f"Last {label}: {measure.value:g} {unit} on {measure.taken_at.date().isoformat()}."
                if measure
                else f"No {label} recorded."
                for label, unit, measure in (
                    ("weight", "kg", context.weight),
                    ("height", "cm", context.height),
                )
            ]
            alerts.append(
                Alert(
                    kind=PAEDIATRIC_WEIGHT_MISSING,
                    severity="blocking",
                    title=f"A current {needed} is needed (patient aged {context.age_years})",
                    evidence=(
                        f"The patient is {context.age_years} years old "
                        f"(under {PAEDIATRIC_AGE_YEARS}).",
                        *last,
                    ),
                    action=f"Record the {needed} (measured in the last 30 days) before signing.",
                    source=None,
                    needs_override=False,
                    code=PAEDIATRIC_WEIGHT_MISSING,
                )
            )
    return alerts


@dataclass(frozen=True)
class _Resolved:
    """A drug reduced to its ingredients (RxCUI -> name), as the checks compare them."""

    name: str
    ingredients: dict[str, str]


def _resolve_product(drug: DrugProduct) -> _Resolved:
    return _Resolved(
        name=drug.name,
        ingredients=dict(zip(drug.ingredient_rxcuis, drug.ingredient_names, strict=False)),
    )


def _resolve_active(
    item: ActiveDrug, knowledge: DrugKnowledge, rules: interaction_rules.InteractionRules
) -> _Resolved | None:
    """An active medication's ingredients: its code as a product (a prescription's SCD/SBD),
    else its code as an ingredient the knowledge or the rules know (the medication list codes
    ingredients), else its name as an ingredient. None when nothing matches: a code nobody
    knows (a product of another catalog) is not taken for an ingredient, or it would pass
    every check unnoticed."""
    if item.rxcui:
        product = knowledge.product(item.rxcui)
        if product is not None:
            return _resolve_product(product)
        if (
            item.rxcui in rules.index
            or knowledge.classes_of(item.rxcui)
            or knowledge.allergy_groups_of(item.rxcui)
        ):
            return _Resolved(name=item.name, ingredients={item.rxcui: item.name})
    code = knowledge.ingredient_by_name(item.name)
    if code is None:
        first_word = item.name.split(" ", 1)[0] if item.name else ""
        code = knowledge.ingredient_by_name(first_word) if first_word else None
    return _Resolved(name=item.name, ingredients={code: item.name}) if code else None


def _knowledge_alerts(
    context: PatientContext, drug: DrugProduct | UnmatchedDrug, knowledge: DrugKnowledge
) -> list[Alert]:
    rules = interaction_rules.shipped_rules()  # read first: unreadable rules block early
    if isinstance(drug, UnmatchedDrug):
        return _unmatched_alerts(context, drug, knowledge)
    new = _resolve_product(drug)
    alerts = _allergy_alerts(context, new, knowledge)
    actives: list[tuple[ActiveDrug, _Resolved]] = []
    uncoded: list[str] = []
    for item in context.active:
        resolved = _resolve_active(item, knowledge, rules)
        if resolved is None:
            uncoded.append(item.name)
        else:
            actives.append((item, resolved))
    alerts.extend(_duplicate_alerts(new, actives, knowledge))
    alerts.extend(_interaction_alerts(new, actives, rules))
    if uncoded:
        alerts.append(
            Alert(
                kind=UNMATCHED_PRODUCT,
                severity="low",
                title="Some active medications are not coded: not checked",
                evidence=tuple(f"Not coded: {name}." for name in uncoded),
                action=(
                    "Code these medications on the medication list (pick them from the drug "
                    "list) so they are checked."
                ),
                source=None,
                needs_override=False,
                code="unmatched_product:active",
            )
        )
    return alerts


def _allergy_alerts(
    context: PatientContext, new: _Resolved, knowledge: DrugKnowledge
) -> list[Alert]:
    if not context.allergies_recorded:
        return [
            Alert(
                kind=ALLERGIES_NOT_RECORDED,
                severity="high",
                title="Allergies not recorded",
                evidence=("The chart has no allergy and no 'no known allergies' statement.",),
                action=(
                    "Ask the patient and record the allergies (or 'no known allergies'); "
                    "or acknowledge why not."
                ),
                source=None,
                needs_override=True,
                code=ALLERGIES_NOT_RECORDED,
            )
        ]
    # The drug's allergy groups, and the groups that cross-react with them.
    groups: dict[str, tuple[str, object]] = {}  # group code -> (ingredient name, group)
    for code, name in new.ingredients.items():
        for group in knowledge.allergy_groups_of(code):
            groups.setdefault(group.code, (name, group))
    cross: dict[str, _Crossing] = {}  # the cross-reacting group's code -> what joins them
    for group_code, (name, group) in groups.items():
        # A knowledge may say more of each pair (its severity, note, source): rxdrugs'
        # shipped one does, through ``cross_sensitivities``; the protocol only names them.
        pairs = getattr(knowledge, "cross_sensitivities", None)
        details = {
            (pair.classes[1] if pair.classes[0] == group_code else pair.classes[0]): pair
            for pair in (pairs(group_code) if pairs else ())
        }
        for other in knowledge.cross_sensitive_groups(group_code):
            if other.code not in groups and other.code not in cross:
                pair = details.get(other.code)
                cross[other.code] = _Crossing(
                    ingredient_name=name,
                    own=group,
                    other=other,
                    severity=getattr(pair, "severity", None) if pair else None,
                    note=getattr(pair, "note", None) if pair else None,
                    source=getattr(pair, "source", None) if pair else None,
                )

    alerts: list[Alert] = []
    for allergy in context.allergies:
        if allergy.kind not in ALLERGY_KINDS_CHECKED:
            continue
        allergy_code = allergy.rxcui or (
            knowledge.ingredient_by_name(allergy.substance) if allergy.kind == "drug" else None
        )
        # The allergy's own groups: its class (coded, or a class's name typed before classes
        # were coded: "sulfa", "Penicillins"), or the groups of its ingredient.
        class_code = allergy.class_code
        if class_code is None and allergy_code is None:
            named = allergy_classes.find_class(allergy.substance)
            class_code = named.code if named else None
        allergy_groups = {class_code} if class_code else set()
        if allergy_code:
            allergy_groups |= {g.code for g in knowledge.allergy_groups_of(allergy_code)}
        recorded = _allergy_words(allergy)
        if allergy_code and allergy_code in new.ingredients:
            alerts.append(
                _allergy_alert(
                    allergy,
                    f"{new.ingredients[allergy_code]} is the ingredient of the recorded allergy.",
                    recorded,
                    code=f"allergy:{allergy.id}:{allergy_code}",
                )
            )
            continue
        shared = sorted(allergy_groups & set(groups))
        if shared:
            name, group = groups[shared[0]]
            alerts.append(
                _allergy_alert(
                    allergy,
                    f"{name} belongs to {group.name}, the group of the recorded allergy.",
                    recorded,
                    code=f"allergy:{allergy.id}:{shared[0]}",
                )
            )
            continue
        crossing = sorted(allergy_groups & set(cross))
        if crossing:
            found = cross[crossing[0]]
            own, other = found.own, found.other
            alerts.append(
                Alert(
                    kind=CROSS_SENSITIVITY,
                    # Always below an allergy within the group ("high"): the knowledge may
                    # rate a weak crossing lower still, never higher.
                    severity="low" if found.severity == "low" else "moderate",
                    title=f"Possible cross-sensitivity: {own.name} and {other.name}",
                    evidence=(
                        recorded,
                        f"{found.ingredient_name} belongs to {own.name}, which can cross-react "
                        f"with {other.name}.",
                        *((found.note,) if found.note else ()),
                    ),
                    action=(
                        "Check what the reaction was: choose another drug if it was severe "
                        "(anaphylaxis, SJS/TEN), or prescribe with monitoring."
                    ),
                    source=found.source
                    or "Allergy groups and cross-sensitivities of the drug knowledge.",
                    needs_override=False,
                    code=f"cross_sensitivity:{allergy.id}:{crossing[0]}",
                )
            )
    return alerts


@dataclass(frozen=True)
class _Crossing:
    """A group the new drug's group cross-reacts with, and what the knowledge says of it."""

    ingredient_name: str
    own: object
    other: object
    severity: str | None
    note: str | None
    source: str | None


def _allergy_words(allergy: AllergyFact) -> str:
    severity = f" ({allergy.severity})" if allergy.severity else ""
    what = "drug class" if allergy.kind == "drug_class" else "drug"
    return f"Recorded allergy to the {what} {allergy.substance}{severity}."


def _allergy_alert(allergy: AllergyFact, why: str, recorded: str, *, code: str) -> Alert:
    return Alert(
        kind=ALLERGY,
        severity="high",
        title=f"Allergy: {allergy.substance}",
        evidence=(recorded, why),
        action=(
            "Choose another drug. If the allergy is wrong or the benefit outweighs the risk, "
            "give the reason."
        ),
        source="The patient's allergy list.",
        needs_override=True,
        code=code,
    )


def _duplicate_alerts(
    new: _Resolved, actives: list[tuple[ActiveDrug, _Resolved]], knowledge: DrugKnowledge
) -> list[Alert]:
    classes: dict[str, tuple[str, object]] = {}  # class code -> (ingredient name, class)
    for code, name in new.ingredients.items():
        for therapeutic_class in knowledge.classes_of(code):
            # An "Other ..." class (catch_all) gathers drugs that share little: two of its
            # members are not duplicate therapy.
            if not getattr(therapeutic_class, "catch_all", False):
                classes.setdefault(therapeutic_class.code, (name, therapeutic_class))
    alerts: list[Alert] = []
    for item, resolved in actives:
        same = sorted(set(new.ingredients) & set(resolved.ingredients))
        if same:
            names = ", ".join(new.ingredients[c] for c in same)
            alerts.append(
                Alert(
                    kind=DUPLICATE_INGREDIENT,
                    severity="moderate",
                    title=f"Duplicate therapy: {names}",
                    evidence=(f"Already {_where(item)}: {item.name} (contains {names}).",),
                    action=(
                        "If this renews or replaces it, stop or update the listed one; do not "
                        "give two products with the same ingredient."
                    ),
                    source=None,
                    needs_override=False,
                    code=f"duplicate_ingredient:{item.source}:{item.id}",
                )
            )
            continue
        for other_code in resolved.ingredients:
            shared = sorted({c.code for c in knowledge.classes_of(other_code)} & set(classes))
            if shared:
                name, therapeutic_class = classes[shared[0]]
                alerts.append(
                    Alert(
                        kind=DUPLICATE_CLASS,
                        severity="low",
                        title=f"Same class: {therapeutic_class.name}",
                        evidence=(
                            f"Already {_where(item)}: {item.name}.",
                            f"{name} and {resolved.ingredients[other_code]} are both "
                            f"{therapeutic_class.name} ({_class_label(therapeutic_class)}).",
                        ),
                        action="Check that two drugs of the same class are intended.",
                        source=None,
                        needs_override=False,
                        code=f"duplicate_class:{item.source}:{item.id}:{shared[0]}",
                    )
                )
                break
    return alerts


def _class_label(therapeutic_class) -> str:
    """ "ATC C10AA": the classification's name when the class says it."""
    system = getattr(therapeutic_class, "system", None)
    return f"{system} {therapeutic_class.code}" if system else therapeutic_class.code


def _where(item: ActiveDrug) -> str:
    return (
        "on the medication list"
        if item.source == "medication"
        else "prescribed (open prescription)"
    )


def _interaction_alerts(
    new: _Resolved,
    actives: list[tuple[ActiveDrug, _Resolved]],
    rules: interaction_rules.InteractionRules,
) -> list[Alert]:
    alerts: list[Alert] = []
    for item, resolved in actives:
        for found in rules.between(new.ingredients, resolved.ingredients):
            rule = found.rule
            alerts.append(
                Alert(
                    kind=INTERACTION,
                    severity=rule.severity,
                    title=f"Interaction: {found.ingredient_name} and {found.other_ingredient_name}",
                    evidence=(
                        f"Already {_where(item)}: {item.name}.",
                        f"{rule.a.name} with {rule.b.name}: {rule.mechanism}",
                    ),
                    action=rule.management,
                    source=rule.source,
                    needs_override=rule.severity == "high",
                    code=f"interaction:{rule.id}:{found.ingredient}:{found.other_ingredient}:{item.source}:{item.id}",
                )
            )
    return alerts


def _unmatched_alerts(
    context: PatientContext, drug: UnmatchedDrug, knowledge: DrugKnowledge
) -> list[Alert]:
    """A product known only by name: allergies by name, and a note that nothing else ran."""
    code = knowledge.ingredient_by_name(drug.name)
    if code is None and drug.name:
        code = knowledge.ingredient_by_name(drug.name.split(" ", 1)[0])
    alerts = _allergy_alerts(
        context, _Resolved(name=drug.name, ingredients={code: drug.name} if code else {}), knowledge
    )
    # With no code at all, look for the allergy's substance as words of the product's name.
    if code is None:
        for allergy in context.allergies:
            substance = allergy.substance.strip().lower()
            if (
                allergy.kind == "drug"
                and substance
                and re.search(rf"\b{re.escape(substance)}\b", drug.name.lower())
            ):
                alerts.append(
                    _allergy_alert(
                        allergy,
                        f"The product's name ({drug.name}) contains {allergy.substance}.",
                        _allergy_words(allergy),
                        code=f"allergy:{allergy.id}:name",
                    )
                )
    alerts.append(
        Alert(
            kind=UNMATCHED_PRODUCT,
            severity="moderate",
            title="Interaction checking is limited for this product",
            evidence=(
                f"{drug.name} could not be matched to the drug knowledge by RxCUI.",
                "It was checked against allergies by name only: "
                "not for interactions or duplicate therapy.",
            ),
            action="Prefer a product that matches, or check interactions yourself.",
            source=None,
            needs_override=False,
            code="unmatched_product:new",
        )
    )
    return alerts
