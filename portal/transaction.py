"""One transaction per use case, and the one way a use case says no.

A use case (what a view, a CLI command or the worker asks for: book an appointment, sign a
note) does its whole job in one transaction: the change, its audit event and (with the
integrations) its outbox message commit together or not at all. The functions that do the
work only flush; the use case runs them inside ``use_case()``, the one place that commits::

    def book_appointment(actor, booking):
        with use_case(conflict=SlotTaken()):
            appointment = add_appointment(actor, booking)   # flushes, never commits
            audit.record(actor, "appointment.create", ...)
        return appointment

A use case that needs another domain's work calls that domain's non-committing function,
never its use case: ``use_case`` refuses to nest, so a mistake shows at once.

A use case refuses with ``Refused`` (a message for the user and the form field it belongs
beside); the views put it next to the field. A database constraint or a stale version
detected at flush or commit becomes the ``conflict`` the use case names, so a race is
decided by the database and still answered in words.

SQLite: readers never wait. Pages read in ordinary (deferred) transactions, which WAL lets
run beside a writer. Only a use case takes the database's write lock (``BEGIN IMMEDIATE``),
for its own short transaction, and writers queue for it in order (a FIFO lock between the
threads of a process, an OS file lock between processes): nobody sleep-polls on
``SQLITE_BUSY``. PostgreSQL needs none of this: a use case is a plain transaction.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from flask import has_request_context
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from portal.extensions import db


class Refused(Exception):
    """A use case declined to do what was asked, in words for the user.

    ``field`` names the form field the message belongs beside (None: above the form).
    ``status`` is the HTTP status a view answers with: 422 for input it cannot take, 409
    (``Conflict``) when the world changed under the user. Subclasses exist only where a
    refusal carries more (the conflicting rows, the version someone else saved) or is
    answered differently.
    """

    status = 422

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class Conflict(Refused):
    """Someone else changed or took the thing meanwhile (a slot, a version): 409."""

    status = 409


ConflictFactory = Refused | Callable[[Exception], Refused] | None

# Set while a use case's transaction runs in this thread (or task).
_in_use_case: ContextVar[bool] = ContextVar("in_use_case", default=False)
# Set while this thread may begin a writing transaction (SQLite: BEGIN IMMEDIATE).
_writing: ContextVar[bool] = ContextVar("writing", default=False)


@contextmanager
def use_case(*, conflict: ConflictFactory = None) -> Iterator[None]:
    """Run one use case in one transaction: commit when the block ends, roll back when it
    raises.

    The transaction starts fresh: a read transaction the caller had open (a page that
    loaded rows before calling) is ended first and its rows are re-read on use, so the
    use case decides on current data. Changes made outside a use case are a bug and are
    refused. ``conflict`` (a ``Refused``, or a function of the database error returning
    one) replaces an ``IntegrityError`` or ``StaleDataError`` raised at flush or commit.
    """
    if _in_use_case.get():
        raise RuntimeError(
            "a use case inside a use case: call the other domain's non-committing function"
        )
    session = db.session()  # this thread's Session, not the scoped proxy
    if session.new or session.dirty or session.deleted:
        raise RuntimeError("changes made outside a use case: make them inside one")
    if session.in_transaction():
        session.rollback()  # a read transaction: nothing to lose; its rows are re-read
    inside = _in_use_case.set(True)
    try:
        with writing():
            try:
                yield
                session.commit()
            except (IntegrityError, StaleDataError) as error:
                session.rollback()
                if conflict is None:
                    raise
                raise (conflict if isinstance(conflict, Refused) else conflict(error)) from error
            except BaseException:
                session.rollback()
                raise
    finally:
        _in_use_case.reset(inside)


def end_read() -> None:
    """End the current read transaction (nothing is written outside a use case, so nothing
    is lost): a long walk in batches, or a page done reading, then holds no snapshot (on
    SQLite a lingering reader keeps the WAL from being checkpointed; PostgreSQL keeps old
    row versions for it)."""
    if _in_use_case.get():
        raise RuntimeError("end_read() inside a use case would discard its work")
    db.session.rollback()


def in_use_case() -> bool:
    """True inside ``use_case()``: for work functions that must not run outside one."""
    return _in_use_case.get()


@contextmanager
def writing() -> Iterator[None]:
    """Let the transactions begun in this block write.

    On SQLite this queues for the database's write lock (see the module notes) and makes
    the transactions begun meanwhile ``BEGIN IMMEDIATE``; elsewhere it does nothing. For
    the few writers that use their own connection rather than the request's session (the
    session store); use cases get it from ``use_case()``.
    """
    if _writing.get():
        yield
        return
    lock = _write_lock_of(db.engine)
    token = _writing.set(True)
    try:
        if lock is None:
            yield
        else:
            with lock:
                yield
    finally:
        _writing.reset(token)


# --- SQLite --------------------------------------------------------------------------------


class _FifoLock:
    """A lock that threads get in the order they asked for it (a ticket lock)."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._next_ticket = 0
        self._serving = 0

    def acquire(self) -> None:
        with self._changed:
            ticket = self._next_ticket
            self._next_ticket += 1
            while ticket != self._serving:
                self._changed.wait()

    def release(self) -> None:
        with self._changed:
            self._serving += 1
            self._changed.notify_all()


class SqliteWriteLock:
    """The right to write to one SQLite database, queued fairly.

    Threads of this process queue in order on a ticket lock; the one at the head then takes
    an exclusive ``flock`` on a file beside the database, which other processes (the other
    gunicorn workers, the worker, a CLI command) queue on in the kernel. The holder's
    ``BEGIN IMMEDIATE`` then finds the database free: SQLite's busy handler, which sleeps
    in steps of up to 100 ms, only ever waits for a writer outside the portal.
    """

    def __init__(self, lock_path: str | None):
        self._threads = _FifoLock()
        self._lock_path = lock_path
        self._file: int | None = None
        self._file_pid: int | None = None

    def __enter__(self) -> None:
        self._threads.acquire()
        try:
            if self._lock_path is not None:
                fcntl.flock(self._lock_file(), fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise

    def __exit__(self, *_exc) -> None:
        try:
            if self._lock_path is not None and self._file is not None:
                fcntl.flock(self._file, fcntl.LOCK_UN)
        finally:
            self._threads.release()

    def _lock_file(self) -> int:
        # A forked process must not share its parent's open file: flock belongs to the
        # open file, so parent and child would both "hold" it.
        if self._file is None or self._file_pid != os.getpid():
            self._file = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            self._file_pid = os.getpid()
        return self._file


_WRITE_LOCK = "portal_write_lock"


def _write_lock_of(engine) -> SqliteWriteLock | None:
    return getattr(engine, _WRITE_LOCK, None)


def configure_sqlite(engine) -> None:
    """WAL (readers beside a writer), foreign keys, and transactions that begin deferred
    (reads) or immediate (inside ``writing()``), with the fair write lock on the engine."""
    database = engine.url.database
    in_memory = not database or database == ":memory:" or database.startswith("file::memory:")
    setattr(engine, _WRITE_LOCK, SqliteWriteLock(None if in_memory else f"{database}.write-lock"))

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # let the "begin" event below decide
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE" if _writing.get() else "BEGIN")


_WRITES = ("INSERT", "UPDATE", "DELETE")


def guard_writes_in_requests(engine) -> None:
    """Refuse a write made during a request outside ``use_case()`` / ``writing()``.

    Such a write would commit with whatever happened to commit next (or never), outside
    the one transaction of a use case. Installed when ``GUARD_WRITES`` is set (by default
    in tests), so a view or service that writes on its own fails its tests.
    """

    @event.listens_for(engine, "before_cursor_execute")
    def refuse_stray_write(_conn, _cursor, statement, _params, _context, _executemany):
        if _writing.get() or not has_request_context():
            return
        if statement.lstrip()[:6].upper() in _WRITES:
            raise RuntimeError(f"a write outside a use case: {statement[:60]}")
