"""Use cases of composing a prescription: start a draft (from a visit, the chart, a
favourite or a renewal), choose its drug, autosave it, discard it; drug and pharmacy search;
the safety panel; favourites.

A draft is a ``Prescription`` row (origin "portal", state draft) kept server-side as the
prescriber works, like a note: only its prescriber opens or changes it (anyone else gets a
404, as for an unknown id), every save moves its ``version`` on, and a save made from an
older version is refused in words (409) so two tabs never overwrite each other silently.
Nothing here sends anything: the signing step reads the draft, checks it again and queues it.

What the prescriber typed is kept as typed, valid or not (autosave must lose nothing); the
columns the signing step relies on are only the ones the rules accepted: ``directions`` is
set only when the directions passed the SIG rules, and the signing step validates the whole
draft again from ``sig`` and the detail columns.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import select, update
from werkzeug.exceptions import NotFound

from portal.audit import services as audit
from portal.charting.models import Encounter, Problem
from portal.extensions import db
from portal.integrations import outbox
from portal.integrations.base import IntegrationError
from portal.integrations.models import OutboxMessage
from portal.integrations.settings import enabled_connector
from portal.patients.models import Patient
from portal.patients.services import get_patient_for, get_row_of_patient, lock_patient
from portal.prescriptions import sig as rules
from portal.prescriptions import states
from portal.prescriptions.inbox.answers import FROZEN_ELEMENTS, FROZEN_NOTE, answering
from portal.prescriptions.models import PatientPharmacy, Prescription, PrescriptionFavorite
from portal.prescriptions.safety import (
    MAX_OVERRIDE_COMMENT,
    OVERRIDE_REASONS,
    Alert,
    UnmatchedDrug,
    check_prescription,
    draft_context,
    needs_override,
)
from portal.prescriptions.services import (
    _remember,
    eprescribing_connector_name,
    patient_snapshot,
    vendor_id,
)
from portal.terminology.drugs import DrugProduct, KnowledgeUnavailable, knowledge
from portal.timeutil import utcnow
from portal.transaction import Conflict, Refused, end_read, use_case

log = logging.getLogger(__name__)

CATEGORY = "e-prescribing"
# The vendor refuses shorter searches; the local catalog answers from the first letters.
MIN_VENDOR_SEARCH = 3
MIN_LOCAL_SEARCH = 2
SEARCH_LIMIT = 20

MAX_FAVORITE_LABEL = 120


class DraftConflict(Conflict):
    """The draft was saved meanwhile from another tab or window: the newer version wins
    until the prescriber reloads; what they typed is kept on their page."""


class NotADraft(Conflict):
    """The prescription was signed meanwhile (another tab, the signing dialog): it is no
    longer composed here."""

    def __init__(self, patient_id: int):
        super().__init__("This prescription is signed: it can no longer be changed.")
        self.patient_id = patient_id


# --- loading, with the object-level checks ---------------------------------------------------


def get_draft_for(actor, draft_id: int) -> Prescription:
    """The actor's own portal draft, or 404: another patient's or another prescriber's draft
    is as unknown as a missing id (a draft is its prescriber's work in progress)."""
    return draft_and_patient(actor, draft_id)[0]


def draft_and_patient(actor, draft_id: int) -> tuple[Prescription, Patient]:
    """``get_draft_for`` and the draft's patient, loaded once."""
    draft = db.session.get(Prescription, draft_id)
    if draft is None or draft.origin != "portal" or draft.prescriber_id != actor.id:
        raise NotFound()
    patient = get_patient_for(actor, draft.patient_id)
    if draft.state != states.DRAFT:
        raise NotADraft(draft.patient_id)
    return draft, patient


def _bump_version(draft: Prescription, version: int | None) -> None:
    """Move the draft's version on, only from the version the prescriber's page holds (None:
    from the stored one, for a deliberate click that replaces the product); the database
    decides a race between two saves (one UPDATE ... WHERE version = ...)."""
    if version is None:
        version = draft.version  # an explicit click (a product, a favourite): no page copy
    elif version != draft.version:
        raise DraftConflict(
            "This draft was changed in another tab or window since you opened it. "
            "Reload to see the saved version; what you typed here is still on this page."
        )
    moved = db.session.execute(
        update(Prescription)
        .where(
            Prescription.id == draft.id,
            Prescription.version == version,
            Prescription.state == states.DRAFT,
        )
        .values(version=version + 1, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    if moved != 1:
        raise DraftConflict(
            "This draft was changed in another tab or window a moment ago. Reload to see "
            "the saved version; what you typed here is still on this page."
        )
    db.session.refresh(draft)


def _refuse_if_approving(draft: Prescription, changes: dict | None = None) -> None:
    """An approval of a pharmacy's request is the original as the pharmacy will fill it:
    refuse a change of a frozen element (``changes``: element -> new value; None: any change
    of the product or the pharmacy). An element the original left empty (written in the
    vendor's screen) may be filled in."""
    if answering(draft.id) is None:
        return
    if changes is None:
        raise Refused(FROZEN_NOTE)
    for name, new in changes.items():
        old = getattr(draft, name)
        if old in (None, "") or name not in FROZEN_ELEMENTS:
            continue
        if new is None or str(new) != str(old):
            raise Refused(FROZEN_NOTE, name)


# --- starting a draft ------------------------------------------------------------------------


def _new_draft(actor, patient: Patient, encounter_id: int | None) -> Prescription:
    if patient.status == "deceased":
        raise Refused("The patient is recorded as deceased: no prescription can be written.")
    if encounter_id is not None:
        get_row_of_patient(patient, Encounter, encounter_id)  # another patient's visit: 404
    now = utcnow()
    draft = Prescription(
        patient_id=patient.id,
        origin="portal",
        state=states.DRAFT,
        encounter_id=encounter_id,
        prescriber_id=actor.id,
        drug="",
        fhir_status="draft",
        created_at=now,
        updated_at=now,
        version=1,
    )
    db.session.add(draft)
    db.session.flush()
    return draft


def start_draft(actor, patient_id: int, encounter_id: int | None = None) -> Prescription:
    """A new empty draft for the patient (from a visit when ``encounter_id`` is given), the
    actor its prescriber."""
    with use_case():
        patient = get_patient_for(actor, patient_id)
        draft = _new_draft(actor, patient, encounter_id)
        primary = _primary_pharmacy(patient.id)
        if primary is not None:  # the patient's primary pharmacy, until another is chosen
            draft.pharmacy_id, draft.pharmacy_name = primary.pharmacy_id, primary.name
        audit.record(
            actor, "prescription.draft_start", patient=patient, obj=draft, category=CATEGORY
        )
    return draft


def renew(actor, prescription_id: int) -> Prescription:
    """A new draft copied from one of the patient's prescriptions (any path, any state but a
    draft): the drug, directions, quantity, refills, substitution, diagnoses and pharmacy.
    The note to the pharmacist and the dates start afresh."""
    with use_case():
        source = db.session.get(Prescription, prescription_id)
        if source is None:
            raise NotFound()
        patient = get_patient_for(actor, source.patient_id)
        draft = renewal_draft(actor, patient, source)
        audit.record(
            actor,
            "prescription.renew_start",
            patient=patient,
            obj=draft,
            detail=f"from prescription {source.id}",
            category=CATEGORY,
        )
    return draft


def renewal_draft(actor, patient: Patient, source: Prescription) -> Prescription:
    """The work of ``renew`` (flushes only; no audit): a new draft of ``actor`` copied from
    ``source``, a prescription of ``patient`` the caller has loaded, linked to it
    (``renews_prescription_id``: the checks do not take the renewal for a duplicate of what
    it continues, and signing lists the drug once; ``portal.prescriptions.renewals``). The
    Rx inbox's approval of a pharmacy's renewal request starts from it too."""
    if source.state == states.DRAFT:
        raise Refused("A draft is finished, not renewed.")
    draft = _new_draft(actor, patient, None)
    draft.renews_prescription_id = source.id
    for name in (
        "drug",
        "rxcui",
        "ndc",
        "dispensable_drug_id",
        "strength",
        "dose_form",
        "route",
        "schedule",
        "ingredient_rxcuis",
        "sig",
        "directions",
        "quantity",
        "dispense_unit",
        "days_supply",
        "refills",
        "substitution_allowed",
        "diagnoses",
        "pharmacy_id",
        "pharmacy_name",
    ):
        setattr(draft, name, getattr(source, name))
    if source.origin == "vendor" and source.rxcui and not source.strength:
        _fill_from_catalog(draft, source.rxcui)
    db.session.flush()
    return draft


def _fill_from_catalog(draft: Prescription, rxcui: str) -> None:
    """The product's facts from the knowledge, when it knows the RxCUI (a vendor-written
    prescription carries only its name and codes)."""
    try:
        product = knowledge().product(rxcui)
    except KnowledgeUnavailable:
        return
    if product is not None:
        _apply_product(draft, product)


def discard_draft(actor, draft_id: int) -> int:
    """Delete the draft (it was never signed: nothing of it is kept but the audit event).
    Returns the patient's id."""
    with use_case():
        draft = get_draft_for(actor, draft_id)
        patient_id = draft.patient_id
        audit.record(
            actor,
            "prescription.draft_discard",
            patient_id=patient_id,
            object_type="prescription",
            object_id=draft.id,
            category=CATEGORY,
        )
        db.session.delete(draft)
    return patient_id


# --- the compose page ------------------------------------------------------------------------


@dataclass
class ComposePage:
    """What the compose page shows besides the forms."""

    draft: Prescription
    patient: Patient
    age_years: int | None
    weight_kg: float | None
    connector_title: str | None
    favorites: list[PrescriptionFavorite]
    diagnosis_choices: list[tuple[str, str]]
    alerts: list[Alert] = field(default_factory=list)
    # The patient's preferred pharmacies at the enabled connector, the primary one first.
    preferred_pharmacies: list[PatientPharmacy] = field(default_factory=list)
    # It approves a pharmacy's request: frozen but for the refills (the page says so).
    approving: bool = False
    # The prescription it renews (the page says "Renews the prescription of <date>").
    renews: Prescription | None = None


def open_draft(actor, draft_id: int) -> ComposePage:
    """The compose page's content for the draft's prescriber; the view of the chart it shows
    (allergies and medications through the safety panel) is audited."""
    with use_case():
        draft, patient = draft_and_patient(actor, draft_id)
        audit.record(
            actor, "prescription.draft_view", patient=patient, obj=draft, category=CATEGORY
        )
    context = draft_context(draft)
    page = ComposePage(
        draft=draft,
        patient=patient,
        age_years=context.age_years if context else None,
        weight_kg=context.weight.value if context and context.weight else None,
        connector_title=_connector_title(),
        favorites=favorites_of(actor),
        diagnosis_choices=diagnosis_choices(patient.id),
        alerts=_alerts_for(draft, context),
        preferred_pharmacies=preferred_pharmacies(patient.id),
        approving=answering(draft.id) is not None,
        renews=(
            db.session.get(Prescription, draft.renews_prescription_id)
            if draft.renews_prescription_id
            else None
        ),
    )
    return page


def _connector_title() -> str | None:
    name = eprescribing_connector_name()
    connector = enabled_connector(name) if name else None
    return connector.title if connector is not None else None


def diagnosis_choices(patient_id: int) -> list[tuple[str, str]]:
    """The patient's active problems as (ICD-10-CM code, "code description") choices."""
    rows = db.session.execute(
        select(Problem.icd10_code, Problem.description)
        .where(Problem.patient_id == patient_id, Problem.status == "active")
        .order_by(Problem.created_at)
    ).all()
    seen: dict[str, str] = {}
    for code, description in rows:
        seen.setdefault(code, f"{code} {description}")
    return list(seen.items())


def safety_alerts(actor, draft_id: int) -> list[Alert]:
    """The safety checks for the draft as it stands (read only; the page that shows them
    was audited when opened)."""
    draft = get_draft_for(actor, draft_id)
    return _alerts_for(draft, draft_context(draft))


def _alerts_for(draft: Prescription, context) -> list[Alert]:
    if not draft.drug or context is None:
        return []
    drug: DrugProduct | UnmatchedDrug | None = None
    if draft.rxcui:
        try:
            drug = knowledge().product(draft.rxcui)
        except KnowledgeUnavailable:
            drug = None  # check_prescription reports the knowledge as unavailable itself
    if drug is None:
        drug = UnmatchedDrug(draft.drug)
    return check_prescription(context, drug, knowledge=knowledge)


def stored_overrides(draft: Prescription) -> dict[str, dict]:
    """The override reasons kept on the draft, by alert code."""
    try:
        rows = json.loads(draft.overrides or "[]")
    except ValueError:
        return {}
    return {row["code"]: row for row in rows if isinstance(row, dict) and "code" in row}


# --- drug search and choice -------------------------------------------------------------------


@dataclass(frozen=True)
class DrugChoice:
    """One search result: ``token`` names it for the choice ("rxcui:…" from the catalog,
    "vendor:…" the vendor's DispensableDrugId)."""

    token: str
    name: str
    strength: str | None
    dose_form: str | None
    route: str | None
    schedule: int | None
    matched: bool  # known to the drug knowledge by RxCUI: every check runs on it


@dataclass
class DrugSearch:
    choices: list[DrugChoice]
    source: str  # "catalog" or the vendor's title
    note: str | None = None


def _local_choices(text: str) -> list[DrugChoice]:
    return [
        DrugChoice(
            token=f"rxcui:{product.rxcui}",
            name=product.name,
            strength=product.strength,
            dose_form=product.dose_form,
            route=product.route,
            schedule=product.schedule,
            matched=True,
        )
        for product in knowledge().search(text, limit=SEARCH_LIMIT)
    ]


def _schedule(value) -> int | None:
    """The vendor's DEA schedule ("2", "II", 2, "0" or empty) as 2..5, or None."""
    roman = {"II": 2, "III": 3, "IV": 4, "V": 5}
    text = str(value or "").strip().upper().removeprefix("C-").removeprefix("C")
    if text in roman:
        return roman[text]
    return int(text) if text.isdigit() and 2 <= int(text) <= 5 else None


def stricter_schedule(*schedules: int | None) -> int | None:
    """The strictest of the DEA schedules given (the lowest number; II is stricter than
    V), or None when none is: the catalog and the vendor may disagree, and a controlled
    substance is never treated as a less controlled one."""
    known = [schedule for schedule in schedules if schedule is not None]
    return min(known) if known else None


def search_drugs(actor, text: str) -> DrugSearch:
    """Products matching ``text``: the vendor's when a connector is enabled (its id is what
    a send needs), each matched to the drug knowledge by RxCUI; else the shipped catalog.

    The vendor unreachable: the catalog answers, with a note saying so (never silently).
    The knowledge unreadable: refused in words (there is nothing safe to offer)."""
    text = " ".join((text or "").split())[:100]
    if len(text) < MIN_LOCAL_SEARCH:
        return DrugSearch([], "catalog", None)
    name = eprescribing_connector_name()
    connector = enabled_connector(name) if name else None
    try:
        drugs = knowledge()
    except KnowledgeUnavailable as error:
        raise Refused(
            "The drug catalog could not be read, so no drug can be chosen or checked. "
            "Tell the clinic's administrator."
        ) from error
    if connector is None or not hasattr(connector, "search_drugs"):
        return DrugSearch(_local_choices(text), "catalog")
    if len(text) < MIN_VENDOR_SEARCH:
        return DrugSearch([], connector.title, "Type at least 3 letters.")
    clinician = vendor_id(name, "clinician", actor.id)
    end_read()  # no transaction is held while the vendor answers
    try:
        items = connector.search_drugs(text, clinician_id=clinician, max_pages=2)
    except IntegrationError as error:
        log.warning("drug search at %s failed: %s", name, type(error).__name__)
        return DrugSearch(
            _local_choices(text),
            "catalog",
            f"{connector.title} could not be reached: showing the clinic's own catalog. "
            "A product chosen from it can be printed; search again to send it electronically.",
        )
    choices = []
    for item in items[:SEARCH_LIMIT]:
        if item.get("dispensable_drug_id") is None:
            continue
        product = drugs.product(str(item.get("rxcui") or ""))
        choices.append(
            DrugChoice(
                token=f"vendor:{item['dispensable_drug_id']}",
                name=item.get("display_name") or "",
                strength=item.get("strength"),
                dose_form=item.get("dose_form"),
                route=item.get("route"),
                schedule=stricter_schedule(
                    product.schedule if product else None, _schedule(item.get("schedule"))
                ),
                matched=product is not None,
            )
        )
    return DrugSearch(choices, connector.title)


def _apply_product(draft: Prescription, product: DrugProduct) -> None:
    draft.drug = product.name
    draft.rxcui = product.rxcui
    draft.ndc = product.ndc
    draft.strength = product.strength
    draft.dose_form = product.dose_form
    draft.route = product.route
    draft.schedule = product.schedule
    draft.ingredient_rxcuis = ",".join(product.ingredient_rxcuis)


def _resolve(actor, token: str) -> dict:
    """The chosen product's facts, read again on the server (never taken from the page):
    from the catalog by RxCUI, or from the vendor by its id (and matched by RxCUI)."""
    kind, _, value = (token or "").partition(":")
    value = value.strip()
    if kind == "rxcui" and value:
        product = knowledge().product(value)
        if product is None:
            raise Refused("That product is not in the catalog: search again.", "drug")
        return {"product": product, "dispensable_drug_id": None}
    if kind == "vendor" and value.isdigit():
        name = eprescribing_connector_name()
        connector = enabled_connector(name) if name else None
        if connector is None or not hasattr(connector, "select_drug"):
            raise Refused("E-prescribing is not switched on: search the catalog.", "drug")
        clinician = vendor_id(name, "clinician", actor.id)
        end_read()
        try:
            item = connector.select_drug(dispensable_drug_id=value, clinician_id=clinician)
        except IntegrationError as error:
            raise Refused(
                f"{connector.title} could not be reached to confirm the product: try again.",
                "drug",
            ) from error
        product = knowledge().product(str(item.get("rxcui") or ""))
        return {"product": product, "dispensable_drug_id": value, "vendor": item}
    raise Refused("Choose a product from the search results.", "drug")


def choose_drug(actor, draft_id: int, token: str, version: int | None) -> Prescription:
    """Put the chosen product on the draft (a new dose form clears the checked directions:
    they are checked against the new product's form when next saved)."""
    resolved = _resolve(actor, token)
    with use_case():
        draft = get_draft_for(actor, draft_id)
        _refuse_if_approving(draft)
        _bump_version(draft, version)
        _set_drug(draft, resolved)
        audit.record(
            actor,
            "prescription.draft_drug",
            patient_id=draft.patient_id,
            obj=draft,
            detail=f"rxcui {draft.rxcui}" if draft.rxcui else "unmatched product",
            category=CATEGORY,
        )
    return draft


def _set_drug(draft: Prescription, resolved: dict) -> None:
    product: DrugProduct | None = resolved["product"]
    vendor = resolved.get("vendor")
    old_form = draft.dose_form
    if product is not None:
        _apply_product(draft, product)
    if vendor is not None:
        # The vendor's words name what will be sent; a matched product keeps our codes
        # for the checks (the ingredients, the schedule).
        draft.drug = vendor.get("display_name") or draft.drug
        draft.ndc = vendor.get("ndc") or draft.ndc
        draft.strength = vendor.get("strength") or draft.strength
        draft.dose_form = vendor.get("dose_form") or draft.dose_form
        draft.route = vendor.get("route") or draft.route
        if product is None:
            draft.rxcui = vendor.get("rxcui") or None
            draft.ingredient_rxcuis = None
        draft.schedule = stricter_schedule(
            product.schedule if product is not None else None, _schedule(vendor.get("schedule"))
        )
    draft.dispensable_drug_id = resolved.get("dispensable_drug_id")
    if draft.dose_form != old_form:
        _forget_directions(draft)


def _forget_directions(draft: Prescription) -> None:
    """The dose form changed: the checked directions were checked against another form, so
    they go (the typed text stays in ``sig`` for the page); a structured SIG's unit goes
    too when the new form does not take it (an oral liquid is dosed in mL)."""
    draft.directions = None
    try:
        fields = json.loads(draft.sig or "null")
    except ValueError:
        return
    if not isinstance(fields, dict):
        return
    unit = fields.get("dose_unit")
    if unit and rules.is_oral_liquid(draft.dose_form, draft.route) and unit != "mL":
        fields["dose_unit"] = ""
        draft.sig = json.dumps(fields, default=str, sort_keys=True)


def is_matched(draft: Prescription) -> bool:
    """Whether the draft's product is known to the drug knowledge (every check runs)."""
    if not draft.rxcui:
        return False
    try:
        return knowledge().product(draft.rxcui) is not None
    except KnowledgeUnavailable:
        return False


# --- autosave --------------------------------------------------------------------------------


@dataclass
class DraftInput:
    """What the compose page holds, as typed (valid or not) except where said."""

    sig_fields: dict  # the SIG builder's fields, write_out and the written-out text
    directions: str | None  # the checked directions; None while they do not pass the rules
    quantity: str
    dispense_unit: str
    days_supply: int | None
    refills: str
    dispense_as_written: bool
    pharmacist_note: str
    effective_on: date | None
    diagnosis_codes: list[str]
    overrides: list[dict]  # {"code", "reason", "comment"} for the alerts shown


def _clip(text: str | None, length: int) -> str | None:
    text = (text or "").strip()
    return text[:length] or None


def save_draft(actor, draft_id: int, version: int | None, typed: DraftInput) -> Prescription:
    """Keep what the prescriber typed on the draft (autosave, or "Save draft")."""
    with use_case():
        draft = get_draft_for(actor, draft_id)
        _refuse_if_approving(
            draft,
            {
                "directions": typed.directions,
                "quantity": _clip(typed.quantity, 32),
                "dispense_unit": _clip(typed.dispense_unit, 32),
                "days_supply": typed.days_supply,
            },
        )
        _bump_version(draft, version)
        draft.sig = json.dumps(typed.sig_fields, default=str, sort_keys=True)
        draft.directions = typed.directions
        draft.quantity = _clip(typed.quantity, 32)
        draft.dispense_unit = _clip(typed.dispense_unit, 32)
        draft.days_supply = typed.days_supply
        draft.refills = _clip(typed.refills, 16)
        draft.substitution_allowed = not typed.dispense_as_written
        draft.pharmacist_note = _clip(typed.pharmacist_note, 210)
        draft.effective_on = typed.effective_on
        problems = dict(diagnosis_choices(draft.patient_id))
        draft.diagnoses = json.dumps(
            [
                {"code": code, "description": problems[code].split(" ", 1)[-1]}
                for code in typed.diagnosis_codes
                if code in problems
            ][:2]
        )
        draft.overrides = json.dumps(_checked_overrides(typed.overrides))
        audit.record(
            actor,
            "prescription.draft_save",
            patient_id=draft.patient_id,
            obj=draft,
            category=CATEGORY,
        )
    return draft


def _checked_overrides(rows: list[dict]) -> list[dict]:
    """Only known reasons and a bounded note; an empty row is no override."""
    kept = []
    for row in rows:
        code = str(row.get("code") or "")[:300]
        reason = row.get("reason") if row.get("reason") in OVERRIDE_REASONS else ""
        comment = " ".join(str(row.get("comment") or "").split())[:MAX_OVERRIDE_COMMENT]
        if code and (reason or comment):
            kept.append({"code": code, "reason": reason, "comment": comment})
    return kept


def override_problems(alerts: list[Alert], overrides: dict[str, dict]) -> dict[str, str]:
    """For each alert needing an override, what is missing from its reason (by code):
    a reason from the list, and words when it is "other"."""
    problems = {}
    for alert in needs_override(alerts):
        row = overrides.get(alert.code) or {}
        if not row.get("reason"):
            problems[alert.code] = "Choose the reason you are going ahead."
        elif row["reason"] == "other" and not row.get("comment"):
            problems[alert.code] = "Say why in a few words."
    return problems


# --- pharmacy --------------------------------------------------------------------------------


def search_pharmacies(actor, name: str, zip_code: str) -> list[dict]:
    """Pharmacies at the vendor by name and/or ZIP code (a person waits for it)."""
    connector_name = eprescribing_connector_name()
    connector = enabled_connector(connector_name) if connector_name else None
    if connector is None or not hasattr(connector, "search_pharmacies"):
        raise Refused("E-prescribing is not switched on: this prescription can only be printed.")
    name = " ".join((name or "").split())[:60]
    zip_code = "".join((zip_code or "").split())[:10]
    if len(name) < 2 and len(zip_code) < 3:
        raise Refused("Type part of the pharmacy's name or its ZIP code.", "pharmacy_name")
    clinician = vendor_id(connector_name, "clinician", actor.id)
    end_read()
    try:
        found = connector.search_pharmacies(
            name=name or None, zip_code=zip_code or None, clinician_id=clinician, max_pages=2
        )
    except IntegrationError as error:
        raise Refused(f"{connector.title} could not be reached: try again.") from error
    return [row for row in found if row.get("pharmacy_id") is not None][:20]


def choose_pharmacy(
    actor, draft_id: int, pharmacy_id: int, pharmacy_name: str, version: int | None
) -> Prescription:
    """Put the pharmacy on the draft (its id is what the send uses; the name is shown)."""
    with use_case():
        draft = get_draft_for(actor, draft_id)
        _refuse_if_approving(draft, {"pharmacy_id": str(pharmacy_id)})
        _bump_version(draft, version)
        draft.pharmacy_id = str(pharmacy_id)
        draft.pharmacy_name = _clip(pharmacy_name, 300)
        audit.record(
            actor,
            "prescription.draft_pharmacy",
            patient_id=draft.patient_id,
            obj=draft,
            detail=f"pharmacy {pharmacy_id}",
            category=CATEGORY,
        )
    return draft


# --- the patient's preferred pharmacies -----------------------------------------------------

ADD_PHARMACY_OPERATION = "add_patient_pharmacy"


def preferred_pharmacies(patient_id: int) -> list[PatientPharmacy]:
    """The patient's preferred pharmacies at the enabled connector, the primary one first,
    then the most recently added (none without a connector: they are the vendor's ids)."""
    name = eprescribing_connector_name()
    if name is None:
        return []
    return list(
        db.session.scalars(
            select(PatientPharmacy)
            .where(PatientPharmacy.patient_id == patient_id, PatientPharmacy.connector == name)
            .order_by(PatientPharmacy.is_primary.desc(), PatientPharmacy.id.desc())
            .limit(10)
        )
    )


def _primary_pharmacy(patient_id: int) -> PatientPharmacy | None:
    found = preferred_pharmacies(patient_id)
    return found[0] if found and found[0].is_primary else None


def pharmacy_label(pharmacy: dict) -> str:
    """How a pharmacy found at the vendor is named here: its name, street and city."""
    parts = [pharmacy.get("name"), pharmacy.get("address_line1"), pharmacy.get("city")]
    return ", ".join(str(p) for p in parts if p) or f"Pharmacy {pharmacy.get('pharmacy_id')}"


def _vendor_pharmacy(actor, name: str, pharmacy_id: int, hint: str) -> dict:
    """The pharmacy as the vendor describes it, found again by a search on the name the
    page showed (``hint``, only a search key): the label kept is the vendor's, never the
    client's words. Refused when the vendor does not list that id under that name."""
    connector = enabled_connector(name)
    if connector is None or not hasattr(connector, "search_pharmacies"):
        raise Refused("E-prescribing is not switched on: this prescription can only be printed.")
    key = " ".join((hint or "").split(",")[0].split())[:60]
    if len(key) < 2:
        raise Refused("Search for the pharmacy, then set it as preferred.", "pharmacy_name")
    clinician = vendor_id(name, "clinician", actor.id)
    end_read()
    try:
        found = connector.search_pharmacies(name=key, clinician_id=clinician, max_pages=2)
    except IntegrationError as error:
        raise Refused(f"{connector.title} could not be reached: try again.") from error
    for row in found:
        if row.get("pharmacy_id") is not None and int(row["pharmacy_id"]) == pharmacy_id:
            return row
    raise Refused(
        "That pharmacy could not be confirmed at the e-prescribing service: search again.",
        "pharmacy_name",
    )


def _enqueue_pharmacy_sync(name: str, patient_id: int, pharmacy_id: int, payload: dict) -> None:
    """One sync message per (patient, pharmacy), whatever the clicks: a message still waiting
    carries this one too (a double click queues nothing more); a finished one (delivered,
    failed) is made pending again with the new payload, so making a pharmacy primary again
    later still reaches the vendor."""
    key = f"{name}:pharmacy:{patient_id}:{pharmacy_id}"
    existing = db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.idempotency_key == key)
    ).first()
    if existing is None:
        outbox.enqueue(
            name, ADD_PHARMACY_OPERATION, payload, idempotency_key=key, patient_id=patient_id
        )
        return
    now = utcnow()
    db.session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.id == existing.id,
            OutboxMessage.status.not_in(("pending", "in_flight")),
        )
        .values(
            status="pending",
            payload=payload,
            attempts=0,
            next_attempt_at=now,
            last_error=None,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )


def set_preferred_pharmacy(actor, draft_id: int, pharmacy_id: int, label: str) -> Prescription:
    """ "Set as preferred" after a pharmacy search: the pharmacy becomes the patient's
    primary preferred one (kept here; sent to the vendor as
    ``POST /api/patients/{id}/pharmacies {PharmacyId, SetAsPrimary}`` through the outbox, in
    the same transaction) and is chosen for this draft. Audited.

    The name kept is the vendor's (``label`` only finds it again); the patient's row is
    locked so two clicks or tabs run one after the other (one primary; the second finds it
    done and does nothing more)."""
    name = eprescribing_connector_name()
    if name is None:
        raise Refused("E-prescribing is not switched on: this prescription can only be printed.")
    _refuse_if_approving(get_draft_for(actor, draft_id), {"pharmacy_id": str(pharmacy_id)})
    label = pharmacy_label(_vendor_pharmacy(actor, name, pharmacy_id, label))[:300]
    with use_case():
        draft, patient = draft_and_patient(actor, draft_id)
        _refuse_if_approving(draft, {"pharmacy_id": str(pharmacy_id)})
        clinician = vendor_id(name, "clinician", actor.id)
        if clinician is None:
            raise Refused("Your account is not linked to the e-prescribing service yet.")
        lock_patient(patient.id)  # PostgreSQL: one "set as preferred" per patient at a time
        rows = preferred_pharmacies(patient.id)
        row = next((r for r in rows if r.pharmacy_id == str(pharmacy_id)), None)
        if (
            row is not None
            and row.is_primary
            and not any(r.is_primary for r in rows if r is not row)
            and draft.pharmacy_id == str(pharmacy_id)
        ):
            return draft  # a second click: already the primary one, on this draft
        for other in rows:
            other.is_primary = False
        if row is None:
            row = PatientPharmacy(
                patient_id=patient.id,
                connector=name,
                pharmacy_id=str(pharmacy_id),
                added_by_id=actor.id,
            )
            db.session.add(row)
        row.name, row.is_primary, row.synced_at = label, True, None
        draft.pharmacy_id, draft.pharmacy_name = str(pharmacy_id), label
        _bump_version(draft, None)
        db.session.flush()
        known_patient = vendor_id(name, "patient", patient.id)
        _enqueue_pharmacy_sync(
            name,
            patient.id,
            pharmacy_id,
            {
                "clinician_id": int(clinician) if str(clinician).isdigit() else clinician,
                "dosespot_patient_id": int(known_patient) if known_patient else None,
                "patient": None if known_patient else patient_snapshot(patient),
                "pharmacy_id": int(pharmacy_id),
                "set_as_primary": True,
            },
        )
        audit.record(
            actor,
            "patient.preferred_pharmacy_set",
            patient_id=patient.id,
            obj=row,
            detail=f"{name} pharmacy {pharmacy_id}, primary",
            category=CATEGORY,
        )
    return draft


def remove_preferred_pharmacy(actor, draft_id: int, preferred_id: int) -> str:
    """Remove one of the patient's preferred pharmacies (from the compose page of one of the
    actor's drafts for that patient). Audited.

    Local only: the vendor's contract (DOSESPOT.md section 3: ``POST /api/patients/{id}/
    pharmacies`` adds, nothing removes) has no call for it, so the vendor keeps what it was
    sent. A sync of this pharmacy still waiting in the outbox is withdrawn in the same
    transaction, so a pharmacy removed before the worker took it never reaches the vendor;
    one the worker holds at that moment is withheld at its next delivery if its try fails
    and is retried (``pharmacy_sync_withheld``); one already sent cannot be taken back. The
    draft's own choice of pharmacy is left as it is (removing a preference is not choosing
    another pharmacy for this prescription).
    Returns the pharmacy's name."""
    with use_case():
        _draft, patient = draft_and_patient(actor, draft_id)
        lock_patient(patient.id)  # one change of the patient's preferences at a time
        row = get_row_of_patient(patient, PatientPharmacy, preferred_id)  # another's: 404
        key = f"{row.connector}:pharmacy:{patient.id}:{row.pharmacy_id}"
        withdrawn = db.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.idempotency_key == key, OutboxMessage.status == "pending")
            .values(
                status=outbox.WITHDRAWN,
                last_error="Removed from the patient's preferred pharmacies before it was sent.",
                updated_at=utcnow(),
            )
            .execution_options(synchronize_session=False)
        ).rowcount
        audit.record(
            actor,
            "patient.preferred_pharmacy_remove",
            patient_id=patient.id,
            obj=row,
            detail=(
                f"{row.connector} pharmacy {row.pharmacy_id}"
                f"{', primary' if row.is_primary else ''}; removed in the portal only"
                f"{'; its waiting sync withdrawn' if withdrawn else ''}"
            ),
            category=CATEGORY,
        )
        name = row.name
        db.session.delete(row)
    return name


def pharmacy_sync_withheld(message_id: int) -> str | None:
    """The outbox's withholding check for ``add_patient_pharmacy`` (asked before each
    delivery): a sync of a pharmacy the patient no longer has among their preferred ones
    never goes out. Removing one withdraws only a sync still pending; one in flight at that
    moment whose try then fails comes back pending, and its retry would make a pharmacy the
    user removed the patient's primary one at the vendor. Likewise a sync that would make it
    the primary one while another has become primary since (its try failed, the other's went
    out first): the vendor keeps the primary the user chose last."""
    message = db.session.get(OutboxMessage, message_id)
    if message is None or message.patient_id is None:
        return None
    payload = message.payload or {}
    row = db.session.execute(
        select(PatientPharmacy.id, PatientPharmacy.is_primary).where(
            PatientPharmacy.patient_id == message.patient_id,
            PatientPharmacy.connector == message.connector,
            PatientPharmacy.pharmacy_id == str(payload.get("pharmacy_id")),
        )
    ).first()
    if row is None:
        return "Removed from the patient's preferred pharmacies before it was sent."
    if payload.get("set_as_primary") and not row.is_primary:
        return "Another pharmacy was made the patient's primary one before it was sent."
    return None


def record_pharmacy_synced(result: outbox.Outcome) -> None:
    """The outbox's outcome handler for ``add_patient_pharmacy``: the vendor has it (the
    row's ``synced_at``; the vendor's patient id remembered). A failure leaves it unsynced:
    the pharmacy is still used, by id, when a prescription is sent."""
    if result.status != "delivered":
        return
    message = db.session.get(OutboxMessage, result.message_id)
    if message is None or message.patient_id is None:
        return
    answer = result.result or {}
    if answer.get("dosespot_patient_id"):
        _remember(result.connector, "patient", message.patient_id, answer["dosespot_patient_id"])
    db.session.execute(
        update(PatientPharmacy)
        .where(
            PatientPharmacy.patient_id == message.patient_id,
            PatientPharmacy.connector == result.connector,
            PatientPharmacy.pharmacy_id == str(message.payload.get("pharmacy_id")),
        )
        .values(synced_at=utcnow())
        .execution_options(synchronize_session=False)
    )


# --- favourites ------------------------------------------------------------------------------


def favorites_of(actor) -> list[PrescriptionFavorite]:
    return list(
        db.session.scalars(
            select(PrescriptionFavorite)
            .where(PrescriptionFavorite.owner_id == actor.id)
            .order_by(PrescriptionFavorite.label)
        )
    )


def save_favorite(actor, draft_id: int, label: str) -> PrescriptionFavorite:
    """Save the draft's drug, directions, quantity and refills under ``label`` for the
    prescriber (no patient data: nothing of the patient is copied)."""
    label = " ".join((label or "").split())
    if not label:
        raise Refused("Give the favourite a name.", "label")
    if len(label) > MAX_FAVORITE_LABEL:
        raise Refused(f"At most {MAX_FAVORITE_LABEL} characters.", "label")
    with use_case(conflict=Conflict(f"You already have a favourite called “{label}”.", "label")):
        draft = get_draft_for(actor, draft_id)
        if not draft.drug:
            raise Refused("Choose the drug first.", "label")
        refills = draft.refills or "0"
        favorite = PrescriptionFavorite(
            owner_id=actor.id,
            label=label,
            rxcui=draft.rxcui,
            dispensable_drug_id=draft.dispensable_drug_id,
            drug=draft.drug,
            sig=draft.sig,
            directions=draft.directions,
            quantity=draft.quantity,
            dispense_unit=draft.dispense_unit,
            days_supply=draft.days_supply,
            refills=int(refills) if refills.isdigit() else 0,
            created_at=utcnow(),
        )
        db.session.add(favorite)
        db.session.flush()
        audit.record(actor, "prescription.favorite_save", obj=favorite, category=CATEGORY)
    return favorite


def use_favorite(actor, draft_id: int, favorite_id: int, version: int | None) -> Prescription:
    """Fill the draft from one of the prescriber's favourites in one click: the product
    (read again from the catalog or the vendor), the directions, quantity and refills."""
    favorite = db.session.get(PrescriptionFavorite, favorite_id)
    if favorite is None or favorite.owner_id != actor.id:
        raise NotFound()
    _refuse_if_approving(get_draft_for(actor, draft_id))  # 404 before any call to the vendor
    if favorite.dispensable_drug_id and eprescribing_connector_name():
        resolved = _resolve(actor, f"vendor:{favorite.dispensable_drug_id}")
    elif favorite.rxcui and knowledge().product(favorite.rxcui):
        resolved = _resolve(actor, f"rxcui:{favorite.rxcui}")
    else:
        # Never the favourite's name over the draft's previous product (its schedule,
        # strength, form, route and codes would stay): the product is chosen again.
        raise Refused(
            f"The product of “{favorite.label}” could not be found in the catalog or at the "
            "e-prescribing service: search for the product again.",
            "drug",
        )
    with use_case():
        draft = get_draft_for(actor, draft_id)
        _refuse_if_approving(draft)
        _bump_version(draft, version)
        _set_drug(draft, resolved)
        for name in ("sig", "directions", "quantity", "dispense_unit", "days_supply"):
            setattr(draft, name, getattr(favorite, name))
        draft.refills = str(favorite.refills)
        audit.record(
            actor,
            "prescription.favorite_use",
            patient_id=draft.patient_id,
            obj=draft,
            detail=f"favorite {favorite.id}",
            category=CATEGORY,
        )
    return draft


# --- the chart's lists -----------------------------------------------------------------------


def visit_drafts(actor, encounter_id: int) -> list[Prescription]:
    """The actor's drafts of this visit, to continue (the encounter page's "Prescribe"
    section; the page audits its own view; the visit's signed prescriptions are listed by
    the signing step's section)."""
    return list(
        db.session.scalars(
            select(Prescription)
            .where(
                Prescription.encounter_id == encounter_id,
                Prescription.prescriber_id == actor.id,
                Prescription.origin == "portal",
                Prescription.state == states.DRAFT,
            )
            .order_by(Prescription.id)
        )
    )
