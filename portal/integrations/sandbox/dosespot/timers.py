"""One background thread that runs callables at given times (a tiny timer wheel).

The lifecycle and the webhook sender each own one, so a slow webhook receiver never holds
up a prescription's progress. Callables run on the timer's thread, one at a time.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class Timer:
    def __init__(self, name: str):
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def call_later(self, delay: float, action: Callable[[], None]) -> None:
        with self._wake:
            heapq.heappush(self._queue, (time.monotonic() + delay, next(self._order), action))
            self._wake.notify()

    def clear(self) -> None:
        with self._wake:
            self._queue.clear()

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._queue.clear()
            self._wake.notify()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._stopped:
                    if self._queue and self._queue[0][0] <= time.monotonic():
                        break
                    timeout = self._queue[0][0] - time.monotonic() if self._queue else None
                    self._wake.wait(timeout)
                if self._stopped:
                    return
                _, _, action = heapq.heappop(self._queue)
            try:
                action()
            except Exception:  # a failed step must not end the thread every later step needs
                log.exception("sandbox timer action failed")
