"""The lab results listener: HL7 v2 over MLLP, and the folder a lab drops files in.

MLLP frames a message as 0x0B <message> 0x1C 0x0D. For every frame the listener stores the
raw bytes and commits (``services.receive``) *before* it writes the ACK, then files the
results (``services.file_message``) in a following use case: a crash anywhere loses nothing
that was acknowledged, and a message whose ACK the lab never got is resent and answered
from the stored row, not stored twice. Each connection has its own thread; a connection
that misbehaves (no start block, a frame larger than ``LAB_MESSAGE_MAX_BYTES``, a close in
the middle of a frame) is closed after what it sent is kept, and never stops the server.

``flask --app portal lab-listener`` runs it as its own process (``make run`` starts it, see
the Procfile): a separate process because it holds a port and answers labs at their pace,
whatever the worker is doing. The folder-drop mode is a worker job (``watch_folder``).
"""

from __future__ import annotations

import logging
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from pathlib import Path

from flask import Flask

from portal.labs import services
from portal.transaction import end_read

log = logging.getLogger("portal.labs.listener")

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c\x0d"
READ_TIMEOUT_SECONDS = 60  # an idle connection is closed (labs reconnect per batch)


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
        try:
            while True:
                message = reader.next_frame()
                if message is None:
                    break
                self.server.handle_message(message, self.request)
        except _FrameTooLarge:
            log.warning("lab listener: a frame over %s bytes; connection closed", reader.max_bytes)
            self.server.keep_unfinished(reader.buffer[1 : reader.max_bytes + 1], "too large")
            return
        except (TimeoutError, ConnectionError, OSError) as error:
            log.info("lab listener: connection ended (%s)", type(error).__name__)
        if reader.partial:
            self.server.keep_unfinished(reader.partial, "connection closed inside a frame")


class MllpServer(socketserver.ThreadingTCPServer):
    """The MLLP listener bound to ``host``:``port`` (port 0: any free port), serving each
    connection in a thread of its own."""

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
    ):
        self.app = app
        self.connector = connector
        self.max_bytes = max_bytes or app.config["LAB_MESSAGE_MAX_BYTES"]
        # Seconds between storing a message and sending its ACK: only for the tests that
        # kill the listener in that window.
        self.ack_delay = ack_delay
        super().__init__((host, port), _Handler)

    @property
    def port(self) -> int:
        return self.server_address[1]

    def handle_message(self, message: bytes, sock: socket.socket) -> None:
        """Store, acknowledge, then file one message."""
        with self.app.app_context():
            received = services.receive(message, connector=self.connector)
            if self.ack_delay:
                time.sleep(self.ack_delay)
            sock.sendall(frame(received.ack))
            if received.to_file:
                services.file_message(received.message_id)
            end_read()

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


def run_listener(app: Flask, host: str, port: int, *, ack_delay: float = 0.0) -> None:
    """``flask lab-listener``: file what waits from before, then serve until stopped."""
    with app.app_context():
        filed, failed = services.process_pending()
        if filed or failed:
            log.info("lab listener: %s waiting messages filed, %s failed", filed, failed)
    server = MllpServer(app, host, port, ack_delay=ack_delay)
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
