"""Delivering the outbox (the worker's side): claim, deliver outside any transaction, record.

A message is claimed in one short transaction and its outcome recorded in another; the call
to the vendor holds no transaction and no lock. A worker killed between the two leaves the
message in flight until its lease ends, then another worker (or this one, restarted) tries
it again: delivery is at least once, and the connector makes a repeat harmless with the
message's stable idempotency key.

What is logged names the connector, the operation, the message id and the error's kind;
never a payload (it holds patient data).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass

from portal.integrations import outbox
from portal.integrations.base import PermanentError, TransientError
from portal.integrations.settings import active_connectors
from portal.transaction import end_read

log = logging.getLogger(__name__)

DEFAULT_MAX_ATTEMPTS = 8
# Messages claimed in one transaction. A few at a time halves the queue's transactions per
# message; few enough that the last of them is delivered well within its lease even when
# every call before it takes its connector's full time-out.
CLAIM_BATCH = 5


def worker_name() -> str:
    """This process, as the outbox records who holds a message."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class DeliveryRun:
    """What one turn of the delivery job did."""

    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    dead: int = 0
    released: int = 0
    withheld: int = 0

    @property
    def handled(self) -> int:
        return self.delivered + self.retrying + self.failed + self.dead

    def summary(self) -> str | None:
        if not (self.handled or self.released or self.withheld):
            return None
        parts = [
            f"{count} {label}"
            for label, count in (
                ("delivered", self.delivered),
                ("to retry", self.retrying),
                ("failed", self.failed),
                ("dead", self.dead),
                ("released", self.released),
                ("withheld", self.withheld),
            )
            if count
        ]
        return "outbox: " + ", ".join(parts)


def deliver_due(
    *,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    lease_seconds: float = outbox.LEASE_SECONDS,
    seconds: float = 1.0,
    stop: threading.Event | None = None,
    name: str | None = None,
) -> DeliveryRun:
    """Deliver due messages (claimed a few at a time, delivered one by one) for up to
    ``seconds`` (so the worker's other jobs keep their turns), or until none is due or
    ``stop`` is set (what is claimed and not yet started is given back)."""
    run = DeliveryRun()
    name = name or worker_name()
    connectors = active_connectors()
    end_read()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not (stop and stop.is_set()):
        claimed = outbox.claim_due(
            name, frozenset(connectors), limit=CLAIM_BATCH, lease_seconds=lease_seconds
        )
        if not claimed:
            break
        for index, message in enumerate(claimed):
            if stop is not None and stop.is_set():  # asked to stop: give the rest back
                run.released += sum(outbox.release(rest) for rest in claimed[index:])
                break
            _deliver(connectors[message.connector], message, max_attempts, run)
    return run


def _deliver(connector, claimed: outbox.Claimed, max_attempts: int, run: DeliveryRun) -> None:
    reason = outbox.withheld(claimed)
    if reason is not None:  # the domain says it must not go out (e.g. printed meanwhile)
        outbox.withdraw(claimed, reason)
        run.withheld += 1
        return
    try:
        deliverer = outbox.deliverer_for(claimed.operation)
        if deliverer is not None:  # a domain builds this one from its rows (labs' orders)
            result = deliverer(connector, claimed)
        else:
            result = connector.deliver(claimed.operation, claimed.payload, claimed.idempotency_key)
    except PermanentError as error:
        status = outbox.mark_failed(claimed, str(error), permanent=True, max_attempts=max_attempts)
    except TransientError as error:
        status = outbox.mark_failed(
            claimed,
            str(error),
            permanent=False,
            max_attempts=max_attempts,
            retry_after=error.retry_after,
        )
    except Exception as error:  # a bug or an unwrapped network error: retried, named by type
        status = outbox.mark_failed(
            claimed,
            f"unexpected {type(error).__name__}",
            permanent=False,
            max_attempts=max_attempts,
        )
    else:
        outbox.mark_delivered(claimed, result if isinstance(result, dict) else None)
        run.delivered += 1
        return
    if status != "in_flight":
        log.warning(
            "outbox message %s (%s %s) try %s: %s",
            claimed.id,
            claimed.connector,
            claimed.operation,
            claimed.attempts,
            status,
        )
    if status == "pending":
        run.retrying += 1
    elif status == "failed":
        run.failed += 1
    elif status == "dead":
        run.dead += 1
