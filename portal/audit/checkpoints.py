"""The checkpoint file: signed notes, outside the database, of how far the chain reached.

A chain proves that nothing was removed or changed *between* its first and last events; it
cannot prove that its last event is the real last one. Someone who deletes the newest
events leaves a shorter chain that is perfectly intact. A checkpoint closes that gap: a
line saying "the chain reached #seq, whose entry_hash was H, at this time", with a MAC
under a key derived from the audit key. ``audit verify`` then requires the chain to reach
every checkpoint with the same hash there.

The file is a separate trust domain from the database: keep it on other storage than the
database where you can, and copy it off the machine (syslog, a write-once bucket): someone
able to rewrite both the database and this file could cut both back to an earlier point.

Format: JSON Lines, one object per line, keys sorted::

    {"at": "2026-11-26T10:15:00.123456Z", "entry_hash": "…", "key_id": "…", "mac": "…",
     "seq": 1234}

The file is only ever appended to (``O_APPEND``, one ``write`` per line, then ``fsync``),
never rewritten, so concurrent writers (the worker, ``flask audit checkpoint``) cannot
interleave or lose lines.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from flask import current_app

from portal.audit import integrity

DEFAULT_FILE_NAME = "audit-checkpoints.jsonl"
_FIELDS = {"at", "entry_hash", "key_id", "mac", "seq"}
# Reading the last line looks at most this far back from the end (a line is ~250 bytes).
_TAIL_BYTES = 4096


@dataclass(frozen=True)
class Checkpoint:
    """One line of the checkpoint file; ``line`` is its 1-based line number."""

    seq: int
    entry_hash: str
    at: str
    key_id: str
    mac: str
    line: int = 0

    def signed_fields(self) -> dict:
        return {
            "at": self.at,
            "entry_hash": self.entry_hash,
            "key_id": self.key_id,
            "seq": self.seq,
        }

    def verifies(self, keys: integrity.AuditKeys) -> bool:
        return integrity.same(integrity.checkpoint_mac(keys, self.signed_fields()), self.mac)


@dataclass(frozen=True)
class BadLine:
    """A line that is not a checkpoint at all (cut, garbled, edited by hand)."""

    line: int


def checkpoint_path() -> Path:
    """``AUDIT_CHECKPOINT_PATH``, by default ``audit-checkpoints.jsonl`` in the instance
    folder (beside ``config.py``, which holds the key that signs it)."""
    configured = current_app.config.get("AUDIT_CHECKPOINT_PATH")
    return Path(configured) if configured else Path(current_app.instance_path) / DEFAULT_FILE_NAME


def append(path: Path, keys: integrity.AuditKeys, seq: int, entry_hash: str, at: str) -> Checkpoint:
    """Sign and append one checkpoint; the file is created (mode 0600) when missing."""
    fields = {"at": at, "entry_hash": entry_hash, "key_id": keys.key_id, "seq": seq}
    mac = integrity.checkpoint_mac(keys, fields)
    line = json.dumps({**fields, "mac": mac}, sort_keys=True, separators=(",", ":")) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    return Checkpoint(seq, entry_hash, at, keys.key_id, mac)


def read(path: Path) -> Iterator[Checkpoint | BadLine]:
    """Every line of the file in order, parsed (signatures are not checked here)."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if raw.strip():
                yield _parse(raw, number)


def last(path: Path) -> Checkpoint | BadLine | None:
    """The file's last line, read from its end (the file grows without bound)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - _TAIL_BYTES))
            lines = [line for line in handle.read().splitlines() if line.strip()]
    except FileNotFoundError:
        return None
    return _parse(lines[-1], 0) if lines else None


def _parse(raw: bytes, number: int) -> Checkpoint | BadLine:
    try:
        data = json.loads(raw)
    except ValueError:
        return BadLine(number)
    if not isinstance(data, dict) or set(data) != _FIELDS:
        return BadLine(number)
    seq, entry_hash, at, key_id, mac = (
        data["seq"],
        data["entry_hash"],
        data["at"],
        data["key_id"],
        data["mac"],
    )
    if type(seq) is not int or not all(isinstance(v, str) for v in (entry_hash, at, key_id, mac)):
        return BadLine(number)
    return Checkpoint(seq, entry_hash, at, key_id, mac, number)
