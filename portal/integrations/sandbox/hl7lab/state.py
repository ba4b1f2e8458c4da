"""[sandbox] The switches (faults and how results come back) and what the sandbox saw.

Everything here is touched from the control API's threads and the MLLP loop's thread, so it
is read and changed under one lock, and handed out as copies.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import Any

ACK_MODES = ("AA", "AE", "AR", "none", "garbage", "drop")
RESULT_MODES = ("random", "final", "preliminary_then_final", "corrected", "none")
ABNORMAL_MODES = ("random", "none", "all", "critical")


@dataclass
class Faults:
    """How the sandbox answers orders and reports results.

    ``ack``: AA (normal), AE / AR (refuse with ``ack_text``), ``none`` (keep the connection
    open and never answer), ``garbage`` (answer bytes that are not MLLP, then close),
    ``drop`` (close the connection without a word). ``slow_seconds``: wait before answering.
    ``duplicate_ack``: answer twice. ``times``: how many orders these order-side switches
    apply to before they go back to normal (None: until changed).
    ``results``: random (mostly final; sometimes preliminary then final, now and then
    corrected), final, preliminary_then_final, corrected, none. ``abnormal``: random, none,
    all, critical. ``duplicate_results``: send each result message twice.
    """

    ack: str = "AA"
    ack_text: str = ""
    slow_seconds: float = 0.0
    duplicate_ack: bool = False
    times: int | None = None
    results: str = "random"
    abnormal: str = "random"
    duplicate_results: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def update(self, changes: dict[str, Any]) -> None:
        """Apply the named changes; a name or value that is not known is refused whole."""
        known = {item.name for item in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown switches: {sorted(unknown)}")
        new = Faults(**{**self.as_dict(), **changes})
        if new.ack not in ACK_MODES:
            raise ValueError(f"ack must be one of {ACK_MODES}")
        if new.results not in RESULT_MODES:
            raise ValueError(f"results must be one of {RESULT_MODES}")
        if new.abnormal not in ABNORMAL_MODES:
            raise ValueError(f"abnormal must be one of {ABNORMAL_MODES}")
        if not isinstance(new.slow_seconds, int | float) or new.slow_seconds < 0:
            raise ValueError("slow_seconds must be a number >= 0")
        if new.times is not None and (not isinstance(new.times, int) or new.times < 1):
            raise ValueError("times must be a whole number >= 1, or null")
        for name in ("duplicate_ack", "duplicate_results"):
            if not isinstance(getattr(new, name), bool):
                raise ValueError(f"{name} must be true or false")
        for item in fields(self):
            setattr(self, item.name, getattr(new, item.name))


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class SandboxState:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.faults = Faults()
        self.orders: list[dict] = []  # every order message, with what it was answered
        self.results: list[dict] = []  # every result message sent, with the portal's answer
        self.placers: set[tuple[str, str]] = set()  # (sending facility, placer number) taken
        self.arrived = 0  # messages read off the wire, before any answer (or none)

    def reset(self) -> None:
        with self.lock:
            self.faults = Faults()
            self.orders.clear()
            self.results.clear()
            self.placers.clear()
            self.arrived = 0

    def note_arrival(self) -> None:
        with self.lock:
            self.arrived += 1

    def order_faults(self) -> Faults:
        """The switches for the order being answered now (counting down ``times``)."""
        with self.lock:
            current = Faults(**self.faults.as_dict())
            if self.faults.times is not None:
                self.faults.times -= 1
                if self.faults.times <= 0:
                    results = (
                        self.faults.results,
                        self.faults.abnormal,
                        self.faults.duplicate_results,
                    )
                    self.faults = Faults()
                    self.faults.results, self.faults.abnormal, self.faults.duplicate_results = (
                        results
                    )
            return current

    def record_order(self, entry: dict) -> None:
        with self.lock:
            self.orders.append({"received_at": now_iso(), **entry})

    def take_placer(self, facility: str, placer: str) -> bool:
        """True the first time this sender's placer order number is seen (a resent order,
        the portal's outbox retrying, is acknowledged again and reported once)."""
        with self.lock:
            key = (facility, placer)
            if key in self.placers:
                return False
            self.placers.add(key)
            return True

    def new_result(self, entry: dict) -> dict:
        with self.lock:
            record = {"created_at": now_iso(), "attempts": 0, "ack_code": None, **entry}
            self.results.append(record)
            return record

    def update_result(self, record: dict, **changes) -> None:
        with self.lock:
            record.update(changes)

    def snapshot(self, what: str) -> list[dict]:
        with self.lock:
            return [dict(item) for item in getattr(self, what)]
