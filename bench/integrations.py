"""``python -m bench --integrations``: the outbox's throughput and latency, and webhook intake.

Three measurements, on a database made for the benchmark (``portal_bench_integrations`` on
the PostgreSQL server; ``--no-postgres``: ``bench/out/sqlite/portal-integrations.sqlite``
with one worker, the set-up SQLite supports):

- **Outbox delivery throughput**: N messages are written (``outbox.enqueue`` in use cases),
  then 1, 2 and 4 worker PROCESSES, each looping over ``deliver_due()`` as the worker's job
  does, are released at once; the time runs from their release to the last ``delivered_at``.
  Processes, not threads, so the ``FOR UPDATE SKIP LOCKED`` sharing is between real
  connections with no GIL in common. Two connectors: ``bench-noop`` (defined here, its
  ``deliver`` returns ``{}`` at once: the queue's own cost) and ``bench-dosespot`` (the
  DoseSpot connector under another name, delivering the real ``sync_patient`` operation to
  the DoseSpot sandbox, which runs in a process of its own: one authenticated ``PUT
  api/patients/<id>`` per message, the token cached per worker process). Each connector
  notes the idempotency keys it delivered; afterwards every message must be delivered with
  one attempt, and the workers must have delivered each key exactly once: a run that loses
  or doubles a message fails.
- **Commit-to-delivery latency**: the worker's real loop (``portal.worker.run`` over the job
  list of ``flask worker``) in a process of its own, an idle queue, and messages enqueued one
  at a time, each in its own use case, every 50-200 ms (random); latency = ``delivered_at``
  - ``created_at``.
- **Webhook intake**: the portal under gunicorn as deployed (2 workers x 4 threads), DoseSpot
  enabled against the sandbox (``save_and_enable``: ``check()`` runs as an admin's would);
  closed-loop clients in a few load processes post genuine signed DoseSpot notifications
  (shared secret, unique ``X-Sandbox-Event-Id``, timestamp, HMAC signature) over keep-alive
  connections. Every answer must be 200 "accepted" and every event stored once.

Runs are repeated ``--integration-repeats`` times in rounds (1, 2, 4 workers, then again), so
that whatever else the machine does is spread over every worker count alike.
"""

from __future__ import annotations

import http.client
import json
import logging
import multiprocessing
import random
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench import concurrency, cpu, report
from bench.databases import OUT, ROOT, app_for
from portal.integrations.base import LabConnector
from portal.integrations.dosespot.connector import DoseSpotConnector

DATABASE = "portal_bench_integrations"
POSTGRES_WORKERS = (1, 2, 4)
SQLITE_WORKERS = (1,)
NOOP_MESSAGES = 2000
SANDBOX_MESSAGES = 500
LATENCY_MESSAGES = 200
LATENCY_INTERVAL_S = (0.05, 0.2)
WEBHOOK_CLIENTS = (4, 16)
WEBHOOK_WARMUP_SECONDS = 2.0
LOAD_PROCESSES = 4
DELIVERY_TIMEOUT_S = 300.0
# The sandbox's first clinic (its fixtures/clinics.json) and a prescriber of it.
CLINIC_ID = 1001
CLINIC_KEY = "SANDBOXKEY-7f3a9c2e41d84b6e9a0c5d1f2e3b4a59"
SUBSCRIPTION_KEY = "sandbox-subscription-key-1001"
PRESCRIBER = 2001
ADMIN_CLINICIAN = 2002
# Only ever set on the benchmark's own throw-away database and sandbox.
WEBHOOK_SECRET = "bench-dosespot-webhook-secret-0123456789"  # noqa: S105
SNAPSHOT = {
    "mrn": "10000017",
    "given_name": "Rosa",
    "family_name": "Delgado",
    "birth_date": "1971-03-09",
    "sex_at_birth": "female",
    "address_line1": "5 Oak Lane",
    "city": "Springfield",
    "state": "MA",
    "postal_code": "01101",
    "phone_mobile": "+14135550199",
    "height_cm": None,
    "weight_kg": None,
}

# Idempotency keys a connector delivered in this process (each worker process has its own).
DELIVERED: list[str] = []


class NoopConnector(LabConnector):
    """Delivers nothing, at once: what is left is the outbox's own cost."""

    name = "bench-noop"
    title = "No-op (benchmark)"

    def check(self) -> None:
        return None

    def deliver(self, operation: str, payload: dict[str, Any], idempotency_key: str) -> dict:
        DELIVERED.append(idempotency_key)
        return {}


class SandboxDoseSpot(DoseSpotConnector):
    """The DoseSpot connector unchanged, under its own name so that the benchmark can note
    which keys it delivered (and leave the real ``dosespot`` settings to the webhooks)."""

    name = "bench-dosespot"
    title = "DoseSpot (benchmark)"

    def deliver(self, operation: str, payload: dict[str, Any], idempotency_key: str) -> dict:
        result = super().deliver(operation, payload, idempotency_key)
        DELIVERED.append(idempotency_key)
        return result


def register_connectors() -> None:
    from portal.integrations import registry

    registry.register(NoopConnector)
    registry.register(SandboxDoseSpot)


# --- the database and the sandbox -----------------------------------------------------------


def database_url(dialect: str, server_url: str) -> str:
    """A fresh, migrated database with the demo clinic (connector settings are per clinic)."""
    if dialect == "sqlite":
        path = OUT / "sqlite" / "portal-integrations.sqlite"
        path.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm", ".write-lock"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        url = f"sqlite:///{path}"
    else:
        server = make_url(server_url).set(drivername="postgresql+psycopg")
        admin = create_engine(server, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{DATABASE}"'))
        admin.dispose()
        url = server.set(database=DATABASE).render_as_string(hide_password=False)
    from flask_migrate import upgrade

    from portal.demo.clinic import seed_clinic_and_users
    from portal.extensions import db

    app = _app(url)
    with app.app_context():
        upgrade()
        seed_clinic_and_users()
        db.session.remove()
        db.engine.dispose()
    return url


def _app(url: str):
    app = app_for(url)
    app.config["AUDIT_CHECKPOINT_PATH"] = str(OUT / "integrations-audit-checkpoints.jsonl")
    return app


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Sandbox:
    """The DoseSpot sandbox in a process of its own (werkzeug, threaded), as ``make run``
    starts it: its CPU is not the benchmark's, and its GIL is not the workers'."""

    def __init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = OUT / "sandbox-integrations.log"
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> Sandbox:
        log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "portal.integrations.sandbox.dosespot",
                "--port",
                str(self.port),
                "--webhook-secret",
                WEBHOOK_SECRET,
            ],
            cwd=ROOT,
            stdout=log,
            stderr=log,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the sandbox exited; see {self.log_path}")
            try:
                requests.get(f"{self.url}/_sandbox/faults", timeout=1)
                return self
            except requests.RequestException:
                time.sleep(0.1)
        raise SystemExit(f"the sandbox did not answer in 30 s; see {self.log_path}")

    def settings(self) -> dict:
        return {
            "clinic_id": CLINIC_ID,
            "clinic_key": CLINIC_KEY,
            "subscription_key": SUBSCRIPTION_KEY,
            "admin_clinician_id": ADMIN_CLINICIAN,
            "api_base_url": self.url,
            "sso_base_url": self.url,
            "webhook_secret": WEBHOOK_SECRET,
        }

    def __exit__(self, *exc) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def enable(app, name: str, settings: dict) -> None:
    """Save and enable a connector as an admin does (``check()`` first)."""
    from portal.actors import SOURCE_CLI, Actor
    from portal.extensions import db
    from portal.integrations.settings import Submitted, save_and_enable

    cls_fields = {
        "bench-noop": NoopConnector,
        "bench-dosespot": SandboxDoseSpot,
        "dosespot": DoseSpotConnector,
    }[name].fields
    secret_names = {f.name for f in cls_fields if f.secret}
    submitted = Submitted(
        values={k: v for k, v in settings.items() if k not in secret_names},
        secrets={k: v for k, v in settings.items() if k in secret_names},
    )
    with app.app_context():
        save_and_enable(Actor(id=None, username="bench", source=SOURCE_CLI), name, submitted)
        db.session.remove()


def clear_outbox(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("TRUNCATE outbox_messages"))
        else:
            connection.execute(text("DELETE FROM outbox_messages"))
    engine.dispose()


def prefill(app, connector: str, operation: str, payload: dict, count: int, tag: str) -> None:
    """``count`` messages, as domain services write them (``enqueue`` in use cases of 100)."""
    from portal.extensions import db
    from portal.integrations import outbox
    from portal.transaction import use_case

    with app.app_context():
        for start in range(0, count, 100):
            with use_case():
                for number in range(start, min(count, start + 100)):
                    outbox.enqueue(connector, operation, payload, idempotency_key=f"{tag}:{number}")
        db.session.remove()


# --- outbox throughput ----------------------------------------------------------------------


def _delivery_worker(url: str, number: int, ready, go, stop, results) -> None:
    """One worker process: ``deliver_due`` as the worker's job calls it, until told to stop;
    then the keys its connectors delivered."""
    from portal.extensions import db
    from portal.integrations.delivery import deliver_due

    register_connectors()
    app = _app(url)
    logging.getLogger("portal").setLevel(logging.ERROR)  # after create_app, which sets it
    with app.app_context():
        db.session.execute(text("SELECT 1"))  # connected before the clock starts
        db.session.remove()
    ready.put(number)
    go.wait()
    while not stop.is_set():
        with app.app_context():
            run = deliver_due(seconds=1.0, stop=stop, name=f"bench-{number}")
            db.session.remove()
        if not run.handled:
            stop.wait(0.002)  # the queue is empty (or every due row is locked): look again
    results.put((number, list(DELIVERED)))


@dataclass
class DeliveryRun:
    connector: str
    workers: int
    messages: int
    seconds: float
    worker_cpu_seconds: float
    other_busy: float
    problems: list[str] = field(default_factory=list)

    @property
    def per_second(self) -> float:
        return self.messages / self.seconds


def delivery_run(url: str, app, connector: str, workers: int, count: int, payload) -> DeliveryRun:
    """Pre-fill ``count`` messages, release ``workers`` processes, time until all are
    delivered, then check each was delivered exactly once."""
    clear_outbox(url)
    tag = f"{connector}:{workers}:{uuid.uuid4().hex[:8]}"
    operation = "ping" if connector == "bench-noop" else "sync_patient"
    prefill(app, connector, operation, payload, count, tag)
    context = multiprocessing.get_context("spawn")
    ready, results = context.Queue(), context.Queue()
    go, stop = context.Event(), context.Event()
    processes = [
        context.Process(target=_delivery_worker, args=(url, n, ready, go, stop, results))
        for n in range(workers)
    ]
    for process in processes:
        process.start()
    for _ in processes:
        ready.get(timeout=120)
    engine = create_engine(url)
    cpu_before = sum(cpu.process_cpu_seconds(p.pid) or 0 for p in processes)
    machine_before = cpu.machine_jiffies()
    own_before = cpu.own_cpu_seconds()
    started = datetime.now(UTC)
    go.set()
    problems = []
    deadline = time.monotonic() + DELIVERY_TIMEOUT_S
    while True:
        time.sleep(0.05)
        with engine.connect() as connection:
            done = connection.execute(
                text("SELECT count(*) FROM outbox_messages WHERE status = 'delivered'")
            ).scalar()
        if done >= count:
            break
        if time.monotonic() > deadline:
            problems.append(f"only {done} of {count} delivered in {DELIVERY_TIMEOUT_S:.0f} s")
            break
    machine_after = cpu.machine_jiffies()
    worker_cpu = sum(cpu.process_cpu_seconds(p.pid) or 0 for p in processes) - cpu_before
    stop.set()
    delivered_keys: list[str] = []
    for _ in processes:
        delivered_keys += results.get(timeout=60)[1]
    for process in processes:
        process.join(timeout=30)
    ours = cpu.own_cpu_seconds() - own_before + worker_cpu
    with engine.connect() as connection:
        total, once, last = connection.execute(
            text(
                "SELECT count(*), "
                "sum(CASE WHEN status = 'delivered' AND attempts = 1 THEN 1 ELSE 0 END), "
                "max(delivered_at) FROM outbox_messages"
            )
        ).one()
    engine.dispose()
    problems += _exactly_once(count, total, once, delivered_keys, tag)
    last = _aware(last) if last is not None else datetime.now(UTC)
    return DeliveryRun(
        connector,
        workers,
        count,
        max(1e-6, (last - started).total_seconds()),
        worker_cpu,
        cpu.other_fraction(machine_before, machine_after, ours),
        problems,
    )


def _aware(value) -> datetime:
    if isinstance(value, str):  # SQLite through a plain engine
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _exactly_once(count: int, total: int, once: int, keys: list[str], tag: str) -> list[str]:
    """What is wrong with a run's outcome: messages lost, tried twice, or delivered twice."""
    problems = []
    if total != count:
        problems.append(f"{total} messages in the outbox, {count} written")
    if (once or 0) != count:
        problems.append(f"{count - (once or 0)} messages not delivered in exactly one attempt")
    seen = Counter(key for key in keys if key.startswith(tag + ":"))
    doubled = sum(times - 1 for times in seen.values() if times > 1)
    if doubled:
        problems.append(f"{doubled} deliveries repeated by the connector")
    if len(seen) != count:
        problems.append(f"the connector delivered {len(seen)} distinct messages of {count}")
    return problems


# --- commit-to-delivery latency -------------------------------------------------------------


def _periodic_worker(url: str, ready, stop) -> None:
    """``flask worker`` in a process: the same job list, the same loop."""
    from portal import worker
    from portal.audit import jobs as audit_jobs
    from portal.integrations import jobs as integration_jobs
    from portal.prescriptions import jobs as prescription_jobs

    register_connectors()
    app = _app(url)
    logging.getLogger("portal").setLevel(logging.ERROR)  # after create_app, which sets it
    jobs = (
        audit_jobs.periodic_jobs(app.config)
        + integration_jobs.periodic_jobs(app.config, stop)
        + prescription_jobs.periodic_jobs(app.config)
    )
    ready.put(True)
    worker.run(app, jobs, stop)


@dataclass
class LatencyRun:
    latencies_ms: list[float]
    problems: list[str]
    worker_cpu_seconds: float
    other_busy: float


def latency_run(url: str, app, count: int, seed: int = 1) -> LatencyRun:
    from portal.extensions import db
    from portal.integrations import outbox
    from portal.transaction import use_case

    clear_outbox(url)
    context = multiprocessing.get_context("spawn")
    ready, stop = context.Queue(), context.Event()
    process = context.Process(target=_periodic_worker, args=(url, ready, stop))
    process.start()
    ready.get(timeout=120)
    time.sleep(1.0)  # its first turn of every job is over: the queue is idle
    rng = random.Random(seed)
    tag = f"latency:{uuid.uuid4().hex[:8]}"
    cpu_before = cpu.process_cpu_seconds(process.pid) or 0
    machine_before = cpu.machine_jiffies()
    own_before = cpu.own_cpu_seconds()
    with app.app_context():
        for number in range(count):
            time.sleep(rng.uniform(*LATENCY_INTERVAL_S))
            with use_case():
                key = f"{tag}:{number}"
                outbox.enqueue("bench-noop", "ping", {"n": number}, idempotency_key=key)
        db.session.remove()
    engine = create_engine(url)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with engine.connect() as connection:
            done = connection.execute(
                text("SELECT count(*) FROM outbox_messages WHERE status = 'delivered'")
            ).scalar()
        if done >= count:
            break
        time.sleep(0.1)
    machine_after = cpu.machine_jiffies()
    worker_cpu = (cpu.process_cpu_seconds(process.pid) or 0) - cpu_before
    stop.set()
    process.join(timeout=30)
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT status, attempts, created_at, delivered_at FROM outbox_messages")
        ).all()
    engine.dispose()
    once = sum(1 for row in rows if row.status == "delivered" and row.attempts == 1)
    problems = _exactly_once(count, len(rows), once, [f"{tag}:{n}" for n in range(count)], tag)
    latencies = [
        (_aware(row.delivered_at) - _aware(row.created_at)).total_seconds() * 1000
        for row in rows
        if row.delivered_at is not None
    ]
    ours = cpu.own_cpu_seconds() - own_before + worker_cpu
    return LatencyRun(
        latencies, problems, worker_cpu, cpu.other_fraction(machine_before, machine_after, ours)
    )


# --- webhook intake -------------------------------------------------------------------------


def signed_webhook(event_id: str, body: bytes, secret: str = WEBHOOK_SECRET) -> dict:
    """The headers DoseSpot's sandbox sends (portal/integrations/dosespot/webhooks.py)."""
    import hashlib
    import hmac

    timestamp = str(int(time.time()))
    signature = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return {
        "Content-Type": "application/json",
        "Authorization": secret,
        "X-Sandbox-Event-Id": event_id,
        "X-Sandbox-Timestamp": timestamp,
        "X-Sandbox-Signature": "v1=" + signature.hexdigest(),
    }


def event_body(number: int) -> bytes:
    """A PrescriptionResult as the sandbox sends one (numbers for statuses, ids as ints)."""
    return json.dumps(
        {
            "EventType": "PrescriptionResult",
            "Data": {
                "ClinicId": CLINIC_ID,
                "ClinicianId": PRESCRIBER,
                "PatientId": 10001,
                "PrescriptionId": 50000 + number,
                "PrescriptionStatus": 13,
                "StatusDateTime": datetime.now(UTC).isoformat(),
            },
        },
        separators=(",", ":"),
    ).encode()


def _webhook_load(port, clients, tag, start_at, warmup, seconds, pipe) -> None:
    """One load process: a thread per client, each posting in a closed loop on its own
    keep-alive connection; sends back (latency ms, timed, problem) per request."""
    samples: list[tuple[float, bool, str | None]] = []
    lock = threading.Lock()

    def run(client: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        local = []
        number = 0
        while time.time() < start_at:
            time.sleep(0.001)
        timed_from, deadline = start_at + warmup, start_at + warmup + seconds
        while (now := time.time()) < deadline:
            number += 1
            body = event_body(number)
            headers = signed_webhook(f"{tag}-{client}-{number}", body)
            began = time.perf_counter()
            problem = None
            try:
                connection.request("POST", "/integrations/dosespot/webhook", body, headers)
                response = connection.getresponse()
                answer = response.read()
                if response.status != 200 or json.loads(answer) != {"status": "accepted"}:
                    problem = f"HTTP {response.status} {answer[:80]!r}"
            except (http.client.HTTPException, OSError, ValueError) as error:
                problem = f"{type(error).__name__}: {error}"
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            latency = (time.perf_counter() - began) * 1000
            local.append((latency, now >= timed_from, problem))
        connection.close()
        with lock:
            samples.extend(local)

    threads = [threading.Thread(target=run, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    pipe.send(samples)
    pipe.close()


@dataclass
class WebhookRun:
    clients: int
    seconds: float
    latencies_ms: list[float]
    sent: int
    problems: list[str]
    worker_cpu_ms: float | None
    other_busy: float

    @property
    def per_second(self) -> float:
        return len(self.latencies_ms) / self.seconds


def webhook_run(url: str, server, clients: int, seconds: float) -> WebhookRun:
    tag = f"bench-{uuid.uuid4().hex[:8]}"
    processes = min(LOAD_PROCESSES, clients)
    start_at = time.time() + 1.0
    context = multiprocessing.get_context("fork")
    loads = []
    for index in range(processes):
        receiver, sender = context.Pipe(duplex=False)
        mine = list(range(clients))[index::processes]
        process = context.Process(
            target=_webhook_load,
            args=(server.port, mine, tag, start_at, WEBHOOK_WARMUP_SECONDS, seconds, sender),
        )
        process.start()
        loads.append((process, receiver))
    while time.time() < start_at + WEBHOOK_WARMUP_SECONDS:
        time.sleep(0.01)
    pids = server.worker_pids()
    cpu_before = sum(cpu.process_cpu_seconds(pid) or 0 for pid in pids)
    load_before = sum(cpu.process_cpu_seconds(p.pid) or 0 for p, _ in loads)
    machine_before = cpu.machine_jiffies()
    time.sleep(max(0.0, start_at + WEBHOOK_WARMUP_SECONDS + seconds - time.time()))
    machine_after = cpu.machine_jiffies()
    cpu_after = sum(cpu.process_cpu_seconds(pid) or 0 for pid in pids)
    load_after = sum(cpu.process_cpu_seconds(p.pid) or 0 for p, _ in loads)
    samples = []
    for process, receiver in loads:
        samples += receiver.recv()
        process.join(timeout=30)
    timed = [latency for latency, in_window, _ in samples if in_window]
    failed = [problem for _, _, problem in samples if problem]
    problems = [f"{len(failed)} requests not answered 200 accepted ({failed[0]})"] if failed else []
    engine = create_engine(url)
    with engine.connect() as connection:
        stored = connection.execute(
            text(
                "SELECT count(*), count(DISTINCT event_id) FROM inbox_messages "
                "WHERE event_id LIKE :tag"
            ),
            {"tag": tag + "-%"},
        ).one()
    engine.dispose()
    answered = len(samples) - len(failed)
    if stored[0] != answered or stored[1] != answered:
        problems.append(f"{answered} accepted, {stored[0]} stored ({stored[1]} distinct)")
    ours = (cpu_after - cpu_before) + (load_after - load_before)
    return WebhookRun(
        clients,
        seconds,
        timed,
        len(samples),
        problems,
        (cpu_after - cpu_before) * 1000 / len(timed) if timed else None,
        cpu.other_fraction(machine_before, machine_after, ours),
    )


# --- the run --------------------------------------------------------------------------------


def _result(name, label, latencies, stamp, *, rate=None, problems=(), **extra) -> report.Result:
    return report.Result(
        benchmark=name,
        database=label,
        rows=0,
        requests=len(latencies),
        # A throughput row has no per-request latency: "—" in RESULTS.md, null in the JSON.
        p50_ms=round(report.percentile(latencies, 50), 2) if latencies else None,
        p95_ms=round(report.percentile(latencies, 95), 2) if latencies else None,
        p99_ms=round(report.percentile(latencies, 99), 2) if latencies else None,
        floor_p95_ms=None,
        date=stamp,
        failures=len(problems),
        first_failure="; ".join(problems) or None,
        throughput_per_s=round(rate, 1) if rate is not None else None,
        **extra,
    )


def measure(dialect: str, args, log, stamp: str, db_report: report.DatabaseReport) -> None:
    from portal.extensions import db
    from portal.integrations.dosespot.connector import DoseSpotConnector as Real

    register_connectors()
    label = db_report.label
    url = database_url(dialect, args.postgres)
    app = _app(url)
    worker_counts = POSTGRES_WORKERS if dialect == "postgresql" else SQLITE_WORKERS
    repeats = args.integration_repeats
    noop_count, sandbox_count = args.outbox_messages, max(1, args.outbox_messages // 4)
    enable(app, "bench-noop", {})
    with Sandbox() as sandbox:
        log(f"  DoseSpot sandbox at {sandbox.url} (pid {sandbox.process.pid})")
        enable(app, "bench-dosespot", sandbox.settings())
        patient_id = Real(sandbox.settings()).sync_patient(PRESCRIBER, SNAPSHOT)
        sandbox_payload = {
            "clinician_id": PRESCRIBER,
            "patient": SNAPSHOT,
            "dosespot_patient_id": patient_id,
        }
        for connector, count, payload in (
            ("bench-noop", noop_count, {"n": 1, "note": "x" * 200}),
            ("bench-dosespot", sandbox_count, sandbox_payload),
        ):
            kind = "no-op" if connector == "bench-noop" else "sandbox"
            runs: list[DeliveryRun] = []
            for repeat in range(repeats):
                for workers in worker_counts:
                    cpu.wait_for_quiet(args.quiet_wait, 0.5, log)
                    run = delivery_run(url, app, connector, workers, count, payload)
                    runs.append(run)
                    log(
                        f"  outbox {kind}, {workers} workers, round {repeat + 1}: "
                        f"{run.messages} in {run.seconds:.2f} s = {run.per_second:,.0f}/s, "
                        f"worker CPU {run.worker_cpu_seconds * 1000 / run.messages:.2f} ms/msg, "
                        f"others {run.other_busy:.0%}"
                        + (f"  PROBLEMS: {run.problems}" if run.problems else "")
                    )
            for workers in worker_counts:
                mine = [run for run in runs if run.workers == workers]
                messages = sum(run.messages for run in mine)
                seconds = sum(run.seconds for run in mine)
                db_report.results.append(
                    _result(
                        f"outbox delivery, {kind}, {workers} workers",
                        label,
                        [],
                        stamp,
                        rate=messages / seconds,
                        problems=[p for run in mine for p in run.problems],
                        worker_cpu_ms=round(
                            sum(r.worker_cpu_seconds for r in mine) * 1000 / messages, 2
                        ),
                        other_busy=sum(r.other_busy for r in mine) / len(mine),
                    )
                )
                db_report.results[-1].requests = messages
            db_report.notes.append(
                f"Outbox delivery, {kind}: {count} messages per run, "
                + "; ".join(
                    f"{w} workers: "
                    + ", ".join(f"{r.per_second:,.0f}/s" for r in runs if r.workers == w)
                    for w in worker_counts
                )
            )

        cpu.wait_for_quiet(args.quiet_wait, 0.5, log)
        latency = latency_run(url, app, args.latency_messages)
        log(
            f"  commit-to-delivery: {len(latency.latencies_ms)} messages, p50 "
            f"{report.percentile(latency.latencies_ms, 50):.0f} ms, p95 "
            f"{report.percentile(latency.latencies_ms, 95):.0f} ms, p99 "
            f"{report.percentile(latency.latencies_ms, 99):.0f} ms"
            + (f"  PROBLEMS: {latency.problems}" if latency.problems else "")
        )
        db_report.results.append(
            _result(
                "outbox commit-to-delivery latency",
                label,
                latency.latencies_ms,
                stamp,
                problems=latency.problems,
                other_busy=latency.other_busy,
            )
        )

        enable(app, "dosespot", sandbox.settings())
        with app.app_context():
            db.engine.dispose()
        from bench.server import Server

        with Server(url, args.port, concurrency.THREADS, workers=concurrency.WORKERS) as server:
            log(f"  gunicorn at {server.base}: {concurrency.WORKERS} x {concurrency.THREADS}")
            for clients in args.webhook_clients:
                cpu.wait_for_quiet(args.quiet_wait, 0.5, log)
                run = webhook_run(url, server, clients, args.seconds)
                log(
                    f"  webhook intake, {clients} clients: {run.per_second:,.0f}/s, p50 "
                    f"{report.percentile(run.latencies_ms, 50):.1f} ms, p95 "
                    f"{report.percentile(run.latencies_ms, 95):.1f} ms, p99 "
                    f"{report.percentile(run.latencies_ms, 99):.1f} ms, worker CPU "
                    f"{run.worker_cpu_ms or 0:.2f} ms/req, others {run.other_busy:.0%}"
                    + (f"  PROBLEMS: {run.problems}" if run.problems else "")
                )
                db_report.results.append(
                    _result(
                        f"webhook intake, {clients} clients",
                        label,
                        run.latencies_ms,
                        stamp,
                        rate=run.per_second,
                        problems=run.problems,
                        worker_cpu_ms=round(run.worker_cpu_ms, 2) if run.worker_cpu_ms else None,
                        other_busy=run.other_busy,
                        clients=clients,
                    )
                )
    with app.app_context():
        db.engine.dispose()


def main(args, log, stamp: str, info: dict, postgres_version: str | None) -> int:
    """PostgreSQL (or, with --no-postgres, SQLite with one worker); report."""
    dialect, label, version = (
        ("postgresql", "PostgreSQL", postgres_version)
        if postgres_version
        else ("sqlite", "SQLite", info["sqlite"])
    )
    db_report = report.DatabaseReport(label, version)
    log(f"\n== {label}: integrations (outbox delivery and latency, webhook intake)")
    measure(dialect, args, log, stamp, db_report)
    settings = (
        f"outbox: {args.outbox_messages} no-op / {max(1, args.outbox_messages // 4)} sandbox "
        f"messages pre-filled per run, worker processes released at once, timed to the last "
        f"delivered_at, {args.integration_repeats} rounds over the worker counts (each row: "
        f"all its rounds); latency: {args.latency_messages} messages enqueued one at a time "
        f"every {LATENCY_INTERVAL_S[0] * 1000:.0f}-{LATENCY_INTERVAL_S[1] * 1000:.0f} ms, the "
        f"`flask worker` job list in its own process; webhooks: gunicorn "
        f"{concurrency.WORKERS} workers x {concurrency.THREADS} threads, closed-loop clients in "
        f"up to {LOAD_PROCESSES} load processes, {args.seconds:g} s per run after "
        f"{WEBHOOK_WARMUP_SECONDS:g} s warm-up. Worker CPU: per message (outbox workers) or "
        f"per request (gunicorn workers)"
    )
    text_ = report.markdown(stamp, info, settings, [db_report], [])
    text_ = text_.replace(f"## {stamp}", f"## {stamp}: integrations", 1)
    if args.quick:
        md_path, json_path = OUT / "quick-RESULTS.md", OUT / "quick-results.json"
    else:
        md_path, json_path = ROOT / "bench" / "RESULTS.md", ROOT / "bench" / "results.json"
    report.append_markdown(md_path, text_)
    report.write_json(json_path, db_report.results, keep=True)
    log("\n" + text_)
    log(f"Written: {md_path.relative_to(ROOT)}, {json_path.relative_to(ROOT)}")
    failures = report.failing(db_report.results)
    if failures:
        log(f"{len(failures)} row(s) failed their budget or gave wrong answers.")
        return 1
    return 0
