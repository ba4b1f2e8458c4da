"""Signing a prescription composed in the portal, and what its transmission reports back.

Signing is one use case (``sign_prescription``), preceded by the prescriber's factors, which
are confirmed in a use case of their own (``portal.auth.signing``): a spent code stays spent
and a wrong one is counted even when the signing is then refused.

In the signing transaction, in order:

1. the patient's row is locked and the draft re-read: it must still be a draft at the version
   the prescriber saw;
2. the safety checks run again (``draft_context`` + ``check_prescription``): what the page
   showed is never trusted. A blocking alert refuses; each alert that needs an override
   must have one (a reason from ``OVERRIDE_REASONS``, with words for "other");
   "allergies not recorded" is acknowledged the same way, with a reason;
3. the elements are checked again by the SIG rules (refills by DEA schedule, the note's
   length, the effective date);
4. one conditional UPDATE moves the row from ``draft`` at that version to ``signed`` (or
   ``queued``) with every signed element, the alerts, the overrides, the signer, the time
   and the digest. Two clicks (two requests, two workers) race on that UPDATE; the loser
   changes nothing and answers with what the winner did;
5. with an e-prescribing connector enabled, the send goes in the outbox (key
   ``<connector>:send:rx-<id>``) and the state is ``queued``; without one it stays
   ``signed``, and printing is the only way out (the print step is not here);
6. the medication list gets the drug (or an active entry of the same drug is linked; a
   renewal's, the entry of the prescription it renews);
7. ``prescription.signed`` is audited, and each override as ``prescription.alert_overridden``.

The worker's delivery of the send reports back through ``record_send_outcome`` (registered
with the outbox by the app factory): delivered -> ``sent`` with the vendor's id; refused or
out of attempts -> ``error`` with the reason in words, listed on the prescriber's
transmission errors page, from which ``retry_send`` sends the same message again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import select, update
from werkzeug.exceptions import NotFound

from portal.actors import SOURCE_WORKER, integration
from portal.audit import services as audit
from portal.auth.epcs import may_sign_controlled
from portal.auth.models import User
from portal.auth.signing import confirm_signing_factors
from portal.charting.lists.services import record_prescribed_medication
from portal.charting.models import Medication
from portal.clinic.clock import clinic_today
from portal.extensions import db
from portal.integrations import outbox
from portal.integrations.dosespot.statuses import PORTAL_STATE_FHIR_STATUS, fhir_status
from portal.integrations.models import OutboxMessage
from portal.integrations.settings import enabled_names
from portal.patients.models import Patient
from portal.patients.services import get_patient_for, lock_patient
from portal.prescriptions import sig as rules
from portal.prescriptions import states
from portal.prescriptions.compose.services import stored_overrides
from portal.prescriptions.inbox.answers import (
    APPROVE_OPERATIONS,
    answering,
    check_approval,
    enqueue_approval,
)
from portal.prescriptions.models import Prescription
from portal.prescriptions.renewals import renewed_by
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
    SEND_OPERATION,
    _remember,
    eprescribing_connector_name,
    patient_snapshot,
    vendor_id,
)
from portal.terminology.drugs import knowledge
from portal.timeutil import utcnow
from portal.transaction import Conflict, Refused, end_read, use_case

# Why a prescriber goes ahead despite an alert: a short list (reported on), and words of
# their own beside it ("other" needs them).

# The elements a signature covers, in the digest (besides the row's id): every column the
# database's triggers freeze once ``signed_at`` is set (migration 0020), but the digest.
SIGNED_ELEMENTS = (
    "patient_id",
    "prescriber_id",
    "origin",
    "encounter_id",
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
    "pharmacist_note",
    "effective_on",
    "written_on",
    "diagnoses",
    "alerts",
    "overrides",
    "signed_at",
    "signed_by_id",
)


def canonical_content(values: dict) -> bytes:
    """The signed content as bytes, the input of the digest.

    A JSON object of ``id`` and every name of ``SIGNED_ELEMENTS`` (absent or NULL as
    ``null``), keys sorted, no whitespace (``separators=(",", ":")``), UTF-8 without
    escaping (``ensure_ascii=False``). Values as stored: strings as they are (``alerts``,
    ``overrides``, ``sig`` and ``diagnoses`` are the JSON text kept in the row, not re-read),
    integers and booleans as JSON's, dates as ``YYYY-MM-DD``, ``signed_at`` as ISO 8601 in
    UTC to the second with ``+00:00``. Anyone holding the row can recompute it.
    """
    content = {"id": values["id"]}
    for name in SIGNED_ELEMENTS:
        value = values.get(name)
        if isinstance(value, datetime):
            value = _utc_iso(value)
        elif isinstance(value, date):
            value = value.isoformat()
        content[name] = value
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _utc_iso(moment: datetime) -> str:
    if moment.tzinfo is None:  # a driver that hands back naive UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(microsecond=0).isoformat()


def digest_of(values: dict) -> str:
    """SHA-256 (hex) of ``canonical_content(values)``."""
    return hashlib.sha256(canonical_content(values)).hexdigest()


def row_digest(row: Prescription) -> str:
    """The digest recomputed from a row as stored (equal to ``row.digest`` when untouched)."""
    return digest_of({"id": row.id, **{name: getattr(row, name) for name in SIGNED_ELEMENTS}})


@dataclass(frozen=True)
class Override:
    """The prescriber's answer to one alert: a reason from the list and their words."""

    reason: str
    comment: str = ""


@dataclass(frozen=True)
class Signed:
    """What a signing did: the prescription as signed, whether it went to the outbox, and
    whether this request only found the work of an earlier one (a second click)."""

    prescription: Prescription
    queued: bool
    repeated: bool = False


@dataclass(frozen=True)
class SigningView:
    """What the signing dialog shows: the draft, the alerts as they stand now, whether it is
    a controlled substance (the password is asked too), whether it will be sent."""

    patient: Patient
    prescription: Prescription
    alerts: list[Alert]
    controlled: bool
    connector: str | None
    approving: bool = False  # it answers a pharmacy's request: frozen but for the refills


def _drug_of(rx: Prescription):
    """The product the knowledge has for the draft's RxCUI, or the name alone."""
    product = knowledge().product(rx.rxcui) if rx.rxcui else None
    return product if product is not None else UnmatchedDrug(rx.drug)


def _schedule_of(rx: Prescription, drug) -> int | None:
    """The stricter of the draft's schedule and the knowledge's: a catalog that learnt of a
    schedule after the draft was written still counts."""
    known = getattr(drug, "schedule", None)
    found = [s for s in (rx.schedule, known) if s]
    return min(found) if found else None


def _checked_alerts(rx: Prescription) -> tuple[list[Alert], int | None]:
    """The alerts for the draft now, and its DEA schedule; a knowledge that cannot be loaded
    yields the checks' own blocking alert (never an empty answer)."""
    try:
        drug = _drug_of(rx)
    except Exception:  # the checks report it: one blocking alert, below
        drug, schedule = UnmatchedDrug(rx.drug), rx.schedule
    else:
        schedule = _schedule_of(rx, drug)
    context = draft_context(rx)
    if context is None:
        raise NotFound()
    return check_prescription(context, drug, knowledge=knowledge), schedule


def _visible_draft(actor, prescription_id: int) -> tuple[Patient, Prescription]:
    rx = db.session.get(Prescription, prescription_id)
    if rx is None or rx.origin != "portal":
        raise NotFound()
    patient = get_patient_for(actor, rx.patient_id)
    if rx.prescriber_id is not None and rx.prescriber_id != actor.id:
        # A prescription is signed by its own prescriber; another's draft is not theirs.
        raise NotFound()
    return patient, rx


def stored_override_fields(draft: Prescription) -> dict[str, str]:
    """The override reasons the prescriber gave while composing (kept on the draft), as the
    signing dialog's fields (``reason:<code>``, ``comment:<code>``): asked once, shown again
    for the signature, and checked again when it is given."""
    fields: dict[str, str] = {}
    for code, row in stored_overrides(draft).items():
        fields[f"reason:{code}"] = str(row.get("reason") or "")
        fields[f"comment:{code}"] = str(row.get("comment") or "")
    return fields


def signing_view(actor, prescription_id: int) -> SigningView:
    """The signing dialog's content, with the checks run now; audited as a view."""
    with use_case():
        patient, rx = _visible_draft(actor, prescription_id)
        alerts, schedule = _checked_alerts(rx)
        approving = answering(rx.id) is not None
        audit.record(
            actor,
            "prescription.signing_opened",
            patient_id=patient.id,
            obj=rx,
            category="prescriptions",
        )
    return SigningView(
        patient, rx, alerts, bool(schedule), eprescribing_connector_name(), approving
    )


def sign_prescription(
    actor,
    prescription_id: int,
    *,
    version: int | None,
    totp_code: str | None,
    password: str | None = None,
    overrides: dict[str, Override] | None = None,
) -> Signed:
    """Sign the draft ``prescription_id`` as ``actor`` (see the module's docstring).

    Raises ``Refused`` (beside ``totp_code``, ``password``, ``refills``, ``reason:<alert
    code>`` ...) and ``Conflict`` (the draft changed, or someone else signed it). A repeat of
    a signing this actor already did answers with it (``repeated``), whatever its factors.
    """
    overrides = overrides or {}
    _, rx = _visible_draft(actor, prescription_id)
    if rx.state != states.DRAFT:
        return _already_signed(actor, rx)
    if version is not None and rx.version != version:
        raise Conflict("This prescription was changed since you opened it: review it again.")
    _, schedule = _checked_alerts(rx)
    end_read()
    try:
        confirm_signing_factors(
            actor.id, password, totp_code, controlled=bool(schedule), source=actor.source
        )
    except Refused:
        # Two clicks carry one code: the second is refused as spent. If the first signed,
        # that is the answer to both.
        end_read()
        again = db.session.get(Prescription, prescription_id)
        if again is not None and again.state != states.DRAFT:
            return _already_signed(actor, again)
        raise
    try:
        return _sign(actor, prescription_id, version, overrides, controlled=bool(schedule))
    except _LostRace:
        end_read()
        again = db.session.get(Prescription, prescription_id)
        if again is not None and again.state != states.DRAFT:
            return _already_signed(actor, again)
        raise Conflict(
            "This prescription was changed while you signed it: review it and sign again."
        ) from None


class _LostRace(Exception):
    """The conditional UPDATE found no draft at the version: another request got there."""


def _already_signed(actor, rx: Prescription) -> Signed:
    if rx.signed_by_id == actor.id:
        return Signed(rx, queued=rx.state != states.SIGNED, repeated=True)
    raise Conflict("This prescription is no longer a draft; it cannot be signed again.")


def _override_records(actor, alerts: list[Alert], overrides: dict[str, Override], now):
    """The overrides the alerts need, checked, as stored; refuses a missing reason beside
    its alert's field. Overrides of alerts that are not there (any more) are dropped."""
    records = []
    for alert in needs_override(alerts):
        given = overrides.get(alert.code)
        field = f"reason:{alert.code}"
        if given is None or given.reason not in OVERRIDE_REASONS:
            raise Refused(f"Give a reason to go ahead despite: {alert.title}.", field)
        comment = (given.comment or "").strip()
        if given.reason == "other" and not comment:
            raise Refused("Say why in your own words.", f"comment:{alert.code}")
        if len(comment) > MAX_OVERRIDE_COMMENT:
            raise Refused(
                f"The reason is at most {MAX_OVERRIDE_COMMENT} characters.",
                f"comment:{alert.code}",
            )
        records.append(
            {
                "code": alert.code,
                "kind": alert.kind,
                "severity": alert.severity,
                "title": alert.title,
                "reason": given.reason,
                "reason_text": OVERRIDE_REASONS[given.reason],
                "comment": comment,
                "by_id": actor.id,
                "at": _utc_iso(now),
            }
        )
    return records


def _checked_elements(rx: Prescription, schedule: int | None, today: date) -> None:
    """The elements the SIG rules govern, read again at signing (a draft may have been
    saved by an older page, or written with the model directly)."""
    if not (rx.directions or "").strip():
        raise Refused("Write the directions.", "directions")
    # Checked against the product as it is now (the drug may have changed since they were
    # written): an oral liquid is never dosed in spoons, typed or built.
    try:
        rules.check_directions(rx.directions, rx.dose_form, rx.route)
    except Refused as refused:
        raise Refused(str(refused), "directions") from None
    unit = _stored_dose_unit(rx)
    if unit is not None and rules.is_oral_liquid(rx.dose_form, rx.route) and unit != "mL":
        raise Refused("An oral liquid is dosed in mL: choose mL in the directions.", "directions")
    try:
        rules.parse_quantity(rx.quantity)
    except Refused as refused:
        raise Refused(str(refused), "quantity") from None
    if rx.dispense_unit not in rules.DISPENSE_UNITS:
        raise Refused("Choose the unit the quantity is in.", "dispense_unit")
    try:
        refills = int(rx.refills) if rx.refills not in (None, "") else None
    except ValueError:
        refills = -1
    rules.check_refills(refills, schedule)
    rules.check_pharmacist_note(rx.pharmacist_note)
    if rx.effective_on is not None:
        rules.check_effective_date(rx.effective_on, today, schedule)


def _stored_dose_unit(rx: Prescription) -> str | None:
    """The dose unit of the stored structured SIG, or None (none stored, or written out)."""
    try:
        fields = json.loads(rx.sig or "null")
    except ValueError:
        return None
    if not isinstance(fields, dict) or fields.get("write_out"):
        return None
    return fields.get("dose_unit") or None


def _sign(
    actor, prescription_id: int, version: int | None, overrides, *, controlled: bool
) -> Signed:
    """The signing transaction; ``controlled`` says whether the factors confirmed before it
    were a controlled substance's (the password as well as the code)."""
    now = utcnow().replace(microsecond=0)
    with use_case():
        draft = db.session.get(Prescription, prescription_id)
        if draft is None:
            raise NotFound()
        lock_patient(draft.patient_id)
        db.session.refresh(draft)
        if draft.state != states.DRAFT or (version is not None and draft.version != version):
            raise _LostRace()
        patient = db.session.get(Patient, draft.patient_id)
        alerts, schedule = _checked_alerts(draft)
        if schedule and not controlled:
            # Decided before this transaction from an earlier read: the locked row is a
            # controlled substance now, and only the code was asked (21 CFR 1311.140).
            raise Conflict(
                "This prescription is for a controlled substance: sign it again with your "
                "password and code."
            )
        blocking = [alert for alert in alerts if alert.blocks_signing]
        if blocking:
            raise Refused(
                "This prescription cannot be signed: "
                + "; ".join(f"{a.title} ({a.action})" for a in blocking)
            )
        override_records = _override_records(actor, alerts, overrides, now)
        today = clinic_today()
        _checked_elements(draft, schedule, today)
        if schedule and not may_sign_controlled(actor.id):
            raise Refused(
                "You are not allowed to sign controlled-substance prescriptions (a DEA "
                "number and an EPCS grant are needed)."
            )
        approving = answering(draft.id)
        if approving is not None:
            # The vendor approves the request and the pharmacy fills the original: what is
            # signed here must still be that original, and approvable from the portal.
            check_approval(approving, draft, schedule)
        connector = eprescribing_connector_name()
        if connector is not None and not draft.pharmacy_id:
            raise Refused("Choose the pharmacy to send it to.", "pharmacy")
        clinician = vendor_id(connector, "clinician", actor.id) if connector else None
        if connector is not None and clinician is None:
            raise Refused(
                "Your account is not linked to the e-prescribing service yet: ask an "
                "administrator (Administration, Integrations)."
            )
        state = states.QUEUED if connector else states.SIGNED
        values = {
            "prescriber_id": draft.prescriber_id or actor.id,
            "schedule": schedule,
            "written_on": today,
            "alerts": json.dumps([a.as_record() for a in alerts], ensure_ascii=False),
            "overrides": json.dumps(override_records, ensure_ascii=False),
            "signed_at": now,
            "signed_by_id": actor.id,
        }
        current = {name: getattr(draft, name) for name in SIGNED_ELEMENTS}
        values["digest"] = digest_of({"id": draft.id, **current, **values})
        done = db.session.execute(
            update(Prescription)
            .where(
                Prescription.id == draft.id,
                Prescription.state == states.DRAFT,
                Prescription.version == draft.version,
                Prescription.signed_at.is_(None),
            )
            .values(
                **values,
                state=state,
                fhir_status=PORTAL_STATE_FHIR_STATUS[state],
                version=Prescription.version + 1,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        if done.rowcount != 1:
            raise _LostRace()
        db.session.refresh(draft)
        request = answering(draft.id)
        if request is not None:
            # An approval of a pharmacy's request: the vendor's approval goes out instead of
            # a new send (the request moves to approved here, or the signing is refused).
            if request.connector != connector:
                raise Refused(
                    "E-prescribing is switched off: the pharmacy's request cannot be answered."
                )
            enqueue_approval(actor, request, clinician, draft)
        elif connector:
            _enqueue_send(connector, clinician, patient, draft)
        _put_on_medication_list(actor, patient, draft)
        audit.record(
            actor,
            "prescription.signed",
            patient_id=patient.id,
            obj=draft,
            detail=(
                f"digest {draft.digest}; {len(alerts)} alerts, {len(override_records)} "
                f"overrides; {'queued for ' + connector if connector else 'no connector'}"
                + (f"; schedule {schedule}" if schedule else "")
            ),
            category="prescriptions",
        )
        for record in override_records:
            audit.record(
                actor,
                "prescription.alert_overridden",
                patient_id=patient.id,
                obj=draft,
                # The alert's code and the listed reason; the prescriber's own words stay
                # with the prescription (they may name the patient's history).
                detail=f"{record['code']}: {record['reason']}",
                category="prescriptions",
            )
    return Signed(draft, queued=bool(connector))


def send_payload(connector: str, clinician: str, patient: Patient, rx: Prescription) -> dict:
    """The outbox payload of ``send_prescription`` (the DoseSpot connector's shape; the
    drug and unit ids it lacks are selected at the vendor when the message is delivered)."""
    known_patient = vendor_id(connector, "patient", patient.id)
    return {
        "clinician_id": int(clinician) if str(clinician).isdigit() else clinician,
        "dosespot_patient_id": int(known_patient) if known_patient else None,
        "patient": None if known_patient else patient_snapshot(patient),
        "prescription_id": f"rx-{rx.id}",
        "prescription": {
            "dispensable_drug_id": int(rx.dispensable_drug_id) if rx.dispensable_drug_id else None,
            "dispense_unit_id": None,
            "rxcui": rx.rxcui,
            "ndc": rx.ndc,
            # A DEA schedule (2-5) goes through the vendor's EPCS send.
            "schedule": rx.schedule,
            "quantity": rx.quantity,
            "refills": int(rx.refills or 0),
            "days_supply": rx.days_supply,
            "directions": rx.directions,
            "pharmacy_id": int(rx.pharmacy_id) if rx.pharmacy_id else None,
            "pharmacy_notes": rx.pharmacist_note or "",
            "no_substitutions": not rx.substitution_allowed,
            "effective_date": rx.effective_on.isoformat() if rx.effective_on else None,
            "diagnoses": json.loads(rx.diagnoses) if rx.diagnoses else [],
        },
    }


def send_key(connector: str, prescription_id: int) -> str:
    return f"{connector}:send:rx-{prescription_id}"


def _enqueue_send(connector: str, clinician: str, patient: Patient, rx: Prescription) -> None:
    outbox.enqueue(
        connector,
        SEND_OPERATION,
        send_payload(connector, clinician, patient, rx),
        idempotency_key=send_key(connector, rx.id),
        patient_id=patient.id,
        prescription_id=rx.id,
    )


def _put_on_medication_list(actor, patient: Patient, rx: Prescription) -> None:
    """Link the prescription to the patient's active entry of the same product, or make one
    (charting's work function, with its own revision and audit event). A renewal links to the
    entry standing for the prescription it renews, found by the link rather than by code:
    an entry edited on the list is re-coded from its name, and an uncoded drug has no code,
    and neither may be listed twice."""
    if rx.medication_id is not None:
        return
    renewed = renewed_by(rx)
    medication_id = renewed.medication_id if renewed else None
    if medication_id is None and rx.rxcui:
        medication_id = db.session.scalar(
            select(Medication.id)
            .where(
                Medication.patient_id == patient.id,
                Medication.status == "active",
                Medication.rxnorm_code == rx.rxcui,
            )
            .order_by(Medication.id)
            .limit(1)
        )
    if medication_id is None:
        medication = record_prescribed_medication(
            actor,
            patient,
            {
                "drug": rx.drug,
                "rxnorm_code": rx.rxcui,
                "route": rx.route,
                "frequency": (rx.directions or "")[:100],
                "start_date": rx.effective_on or rx.written_on,
                "prescriber": _name_of(rx.signed_by_id),
            },
        )
        db.session.flush()
        medication_id = medication.id
    db.session.execute(
        update(Prescription)
        .where(Prescription.id == rx.id)
        .values(medication_id=medication_id)
        .execution_options(synchronize_session=False)
    )
    rx.medication_id = medication_id


def _name_of(user_id: int | None) -> str | None:
    return db.session.scalar(select(User.full_name).where(User.id == user_id)) if user_id else None


# --- what the transmission reports back ----------------------------------------------------


def record_send_outcome(result: outbox.Outcome) -> None:
    """The outbox's outcome handler for ``send_prescription`` (runs in the transaction that
    records the outcome): delivered -> ``sent`` with the vendor's ids; failed or dead ->
    ``error`` with the reason in words. Idempotent; a prescription that has moved on (the
    vendor's read got there first, or it was printed) keeps its state."""
    message = db.session.get(OutboxMessage, result.message_id)
    if message is None or message.prescription_id is None:
        return
    rx = db.session.get(Prescription, message.prescription_id)
    if rx is None or rx.origin != "portal" or rx.printed_at is not None:
        return
    actor = integration(result.connector, source=SOURCE_WORKER)
    now = utcnow()
    if result.status == "delivered":
        answer = result.result or {}
        vendor_rx = answer.get("dosespot_prescription_id")
        if answer.get("dosespot_patient_id"):
            _remember(result.connector, "patient", rx.patient_id, answer["dosespot_patient_id"])
        if rx.state not in (states.QUEUED, states.ERROR, states.SIGNED):
            return  # the vendor's read already moved it on
        status = str(answer.get("status") or "Sending")
        rx.connector = result.connector
        rx.vendor_id = str(vendor_rx) if vendor_rx is not None else rx.vendor_id
        rx.status = status
        rx.state = states.state_from_vendor(status, rx.medication_status)
        rx.fhir_status = fhir_status(status, rx.medication_status)[0]
        rx.transmission_error = None
        action = "prescription.transmitted"
    else:
        if rx.state not in (states.QUEUED, states.SIGNED):
            return
        rx.state = states.ERROR
        rx.fhir_status = fhir_status("Error", None)[0]
        rx.transmission_error = _in_words(result)
        action = "prescription.transmission_failed"
    rx.updated_at = now
    db.session.flush()
    audit.record(
        actor,
        action,
        patient_id=rx.patient_id,
        obj=rx,
        detail=f"{result.connector} outbox {result.message_id} {result.status}",
        category="prescriptions",
    )


def _in_words(result: outbox.Outcome) -> str:
    if result.status == "dead":
        return (
            "The e-prescribing service could not be reached after several tries"
            + (f" (last: {result.error})" if result.error else "")
            + "."
        )
    return result.error or "The e-prescribing service refused the prescription."


@dataclass(frozen=True)
class TransmissionError:
    prescription: Prescription
    patient: Patient


def transmission_errors(actor, limit: int = 100) -> list[TransmissionError]:
    """The prescriber's prescriptions whose transmission failed, newest first; the list
    names patients, so it is audited."""
    with use_case():
        rows = db.session.execute(
            select(Prescription, Patient)
            .join(Patient, Patient.id == Prescription.patient_id)
            .where(
                Prescription.prescriber_id == actor.id,
                Prescription.state == states.ERROR,
            )
            .order_by(Prescription.updated_at.desc(), Prescription.id.desc())
            .limit(limit)
        ).all()
        # The list names patients: one event per patient shown.
        for patient_id in sorted({patient.id for _, patient in rows}):
            audit.record(
                actor,
                "prescription.errors_viewed",
                patient_id=patient_id,
                category="prescriptions",
            )
    return [TransmissionError(rx, patient) for rx, patient in rows]


def transmission_error_count(actor) -> int:
    """How many of the prescriber's prescriptions wait after a failed transmission."""
    return (
        db.session.scalar(
            select(db.func.count())
            .select_from(Prescription)
            .where(Prescription.prescriber_id == actor.id, Prescription.state == states.ERROR)
        )
        or 0
    )


def retry_send(actor, prescription_id: int) -> Prescription:
    """Send a prescription whose send failed again: the same outbox message (same key, so
    the vendor's copy is found rather than made twice), pending now; audited.

    The prescription's row is locked (as printing locks it), so a print at the same moment
    either comes first (and the retry is refused) or waits for the retry."""
    with use_case():
        rx = db.session.get(
            Prescription, prescription_id, with_for_update=True, populate_existing=True
        )
        if rx is None or rx.origin != "portal":
            raise NotFound()
        get_patient_for(actor, rx.patient_id)
        if rx.signed_by_id != actor.id:
            raise NotFound()
        if rx.state != states.ERROR:
            raise Conflict("Only a prescription whose transmission failed can be sent again.")
        if rx.printed_at is not None:
            raise Refused("A printed prescription is never transmitted.")
        message = db.session.scalars(
            select(OutboxMessage)
            .where(
                OutboxMessage.prescription_id == rx.id,
                # A send, or the approval of a pharmacy's request it answers.
                OutboxMessage.operation.in_((SEND_OPERATION, *APPROVE_OPERATIONS.values())),
            )
            .order_by(OutboxMessage.id.desc())
            .limit(1)
        ).first()
        if message is None or message.status not in outbox.REPLAYABLE:
            raise Refused(
                "The pharmacy's side refused this prescription after it was sent; sending "
                "it again would fail the same way. Choose another pharmacy or print it."
            )
        if message.connector not in enabled_names():
            raise Refused("E-prescribing is switched off: print the prescription instead.")
        outbox.requeue(message)
        rx.state = states.QUEUED
        rx.fhir_status = PORTAL_STATE_FHIR_STATUS[states.QUEUED]
        rx.transmission_error = None
        rx.updated_at = utcnow()
        audit.record(
            actor,
            "prescription.send_retried",
            patient_id=rx.patient_id,
            obj=rx,
            detail=f"{message.connector} outbox {message.id}",
            category="prescriptions",
        )
        return rx


def prescriptions_of_encounter(encounter_id: int) -> list[Prescription]:
    """The prescriptions written at a visit, oldest first (for the encounter page, whose
    view is audited by the page)."""
    return list(
        db.session.scalars(
            select(Prescription)
            .where(Prescription.encounter_id == encounter_id)
            .order_by(Prescription.id)
        )
    )


# States a signed prescription leaves on its own (the worker, the vendor's webhooks): the
# signed dialog's badge keeps asking while in one of them.
MOVING_STATES = frozenset({states.QUEUED, states.SENT})


def state_of(actor, prescription_id: int) -> Prescription:
    """A prescription the actor signed, for its state badge. Not audited: the answer is the
    state alone (no drug, no patient), of a prescription the actor has just signed."""
    rx = db.session.get(Prescription, prescription_id)
    if rx is None or rx.signed_by_id != actor.id:
        raise NotFound()
    get_patient_for(actor, rx.patient_id)
    return rx
