"""Filing results: matching to an order or a patient, the unmatched queue and attaching from
it (audited), corrections superseding, order statuses, failures kept and retried, and the
drop folder."""

from __future__ import annotations

import os
import threading
from datetime import date

import pytest
from sqlalchemy import select, update

from portal.extensions import db
from portal.labs import jobs as lab_jobs
from portal.labs import listener, services
from portal.labs.models import (
    FAILED,
    PROCESSED,
    LabMessage,
    LabOrder,
    LabResult,
    UnmatchedResult,
)
from portal.timeutil import utcnow
from portal.transaction import Conflict, Refused
from tests.labs.helpers import add_order, add_patient, oru, stored_messages
from tests.labs.samples import NIST_STYLE_251, V23
from tests.support.audit import audit_events
from tests.support.clients import actor_of


def receive_and_file(text: str, zone) -> int:
    received = services.receive(text.encode())
    assert received.ack_code == "AA", received.ack
    assert services.file_message(received.message_id, zone=zone) == PROCESSED
    return received.message_id


def results() -> list[LabResult]:
    rows = db.session.scalars(select(LabResult).order_by(LabResult.id)).all()
    db.session.rollback()
    return rows


def queue() -> list[UnmatchedResult]:
    rows = db.session.scalars(select(UnmatchedResult).order_by(UnmatchedResult.id)).all()
    db.session.rollback()
    return rows


def test_results_attach_to_their_order_by_the_placer_order_number(app, zone):
    with app.app_context():
        patient_id, mrn = add_patient()
        order_id = add_order(patient_id, "P-1", tests=(("24331-1", "Lipid panel"),))
        receive_and_file(oru(mrn=mrn, placer="P-1"), zone)
        cholesterol, hdl = results()
        assert {cholesterol.patient_id, hdl.patient_id} == {patient_id}
        assert cholesterol.order_id == order_id and cholesterol.order_test_id is not None
        assert (cholesterol.loinc, cholesterol.value_numeric, cholesterol.units) == (
            "2093-3",
            212,
            "mg/dL",
        )
        assert cholesterol.abnormal_flag == "H" and cholesterol.performing_lab == "ACME LAB"
        assert db.session.get(LabOrder, order_id).status == "resulted"
        (event,) = audit_events(app, "lab.results_filed")
        assert event.patient_id == patient_id and event.username == "integration:hl7lab"


def test_an_order_number_without_identifiers_is_enough_and_a_public_style_message_files(app, zone):
    with app.app_context():
        patient_id, mrn = add_patient("Philip", "Johnson", date(1970, 3, 4))
        add_order(patient_id, "P-9", tests=(("4548-4", "Hemoglobin A1c"),))
        receive_and_file(NIST_STYLE_251.format(mrn=mrn, dob="19700304", placer="P-9"), zone)
        (a1c,) = results()
        assert a1c.patient_id == patient_id and a1c.value_numeric == 7.9
        assert a1c.observed_at.isoformat() == "2010-09-29T14:30:00+00:00"  # -0500 kept


def test_a_partial_answer_leaves_the_order_partially_resulted(app, zone):
    with app.app_context():
        patient_id, mrn = add_patient()
        order_id = add_order(patient_id, "P-2", tests=(("24331-1", "Lipid"), ("4548-4", "A1c")))
        receive_and_file(oru(mrn=mrn, placer="P-2"), zone)
        assert db.session.get(LabOrder, order_id).status == "partially_resulted"


def test_without_an_order_results_attach_by_mrn_and_birth_date(app, zone):
    with app.app_context():
        patient_id, mrn = add_patient("Carl", "Evans", date(1970, 3, 4))
        receive_and_file(V23.format(mrn=mrn, dob="19700304", placer=""), zone)
        assert {r.patient_id for r in results()} == {patient_id}
        assert queue() == []


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"birth_date": "19800103"}, "birth_date_differs"),
        ({"mrn": "NO-SUCH-MRN"}, "unknown_mrn"),
        ({"family": "Smith"}, "name_differs"),
        ({"birth_date": ""}, "no_birth_date"),
        ({"mrn": ""}, "no_identifier"),
    ],
)
def test_a_mismatch_is_never_attached_and_waits_in_the_queue(app, zone, change, reason):
    with app.app_context():
        _patient_id, mrn = add_patient()
        values = {"mrn": mrn} | change
        receive_and_file(oru(**values), zone)
        (waiting,) = queue()
        assert waiting.reason == reason and waiting.resolved_at is None
        assert all(r.patient_id is None and r.unmatched_id == waiting.id for r in results())
        (event,) = audit_events(app, "lab.results_unmatched")
        assert reason in event.detail


def test_a_name_written_differently_still_matches(app, zone):
    with app.app_context():
        patient_id, mrn = add_patient("Ann", "O'Brien-Núñez")
        receive_and_file(oru(mrn=mrn, family="OBRIEN NUNEZ", given="ANN"), zone)
        assert {r.patient_id for r in results()} == {patient_id}


def test_an_order_of_another_patient_is_not_trusted(app, zone):
    with app.app_context():
        patient_id, _ = add_patient()
        _, other_mrn = add_patient("Ben", "Other")
        add_order(patient_id, "P-3")
        receive_and_file(oru(mrn=other_mrn, family="Other", placer="P-3"), zone)
        (waiting,) = queue()
        assert waiting.reason == "order_patient_differs"
        assert waiting.candidate_patient_ids == str(patient_id)


def test_two_patients_named_by_one_message_are_two_candidates(app, zone):
    with app.app_context():
        first, mrn_1 = add_patient()
        second, mrn_2 = add_patient("Jane", "Doe", date(1980, 1, 2))
        text = oru(mrn=mrn_1).replace(
            f"{mrn_1}^^^CLINIC^MR", f"{mrn_1}^^^CLINIC^MR~{mrn_2}^^^CLINIC^MR"
        )
        receive_and_file(text, zone)
        (waiting,) = queue()
        assert waiting.reason == "two_candidates"
        assert waiting.candidate_patient_ids == f"{min(first, second)} {max(first, second)}"


def test_attaching_from_the_queue_is_audited_and_done_once(app, zone):
    with app.app_context():
        patient_id, mrn = add_patient()
        order_id = add_order(patient_id, "P-4")
        receive_and_file(oru(mrn=mrn, birth_date="19800103", placer="P-4"), zone)
        (waiting,) = queue()
        services.attach_unmatched(actor_of("drlee"), waiting.id, patient_id)
        assert {(r.patient_id, r.order_id) for r in results()} == {(patient_id, order_id)}
        (event,) = audit_events(app, "lab.unmatched_attached")
        assert event.patient_id == patient_id and event.username == "drlee"
        with pytest.raises(Refused):
            services.attach_unmatched(actor_of("drlee"), waiting.id, patient_id)


def test_an_attach_that_finds_the_item_taken_at_its_write_is_refused(app, zone, monkeypatch):
    """The queue item is taken between the check and the write (on every database): the
    conditional UPDATE changes no row, the attach is refused and nothing of it is written."""
    with app.app_context():
        patient_id, mrn = add_patient()
        receive_and_file(oru(mrn=mrn, birth_date="19800103"), zone)
        (waiting,) = queue()
        real_get_patient_for = services.get_patient_for

        def taken_meanwhile(actor, chosen):
            db.session.execute(
                update(UnmatchedResult)
                .where(UnmatchedResult.id == waiting.id)
                .values(resolved_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            return real_get_patient_for(actor, chosen)

        monkeypatch.setattr(services, "get_patient_for", taken_meanwhile)
        with pytest.raises(Conflict):
            services.attach_unmatched(actor_of("drlee"), waiting.id, patient_id)
        monkeypatch.undo()
        (item,) = queue()
        assert item.patient_id is None and item.resolved_at is None  # all rolled back
        assert {r.patient_id for r in results()} == {None}
        assert audit_events(app, "lab.unmatched_attached") == []


@pytest.mark.postgres_only  # SQLite serializes use cases: the two cannot interleave there
def test_two_people_attaching_at_once_only_one_attaches(app, zone, monkeypatch):
    """The other person's attach commits between this one's check and its write: the
    conditional UPDATE refuses this one, and nothing of it is written."""
    with app.app_context():
        first, mrn = add_patient()
        second, _ = add_patient("Ben", "Other")
        receive_and_file(oru(mrn=mrn, birth_date="19800103"), zone)
        (waiting,) = queue()
        real_get_patient_for = services.get_patient_for

        def the_other_attach_lands_meanwhile(actor, patient_id):
            monkeypatch.setattr(services, "get_patient_for", real_get_patient_for)

            def other():
                with app.app_context():
                    services.attach_unmatched(actor_of("drlee"), waiting.id, first)

            thread = threading.Thread(target=other)
            thread.start()
            thread.join(timeout=30)
            return real_get_patient_for(actor, patient_id)

        monkeypatch.setattr(services, "get_patient_for", the_other_attach_lands_meanwhile)
        with pytest.raises(Conflict):
            services.attach_unmatched(actor_of("drlee"), waiting.id, second)
        monkeypatch.undo()
        (item,) = queue()
        assert item.patient_id == first and item.resolved_at is not None
        assert {r.patient_id for r in results()} == {first}
        assert len(audit_events(app, "lab.unmatched_attached")) == 1


def test_attaching_links_the_order_and_its_status_follows(app, zone):
    with app.app_context():
        patient_id, mrn = add_patient()
        order_id = add_order(patient_id, "P-7", tests=(("24331-1", "Lipid panel"),))
        receive_and_file(oru(mrn=mrn, birth_date="19800103", placer="P-7"), zone)
        (waiting,) = queue()
        assert db.session.scalar(select(LabOrder.status)) == "sent"
        services.attach_unmatched(actor_of("drlee"), waiting.id, patient_id)
        assert {(r.order_id, r.order_test_id is not None) for r in results()} == {(order_id, True)}
        assert db.session.scalar(select(LabOrder.status)) == "resulted"


def test_an_order_cancelled_after_matching_stays_cancelled(app, zone, monkeypatch):
    """The order is cancelled after the batch matched its results to it and before the
    order's status is updated (on every database: the cancel is written inside the batch's
    transaction, behind the ORM's back, so the order loaded at matching still says "sent"):
    the status is decided from the row the lock reads, and a cancelled order stays
    cancelled; its results are filed against it all the same."""
    with app.app_context():
        patient_id, mrn = add_patient()
        order_id = add_order(patient_id, "P-C", tests=(("24331-1", "Lipid panel"),))
        real_update = services._update_order_statuses

        def cancelled_meanwhile(orders):
            assert [order.status for order in orders] == ["sent"]  # as loaded at matching
            db.session.execute(
                update(LabOrder)
                .where(LabOrder.id == order_id)
                .values(status="cancelled")
                .execution_options(synchronize_session=False)
            )
            real_update(orders)

        monkeypatch.setattr(services, "_update_order_statuses", cancelled_meanwhile)
        receive_and_file(oru(mrn=mrn, placer="P-C"), zone)
        monkeypatch.undo()
        assert db.session.scalar(select(LabOrder.status).where(LabOrder.id == order_id)) == (
            "cancelled"
        )
        assert {r.order_id for r in results()} == {order_id}


@pytest.mark.postgres_only  # SQLite serializes use cases: the two cannot interleave there
def test_a_cancel_committed_while_the_batch_files_is_not_overwritten(app, zone, monkeypatch):
    """A prescriber's cancel commits (another connection) after the batch matched the
    results to the order and before it inserts them: the order stays cancelled."""
    from portal.labs.ordering import services as ordering

    with app.app_context():
        patient_id, mrn = add_patient()
        order_id = add_order(patient_id, "P-D", tests=(("24331-1", "Lipid panel"),))
        real_order_test_for = services._order_test_for
        cancelled = []

        def the_cancel_lands_meanwhile(order, group, observation):
            if not cancelled:

                def other():
                    with app.app_context():
                        ordering.cancel_order(actor_of("drlee"), order_id)
                        cancelled.append(order_id)

                thread = threading.Thread(target=other)
                thread.start()
                thread.join(timeout=30)
                assert cancelled == [order_id]  # committed before this batch goes on
            return real_order_test_for(order, group, observation)

        monkeypatch.setattr(services, "_order_test_for", the_cancel_lands_meanwhile)
        receive_and_file(oru(mrn=mrn, placer="P-D"), zone)
        monkeypatch.undo()
        assert db.session.scalar(select(LabOrder.status).where(LabOrder.id == order_id)) == (
            "cancelled"
        )
        assert {r.order_id for r in results()} == {order_id}
        assert len(audit_events(app, "lab_order.cancel")) == 1


def test_same_filler_number_from_two_labs_for_two_patients_supersedes_nothing(app, zone):
    """A filler order number is the lab's, not ours: another lab (or the same lab for
    another patient) may use it too. Only the same patient's results from the same lab
    are replaced; an unmatched result replaces nothing."""
    with app.app_context():
        first, mrn_1 = add_patient()
        second, mrn_2 = add_patient("Ben", "Other")
        receive_and_file(oru(control_id="A-1", facility="ACME LAB", mrn=mrn_1), zone)
        receive_and_file(
            oru(control_id="B-1", facility="OTHER LAB", mrn=mrn_2, family="Other", given="Ben"),
            zone,
        )
        receive_and_file(
            oru(control_id="A-2", facility="ACME LAB", mrn=mrn_2, family="Other", given="Ben"),
            zone,
        )
        receive_and_file(oru(control_id="B-2", facility="OTHER LAB", mrn=mrn_1), zone)
        receive_and_file(oru(control_id="A-3", facility="ACME LAB", mrn="NO-SUCH-MRN"), zone)
        rows = results()
        assert [r.patient_id for r in rows] == [first] * 2 + [second] * 4 + [first] * 2 + [None] * 2
        assert all(r.superseded_at is None and r.supersedes_id is None for r in rows)
        (waiting,) = queue()
        assert {r.patient_id for r in rows if r.unmatched_id == waiting.id} == {None}
        # The same lab's later result for the same patient still replaces the earlier one.
        receive_and_file(oru(control_id="A-4", facility="ACME LAB", mrn=mrn_1), zone)
        rows = results()
        replaced = {r.id for r in rows if r.superseded_at is not None}
        assert replaced == {r.id for r in rows[:2]}
        assert {r.supersedes_id for r in rows[-2:]} == replaced


def test_preliminary_final_and_corrected_results_supersede_and_keep_the_history(app, zone):
    with app.app_context():
        patient_id, mrn = add_patient()
        add_order(patient_id, "P-5", tests=(("4548-4", "A1c"),))

        def a1c(control_id, value, status):
            obx = f"OBX|1|NM|4548-4^Hemoglobin A1c^LN||{value}|%|4.0-5.6|H|||{status}"
            return oru(
                control_id=control_id,
                mrn=mrn,
                placer="P-5",
                obr_code="4548-4^A1c^LN",
                observations=[obx],
            )

        receive_and_file(a1c("A-1", "7.0", "P"), zone)
        assert db.session.scalar(select(LabOrder.status)) == "partially_resulted"
        receive_and_file(a1c("A-2", "7.1", "F"), zone)
        assert db.session.scalar(select(LabOrder.status)) == "resulted"
        receive_and_file(a1c("A-3", "6.9", "C"), zone)
        preliminary, final, corrected = results()
        assert corrected.supersedes_id == final.id and final.supersedes_id == preliminary.id
        assert preliminary.superseded_at and final.superseded_at and corrected.superseded_at is None
        assert (final.value_numeric, corrected.value_numeric, corrected.status) == (7.1, 6.9, "C")


def test_a_filing_failure_keeps_the_message_and_it_is_filed_later(app, zone, monkeypatch):
    with app.app_context():
        _patient_id, mrn = add_patient()
        received = services.receive(oru(mrn=mrn).encode())
        original = services._file_results

        def broken(*args):
            raise RuntimeError("database went away")

        monkeypatch.setattr(services, "_file_results", broken)
        assert services.file_message(received.message_id, zone=zone) == FAILED
        (message,) = stored_messages()
        assert message.state == FAILED and message.error == "filing failed: RuntimeError"
        assert results() == []
        monkeypatch.setattr(services, "_file_results", original)
        assert services.process_pending(zone=zone) == (1, 0)
        assert stored_messages()[0].state == PROCESSED
        assert len(results()) == 2
        assert services.file_message(received.message_id, zone=zone) is None  # once only


def test_the_drop_folder_files_what_it_can_and_sets_aside_what_it_cannot(app, zone, tmp_path):
    tmp_path = tmp_path / "drop"
    tmp_path.mkdir()
    with app.app_context():
        _patient_id, mrn = add_patient()
        good = oru(control_id="F-1", mrn=mrn) + oru(control_id="F-2", mrn=mrn)
        (tmp_path / "batch.hl7").write_text("FHS|^~\\&\rBHS|^~\\&\r" + good + "BTS|2\rFTS|1\r")
        (tmp_path / "broken.hl7").write_bytes(b"\x00\x01 not hl7")
        old = 1_000_000_000
        for path in tmp_path.iterdir():
            os.utime(path, (old, old))
        assert listener.watch_folder(tmp_path, settle_seconds=0) == (1, 1)
        assert (tmp_path / "processed" / "batch.hl7").exists()
        assert (tmp_path / "failed" / "broken.hl7").exists()
        assert "MSA|AR" in (tmp_path / "failed" / "broken.hl7.ack").read_text()
        assert len(results()) == 4
        assert {m.control_id for m in stored_messages()} == {"F-1", "F-2", None}
        assert (
            db.session.scalar(select(LabMessage.raw).where(LabMessage.control_id.is_(None)))
            == b"\x00\x01 not hl7"
        )


def test_a_preliminary_and_its_final_in_one_message_chain(app, zone):
    with app.app_context():
        patient_id, mrn = add_patient()
        add_order(patient_id, "P-6", tests=(("4548-4", "A1c"),))
        observations = [
            "OBX|1|NM|4548-4^Hemoglobin A1c^LN||7.0|%|4.0-5.6|H|||P",
            "OBX|2|NM|4548-4^Hemoglobin A1c^LN||7.2|%|4.0-5.6|H|||F",
        ]
        receive_and_file(oru(mrn=mrn, placer="P-6", observations=observations), zone)
        preliminary, final = results()
        assert final.supersedes_id == preliminary.id and preliminary.superseded_at
        assert final.superseded_at is None


def test_the_worker_files_what_waits(app, tmp_path):
    with app.app_context():
        _, mrn = add_patient()
        services.receive(oru(mrn=mrn).encode())  # stored and answered; the filer stopped
        folder = tmp_path / "drop"
        folder.mkdir()
        offered = lab_jobs.periodic_jobs({"LAB_DROP_FOLDER": str(folder)})
        assert [job.name for job in offered] == ["file lab results", "lab drop folder"]
        assert offered[0].run() == "lab messages: 1 filed"
        assert len(results()) == 2
        assert offered[1].run() is None  # an empty folder
        assert [job.name for job in lab_jobs.periodic_jobs({})] == ["file lab results"]
