"""The lab results listener: HL7 v2 over MLLP, and the folder a lab drops files in.

MLLP frames a message as 0x0B <message> 0x1C 0x0D. For every frame the listener stores the
raw bytes and commits *before* it writes the ACK, then files the results in a following use
case: a crash anywhere loses nothing that was acknowledged, and a message whose ACK the lab
never got is resent and answered from the stored row, not stored twice. Each connection has
its own thread; a connection that misbehaves (no start block, a frame larger than
``LAB_MESSAGE_MAX_BYTES``, a close in the middle of a frame) is closed after what it sent is
kept, and never stops the server.

Speed (issue 12: 500 messages a second, ACK p95 50 ms) comes from group commit. A
connection's thread reads its message (``oru.read_message``, once: the filer reuses the
reading) and hands it to the one *storer* thread, which stores everything handed to it
meanwhile in one transaction (``services.receive_many``) and wakes each connection once
that commit is done; only then does the connection send its ACK. A commit costs a disk
flush, so with several labs sending at once one flush serves them all, and no message is
acknowledged before the commit that holds it. Filing runs behind, in *filer* threads,
in batches too (``services.file_many``, one transaction a batch). Each connection's
messages go to one filer, so they are filed in the order the lab sent them (a correction
after the result it corrects), as when each connection filed its own; on PostgreSQL there
are a few filers, whose waits on the database overlap; on SQLite, which writes one
transaction at a time, one. The queue to a filer is bounded, so a lab that sends faster
than we file is slowed (its next frame is read once there is room) rather than filling
memory. A message stored but not yet filed when the process stops
stays ``received`` and is filed by the worker's ``process_pending`` (and at the next
start).

``flask --app portal lab-listener`` runs it as its own process (``make run`` starts it, see
the Procfile): a separate process because it holds a port and answers labs at their pace,
whatever the worker is doing. The folder-drop mode is a worker job (``watch_folder``).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import pickle
import queue
import socket
import socketserver
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from flask import Flask

from portal.extensions import db
from portal.labs import services
from portal.labs.hl7 import oru
from portal.transaction import end_read

log = logging.getLogger("portal.labs.listener")

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c\x0d"
READ_TIMEOUT_SECONDS = 60  # an idle connection is closed (labs reconnect per batch)
STORE_BATCH = 100  # messages at most in one storing transaction
# Messages at most in one filing transaction: on SQLite the filer holds the write lock for
# the batch, and the storer (the ACKs) waits behind it, so it stays short.
FILE_BATCH = 10
# Filers: PostgreSQL files several batches at once; SQLite writes one transaction at a
# time, so one filer is all it can use. ``flask lab-listener`` runs them as processes (the
# filing is most of a message's CPU, and a process of its own is not held back by the
# listener's interpreter lock); a listener made in a test runs them as threads.
FILERS = {"sqlite": 1}
FILERS_DEFAULT = 2
FILE_QUEUE = 500  # stored messages waiting to be filed, before the connections wait
STORE_WAIT_SECONDS = 120  # a connection waits this long for its commit, then gives up


def frame(message: str | bytes) -> bytes:
    """A message wrapped in MLLP's start and end blocks."""
    data = message.encode("utf-8") if isinstance(message, str) else message
    return START_BLOCK + data + END_BLOCK


class _FrameTooLarge(Exception):
    pass


class FrameReader:
    """Reads MLLP frames from a socket: ``next_frame()`` returns a message's bytes, or None
    when the peer closed. Bytes outside a frame are skipped (noted in ``skipped``); a
    close inside a frame leaves the partial bytes in ``partial``."""

    def __init__(self, sock: socket.socket, max_bytes: int):
        self.sock = sock
        self.max_bytes = max_bytes
        self.buffer = b""
        self.partial = b""
        self.skipped = 0

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        if not chunk:
            return False
        self.buffer += chunk
        return True

    def next_frame(self) -> bytes | None:
        while True:
            start = self.buffer.find(START_BLOCK)
            if start < 0:
                self.skipped += len(self.buffer)
                self.buffer = b""
            else:
                self.skipped += start
                self.buffer = self.buffer[start:]
                end = self.buffer.find(END_BLOCK, 1)
                if end >= 0:
                    message = self.buffer[1:end]
                    self.buffer = self.buffer[end + len(END_BLOCK) :]
                    return message
                if len(self.buffer) > self.max_bytes + 1:
                    raise _FrameTooLarge()
            if not self._fill():
                self.partial = self.buffer[1:] if self.buffer.startswith(START_BLOCK) else b""
                return None


class _Handler(socketserver.BaseRequestHandler):
    server: MllpServer

    def handle(self) -> None:
        self.request.settimeout(READ_TIMEOUT_SECONDS)
        reader = FrameReader(self.request, self.server.max_bytes)
        filer = self.server.filer_for_connection()
        try:
            while True:
                message = reader.next_frame()
                if message is None:
                    break
                self.server.handle_message(message, self.request, filer)
        except _FrameTooLarge:
            log.warning("lab listener: a frame over %s bytes; connection closed", reader.max_bytes)
            self.server.keep_unfinished(reader.buffer[1 : reader.max_bytes + 1], "too large")
            return
        except (TimeoutError, ConnectionError, OSError) as error:
            log.info("lab listener: connection ended (%s)", type(error).__name__)
        except StoreFailed as failed:
            # Nothing was acknowledged: the lab sends the message again on a new connection.
            log.warning(
                "lab listener: a message could not be stored (%s); connection closed", failed
            )
            return
        if reader.partial:
            self.server.keep_unfinished(reader.partial, "connection closed inside a frame")


class StoreFailed(Exception):
    """A message could not be stored (the database refused or went away): no ACK is sent."""


class _Waiting:
    """A message read on a connection, waiting for the commit that stores it."""

    __slots__ = ("done", "error", "raw", "reading", "received")

    def __init__(self, raw: bytes, reading: oru.Reading):
        self.raw = raw
        self.reading = reading
        self.done = threading.Event()
        self.received: services.Received | None = None
        self.error: str | None = None

    def result(self) -> services.Received:
        if not self.done.wait(STORE_WAIT_SECONDS):
            raise StoreFailed("no commit in time")
        if self.received is None:
            raise StoreFailed(self.error or "not stored")
        return self.received


_STOP = object()


class _Batcher:
    """One thread that takes what was queued for it in batches (all that waits, up to
    ``limit``) and runs ``work`` on each batch: while it works, the next batch gathers."""

    def __init__(self, name: str, work: Callable[[list], None], limit: int, maxsize: int = 0):
        self.queue: queue.Queue = queue.Queue(maxsize)
        self.work = work
        self.limit = limit
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def put(self, item) -> None:
        self.queue.put(item)

    def stop(self, timeout: float = 10) -> None:
        self.queue.put(_STOP)
        self.thread.join(timeout)

    def _run(self) -> None:
        while True:
            batch = [self.queue.get()]
            while len(batch) < self.limit and batch[-1] is not _STOP:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            stopping = batch[-1] is _STOP
            if stopping:
                batch.pop()
            if batch:
                self.work(batch)
            if stopping:
                return


class MllpServer(socketserver.ThreadingTCPServer):
    """The MLLP listener bound to ``host``:``port`` (port 0: any free port), serving each
    connection in a thread of its own, with one storer and the filer threads behind them
    (module notes)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        app: Flask,
        host: str,
        port: int,
        *,
        connector: str = services.DEFAULT_CONNECTOR,
        max_bytes: int | None = None,
        ack_delay: float = 0.0,
        filer_processes: bool = False,
    ):
        self.app = app
        self.connector = connector
        self.max_bytes = max_bytes or app.config["LAB_MESSAGE_MAX_BYTES"]
        # Seconds between storing a message and sending its ACK: only for the tests that
        # kill the listener in that window.
        self.ack_delay = ack_delay
        super().__init__((host, port), _Handler)
        self._storer = _Batcher("mllp-storer", self._store_batch, STORE_BATCH)
        with app.app_context():
            dialect = db.engine.dialect.name
        count = FILERS.get(dialect, FILERS_DEFAULT)
        self._filers: list[_Batcher | _FilerProcess] = [
            _FilerProcess()
            if filer_processes
            else _Batcher(f"mllp-filer-{n}", self._file_batch, FILE_BATCH, FILE_QUEUE)
            for n in range(count)
        ]
        self._connections = itertools.count()

    def filer_for_connection(self) -> int:
        """The filer a new connection's messages go to (in turn): one connection's messages
        are filed in the order they came, as a lab sends a correction after the result it
        corrects."""
        return next(self._connections) % len(self._filers)

    @property
    def port(self) -> int:
        return self.server_address[1]

    def handle_message(self, message: bytes, sock: socket.socket, filer: int = 0) -> None:
        """Read, store (the storer's next commit), acknowledge, then queue for filing."""
        reading = oru.read_message(message)
        waiting = _Waiting(message, reading)
        self._storer.put(waiting)
        received = waiting.result()
        if self.ack_delay:
            time.sleep(self.ack_delay)
        sock.sendall(frame(received.ack))
        if received.to_file:
            self._filers[filer].put((received.message_id, reading))

    def _store_batch(self, batch: list[_Waiting]) -> None:
        """The storer: one transaction for the batch, then each connection is woken."""
        try:
            with self.app.app_context():
                stored = services.receive_many(
                    [(w.raw, w.reading) for w in batch], connector=self.connector
                )
        except Exception as error:  # the database refused or went away: no ACK for these
            log.warning(
                "lab listener: %s messages not stored (%s)", len(batch), type(error).__name__
            )
            for waiting in batch:
                waiting.error = type(error).__name__
                waiting.done.set()
            return
        for waiting, received in zip(batch, stored, strict=True):
            waiting.received = received  # None: not stored, so not acknowledged
            waiting.error = None if received else "refused by the database"
            waiting.done.set()

    def _file_batch(self, batch: list[tuple[int, oru.Reading]]) -> None:
        _file_batch(self.app, batch)

    def server_close(self) -> None:
        """Stop taking connections, then stop the storer and the filers (what is queued for
        a filer and not yet filed stays ``received``, for ``process_pending``)."""
        super().server_close()
        self._storer.stop()
        for filer in self._filers:
            filer.stop()

    def keep_unfinished(self, data: bytes, why: str) -> None:
        """Keep bytes that never became a whole frame (no ACK was sent: the lab resends)."""
        if not data:
            return
        log.info("lab listener: keeping %s bytes of an unfinished frame (%s)", len(data), why)
        with self.app.app_context():
            services.keep_unfinished(data, why, connector=self.connector)

    def serve_in_thread(self) -> threading.Thread:
        """Serve until ``shutdown()`` in a background thread (tests, the benchmarks)."""
        thread = threading.Thread(target=self.serve_forever, name="mllp-listener", daemon=True)
        thread.start()
        return thread


def _file_batch(app: Flask, batch: list[tuple[int, oru.Reading]]) -> None:
    """A filer's work: a batch of stored messages filed in one transaction. What fails here
    stays stored (``received`` or ``failed``) and is filed by ``process_pending``."""
    try:
        with app.app_context():
            services.file_many(batch)
            end_read()
    except Exception as error:
        log.warning(
            "lab listener: filing %s messages failed (%s)", len(batch), type(error).__name__
        )


_LENGTH = struct.Struct(">I")
# A filer process: the app made from the environment, as the listener's own was.
_FILER_COMMAND = (
    "from portal import create_app; from portal.labs.listener import filer_main; "
    "filer_main(create_app())"
)


class _FilerProcess:
    """A filer in a process of its own (``filer_main``), fed through a pipe: each item a
    length and a pickle of (message id, reading). A full pipe makes ``put`` wait, as a full
    queue does. The process ends when the pipe closes: when the listener stops, or dies
    (it then files what it was sent and exits, never orphaned)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.process = subprocess.Popen(  # noqa: S603 (our own interpreter and code)
            [sys.executable, "-c", _FILER_COMMAND],
            stdin=subprocess.PIPE,
        )

    def put(self, item: tuple[int, oru.Reading]) -> None:
        data = pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)
        with self._lock:
            try:
                self.process.stdin.write(_LENGTH.pack(len(data)) + data)
                self.process.stdin.flush()
            except (BrokenPipeError, ValueError, OSError):
                # The filer is gone: the message stays ``received``, for process_pending.
                log.warning("lab listener: a filer process has stopped")

    def stop(self, timeout: float = 30) -> None:
        with self._lock, contextlib.suppress(OSError):
            self.process.stdin.close()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


def filer_main(app: Flask) -> None:
    """A filer process (``_FilerProcess``): files what the listener sends, in batches,
    until the pipe closes."""
    batcher = _Batcher("mllp-filer", lambda batch: _file_batch(app, batch), FILE_BATCH)
    stream = sys.stdin.buffer
    while True:
        head = stream.read(_LENGTH.size)
        if len(head) < _LENGTH.size:
            break
        (length,) = _LENGTH.unpack(head)
        data = stream.read(length)
        if len(data) < length:
            break
        batcher.put(pickle.loads(data))  # noqa: S301 (our own listener, through a pipe)
    batcher.stop(timeout=120)


def run_listener(app: Flask, host: str, port: int, *, ack_delay: float = 0.0) -> None:
    """``flask lab-listener``: file what waits from before, then serve until stopped."""
    with app.app_context():
        filed, failed = services.process_pending()
        if filed or failed:
            log.info("lab listener: %s waiting messages filed, %s failed", filed, failed)
    server = MllpServer(app, host, port, ack_delay=ack_delay, filer_processes=True)
    log.info("lab listener: MLLP on %s:%s", host, server.port)
    try:
        server.serve_forever()
    finally:
        server.server_close()


# --- folder drop ------------------------------------------------------------------------------


def split_messages(data: bytes) -> list[bytes]:
    """The messages in a dropped file: each starts at a segment beginning with MSH (batch
    headers FHS/BHS and trailers BTS/FTS are dropped). A file with no MSH is one message,
    byte for byte (it will be refused, and kept)."""
    lines = data.replace(b"\r\n", b"\r").replace(b"\n", b"\r").split(b"\r")
    if not any(line.startswith(b"MSH") for line in lines):
        return [data]  # kept exactly as it came
    messages: list[list[bytes]] = []
    for line in lines:
        if line[:3] in (b"FHS", b"BHS", b"BTS", b"FTS") or not line.strip():
            continue
        if line.startswith(b"MSH") or not messages:
            messages.append([])
        messages[-1].append(line)
    return [b"\r".join(segments) + b"\r" for segments in messages if segments]


def watch_folder(
    folder: Path,
    *,
    connector: str = services.DEFAULT_CONNECTOR,
    settle_seconds: float = 1.0,
    file_results: Callable[[int], object] = services.file_message,
) -> tuple[int, int]:
    """Take the files in ``folder`` (older than ``settle_seconds``, so one still being
    written is left for the next turn): store each message, file the accepted ones, and
    move the file to ``processed/`` (every message accepted) or ``failed/`` (any refused;
    its ACKs are written beside it as ``<name>.ack``). Returns (processed, failed) files."""
    processed_dir, failed_dir = folder / "processed", folder / "failed"
    processed_dir.mkdir(exist_ok=True)
    failed_dir.mkdir(exist_ok=True)
    done = failed = 0
    now = time.time()
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        if path.name.startswith(".") or now - path.stat().st_mtime < settle_seconds:
            continue
        acks, all_accepted = [], True
        for message in split_messages(path.read_bytes()):
            received = services.receive(message, connector=connector)
            acks.append(received.ack)
            all_accepted &= received.ack_code == "AA"
            if received.to_file:
                file_results(received.message_id)
        target = (processed_dir if all_accepted else failed_dir) / path.name
        if not all_accepted:
            (failed_dir / f"{path.name}.ack").write_text("\n".join(acks), encoding="utf-8")
        path.replace(target)
        done += all_accepted
        failed += not all_accepted
    return done, failed
