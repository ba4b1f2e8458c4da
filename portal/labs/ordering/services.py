"""Ordering labs: a prescriber's draft (kept server-side, seen by nobody else), its tests from
the catalog, its details, signing (the send in the outbox in the same transaction), cancelling,
the patient's and the visit's orders, and the requisition's content.

Every use case loads the order through ``_order_for`` (the patient must be visible to the
actor; a draft only to its prescriber: another's draft is as unknown as any id), does its
work, audits, and commits once. Signing is one conditional UPDATE from ``draft``: two clicks
race on it and the loser answers with what the first did; the send's idempotency key is the
order's, so it cannot be queued twice either.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import selectinload
from werkzeug.exceptions import NotFound

from portal.actors import Actor
from portal.audit import services as audit
from portal.auth.models import User
from portal.charting.models import Encounter, Problem
from portal.clinic.clock import clinic_today
from portal.extensions import db
from portal.integrations import outbox, registry
from portal.integrations.settings import enabled_names
from portal.labs import states
from portal.labs.models import LabMessage, LabOrder, LabOrderTest
from portal.patients.models import Patient
from portal.patients.services import get_patient_for, get_row_of_patient
from portal.terminology import lab_tests
from portal.timeutil import utcnow
from portal.transaction import Conflict, Refused, end_read, use_case

CATEGORY = "labs"
SEND_OPERATION = "send_lab_order"
CANCEL_OPERATION = "cancel_lab_order"
# A requisition names at most this many diagnoses (the paper forms' four boxes; DG1 x4).
MAX_DIAGNOSES = 4
MAX_TESTS = 30
NOTE_MAX = 500
# A collection date further ahead than this is a typo, not a plan.
COLLECTION_HORIZON = timedelta(days=366)
ORDERS_SHOWN = 200


@dataclass
class OrderDetails:
    """What the order form sends besides the tests (kept as typed on a refusal)."""

    diagnoses: list[str] = field(default_factory=list)
    priority: str = "routine"
    fasting: bool = False
    collection_date: date | None = None
    note: str | None = None
    connector: str | None = None  # the performing lab; None: print the requisition


@dataclass(frozen=True)
class LabChoice:
    name: str
    title: str


@dataclass
class OrderPage:
    order: LabOrder
    patient: Patient
    orderer_name: str
    problems: list[Problem]
    labs: list[LabChoice]
    overdue: bool
    mine: bool
    # The tests on the order the catalog says need fasting (a hint beside "fasting").
    fasting_tests: list[str] = field(default_factory=list)
    # The performing lab as people call it (the connector's title, not its internal name).
    lab_title: str = ""


def placer_number(order_id: int) -> str:
    """The order number that travels in ORC-2/OBR-2, comes back in results and is the
    requisition's barcode: short, printable, Code 128 friendly."""
    return f"L{order_id:08d}"


def order_control_id(placer_order_number: str, operation: str, outbox_message_id: int) -> str:
    """The MSH-10 of the ORM that carries one outbox message (``N`` the order, ``C`` its
    cancel). The same for every try of that message, so a resend after a lost ACK is the
    same message to the lab (which may answer it as a duplicate), never a second order. The
    order number leads it, so ``lab_has_received`` finds the order's outbound copies; at
    most 20 characters, HL7's length for MSH-10, while outbox ids have up to 9 digits."""
    kind = "C" if operation == CANCEL_OPERATION else "N"
    return f"{placer_order_number}-{kind}{outbox_message_id}"


def lab_has_received(order: LabOrder) -> bool:
    """Whether an ORM for the order was ever put on the wire: delivery keeps the outbound
    copy in ``lab_messages`` in the same transaction that marks the order sent (under the
    order's row lock), before the socket is opened. A claimed send that has not got that
    far has reached no lab, so its cancel needs no CA (the send is withheld instead)."""
    return (
        db.session.scalar(
            select(LabMessage.id)
            .where(
                LabMessage.direction == "out",
                LabMessage.control_id.like(f"{order.placer_order_number}-%"),
            )
            .limit(1)
        )
        is not None
    )


def enabled_labs() -> list[LabChoice]:
    """The enabled lab connectors, for the performing lab's choice."""
    choices = []
    for name in enabled_names():
        cls = registry.connector_class(name)
        if cls is not None and cls.kind == "lab":
            choices.append(LabChoice(name, cls.title))
    return choices


def _order_for(actor: Actor, order_id: int, *, lock: bool = False) -> tuple[LabOrder, Patient]:
    """The order and its patient, if ``actor`` may see them (404 otherwise; a draft is its
    prescriber's alone)."""
    # Re-read even when the session holds the row from an earlier use case of the request
    # (rows outlive commits here): the checks below decide on the current state.
    query = (
        select(LabOrder).where(LabOrder.id == order_id).execution_options(populate_existing=True)
    )
    if lock:
        query = query.with_for_update()
    order = db.session.scalar(query)
    if order is None:
        raise NotFound()
    patient = get_patient_for(actor, order.patient_id)
    if order.status == states.DRAFT and order.ordering_provider_id != actor.id:
        raise NotFound()
    return order, patient


def _draft_for(actor: Actor, order_id: int) -> tuple[LabOrder, Patient]:
    order, patient = _order_for(actor, order_id, lock=True)
    if order.status != states.DRAFT:
        raise Conflict(
            f"This order is {states.label(order.status).lower()}: it can no longer change."
        )
    return order, patient


def start_order(actor: Actor, patient_id: int, encounter_id: int | None = None) -> LabOrder:
    """A new draft for ``patient_id`` (of the visit ``encounter_id``, when ordered from it)."""
    with use_case():
        patient = get_patient_for(actor, patient_id)
        if patient.status == "deceased":
            raise Refused("The patient is deceased: labs cannot be ordered.")
        if encounter_id is not None:
            get_row_of_patient(patient, Encounter, encounter_id)
        order = LabOrder(
            placer_order_number=uuid.uuid4().hex[:22],  # replaced once the id is known
            patient_id=patient.id,
            ordering_provider_id=actor.id,
            encounter_id=encounter_id,
            # The clinic's lab, when it has one enabled; the prescriber may choose another.
            connector=next((lab.name for lab in enabled_labs()), None),
            status=states.DRAFT,
            priority="routine",
            fasting=False,
        )
        db.session.add(order)
        db.session.flush()
        order.placer_order_number = placer_number(order.id)
        audit.record(actor, "lab_order.start", patient=patient, obj=order, category=CATEGORY)
    return order


def view_order(actor: Actor, order_id: int) -> OrderPage:
    """An order with what its page needs (audited as a view)."""
    with use_case():
        order, patient = _order_for(actor, order_id)
        page = _page_of(actor, order, patient)
        audit.record(actor, "lab_order.view", patient=patient, obj=order, category=CATEGORY)
    return page


@dataclass(frozen=True)
class OrderState:
    """What an order's live badge shows: its state, and overdue when it is."""

    id: int
    status: str
    overdue: bool


def order_state(actor: Actor, order_id: int) -> OrderState:
    """An order's state for its badge, which asks again every few seconds while the order is
    in flight. Not audited: the answer names no patient, test or value, only the state of
    an order the actor is shown on a page that recorded the view (the order's page, the
    visit's, the patient's orders); an event per poll would bury the trail (a screen left
    open on a visit writes 300 an hour). The object-level checks are the page's own."""
    order, _patient = _order_for(actor, order_id)
    return OrderState(
        id=order.id,
        status=order.status,
        overdue=states.is_overdue(
            order.status, order.signed_at, [test.loinc for test in order.tests], utcnow()
        ),
    )


def _page_of(actor: Actor, order: LabOrder, patient: Patient) -> OrderPage:
    tests = list(order.tests)  # loaded while the transaction is open
    orderer = db.session.get(User, order.ordering_provider_id)
    problems = []
    if order.status == states.DRAFT:
        problems = list(
            db.session.scalars(
                select(Problem)
                .where(Problem.patient_id == patient.id, Problem.status == "active")
                .order_by(Problem.created_at)
            )
        )
    overdue = states.is_overdue(order.status, order.signed_at, [t.loinc for t in tests], utcnow())
    return OrderPage(
        order=order,
        patient=patient,
        orderer_name=orderer.full_name if orderer else "",
        problems=problems,
        labs=enabled_labs() if order.status == states.DRAFT else [],
        overdue=overdue,
        mine=order.ordering_provider_id == actor.id,
        fasting_tests=[
            t.name for t in tests if (known := lab_tests.get(t.loinc)) is not None and known.fasting
        ],
        lab_title=lab_title(order.connector),
    )


def lab_title(name: str | None) -> str:
    """The title of the connector ``name`` (its name if no longer installed, "" for none)."""
    if not name:
        return ""
    cls = registry.connector_class(name)
    return cls.title if cls is not None else name


def search_tests(actor: Actor, order_id: int, text: str) -> list[lab_tests.LabTest]:
    """Catalog tests and panels matching ``text`` for the actor's draft (reference data:
    nothing about the patient is read, so nothing is audited)."""
    _order_for(actor, order_id)
    end_read()
    if len(text.strip()) < 2:
        return []
    return lab_tests.search(text, limit=15)


def add_test(actor: Actor, order_id: int, loinc: str) -> LabOrder:
    """Add one catalog test (or panel) to the draft; adding it again changes nothing."""
    test = lab_tests.get(loinc)
    if test is None:
        raise Refused("Choose a test from the catalog.", "test_query")
    with use_case():
        order, patient = _draft_for(actor, order_id)
        loincs = {t.loinc for t in order.tests}
        if loinc not in loincs:
            if len(loincs) >= MAX_TESTS:
                raise Refused(f"An order holds at most {MAX_TESTS} tests.", "test_query")
            db.session.add(LabOrderTest(order_id=order.id, loinc=test.loinc, name=test.name))
            audit.record(
                actor,
                "lab_order.test_added",
                patient=patient,
                obj=order,
                category=CATEGORY,
                detail=f"loinc={test.loinc}",
            )
    return order


def remove_test(actor: Actor, order_id: int, loinc: str) -> LabOrder:
    with use_case():
        order, patient = _draft_for(actor, order_id)
        for test in order.tests:
            if test.loinc == loinc:
                db.session.delete(test)
                audit.record(
                    actor,
                    "lab_order.test_removed",
                    patient=patient,
                    obj=order,
                    category=CATEGORY,
                    detail=f"loinc={loinc}",
                )
    return order


def _check_details(patient: Patient, details: OrderDetails) -> None:
    """Refuse details the order cannot carry, beside the field at fault."""
    if details.priority not in ("routine", "stat"):
        raise Refused("Choose routine or STAT.", "priority")
    if len(details.diagnoses) > MAX_DIAGNOSES:
        raise Refused(f"Choose at most {MAX_DIAGNOSES} diagnoses.", "diagnoses")
    if details.diagnoses:
        codes = set(
            db.session.scalars(
                select(Problem.icd10_code).where(
                    Problem.patient_id == patient.id, Problem.status == "active"
                )
            )
        )
        if not set(details.diagnoses) <= codes:
            raise Refused("Diagnoses come from the patient's active problems.", "diagnoses")
    if details.collection_date is not None:
        today = clinic_today()
        if details.collection_date < today:
            raise Refused("The collection date cannot be in the past.", "collection_date")
        if details.collection_date > today + COLLECTION_HORIZON:
            raise Refused("The collection date is more than a year ahead.", "collection_date")
    if details.note and len(details.note) > NOTE_MAX:
        raise Refused(f"The note is at most {NOTE_MAX} characters.", "note")
    if details.connector and details.connector not in {lab.name for lab in enabled_labs()}:
        raise Refused("That lab is not enabled: choose another, or print.", "connector")


def _apply(order: LabOrder, details: OrderDetails) -> None:
    order.diagnoses = " ".join(dict.fromkeys(details.diagnoses)) or None
    order.priority = details.priority
    order.fasting = bool(details.fasting)
    order.collection_date = details.collection_date
    order.note = (details.note or "").strip() or None
    order.connector = details.connector or None


def save_details(actor: Actor, order_id: int, details: OrderDetails) -> LabOrder:
    """Keep the draft's details (refused details change nothing)."""
    with use_case():
        order, patient = _draft_for(actor, order_id)
        _check_details(patient, details)
        _apply(order, details)
        audit.record(actor, "lab_order.update", patient=patient, obj=order, category=CATEGORY)
    return order


def sign_order(actor: Actor, order_id: int, details: OrderDetails) -> LabOrder:
    """Save the details and sign: the order becomes ``signed`` and, with a performing lab,
    its send is in the outbox, in one transaction. A second click (or a form sent twice)
    finds the order signed and answers with it: nothing is signed or queued twice."""
    if not actor.has_permission("labs.order"):
        raise Refused("Only a prescriber signs lab orders.")
    with use_case():
        order, patient = _order_for(actor, order_id, lock=True)
        if order.status != states.DRAFT:
            if order.signed_at is not None and order.ordering_provider_id == actor.id:
                return order  # the other click won: show what it did
            raise Conflict("This order is no longer a draft.")
        if patient.status == "deceased":
            raise Refused("The patient is deceased: labs cannot be ordered.")
        if not order.tests:
            raise Refused("Add at least one test before signing.", "test_query")
        _check_details(patient, details)
        _apply(order, details)
        now = utcnow()
        db.session.flush()
        signed = db.session.execute(
            update(LabOrder)
            .where(LabOrder.id == order.id, LabOrder.status == states.DRAFT)
            .values(status=states.SIGNED, signed_at=now)
            .execution_options(synchronize_session=False)
        )
        if signed.rowcount != 1:
            raise Conflict("This order was signed meanwhile.")
        if order.connector:
            outbox.enqueue(
                order.connector,
                SEND_OPERATION,
                {"order_id": order.id},
                idempotency_key=f"{order.connector}:{SEND_OPERATION}:order-{order.id}",
                patient_id=patient.id,
                order_id=order.id,
            )
        audit.record(
            actor,
            "lab_order.sign",
            patient=patient,
            obj=order,
            category=CATEGORY,
            detail=f"tests={len(order.tests)} lab={order.connector or 'print'}",
        )
    db.session.expire(order)
    return order


def cancel_order(actor: Actor, order_id: int) -> LabOrder:
    """Cancel an order no result has reached (a draft is simply dropped the same way). If the
    lab may have it (an ORM for it went out: ``lab_has_received``), a cancel (ORM^O01, ORC-1
    ``CA``) follows it through the outbox; a send still waiting is withheld at delivery."""
    if not actor.has_permission("labs.order"):
        raise Refused("Only a prescriber cancels lab orders.")
    with use_case():
        order, patient = _order_for(actor, order_id, lock=True)
        if order.status == states.CANCELLED:
            return order
        if not states.may_move(order.status, states.CANCELLED):
            raise Conflict(
                f"This order is {states.label(order.status).lower()}: results have arrived, "
                "so it cannot be cancelled."
            )
        was = order.status
        order.status = states.CANCELLED
        order.cancelled_at = utcnow()
        order.cancelled_by_id = actor.id
        # Not the send's attempts: those count from the claim, before anything reached the
        # lab. The order's row lock (here and in delivery's _prepare) orders this read after
        # a prepare that got there first, or that prepare after this cancel.
        lab_may_have_it = bool(order.connector) and lab_has_received(order)
        if lab_may_have_it:
            outbox.enqueue(
                order.connector,
                CANCEL_OPERATION,
                {"order_id": order.id},
                idempotency_key=f"{order.connector}:{CANCEL_OPERATION}:order-{order.id}",
                patient_id=patient.id,
                order_id=order.id,
            )
        audit.record(
            actor,
            "lab_order.cancel",
            patient=patient,
            obj=order,
            category=CATEGORY,
            detail=f"from={was} cancel_sent={'yes' if lab_may_have_it else 'no'}",
        )
    return order


@dataclass(frozen=True)
class OrderRow:
    id: int
    placer_order_number: str
    status: str
    priority: str
    created_at: datetime
    signed_at: datetime | None
    orderer_name: str
    tests: tuple[str, ...]
    overdue: bool
    error: str | None
    mine: bool


def _rows(actor: Actor, query) -> list[OrderRow]:
    orders = list(
        db.session.scalars(
            query.options(selectinload(LabOrder.tests))
            .order_by(LabOrder.created_at.desc(), LabOrder.id.desc())
            .limit(ORDERS_SHOWN)
        )
    )
    names = dict(
        db.session.execute(
            select(User.id, User.full_name).where(
                User.id.in_({o.ordering_provider_id for o in orders})
            )
        ).all()
    )
    now = utcnow()
    return [
        OrderRow(
            id=o.id,
            placer_order_number=o.placer_order_number,
            status=o.status,
            priority=o.priority,
            created_at=o.created_at,
            signed_at=o.signed_at,
            orderer_name=names.get(o.ordering_provider_id, ""),
            tests=tuple(t.name for t in o.tests),
            overdue=states.is_overdue(o.status, o.signed_at, [t.loinc for t in o.tests], now),
            error=o.error,
            mine=o.ordering_provider_id == actor.id,
        )
        for o in orders
        # Drafts are their prescriber's work in progress.
        if o.status != states.DRAFT or o.ordering_provider_id == actor.id
    ]


def patient_orders(actor: Actor, patient_id: int) -> tuple[Patient, list[OrderRow]]:
    """The patient's orders, newest first (audited as one view)."""
    with use_case():
        patient = get_patient_for(actor, patient_id)
        rows = _rows(actor, select(LabOrder).where(LabOrder.patient_id == patient.id))
        audit.record(
            actor,
            "lab_order.list",
            patient=patient,
            category=CATEGORY,
            detail=f"orders={len(rows)}",
        )
    return patient, rows


def encounter_orders(actor: Actor, encounter_id: int) -> list[OrderRow]:
    """The visit's orders (for the encounter page, whose own event covers them)."""
    return _rows(actor, select(LabOrder).where(LabOrder.encounter_id == encounter_id))


@dataclass(frozen=True)
class RequisitionTest:
    loinc: str
    name: str
    specimen: str
    fasting: bool


@dataclass(frozen=True)
class Requisition:
    order_id: int
    placer_order_number: str
    status: str
    patient_name: str
    patient_birth_date: date
    patient_mrn: str
    patient_sex: str
    orderer_name: str
    signed_at: datetime | None
    priority: str
    fasting: bool
    collection_date: date | None
    note: str | None
    diagnoses: tuple[tuple[str, str], ...]
    tests: tuple[RequisitionTest, ...]
    lab_title: str | None
    clinic_name: str
    clinic_address: str | None
    clinic_phone: str | None


def print_requisition(actor: Actor, order_id: int, clinic) -> Requisition:
    """The requisition's content of a signed order (audited as a print)."""
    with use_case():
        order, patient = _order_for(actor, order_id)
        if order.status in (states.DRAFT, states.CANCELLED):
            raise Conflict("Only a signed order has a requisition.")
        orderer = db.session.get(User, order.ordering_provider_id)
        codes = (order.diagnoses or "").split()
        described = dict(
            db.session.execute(
                select(Problem.icd10_code, Problem.description).where(
                    Problem.patient_id == patient.id, Problem.icd10_code.in_(codes)
                )
            ).all()
        )
        tests = []
        for test in order.tests:
            known = lab_tests.get(test.loinc)
            tests.append(
                RequisitionTest(
                    loinc=test.loinc,
                    name=test.name,
                    specimen=known.specimen if known else "",
                    fasting=known.fasting if known else False,
                )
            )
        cls = registry.connector_class(order.connector) if order.connector else None
        requisition = Requisition(
            order_id=order.id,
            placer_order_number=order.placer_order_number,
            status=order.status,
            patient_name=f"{patient.family_name}, {patient.given_name}",
            patient_birth_date=patient.birth_date,
            patient_mrn=patient.mrn,
            patient_sex=patient.sex_at_birth,
            orderer_name=orderer.full_name if orderer else "",
            signed_at=order.signed_at,
            priority=order.priority,
            fasting=order.fasting,
            collection_date=order.collection_date,
            note=order.note,
            diagnoses=tuple((code, described.get(code, "")) for code in codes),
            tests=tuple(tests),
            lab_title=cls.title if cls else None,
            clinic_name=clinic.name if clinic else "",
            clinic_address=getattr(clinic, "address", None),
            clinic_phone=getattr(clinic, "phone", None),
        )
        audit.record(
            actor, "lab_order.print_requisition", patient=patient, obj=order, category=CATEGORY
        )
    return requisition
