"""Staging a race between two requests on PostgreSQL (SQLite serializes writers from the
start of each transaction, so there two requests cannot interleave at all).

``interleave(monkeypatch, module, name, other)`` makes the first call of ``module.name``
(inside the request under test, after its checks) run ``other`` (a whole second request)
in a thread, and go on once that request has finished or is waiting on a lock held by the
first. Without a lock the second request runs to its end in between, which is the
interleaving that used to break the invariant; with one it waits, and the first commits
first.
"""

from __future__ import annotations

import threading
import time

from sqlalchemy import text

from portal.extensions import db

WAITING_ON_A_LOCK = text(
    "SELECT count(*) FROM pg_stat_activity "
    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
)


class Race:
    def __init__(self):
        self.thread: threading.Thread | None = None
        self.answer = None
        self.error: BaseException | None = None

    def run(self, other) -> None:
        def target():
            try:
                self.answer = other()
            except BaseException as error:  # re-raised by finish(), in the test's thread
                self.error = error

        self.thread = threading.Thread(target=target)
        self.thread.start()
        deadline = time.monotonic() + 60  # generous for a loaded machine; ends at the wait
        with db.engine.connect() as watcher:
            while self.thread.is_alive() and time.monotonic() < deadline:
                if watcher.scalar(WAITING_ON_A_LOCK):
                    return
                watcher.rollback()
                self.thread.join(0.05)

    def finish(self):
        """The other request's answer, once it is over (its error re-raised)."""
        assert self.thread is not None, "the raced call was never reached"
        self.thread.join(30)
        assert not self.thread.is_alive(), "the other request never finished"
        if self.error is not None:
            raise self.error
        return self.answer


def interleave(monkeypatch, module, name: str, other) -> Race:
    """Run ``other`` at the first call of ``module.name`` (see the module's docstring)."""
    race = Race()
    real = getattr(module, name)

    def staged(*args, **kwargs):
        if race.thread is None:
            race.run(other)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, staged)
    return race
