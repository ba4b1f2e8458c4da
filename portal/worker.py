"""The worker: one process that runs the portal's periodic jobs (``flask worker``).

It is a plain loop over a short list of jobs, each with its own interval. The loop knows no
domain: each domain that needs background work offers its jobs (the audit trail's sealer and
checkpoints: ``portal.audit.jobs``; the integrations' outbox delivery:
``portal.integrations.jobs``) and the ``worker`` command lists them. A job runs inside the
application context, in use cases of its own: a job that fails is logged and tried again at its next
turn, and never stops the others.

The log names jobs, counts and ids, never patient data: a failure is logged by its type
only, since a database error's text can carry the values of the row it was about.
SIGTERM or SIGINT ends the loop after the job in progress (a job that works through a
queue checks the same stop event between items). ``flask worker --once`` runs every job once
and exits (tests, cron).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from flask import Flask

from portal.extensions import db

log = logging.getLogger("portal.worker")


@dataclass
class Job:
    """Something to run every ``every_seconds`` (first at start)."""

    name: str
    every_seconds: float
    run: Callable[[], str | None]  # returns what to log, if anything


def run(app: Flask, jobs: list[Job], stop: threading.Event) -> None:
    """Run ``jobs`` on their intervals until ``stop`` is set."""
    due = dict.fromkeys(range(len(jobs)), time.monotonic())
    while not stop.is_set():
        now = time.monotonic()
        for index, job in enumerate(jobs):
            if due[index] > now or stop.is_set():
                continue
            _run_one(app, job)
            due[index] = max(due[index] + job.every_seconds, time.monotonic())
        stop.wait(max(0.0, min(due.values()) - time.monotonic()))


def _run_one(app: Flask, job: Job) -> None:
    with app.app_context():
        try:
            message = job.run()
        except Exception as error:  # one failing job must not stop the others
            log.error(
                "%s failed: %s (tried again at its next turn)", job.name, type(error).__name__
            )
            return
        finally:
            db.session.remove()
    if message:
        log.info("%s", message)


def run_once(app: Flask, jobs: list[Job]) -> None:
    """``flask worker --once``: run every job once, in order."""
    for job in jobs:
        _run_one(app, job)


def run_until_signalled(app: Flask, jobs: list[Job], stop: threading.Event) -> None:
    """``flask worker``: run ``jobs`` until SIGTERM or SIGINT sets ``stop``."""

    def request_stop(signum, _frame):
        log.info("worker stopping (%s)", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    log.info(
        "worker started: %s",
        "; ".join(f"{job.name} every {job.every_seconds:g} s" for job in jobs),
    )
    run(app, jobs, stop)
    log.info("worker stopped")
