"""Filing a batch (the listener's filer, ``services.file_many``) gives what filing each
message alone, one after another, gives: the same matches, the same unmatched queue, a
duplicate filed once, corrections superseding (a result stored before, or one earlier in
the same batch), the same order status and the same audit events."""

from __future__ import annotations

import re
from datetime import date

from sqlalchemy import select

from portal.audit.models import AuditEvent
from portal.extensions import db
from portal.labs import services
from portal.labs.hl7 import oru as hl7_oru
from portal.labs.models import PROCESSED, LabMessage, LabOrder, LabResult, UnmatchedResult
from tests.labs.helpers import add_order, add_patient, oru

CHOLESTEROL = "OBX|1|NM|2093-3^Cholesterol^LN||{value}|mg/dL|<200|H|||{status}|||20240102080000"


def _scenario(tag: str, zone) -> tuple[dict, list[str]]:
    """Two patients, an order of the first, a result of the second stored before, and the
    messages of the batch (their control ids are ``<tag>-<index>``)."""
    first, first_mrn = add_patient(family="Doe", mrn=f"{tag}-1")
    second, second_mrn = add_patient(family="Roe", birth_date=date(1975, 5, 5), mrn=f"{tag}-2")
    order = add_order(first, f"{tag}-ORD")
    stored_before = oru(
        control_id=f"{tag}-0",
        mrn=second_mrn,
        family="Roe",
        birth_date="19750505",
        filler=f"{tag}-F2",
        observations=[CHOLESTEROL.format(value=200, status="F")],
    )
    received = services.receive(stored_before.encode())
    assert services.file_message(received.message_id, zone=zone) == PROCESSED
    second_as_sent = {"mrn": second_mrn, "family": "Roe", "birth_date": "19750505"}
    messages = [
        oru(control_id=f"{tag}-1", mrn=first_mrn, placer=f"{tag}-ORD", filler=f"{tag}-F1"),
        oru(control_id=f"{tag}-2", mrn=f"{tag}-404", filler=f"{tag}-F4"),  # unknown MRN
        oru(control_id=f"{tag}-3", mrn=second_mrn, family="Roe", birth_date="19990101"),
        oru(  # corrects the result stored before
            control_id=f"{tag}-4",
            filler=f"{tag}-F2",
            observations=[CHOLESTEROL.format(value=190, status="C")],
            **second_as_sent,
        ),
        oru(  # a preliminary result, made final by the next message of the same batch
            control_id=f"{tag}-5",
            mrn=first_mrn,
            filler=f"{tag}-F3",
            observations=[CHOLESTEROL.format(value=250, status="P")],
        ),
        oru(
            control_id=f"{tag}-6",
            mrn=first_mrn,
            filler=f"{tag}-F3",
            observations=[CHOLESTEROL.format(value=240, status="F")],
        ),
        oru(control_id=f"{tag}-7", placer=f"{tag}-ORD", filler=f"{tag}-F5", **second_as_sent),
        oru(control_id=f"{tag}-1", mrn=first_mrn, placer=f"{tag}-ORD", filler=f"{tag}-F1"),
    ]
    return {"p1": first, "p2": second, "order": order}, messages


def _outcome(tag: str, ids: dict) -> dict:
    """What was filed for the tag's messages, in the tag's own words (no database ids)."""
    messages = db.session.scalars(
        select(LabMessage).where(LabMessage.control_id.like(f"{tag}-%")).order_by(LabMessage.id)
    ).all()
    index = {message.id: message.control_id for message in messages}
    patients = {ids["p1"]: "p1", ids["p2"]: "p2", None: None}
    rows = db.session.scalars(
        select(LabResult).where(LabResult.message_id.in_(index)).order_by(LabResult.id)
    ).all()
    by_id = {row.id: row for row in rows}

    def named(row):
        return (index[row.message_id], row.code) if row else None

    results = [
        (
            index[row.message_id],
            patients[row.patient_id],
            row.order_id == ids["order"],
            row.code,
            row.value_numeric,
            row.status,
            row.superseded_at is not None,
            named(by_id.get(row.supersedes_id)),
        )
        for row in rows
    ]
    queue = [
        (index[item.message_id], item.reason)
        for item in db.session.scalars(
            select(UnmatchedResult)
            .where(UnmatchedResult.message_id.in_(index))
            .order_by(UnmatchedResult.message_id)
        )
    ]
    events = [
        (
            event.action,
            patients[event.patient_id],
            event.object_type,
            re.sub(r"message (\d+)", lambda m: index[int(m[1])], event.detail),
        )
        for event in db.session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action.in_(("lab.results_filed", "lab.results_unmatched")))
            .order_by(AuditEvent.id)
        )
        if int(re.search(r"message (\d+)", event.detail)[1]) in index
    ]
    outcome = {
        "states": [(message.control_id, message.state) for message in messages],
        "results": results,
        "queue": queue,
        "order": db.session.get(LabOrder, ids["order"]).status,
        "events": events,
    }
    db.session.rollback()
    return outcome


def _in_own_words(value, tag: str):
    """The outcome with the tag's control ids named ``T-<index>``, to compare two tags'."""
    if isinstance(value, str):
        return re.sub(rf"^{tag}-", "T-", value)
    if isinstance(value, dict):
        return {key: _in_own_words(item, tag) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_in_own_words(item, tag) for item in value)
    return value


def test_a_batch_files_each_message_as_filing_them_one_at_a_time_would(app, zone):
    with app.app_context():
        alone_ids, alone = _scenario("ALONE", zone)
        for text in alone:
            received = services.receive(text.encode())
            if received.to_file:
                services.file_message(received.message_id, zone=zone)
        batch_ids, batch = _scenario("BATCH", zone)
        items = [(text.encode(), hl7_oru.read_message(text.encode())) for text in batch]
        answers = services.receive_many(items)
        assert [answer.duplicate for answer in answers] == [False] * 7 + [True]
        assert answers[-1].message_id == answers[0].message_id
        to_file = [
            (answer.message_id, reading)
            for answer, (_raw, reading) in zip(answers, items, strict=True)
            if answer.to_file
        ]
        outcomes = services.file_many(to_file, zone=zone)
        assert set(outcomes.values()) == {PROCESSED}

        filed_alone = _in_own_words(_outcome("ALONE", alone_ids), "ALONE")
        filed_in_batch = _in_own_words(_outcome("BATCH", batch_ids), "BATCH")
        assert filed_in_batch == filed_alone
        # and what was filed is right in the first place, not merely alike
        assert filed_in_batch["queue"] == [
            ("T-2", "unknown_mrn"),
            ("T-3", "birth_date_differs"),
            ("T-7", "order_patient_differs"),
        ]
        cholesterol = [row for row in filed_in_batch["results"] if row[3] == "2093-3"]
        assert cholesterol == [
            ("T-0", "p2", False, "2093-3", 200.0, "F", True, None),
            ("T-1", "p1", True, "2093-3", 212.0, "F", False, None),
            ("T-2", None, False, "2093-3", 212.0, "F", False, None),
            ("T-3", None, False, "2093-3", 212.0, "F", False, None),
            ("T-4", "p2", False, "2093-3", 190.0, "C", False, ("T-0", "2093-3")),
            ("T-5", "p1", False, "2093-3", 250.0, "P", True, None),
            ("T-6", "p1", False, "2093-3", 240.0, "F", False, ("T-5", "2093-3")),
            ("T-7", None, False, "2093-3", 212.0, "F", False, None),
        ]
        assert filed_in_batch["order"] == "resulted"
        assert [event[:3] for event in filed_in_batch["events"]][1:5] == [
            ("lab.results_filed", "p1", "lab_orders"),
            ("lab.results_unmatched", None, "unmatched_results"),
            ("lab.results_unmatched", None, "unmatched_results"),
            ("lab.results_filed", "p2", "lab_messages"),
        ]

        # filed once: the batch again (a second filer, a retry) files nothing more
        again = services.file_many(to_file, zone=zone)
        assert set(again.values()) == {None}
        assert _in_own_words(_outcome("BATCH", batch_ids), "BATCH") == filed_in_batch


def test_a_result_in_a_batch_never_attaches_to_another_patient_of_the_batch(app, zone):
    """Two patients of one batch with the same filler order number (two labs' numbering,
    or a lab's reuse): each one's correction replaces only their own result."""
    with app.app_context():
        first, first_mrn = add_patient(family="Doe", mrn="SAME-1")
        second, second_mrn = add_patient(family="Doe", mrn="SAME-2")
        texts = [
            oru(control_id=f"S-{n}", mrn=mrn, filler="SHARED", observations=[obx])
            for n, (mrn, obx) in enumerate(
                [
                    (first_mrn, CHOLESTEROL.format(value=201, status="F")),
                    (second_mrn, CHOLESTEROL.format(value=202, status="F")),
                    (first_mrn, CHOLESTEROL.format(value=191, status="C")),
                ]
            )
        ]
        items = [(text.encode(), hl7_oru.read_message(text.encode())) for text in texts]
        answers = services.receive_many(items)
        services.file_many(
            [(a.message_id, reading) for a, (_raw, reading) in zip(answers, items, strict=True)],
            zone=zone,
        )
        rows = db.session.scalars(select(LabResult).order_by(LabResult.id)).all()
        summary = [
            (row.patient_id, row.value_numeric, row.superseded_at is not None) for row in rows
        ]
        assert summary == [(first, 201.0, True), (second, 202.0, False), (first, 191.0, False)]
        assert rows[2].supersedes_id == rows[0].id
        db.session.rollback()
