"""The cryptography of the audit trail: the keys, an event's MAC, the chain's links, and
the legacy (unkeyed) hash of events written before the trail was keyed.

One secret, ``AUDIT_KEY``, lives outside the database (``instance/config.py`` or
``PORTAL_AUDIT_KEY``), like the data key. Someone who can write to the database but has
not got it cannot make a MAC or a link that verifies: they can delete or change rows, but
``audit verify`` sees it. Three keys are derived from it, one per use, so that a value
made for one purpose can never pass as another (an event's MAC as a chain link, a link
as a checkpoint's MAC):

- the event key: ``event_mac = HMAC-SHA-256(event key, canonical JSON of the event)``,
  computed when the event is written, over every field a reader relies on plus a random
  nonce (two identical events in one microsecond still get different MACs, so a copied
  row is recognisable as a copy). The canonical JSON is an array of the values of
  ``MAC_FIELDS`` in that order (the time spelled by ``format_time``): compact, and cheap
  enough to compute on every audited request and again when sealing;
- the chain key: ``entry_hash = HMAC-SHA-256(chain key, previous entry_hash | seq |
  event_mac | seal problem)``, computed by the sealer. It orders the events and binds
  each to all before it: removing or reordering events breaks a link;
- the checkpoint key: the MAC of each line of the checkpoint file.

``key_id`` (a truncated HMAC of a fixed label, which reveals nothing of the key) is
written into checkpoints, so ``verify`` can say "written with another audit key" instead
of just "does not verify" when the configured key changed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from flask import current_app

# An audit key shorter than this is refused: it would be guessable.
MIN_KEY_CHARS = 32
GENESIS_HASH = "0" * 64

# What an event's ``scheme`` says about how it is protected.
SCHEME_LEGACY = "sha256"  # written before 0008: an unkeyed SHA-256 chain, seq at write time
SCHEME_KEYED = "hmac"  # an event MAC at write time, chained by the sealer

# What the sealer notes in ``seal_problem`` when an event's MAC does not verify.
PROBLEM_BAD_MAC = "mac_mismatch"

# The fields an event's MAC covers, in the order of the canonical JSON array (the time first).
MAC_FIELDS = (
    "occurred_at",
    "user_id",
    "username",
    "user_roles",
    "action",
    "patient_id",
    "object_type",
    "object_id",
    "category",
    "source",
    "outcome",
    "detail",
    "nonce",
)

# The fields of the legacy SHA-256 (as main wrote them before 0008; ``source`` was then
# called ``source_address``, and the hash keeps that name).
LEGACY_FIELDS = (
    "seq",
    "occurred_at",
    "user_id",
    "username",
    "user_roles",
    "action",
    "patient_id",
    "object_type",
    "object_id",
    "category",
    "source_address",
    "outcome",
    "detail",
    "previous_hash",
)


@dataclass(frozen=True)
class AuditKeys:
    """The keys derived from one audit key (see the module notes)."""

    event: bytes
    chain: bytes
    checkpoint: bytes
    key_id: str


def _derive(master: bytes, label: str) -> bytes:
    return hmac.new(master, f"practice-portal audit {label}".encode(), hashlib.sha256).digest()


@lru_cache(maxsize=4)
def keys_from(secret: str) -> AuditKeys:
    """The derived keys of an audit key (cached: deriving them per event would cost)."""
    if not isinstance(secret, str) or len(secret) < MIN_KEY_CHARS:
        raise RuntimeError(
            f"AUDIT_KEY must be a random string of at least {MIN_KEY_CHARS} characters "
            "(instance/config.py or PORTAL_AUDIT_KEY)"
        )
    master = secret.encode("utf-8")
    return AuditKeys(
        event=_derive(master, "event mac v1"),
        chain=_derive(master, "chain v1"),
        checkpoint=_derive(master, "checkpoint v1"),
        key_id=_derive(master, "key id").hex()[:16],
    )


def current_keys() -> AuditKeys:
    """The keys of this application's ``AUDIT_KEY``."""
    return keys_from(current_app.config.get("AUDIT_KEY"))


def new_nonce() -> str:
    return secrets.token_hex(16)


def format_time(value: datetime) -> str:
    """A time as the MACs and hashes spell it: UTC, microseconds, a Z."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def event_payload(fields) -> bytes:
    """The canonical JSON an event's MAC covers: ``MAC_FIELDS``' values, in order."""
    values = [fields[name] for name in MAC_FIELDS]
    values[0] = format_time(values[0])  # occurred_at
    return _encode(values).encode("utf-8")


def event_mac(keys: AuditKeys, fields) -> str:
    """The MAC of an event's fields (a dict or a row mapping), as hex."""
    return hmac.digest(keys.event, event_payload(fields), "sha256").hex()


def chain_link(
    keys: AuditKeys, previous_hash: str, seq: int, mac: str | None, problem: str | None
) -> str:
    """The ``entry_hash`` of the event at ``seq`` that follows ``previous_hash``.

    It covers the event through its MAC (as stored: a forged or altered MAC is chained as
    it is, with the sealer's note) and what the sealer noted, so clearing the note later
    breaks the link. Hex digits and decimal numbers never contain "|", so the joined text
    is unambiguous.
    """
    message = f"{previous_hash}|{seq}|{mac or ''}|{problem or ''}".encode("ascii")
    return hmac.digest(keys.chain, message, "sha256").hex()


def legacy_hash(fields: dict) -> str:
    """The unkeyed SHA-256 an event written before 0008 carries: over the JSON object of
    ``LEGACY_FIELDS`` with sorted keys, exactly as the code before 0008 computed it."""
    canonical = {name: fields[name] for name in LEGACY_FIELDS}
    canonical["occurred_at"] = format_time(canonical["occurred_at"])
    payload = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def checkpoint_mac(keys: AuditKeys, fields: dict) -> str:
    """The MAC of a checkpoint line's other fields."""
    payload = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return hmac.digest(keys.checkpoint, payload, "sha256").hex()


def same(a: str | None, b: str | None) -> bool:
    """Constant-time comparison of two MACs (None never matches)."""
    return a is not None and b is not None and hmac.compare_digest(a, b)
