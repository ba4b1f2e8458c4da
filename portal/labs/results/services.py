"""Reviewing lab results (issue 12, sections 4-5): the prescribers' inbox, a result opened
with its history and the patient's previous values, signing off, overdue orders, the chart's
results and trends, and the unmatched queue.

Who sees and signs what (the rules, decided here and in docs/ARCHITECTURE.md):

- **The inbox** holds the current (not superseded), unreviewed results of the prescriber's
  own orders, and the **shared pool**: results with no order (matched by MRN and date of
  birth, or attached from the unmatched queue without one) and results of orders whose
  orderer's account is disabled (someone no longer here: ending employment disables the
  account). Critical (HH, LL, AA) first, then abnormal, then normal; oldest first in each.
- **Opening a result** is a chart read: anyone with ``chart.read`` may open any patient's
  result (the chart is the clinic's, as for notes and vitals), audited as a view. Another
  prescriber's results are not in my inbox, but I reach them from the patient's chart.
- **Signing off** needs ``labs.review`` (prescribers) and a result in the signer's inbox:
  their own order's or the pool's. Another prescriber's result is refused (403): its
  orderer is here and reviews it. Several results at once only when all are normal: an
  abnormal or critical one is opened and signed off on its own. Each sign-off is one
  conditional UPDATE (of two clicks one signs; the other is told it was signed already),
  audited per result. An order is ``reviewed`` when it is ``resulted`` and none of its
  current results waits for review.
- **Overdue**: the orders' own rule (``labs/states.py``: awaiting results past its signing
  plus the slowest test's ``turnaround_days``), listed for the actor's orders and the pool's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import (
    Integer,
    and_,
    func,
    literal,
    or_,
    select,
    text,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.orm import aliased, selectinload
from werkzeug.exceptions import NotFound

from portal.actors import Actor
from portal.audit import services as audit
from portal.auth.models import User
from portal.charting.vitals import charts
from portal.clinic.clock import clinic_zone
from portal.extensions import db
from portal.labs import states
from portal.labs.hl7 import oru
from portal.labs.models import (
    ABNORMAL,
    CRITICAL,
    CRITICAL_WAITING,
    NORMAL,
    WAITING_FOR_REVIEW,
    LabMessage,
    LabOrder,
    LabResult,
    UnmatchedResult,
    severity_of,
)
from portal.labs.services import attach_unmatched
from portal.patients.models import Patient
from portal.patients.services import get_patient_for
from portal.timeutil import utcnow
from portal.transaction import Conflict, Refused, use_case

CATEGORY = "labs"
REVIEW_PERMISSION = "labs.review"
INBOX_LIMIT = 50  # a page: the counts say how many more wait
PREVIOUS_LIMIT = 10
RECENT_LIMIT = 100
ANALYTE_LIMIT = 500
SUMMARY_LIMIT = 5
BULK_LIMIT = 100

STATUS_LABELS = {"P": "preliminary", "F": "final", "C": "corrected", "X": "cancelled"}
FLAG_LABELS = {
    "HH": "critical high",
    "LL": "critical low",
    "AA": "critical abnormal",
    "H": "high",
    "L": "low",
    "A": "abnormal",
    "N": "normal",
}

Orderer = aliased(User)


class NotYours(Refused):
    """The result is another (present) prescriber's to review: answered 403."""

    status = 403


class ReviewedAlready(Conflict):
    def __init__(self) -> None:
        super().__init__("This result was signed off already.")


def _reviewer_groups(actor_id: int) -> list:
    """The inbox's parts, each one range of ``ix_lab_results_inbox`` in the inbox's order:
    the actor's results, the pool's (no reviewer), and those of reviewers whose account is
    disabled (someone no longer here; few, read first)."""
    gone = db.session.scalars(select(User.id).where(User.is_enabled.is_(False))).all()
    groups = [LabResult.reviewer_id == actor_id, LabResult.reviewer_id.is_(None)]
    groups += [LabResult.reviewer_id == user_id for user_id in gone]
    return groups


def _scoped(query):
    return query.outerjoin(LabOrder, LabOrder.id == LabResult.order_id).outerjoin(
        Orderer, Orderer.id == LabOrder.ordering_provider_id
    )


# --- the inbox ------------------------------------------------------------------------------


@dataclass(frozen=True)
class InboxRow:
    id: int
    patient_id: int
    patient_name: str
    name: str
    value: str | None
    units: str | None
    reference_range: str | None
    flag: str | None
    status: str
    observed_at: datetime | None
    received_at: datetime
    placer_order_number: str | None
    pool: bool
    severity: int
    received_local: str  # in the clinic's zone (one zone lookup for the page, not per row)

    @property
    def is_critical(self) -> bool:
        return self.severity == CRITICAL

    @property
    def is_normal(self) -> bool:
        return self.severity == NORMAL


@dataclass
class Counts:
    critical: int = 0
    abnormal: int = 0
    normal: int = 0

    @property
    def total(self) -> int:
        return self.critical + self.abnormal + self.normal


@dataclass
class OverdueOrder:
    id: int
    patient_id: int
    patient_name: str
    placer_order_number: str
    tests: list[str]
    status: str
    due_at: datetime
    pool: bool


@dataclass
class Inbox:
    rows: list[InboxRow]
    counts: Counts
    overdue: list[OverdueOrder]
    after: int | None = None  # the page starts after this result (None: the first page)
    more: bool = False  # more results wait after the last row

    @property
    def next_after(self) -> int | None:
        """The cursor of the next page: the last row shown, when more follow."""
        return self.rows[-1].id if self.more and self.rows else None


def waiting_counts(actor: Actor) -> Counts:
    """How many results wait for the actor's review, by severity (the top bar; not audited:
    counts name nobody)."""
    rows = []
    for group in _reviewer_groups(actor.id):
        rows += db.session.execute(
            select(LabResult.review_rank, func.count())
            .where(group, text(WAITING_FOR_REVIEW))
            .group_by(LabResult.review_rank)
        ).all()
    counts = Counts()
    for rank, count in rows:
        severity = CRITICAL - rank
        if severity == CRITICAL:
            counts.critical += count
        elif severity == ABNORMAL:
            counts.abnormal += count
        else:
            counts.normal += count
    return counts


def _inbox_rows(actor: Actor, after: int | None, limit: int) -> tuple[list[InboxRow], bool]:
    """The actor's waiting results in the inbox's order, the first ``limit`` after the result
    ``after`` (a keyset: its rank, received time and id, so a page never repeats or skips a
    row when results arrive or are signed off between pages), and whether more follow."""
    key = (LabResult.review_rank, LabResult.received_at, LabResult.id)
    groups = _reviewer_groups(actor.id)
    start = []
    if after is not None:
        # The cursor only under the inbox's own visibility (the actor's, the pool's, a
        # departed reviewer's; a patient's: not the unmatched queue's), else 404: any other
        # id would tell whether that result exists and where it ranks. Signed off or
        # replaced since its page was shown, it still marks where that page ended.
        cursor = db.session.execute(
            select(*key).where(
                LabResult.id == after, or_(*groups), LabResult.patient_id.is_not(None)
            )
        ).first()
        if cursor is None:
            raise NotFound()
        start = [tuple_(*key) > tuple(cursor)]
    # Each part's first rows in index order; the first ``limit`` of them all; their rows.
    heads = []
    for group in groups:
        heads += db.session.execute(
            select(*key)
            .where(group, text(WAITING_FOR_REVIEW), *start)
            .order_by(*key)
            .limit(limit + 1)
        ).all()
    heads.sort()
    shown_ids = [row.id for row in heads[:limit]]
    found = db.session.execute(
        select(
            LabResult.id,
            LabResult.patient_id,
            Patient.family_name,
            Patient.given_name,
            LabResult.name,
            LabResult.value_text,
            LabResult.units,
            LabResult.reference_range,
            LabResult.abnormal_flag,
            LabResult.status,
            LabResult.observed_at,
            LabResult.received_at,
            LabOrder.placer_order_number,
            LabOrder.ordering_provider_id,
        )
        .join(Patient, Patient.id == LabResult.patient_id)
        .outerjoin(LabOrder, LabOrder.id == LabResult.order_id)
        .where(LabResult.id.in_(shown_ids))
    ).all()
    position = {result_id: index for index, result_id in enumerate(shown_ids)}
    found = sorted(found, key=lambda row: position[row.id])
    zone = clinic_zone()
    rows = [
        InboxRow(
            id=row.id,
            patient_id=row.patient_id,
            patient_name=f"{row.family_name}, {row.given_name}",
            name=row.name,
            value=row.value_text,
            units=row.units,
            reference_range=row.reference_range,
            flag=row.abnormal_flag,
            status=row.status,
            observed_at=row.observed_at,
            received_at=row.received_at,
            placer_order_number=row.placer_order_number,
            pool=row.ordering_provider_id != actor.id,
            severity=severity_of(row.abnormal_flag),
            received_local=row.received_at.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
        )
        for row in found
    ]
    return rows, len(heads) > limit


def _audit_shown(actor: Actor, rows: list[InboxRow], overdue: list[OverdueOrder]) -> None:
    """Each patient the inbox shows, one event each (one INSERT)."""
    shown: dict[int, int] = {}
    for row in rows:
        shown[row.patient_id] = shown.get(row.patient_id, 0) + 1
    overdue_patients = {order.patient_id for order in overdue}
    with use_case():
        audit.record_many(
            actor,
            "lab.inbox.view",
            [
                {"patient_id": patient_id, "detail": f"{count} results"}
                for patient_id, count in shown.items()
            ]
            + [
                {"patient_id": patient_id, "detail": "overdue order"}
                for patient_id in overdue_patients - shown.keys()
            ],
            category=CATEGORY,
        )


def inbox(actor: Actor, limit: int = INBOX_LIMIT, after: int | None = None) -> Inbox:
    """The actor's results waiting for review (critical, abnormal, normal; oldest first), a
    page of ``limit`` from the start or after the result ``after``, their counts, and the
    overdue orders. Read as plain rows, then each patient shown is audited (one event
    each, one INSERT) before the page is sent."""
    rows, more = _inbox_rows(actor, after, limit)
    counts = waiting_counts(actor)
    overdue = overdue_orders(actor)
    _audit_shown(actor, rows, overdue)
    return Inbox(rows, counts, overdue, after=after, more=more)


def more_results(actor: Actor, after: int, limit: int = INBOX_LIMIT) -> Inbox:
    """The next page of the inbox after the result ``after``, alone ("Show more" appends it
    to the rows shown: the counts and overdue orders are on the page already); the patients
    it shows audited as the page's are."""
    rows, more = _inbox_rows(actor, after, limit)
    _audit_shown(actor, rows, [])
    return Inbox(rows, Counts(), [], after=after, more=more)


def _due_at(order: LabOrder) -> datetime:
    return order.signed_at + states.expected_within(test.loinc for test in order.tests)


def is_overdue(order: LabOrder, now: datetime | None = None) -> bool:
    """An order awaiting results past its slowest test's turnaround (the orders' own rule,
    ``labs/states.py``)."""
    return states.is_overdue(
        order.status, order.signed_at, [test.loinc for test in order.tests], now or utcnow()
    )


def overdue_orders(actor: Actor) -> list[OverdueOrder]:
    """The actor's open orders (and the pool's: orderer disabled) past their expected
    turnaround, most overdue first. Open orders are few: they are read with their tests and
    the turnaround is worked out here."""
    now = utcnow()
    gone = select(User.id).where(User.is_enabled.is_(False))
    # The orders by the orderer's index first, then their patients' names by id (a join
    # lets the planner start from the patients).
    orders = db.session.scalars(
        select(LabOrder)
        .where(
            LabOrder.ordering_provider_id.in_(union_all(select(literal(actor.id, Integer)), gone)),
            LabOrder.status.in_(states.AWAITING_RESULTS),
        )
        .options(selectinload(LabOrder.tests))
    ).all()
    late = [order for order in orders if is_overdue(order, now)]
    names = {
        row.id: f"{row.family_name}, {row.given_name}"
        for row in db.session.execute(
            select(Patient.id, Patient.family_name, Patient.given_name).where(
                Patient.id.in_({order.patient_id for order in late})
            )
        )
    }
    overdue = [
        OverdueOrder(
            id=order.id,
            patient_id=order.patient_id,
            patient_name=names[order.patient_id],
            placer_order_number=order.placer_order_number,
            tests=[test.name for test in order.tests],
            status=order.status,
            due_at=_due_at(order),
            pool=order.ordering_provider_id != actor.id,
        )
        for order in late
    ]
    return sorted(overdue, key=lambda order: order.due_at)


# --- one result -----------------------------------------------------------------------------


@dataclass
class ResultPage:
    result: LabResult
    patient: Patient
    order: LabOrder | None
    orderer_name: str | None
    history: list[LabResult]  # the versions this one replaced, newest first
    replaced_by: LabResult | None
    previous: list[LabResult]  # the patient's earlier current values of the same analyte
    siblings: list[LabResult]  # the order's other current results
    may_sign_off: bool
    reviewer_name: str | None


def analyte_key(result: LabResult) -> str:
    """What makes two results the same analyte: the LOINC code, else the lab's own code."""
    return result.loinc or result.code


def _same_analyte(key: str):
    return or_(LabResult.loinc == key, and_(LabResult.loinc.is_(None), LabResult.code == key))


def _reviewable(actor: Actor, order: LabOrder | None, orderer_enabled: bool | None) -> bool:
    if not actor.has_permission(REVIEW_PERMISSION):
        return False
    return order is None or order.ordering_provider_id == actor.id or orderer_enabled is False


def open_result(actor: Actor, result_id: int) -> ResultPage:
    """One result with its history (corrections), the patient's previous values of the same
    analyte and the order's other results; audited as a view of the patient's result."""
    with use_case():
        result = db.session.get(LabResult, result_id)
        if result is None or result.patient_id is None:
            raise NotFound()
        patient = get_patient_for(actor, result.patient_id)
        order = db.session.get(LabOrder, result.order_id) if result.order_id else None
        orderer = db.session.get(User, order.ordering_provider_id) if order else None
        history = []
        earlier_id = result.supersedes_id
        while earlier_id is not None and len(history) < 20:
            earlier = db.session.get(LabResult, earlier_id)
            if earlier is None:
                break
            history.append(earlier)
            earlier_id = earlier.supersedes_id
        replaced_by = db.session.scalars(
            select(LabResult).where(LabResult.supersedes_id == result.id)
        ).first()
        moment = func.coalesce(LabResult.observed_at, LabResult.received_at)
        this_moment = result.observed_at or result.received_at
        previous = db.session.scalars(
            select(LabResult)
            .where(
                LabResult.patient_id == patient.id,
                _same_analyte(analyte_key(result)),
                LabResult.superseded_at.is_(None),
                LabResult.id != result.id,
                moment <= this_moment,
            )
            .order_by(moment.desc(), LabResult.id.desc())
            .limit(PREVIOUS_LIMIT)
        ).all()
        siblings = []
        if order is not None:
            siblings = db.session.scalars(
                select(LabResult)
                .where(
                    LabResult.order_id == order.id,
                    LabResult.superseded_at.is_(None),
                    LabResult.id != result.id,
                )
                .order_by(LabResult.id)
                .limit(50)
            ).all()
        reviewer = db.session.get(User, result.reviewed_by_id) if result.reviewed_by_id else None
        audit.record(actor, "lab.result.view", patient=patient, obj=result, category=CATEGORY)
    return ResultPage(
        result=result,
        patient=patient,
        order=order,
        orderer_name=orderer.full_name if orderer else None,
        history=history,
        replaced_by=replaced_by,
        previous=list(previous),
        siblings=list(siblings),
        may_sign_off=(
            result.reviewed_at is None
            and result.superseded_at is None
            and _reviewable(actor, order, orderer.is_enabled if orderer else None)
        ),
        reviewer_name=reviewer.full_name if reviewer else None,
    )


# --- signing off ----------------------------------------------------------------------------


@dataclass
class SignedOff:
    signed: list[int] = field(default_factory=list)
    already: list[int] = field(default_factory=list)
    orders_reviewed: list[int] = field(default_factory=list)


def sign_off(
    actor: Actor, result_ids: list[int], comment: str | None = None, *, bulk: bool = False
) -> SignedOff:
    """Sign off results (module notes): one, with an optional comment, or several normal
    ones together. All or nothing: a result the actor may not sign, or an abnormal one in a
    bulk sign-off, refuses the whole request. A result someone signed meanwhile is reported,
    not signed twice. Orders whose results are all reviewed become ``reviewed``."""
    ids = sorted(set(result_ids))
    if not ids:
        raise Refused("Choose at least one result to sign off.", "result_ids")
    if len(ids) > BULK_LIMIT:
        raise Refused(f"Sign off at most {BULK_LIMIT} results at once.", "result_ids")
    comment = (comment or "").strip() or None
    if comment and len(comment) > 1000:
        raise Refused("Keep the comment under 1000 characters.", "comment")
    if not actor.has_permission(REVIEW_PERMISSION):
        raise NotYours("Only prescribers sign off results.")
    outcome = SignedOff()
    now = utcnow()
    with use_case():
        rows = db.session.execute(
            _scoped(select(LabResult, LabOrder, Orderer.is_enabled).select_from(LabResult)).where(
                LabResult.id.in_(ids)
            )
        ).all()
        if len(rows) != len(ids) or any(row[0].patient_id is None for row in rows):
            raise NotFound()
        for result, order, orderer_enabled in rows:
            get_patient_for(actor, result.patient_id)
            if not _reviewable(actor, order, orderer_enabled):
                raise NotYours(
                    "This result is another prescriber's to review: it is in their inbox."
                )
            if result.superseded_at is not None:
                raise Conflict(
                    "A newer result replaced this one: open the current one to sign it off."
                )
            if bulk and severity_of(result.abnormal_flag) != NORMAL:
                raise Refused(
                    "Only normal results are signed off together: open each abnormal or "
                    "critical result and sign it off on its own.",
                    "result_ids",
                )
        orders: dict[int, LabOrder] = {}
        for result, order, _enabled in rows:
            claimed = db.session.execute(
                update(LabResult)
                .where(
                    LabResult.id == result.id,
                    LabResult.reviewed_at.is_(None),
                    LabResult.superseded_at.is_(None),
                )
                .values(reviewed_at=now, reviewed_by_id=actor.id, review_comment=comment)
                .execution_options(synchronize_session=False)
            ).rowcount
            if claimed != 1:
                outcome.already.append(result.id)
                continue
            outcome.signed.append(result.id)
            if order is not None:
                orders[order.id] = order
            audit.record(
                actor,
                "lab.result.reviewed",
                patient_id=result.patient_id,
                object_type="lab_results",
                object_id=result.id,
                category=CATEGORY,
                detail=("bulk" if bulk else "single") + ("; with comment" if comment else ""),
            )
        if not outcome.signed and outcome.already and not bulk:
            raise ReviewedAlready()
        for order in orders.values():
            still_waiting = db.session.scalar(
                select(func.count())
                .select_from(LabResult)
                .where(
                    LabResult.order_id == order.id,
                    LabResult.reviewed_at.is_(None),
                    LabResult.superseded_at.is_(None),
                )
            )
            if still_waiting:
                continue
            moved = db.session.execute(
                update(LabOrder)
                .where(LabOrder.id == order.id, LabOrder.status == "resulted")
                .values(status="reviewed")
                .execution_options(synchronize_session=False)
            ).rowcount
            if moved:
                outcome.orders_reviewed.append(order.id)
                audit.record(
                    actor,
                    "lab.order.reviewed",
                    patient_id=order.patient_id,
                    object_type="lab_orders",
                    object_id=order.id,
                    category=CATEGORY,
                )
    return outcome


# --- the chart ------------------------------------------------------------------------------


def critical_waiting(patient_id: int) -> int:
    """The patient's critical results nobody has signed off (the banner's flag; its page's
    own audit event covers it). One index range (ix_lab_results_patient_critical)."""
    return db.session.scalar(
        select(func.count())
        .select_from(LabResult)
        # The index's own predicate, literally: a bound parameter list would not let
        # SQLite prove the partial index applies.
        .where(LabResult.patient_id == patient_id, text(CRITICAL_WAITING))
    )


def recent_results(patient_id: int, limit: int = SUMMARY_LIMIT) -> list[LabResult]:
    """The patient's latest current results (the chart summary's card)."""
    moment = func.coalesce(LabResult.observed_at, LabResult.received_at)
    return list(
        db.session.scalars(
            select(LabResult)
            .where(LabResult.patient_id == patient_id, LabResult.superseded_at.is_(None))
            .order_by(moment.desc(), LabResult.id.desc())
            .limit(limit)
        )
    )


@dataclass(frozen=True)
class Analyte:
    key: str
    name: str
    count: int
    numeric: int
    latest_at: datetime | None


@dataclass
class PatientResults:
    patient: Patient
    recent: list
    analytes: list[Analyte]
    total: int
    critical_waiting: int


def patient_results(actor: Actor, patient_id: int) -> PatientResults:
    """The patient's results page: the latest current results (bounded) and every analyte
    with its count (each links to its trend). Audited as one view of the patient's results.
    Plain rows: a patient with thousands of results costs two indexed reads."""
    moment = func.coalesce(LabResult.observed_at, LabResult.received_at)
    key = func.coalesce(LabResult.loinc, LabResult.code)
    with use_case():
        patient = get_patient_for(actor, patient_id)
        current = and_(LabResult.patient_id == patient.id, LabResult.superseded_at.is_(None))
        recent = db.session.execute(
            select(
                LabResult.id,
                LabResult.name,
                LabResult.value_text,
                LabResult.units,
                LabResult.reference_range,
                LabResult.abnormal_flag,
                LabResult.status,
                LabResult.observed_at,
                LabResult.received_at,
                LabResult.reviewed_at,
                LabResult.loinc,
                LabResult.code,
            )
            .where(current)
            .order_by(moment.desc(), LabResult.id.desc())
            .limit(RECENT_LIMIT)
        ).all()
        grouped = db.session.execute(
            select(
                key.label("key"),
                func.max(LabResult.name),
                func.count(),
                func.count(LabResult.value_numeric),
                func.max(moment),
            )
            .where(current)
            .group_by(key)
        ).all()
        waiting = critical_waiting(patient.id)
        audit.record(
            actor, "lab.results.view", patient=patient, category=CATEGORY, detail="results page"
        )
    analytes = sorted(
        (Analyte(*row) for row in grouped), key=lambda analyte: analyte.name.casefold()
    )
    return PatientResults(
        patient=patient,
        recent=list(recent),
        analytes=analytes,
        total=sum(analyte.count for analyte in analytes),
        critical_waiting=waiting,
    )


@dataclass(frozen=True)
class TrendWindow:
    """A period an analyte's page shows (its chart and its rows): the last ``days``, or all."""

    key: str
    label: str
    days: int | None

    def since(self, now: datetime) -> datetime | None:
        return now - timedelta(days=self.days) if self.days is not None else None


TREND_WINDOWS = (
    TrendWindow("3m", "3 months", 92),
    TrendWindow("1y", "1 year", 366),
    TrendWindow("5y", "5 years", 1827),
    TrendWindow("all", "All", None),
)
WINDOWS_BY_KEY = {window.key: window for window in TREND_WINDOWS}
DEFAULT_WINDOW = WINDOWS_BY_KEY["1y"]
ALL_TIME = WINDOWS_BY_KEY["all"]
# A trend needs two points: with fewer in the last year the page opens on all of them.
MIN_TREND_POINTS = 2


def trend_window(key: str | None) -> TrendWindow | None:
    """The window ``key`` names (``?window=``), or None for none of them."""
    return WINDOWS_BY_KEY.get(key or "")


@dataclass
class AnalytePage:
    patient: Patient
    key: str
    name: str
    rows: list[LabResult]  # the window's versions, newest first (superseded ones marked)
    numeric: int  # the window's current numeric values: the chart's points
    window: TrendWindow
    earlier: int  # results before the window (shown under a longer one)
    windows: tuple[TrendWindow, ...] = TREND_WINDOWS


def _moment(result: LabResult) -> datetime:
    return result.observed_at or result.received_at


def _is_point(result: LabResult) -> bool:
    return result.superseded_at is None and result.value_numeric is not None


def analyte_results(
    actor: Actor, patient_id: int, key: str, window: TrendWindow | None = None
) -> AnalytePage:
    """One analyte's results of a patient in a time ``window``, corrections and what they
    replaced included, newest first (bounded); audited. Without a window asked for: the last
    year, or all when the last year holds too few values to draw a trend."""
    key = key.strip()[:50]
    moment = func.coalesce(LabResult.observed_at, LabResult.received_at)
    with use_case():
        patient = get_patient_for(actor, patient_id)
        rows = db.session.scalars(
            select(LabResult)
            .where(LabResult.patient_id == patient.id, _same_analyte(key))
            .order_by(moment.desc(), LabResult.id.desc())
            .limit(ANALYTE_LIMIT)
        ).all()
        if not rows:
            raise NotFound()
        audit.record(
            actor, "lab.results.view", patient=patient, category=CATEGORY, detail=f"analyte {key}"
        )
    now = utcnow()
    if window is None:
        last_year = DEFAULT_WINDOW.since(now)
        recent = sum(1 for row in rows if _is_point(row) and _moment(row) >= last_year)
        window = DEFAULT_WINDOW if recent >= MIN_TREND_POINTS else ALL_TIME
    since = window.since(now)
    shown = [row for row in rows if since is None or _moment(row) >= since]
    current = [row for row in rows if row.superseded_at is None]
    return AnalytePage(
        patient=patient,
        key=key,
        name=(current or rows)[0].name,
        rows=shown,
        numeric=sum(1 for row in shown if _is_point(row)),
        window=window,
        earlier=len(rows) - len(shown),
    )


RANGE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*-\s*(-?\d+(?:\.\d+)?)\s*$")


def reference_band(text: str | None) -> tuple[float, float] | None:
    """A "low-high" reference range as numbers (other shapes, "<200", ">39", draw no band)."""
    match = RANGE.match(text or "")
    if not match:
        return None
    low, high = float(match.group(1)), float(match.group(2))
    return (low, high) if low <= high else None


def _decimals(texts: list[str]) -> int:
    places = [len(t.split(".", 1)[1]) for t in texts if t and "." in t]
    return min(max(places, default=0), 3)


def trend_svg(
    actor: Actor,
    patient_id: int,
    key: str,
    *,
    covered: bool = False,
    window: TrendWindow = ALL_TIME,
) -> bytes:
    """The trend chart of one analyte's current numeric values in a time ``window`` (the
    vitals' chart drawing), the latest result's reference range as the band; audited unless
    ``covered`` by the page it is shown on (a fresh image ticket of the vitals' charts)."""
    key = key.strip()[:50]
    moment = func.coalesce(LabResult.observed_at, LabResult.received_at)
    since = window.since(utcnow())
    in_window = [moment >= since] if since is not None else []
    with use_case():
        patient = get_patient_for(actor, patient_id)
        rows = db.session.execute(
            select(
                moment,
                LabResult.value_numeric,
                LabResult.value_text,
                LabResult.units,
                LabResult.reference_range,
                LabResult.name,
            )
            .where(
                LabResult.patient_id == patient.id,
                _same_analyte(key),
                LabResult.superseded_at.is_(None),
                LabResult.value_numeric.is_not(None),
                *in_window,
            )
            .order_by(moment, LabResult.id)
            .limit(5000)
        ).all()
        if not covered:
            audit.record(
                actor, "lab.trend.view", patient=patient, category=CATEGORY, detail=f"{key}"
            )
    zone = clinic_zone()
    points = charts.average_runs([(row[0], row[1]) for row in rows], charts.MAX_POINTS)
    times = [point[0].astimezone(zone).replace(tzinfo=None) for point in points]
    latest = rows[-1] if rows else None
    band = reference_band(latest.reference_range) if latest else None
    title = latest.name if latest else key
    if latest and latest.units:
        title = f"{title} ({latest.units})"
    return charts.draw_trend(
        title,
        times,
        [(key, [point[1] for point in points])],
        [band] if band else [],
        _decimals([row.value_text for row in rows[-20:]]),
    )


# --- the unmatched queue --------------------------------------------------------------------


@dataclass
class QueuedIdentity:
    family_name: str
    given_name: str
    birth_date: object
    mrns: list[str]


@dataclass
class QueueItem:
    item: UnmatchedResult
    identity: QueuedIdentity | None
    result_count: int


@dataclass
class QueueItemPage:
    item: UnmatchedResult
    identity: QueuedIdentity | None
    results: list[LabResult]
    candidates: list[Patient]
    sending_facility: str | None


def _identity_of(message: LabMessage) -> QueuedIdentity | None:
    """Who the message says the results are about (read again from the stored copy)."""
    reading = oru.read_message(message.raw)
    patient = reading.patient
    if patient is None:
        return None
    return QueuedIdentity(patient.family_name, patient.given_name, patient.birth_date, patient.mrns)


def unmatched_queue(actor: Actor, limit: int = 100) -> list[QueueItem]:
    """The results waiting for a person to attach them, oldest first. The names shown are
    the messages' (no patient row yet): audited as one view of the queue."""
    with use_case():
        items = db.session.scalars(
            select(UnmatchedResult)
            .where(UnmatchedResult.resolved_at.is_(None))
            .order_by(UnmatchedResult.id)
            .limit(limit)
        ).all()
        counts = dict(
            db.session.execute(
                select(LabResult.unmatched_id, func.count())
                .where(LabResult.unmatched_id.in_([item.id for item in items]))
                .group_by(LabResult.unmatched_id)
            ).all()
        )
        messages = {
            message.id: message
            for message in db.session.scalars(
                select(LabMessage).where(LabMessage.id.in_({item.message_id for item in items}))
            )
        }
        audit.record(actor, "lab.unmatched.list", category=CATEGORY, detail=f"{len(items)} waiting")
    return [
        QueueItem(item, _identity_of(messages[item.message_id]), counts.get(item.id, 0))
        for item in items
    ]


def _patient_by_mrn(actor: Actor, mrn: str) -> Patient | None:
    """The patient with this MRN if ``actor`` may see them: only the id is read here, the
    patient through the patients domain's ``get_patient_for``, so a record hidden from the
    actor answers as an unknown MRN (no other way to learn it exists)."""
    patient_id = db.session.scalar(select(Patient.id).where(Patient.mrn == mrn.strip()[:20]))
    if patient_id is None:
        return None
    try:
        return get_patient_for(actor, patient_id)
    except NotFound:
        return None


def unmatched_item(actor: Actor, unmatched_id: int, extra_mrn: str | None = None) -> QueueItemPage:
    """One queued message's results beside the patients it could mean (its candidates, and
    the patient of an MRN the user looked up); each patient shown is audited, and the item."""
    with use_case():
        item = db.session.get(UnmatchedResult, unmatched_id)
        if item is None:
            raise NotFound()
        message = db.session.get(LabMessage, item.message_id)
        results = db.session.scalars(
            select(LabResult).where(LabResult.unmatched_id == item.id).order_by(LabResult.id)
        ).all()
        ids = [int(value) for value in (item.candidate_patient_ids or "").split() if value]
        candidates = [get_patient_for(actor, patient_id) for patient_id in ids]
        if extra_mrn:
            found = _patient_by_mrn(actor, extra_mrn)
            if found is None:
                raise Refused("No patient has this MRN.", "mrn")
            if found.id not in ids:
                candidates.insert(0, found)
        audit.record(actor, "lab.unmatched.view", obj=item, category=CATEGORY)
        audit.record_many(
            actor,
            "lab.unmatched.candidate_view",
            [
                {"patient_id": p.id, "object_type": "unmatched_results", "object_id": item.id}
                for p in candidates
            ],
            category=CATEGORY,
        )
    return QueueItemPage(
        item=item,
        identity=_identity_of(message),
        results=list(results),
        candidates=candidates,
        sending_facility=message.sending_facility,
    )


def attach(actor: Actor, unmatched_id: int, patient_id: int) -> UnmatchedResult:
    """Attach a queued message's results to the chosen patient (labs' use case, audited)."""
    return attach_unmatched(actor, unmatched_id, patient_id)
