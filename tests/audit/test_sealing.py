"""The sealer: batches, one sealer at a time, late commits, and writers in parallel with it."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text

from portal.actors import SOURCE_WORKER, Actor
from portal.audit import sealing
from portal.audit import services as audit
from portal.extensions import db
from portal.transaction import use_case
from tests.audit.helpers import events

WRITER = Actor(id=None, username="writer", source=SOURCE_WORKER)
ON_POSTGRES = bool(os.environ.get("PORTAL_TEST_DATABASE_URL"))


def verify_ok(app) -> str:
    result = app.test_cli_runner().invoke(args=["audit", "verify"])
    assert result.exit_code == 0, result.output
    return result.output


def test_sealing_goes_a_batch_at_a_time_in_id_order(app):
    with app.app_context():
        for number in range(5):
            with use_case():
                audit.record(WRITER, "test.event", detail=str(number))
        first = sealing.seal_pending(batch=2)
        assert (first.sealed, first.first_seq, first.last_seq) == (2, 1, 2)
        rest = sealing.seal_all(batch=2)
        assert (rest.sealed, rest.first_seq, rest.last_seq) == (3, 3, 5)
        assert sealing.seal_pending(batch=2).sealed == 0
        db.session.remove()
    trail = events(app)
    assert [(e.seq, e.detail) for e in trail] == [(n + 1, str(n)) for n in range(5)]
    assert [e.id for e in trail] == sorted(e.id for e in trail)


@pytest.mark.parametrize("threads", [16 if ON_POSTGRES else 8])
def test_parallel_writers_with_sealers_running_never_fork_or_lose_events(app, threads):
    """Writers in their own app contexts and sessions, two sealers (the worker's and a
    `flask audit checkpoint`, say) sealing small batches beside them: afterwards every
    event is sealed exactly once, in one unbroken chain."""
    per_thread = 60
    sealers = 2
    start = threading.Barrier(threads + sealers)
    writers_done = threading.Event()

    def write(number: int) -> None:
        with app.app_context():
            start.wait(timeout=30)
            for index in range(per_thread):
                with use_case():
                    audit.record(WRITER, "test.parallel", detail=f"{number}:{index}")
            db.session.remove()

    def seal_meanwhile() -> int:
        sealed = 0
        with app.app_context():
            start.wait(timeout=30)
            while not writers_done.is_set():
                result = sealing.seal_pending(batch=25)
                sealed += result.sealed
                if not result.sealed:
                    writers_done.wait(0.005)  # nothing pending (or the other has the lock)
            db.session.remove()
        return sealed

    with ThreadPoolExecutor(max_workers=sealers) as sealer_pool:
        sealing_runs = [sealer_pool.submit(seal_meanwhile) for _ in range(sealers)]
        try:
            with ThreadPoolExecutor(max_workers=threads) as pool:
                for future in [pool.submit(write, number) for number in range(threads)]:
                    future.result(timeout=300)
        finally:
            writers_done.set()
        sealed_while_writing = sum(run.result(timeout=60) for run in sealing_runs)
    assert sealed_while_writing > 0, "the sealers never ran beside the writers"
    with app.app_context():
        sealing.seal_all()
        db.session.remove()

    trail = events(app, "test.parallel")
    total = threads * per_thread
    assert len(trail) == total
    assert sorted(e.detail for e in trail) == sorted(
        f"{n}:{i}" for n in range(threads) for i in range(per_thread)
    )
    assert [e.seq for e in trail] == list(range(1, total + 1))  # contiguous, all sealed
    assert len({e.previous_hash for e in trail}) == total  # no fork
    assert all(e.seal_problem is None for e in trail)
    assert f"{total} events verified ({total} sealed" in verify_ok(app)


@pytest.mark.postgres_only
def test_an_event_committed_late_is_sealed_by_a_later_batch(app):
    """A transaction that wrote its event (a lower id) but commits after a later one was
    sealed: its event is simply sealed next, after the higher id."""
    written = threading.Event()
    release = threading.Event()

    def slow_use_case() -> None:
        with app.app_context():
            with use_case():
                audit.record(WRITER, "test.slow")
                db.session.flush()
                written.set()
                assert release.wait(timeout=30)
            db.session.remove()

    slow = threading.Thread(target=slow_use_case)
    slow.start()
    try:
        assert written.wait(timeout=30)
        with app.app_context():
            with use_case():
                audit.record(WRITER, "test.fast")
            assert sealing.seal_pending().sealed == 1  # the slow one is not committed yet
    finally:
        release.set()
        slow.join(timeout=30)
    with app.app_context():
        assert sealing.seal_pending().sealed == 1
        db.session.remove()
    fast, slow_event = events(app)
    assert (fast.action, fast.seq) == ("test.fast", 1)
    assert (slow_event.action, slow_event.seq) == ("test.slow", 2)
    assert slow_event.id < fast.id  # seq order is sealing order, not id order
    verify_ok(app)


@pytest.mark.postgres_only
def test_a_second_sealer_skips_while_one_is_sealing(app):
    with app.app_context():
        with use_case():
            audit.record(WRITER, "test.event")
        holder = db.engine.connect()
        try:
            holder.execute(text("SELECT pg_advisory_lock(:key)"), {"key": sealing.SEALER_LOCK_KEY})
            result = sealing.seal_pending()
            assert result.skipped and result.sealed == 0
        finally:
            holder.execute(
                text("SELECT pg_advisory_unlock(:key)"), {"key": sealing.SEALER_LOCK_KEY}
            )
            holder.close()
        assert sealing.seal_pending().sealed == 1
        db.session.remove()
