"""MLLP, the client side: one message out, one framed answer back, within a deadline.

MLLP (HL7 v2 "Minimal Lower Layer Protocol") frames a message as 0x0B <message> 0x1C 0x0D.
python-hl7 ships two clients, and neither fits a worker that must never hang: ``hl7.client.
MLLPClient`` has no time-out and returns whatever one ``recv(4096)`` gives (half an ACK, or
two), and the ``hl7.mllp`` stream helpers need an asyncio event loop in a synchronous worker.
So this is a small blocking client with one deadline for the whole exchange (connect, TLS
handshake, send, the answer), TLS by the standard library, and frame reading that skips
bytes outside a frame and stops at a size limit.

Errors are ``MllpError`` subclasses whose text names what happened and never the message.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import time

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c\x0d"
MAX_ANSWER_BYTES = 1024 * 1024  # an ACK is a few hundred bytes; a megabyte is not an ACK


class MllpError(Exception):
    """The exchange failed; ``str()`` says how (no patient data in it)."""


class Unreachable(MllpError):
    """No connection: refused, no route, name unknown, or the TLS handshake failed."""


class NoAnswer(MllpError):
    """Connected and sent, but no whole frame came back within the time-out."""


class Dropped(MllpError):
    """The peer closed the connection before a whole frame came back."""


class Garbage(MllpError):
    """What came back is not an MLLP frame (or is far too large to be an ACK)."""


def frame(message: str | bytes, encoding: str = "utf-8") -> bytes:
    """A message wrapped in MLLP's start and end blocks."""
    data = message.encode(encoding) if isinstance(message, str) else message
    return START_BLOCK + data + END_BLOCK


def unframe(buffer: bytes) -> tuple[bytes | None, bytes]:
    """(the first whole frame's content or None, the bytes after it). Bytes before the
    start block are dropped; an unfinished frame is left in the remainder."""
    start = buffer.find(START_BLOCK)
    if start < 0:
        return None, b""
    end = buffer.find(END_BLOCK, start + 1)
    if end < 0:
        return None, buffer[start:]
    return buffer[start + 1 : end], buffer[end + len(END_BLOCK) :]


def exchange(
    host: str,
    port: int,
    message: str | bytes,
    *,
    timeout: float,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    max_answer_bytes: int = MAX_ANSWER_BYTES,
) -> bytes:
    """Send one framed message on a new connection and return the content of the first
    whole frame the peer answers with. ``timeout`` bounds the whole exchange."""
    deadline = time.monotonic() + timeout

    def remaining() -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise NoAnswer(f"no answer within {timeout:g} s")
        return left

    try:
        sock = socket.create_connection((host, port), timeout=remaining())
    except TimeoutError as error:
        raise Unreachable(f"connecting to {host}:{port} timed out") from error
    except OSError as error:
        raise Unreachable(f"cannot connect to {host}:{port} ({_reason(error)})") from error
    try:
        if ssl_context is not None:
            try:
                sock.settimeout(remaining())
                sock = ssl_context.wrap_socket(sock, server_hostname=server_hostname or host)
            except ssl.SSLError as error:
                raise Unreachable(
                    f"TLS handshake with {host}:{port} failed ({error.reason})"
                ) from error
            except TimeoutError as error:
                raise Unreachable(f"TLS handshake with {host}:{port} timed out") from error
            except OSError as error:
                raise Unreachable(
                    f"TLS handshake with {host}:{port} failed ({_reason(error)})"
                ) from error
        try:
            sock.settimeout(remaining())
            sock.sendall(frame(message))
        except TimeoutError as error:
            raise NoAnswer(f"sending to {host}:{port} timed out") from error
        except OSError as error:
            raise Dropped(
                f"connection to {host}:{port} lost while sending ({_reason(error)})"
            ) from error
        return _read_frame(sock, remaining, max_answer_bytes)
    finally:
        _close(sock)


def _read_frame(sock: socket.socket, remaining, max_answer_bytes: int) -> bytes:
    buffer = b""
    seen = 0
    while True:
        content, rest = unframe(buffer)
        if content is not None:
            return content
        buffer = rest
        if seen > max_answer_bytes:
            raise Garbage(f"more than {max_answer_bytes} bytes without a whole frame")
        try:
            sock.settimeout(remaining())
            chunk = sock.recv(65536)
        except TimeoutError as error:
            if seen and not buffer.startswith(START_BLOCK):
                raise Garbage("the answer is not an MLLP frame") from error
            raise NoAnswer("no whole answer within the time-out") from error
        except ssl.SSLError as error:
            raise Dropped(f"TLS error while reading ({error.reason})") from error
        except OSError as error:
            raise Dropped(
                f"connection lost while waiting for the answer ({_reason(error)})"
            ) from error
        if not chunk:
            if seen and not buffer.startswith(START_BLOCK):
                raise Garbage("the answer is not an MLLP frame")
            raise Dropped("the connection was closed before an answer came")
        seen += len(chunk)
        buffer += chunk


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()


def _reason(error: OSError) -> str:
    return error.strerror or type(error).__name__


def connect_only(
    host: str, port: int, *, timeout: float, ssl_context: ssl.SSLContext | None = None
) -> None:
    """Open a connection (and the TLS handshake when set) and close it: the health check."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except TimeoutError as error:
        raise Unreachable(f"connecting to {host}:{port} timed out") from error
    except OSError as error:
        raise Unreachable(f"cannot connect to {host}:{port} ({_reason(error)})") from error
    try:
        if ssl_context is not None:
            try:
                sock = ssl_context.wrap_socket(sock, server_hostname=host)
            except (ssl.SSLError, ssl.CertificateError) as error:
                raise Unreachable(
                    f"TLS handshake failed ({getattr(error, 'reason', error)})"
                ) from error
            except OSError as error:
                raise Unreachable(f"TLS handshake failed ({_reason(error)})") from error
    finally:
        _close(sock)
