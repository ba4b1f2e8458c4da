"""``python -m bench --audit``: audited events per second against plain inserts of the same row.

Every patient page view writes an audit event, so how many events a deployment can write
per second, and whether that grows with concurrency, bounds how many pages it can serve.
Each measured transaction is what a use case does for an audited read:

- audit append: ``with use_case(): audit.record(actor, "chart.view", ...)`` (a person's
  actor, realistic fields), with the sealer running in a thread of the same process (the
  worker's job: ``seal_all`` every second) throughout the run;
- plain insert: ``with use_case(): db.session.execute(insert(plain_table), row)``, the same
  row into a table with the same columns and indexes and no trigger, nothing else. Both go
  through ``use_case()``, so the difference is the audit's own cost, not the session's.

Each thread has its own application context (and so its own session and connection). The
machine is shared, and what else runs on it changes from one minute to the next, so the two
kinds are measured in alternating slices: for each thread count, ``--audit-repeats`` rounds
of a plain slice then an audited slice, each ``--audit-seconds`` after a short warm-up; a
kind's figures are those of all its slices together. At the end every event is sealed and
``verify`` checks the whole trail. The databases are made for the benchmark
(``portal_bench_audit`` on the PostgreSQL server, ``bench/out/sqlite/portal-audit.sqlite``).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Column, Index, MetaData, Table, create_engine, insert, text
from sqlalchemy.engine import make_url

from bench import cpu, report
from bench.databases import OUT, app_for

POSTGRES_THREADS = (1, 4, 16)
SQLITE_THREADS = (1, 4)
WARMUP_SECONDS = 0.5
GOAL = 0.70  # audited events per second at 16 threads, as a share of plain inserts
PLAIN_TABLE = "bench_plain_events"
KINDS = ("plain insert", "audit append")


@dataclass
class Run:
    kind: str  # "audit append" or "plain insert"
    threads: int
    transactions: int
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    other_busy: float | None = None

    @property
    def per_second(self) -> float:
        return self.transactions / self.seconds


def checkpoint_file(dialect: str) -> Path:
    """Each benchmark database's own checkpoint file: a file that outlived its database would
    (rightly) make verify report the new chain as a rewrite of the old one."""
    return OUT / f"audit-checkpoints-{dialect}.jsonl"


def database_url(dialect: str, server_url: str) -> str:
    """A fresh, migrated database for the benchmark, with the plain table beside the trail."""
    checkpoint_file(dialect).unlink(missing_ok=True)
    if dialect == "sqlite":
        path = OUT / "sqlite" / "portal-audit.sqlite"
        path.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm", ".write-lock"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        url = f"sqlite:///{path}"
    else:
        server = make_url(server_url).set(drivername="postgresql+psycopg")
        admin = create_engine(server, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text('DROP DATABASE IF EXISTS "portal_bench_audit" WITH (FORCE)'))
            connection.execute(text('CREATE DATABASE "portal_bench_audit"'))
        admin.dispose()
        url = server.set(database="portal_bench_audit").render_as_string(hide_password=False)
    from flask_migrate import upgrade

    from portal.extensions import db

    app = app_for(url)
    with app.app_context():
        upgrade()
        plain_table(db.metadata).create(db.engine)
        db.engine.dispose()
    return url


def plain_table(metadata: MetaData | None = None) -> Table:
    """The events table's columns and indexes, under another name, without its triggers."""
    from portal.audit.models import AuditEvent

    metadata = metadata if metadata is not None else MetaData()
    if PLAIN_TABLE in metadata.tables:
        return metadata.tables[PLAIN_TABLE]
    source = AuditEvent.__table__
    table = Table(
        PLAIN_TABLE,
        metadata,
        *(Column(c.name, c.type, primary_key=c.primary_key, unique=c.unique) for c in source.c),
    )
    for index in source.indexes:
        Index(
            f"{PLAIN_TABLE}_{index.name}",
            *(table.c[c.name] for c in index.columns),
            **index.dialect_kwargs,
        )
    return table


def measure(url: str, dialect: str, args, log) -> tuple[list[Run], dict]:
    """Every (kind, threads) run on one database; then seal everything and verify."""
    from portal.audit import sealing
    from portal.audit.verification import verify
    from portal.extensions import db

    app = app_for(url)
    app.config["AUDIT_CHECKPOINT_PATH"] = str(checkpoint_file(dialect))
    logging.getLogger("portal.worker").setLevel(logging.WARNING)  # its "sealed N" lines
    threads_list = POSTGRES_THREADS if dialect == "postgresql" else SQLITE_THREADS
    table = plain_table()
    runs: list[Run] = []
    for threads in threads_list:
        cpu.wait_for_quiet(args.quiet_wait, 0.5, log)
        for repeat in range(args.audit_repeats):
            pair = [_run(app, table, kind, threads, args.audit_seconds) for kind in KINDS]
            runs += pair
            log(
                f"  {threads} threads, round {repeat + 1}: "
                + ", ".join(
                    f"{run.kind} {run.per_second:,.0f}/s (others {run.other_busy:.0%})"
                    for run in pair
                )
            )
    with app.app_context():
        started = time.perf_counter()
        sealed = sealing.seal_all()
        seal_seconds = time.perf_counter() - started
        sealing.checkpoint()
        started = time.perf_counter()
        result = verify()
        verify_seconds = time.perf_counter() - started
        db.session.remove()
        db.engine.dispose()
    summary = {
        "sealed_at_end": sealed.sealed,
        "seal_seconds": seal_seconds,
        "verified": result.verified,
        "verify_seconds": verify_seconds,
        "verify_ok": result.ok and result.unsealed == 0,
        "verify_problems": result.problems[:3],
    }
    log(
        f"  verify: {result.verified:,} events in {verify_seconds:.1f} s, "
        + ("intact" if summary["verify_ok"] else f"PROBLEMS: {result.problems[:3]}")
    )
    return runs, summary


def _run(app, table: Table, kind: str, threads: int, seconds: float) -> Run:
    """``threads`` writers for ``seconds`` (after a warm-up); the sealer beside audited ones."""
    from portal import worker
    from portal.actors import Actor
    from portal.audit import jobs as audit_jobs
    from portal.audit import services as audit
    from portal.extensions import db
    from portal.transaction import use_case

    actor = Actor(id=7, username="frontdesk", roles=("front_desk",), source="192.0.2.44")
    start = threading.Barrier(threads + 1)
    warm_until: list[float] = []
    stop_at: list[float] = []
    counts = [0] * threads
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors: list[BaseException] = []

    def write(number: int) -> None:
        rng = random.Random(number)
        try:
            with app.app_context():
                start.wait()
                while True:
                    patient = rng.randrange(1, 1_000_000)
                    began = time.perf_counter()
                    if began >= stop_at[0]:
                        break
                    with use_case():
                        if kind == "audit append":
                            audit.record(
                                actor,
                                "chart.view",
                                patient_id=patient,
                                object_type="patients",
                                object_id=patient,
                                category="chart",
                                detail="tab=summary",
                            )
                        else:
                            db.session.execute(insert(table), _plain_row(actor, patient))
                    ended = time.perf_counter()
                    if began >= warm_until[0]:
                        counts[number] += 1
                        latencies[number].append((ended - began) * 1000)
                db.session.remove()
        except BaseException as error:  # reported after the run
            errors.append(error)

    stop_sealer = threading.Event()
    sealer = None
    if kind == "audit append":
        jobs = [audit_jobs.periodic_jobs(app.config)[0]]  # sealing; no checkpoints
        sealer = threading.Thread(target=worker.run, args=(app, jobs, stop_sealer))
        sealer.start()
    writers = [threading.Thread(target=write, args=(n,)) for n in range(threads)]
    for thread in writers:
        thread.start()
    now = time.perf_counter()
    warm_until.append(now + WARMUP_SECONDS)
    stop_at.append(now + WARMUP_SECONDS + seconds)
    machine_before = cpu.machine_jiffies()
    own_before = cpu.own_cpu_seconds()
    start.wait()
    for thread in writers:
        thread.join()
    machine_after = cpu.machine_jiffies()
    stop_sealer.set()
    if sealer is not None:
        sealer.join()
    if errors:
        raise errors[0]
    other = cpu.other_fraction(machine_before, machine_after, cpu.own_cpu_seconds() - own_before)
    return Run(
        kind,
        threads,
        sum(counts),
        seconds,
        [value for per_thread in latencies for value in per_thread],
        other,
    )


def _plain_row(actor, patient: int) -> dict:
    """An equivalent row: the same fields and sizes, fixed stand-ins for nonce and MAC."""
    from portal.timeutil import utcnow

    return {
        "occurred_at": utcnow(),
        "user_id": actor.id,
        "username": actor.username,
        "user_roles": ",".join(actor.roles),
        "action": "chart.view",
        "patient_id": patient,
        "object_type": "patients",
        "object_id": str(patient),
        "category": "chart",
        "source": actor.source,
        "outcome": "success",
        "detail": "tab=summary",
        "scheme": "hmac",
        "nonce": "0" * 32,
        "event_mac": "f" * 64,
    }


def combined(runs: list[Run]) -> list[Run]:
    """Each (kind, threads) as one run: all its slices together, in the order measured."""
    keys = list(dict.fromkeys((run.kind, run.threads) for run in runs))
    totals = []
    for kind, threads in keys:
        group = [run for run in runs if (run.kind, run.threads) == (kind, threads)]
        totals.append(
            Run(
                kind,
                threads,
                sum(run.transactions for run in group),
                sum(run.seconds for run in group),
                [value for run in group for value in run.latencies_ms],
                sum(run.other_busy or 0.0 for run in group) / len(group),
            )
        )
    return totals


def results(label: str, runs: list[Run], stamp: str) -> list[report.Result]:
    return [
        report.Result(
            benchmark=f"{run.kind}, {run.threads} threads",
            database=label,
            rows=0,
            requests=run.transactions,
            p50_ms=round(report.percentile(run.latencies_ms, 50), 2),
            p95_ms=round(report.percentile(run.latencies_ms, 95), 2),
            p99_ms=round(report.percentile(run.latencies_ms, 99), 2),
            floor_p95_ms=None,
            date=stamp,
            other_busy=run.other_busy,
            throughput_per_s=round(run.per_second, 1),
        )
        for run in combined(runs)
    ]


def ratio(runs: list[Run], threads: int) -> float | None:
    chosen = {(r.kind, r.threads): r for r in combined(runs)}
    audited, plain = chosen.get(("audit append", threads)), chosen.get(("plain insert", threads))
    return audited.per_second / plain.per_second if audited and plain else None


def markdown(stamp: str, info: dict, args, sections: list[tuple[str, str, list[Run], dict]]) -> str:
    """The RESULTS.md section of an audit run."""
    load = ", ".join(f"{value:.2f}" for value in info["load"])
    lines = [
        f"## {stamp}: audit trail throughput",
        "",
        f"- Machine: {info['cpu']}, {info['cores']} cores; Python {info['python']}, "
        f"SQLite {info['sqlite']}; code {report.git_revision()}; load average at start: {load}",
        f"- Each transaction is one use case (`with use_case():`) writing one row: an audit "
        f"event through `audit.record` (a person's actor, realistic fields), or the same row "
        f"into `{PLAIN_TABLE}` (same columns and indexes, no trigger) by a Core insert. Each "
        f"thread has its own app context and connection. For each thread count, "
        f"{args.audit_repeats} rounds of a plain slice then an audited slice, "
        f"{args.audit_seconds:g} s each after {WARMUP_SECONDS:g} s of warm-up (the machine is "
        "shared: alternating slices see the same background load); each row is all the slices "
        "of its kind together",
        "- **The sealer runs during every audited run**, in a thread of the same process (the "
        "worker's job: seal everything pending, every second), so its CPU and its UPDATEs are "
        "counted against the audited rate; in production it is a process of its own",
        f"- Goal: at 16 threads (PostgreSQL), audited ≥ {GOAL:.0%} of the plain-insert rate",
        "",
    ]
    for label, version, runs, summary in sections:
        lines += [f"### {label} {version}", ""]
        lines += [
            "| benchmark | transactions | per second | p50 ms | p95 ms | p99 ms "
            "| other CPU load | audited / plain |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for run in combined(runs):
            share = ratio(runs, run.threads) if run.kind == "audit append" else None
            verdict = "—" if share is None else f"{share:.0%}"
            if share is not None and label == "PostgreSQL" and run.threads == 16:
                verdict += " (pass)" if share >= GOAL else " (**FAIL**)"
            lines.append(
                f"| {run.kind}, {run.threads} threads | {run.transactions:,} "
                f"| {run.per_second:,.0f} | {report.percentile(run.latencies_ms, 50):.2f} "
                f"| {report.percentile(run.latencies_ms, 95):.2f} "
                f"| {report.percentile(run.latencies_ms, 99):.2f} "
                f"| {run.other_busy:.0%} | {verdict} |"
            )
        slices = "; ".join(
            f"{threads} threads: "
            + ", ".join(
                f"{run.per_second:,.0f}/{audited.per_second:,.0f}"
                for run, audited in zip(
                    [r for r in runs if (r.kind, r.threads) == (KINDS[0], threads)],
                    [r for r in runs if (r.kind, r.threads) == (KINDS[1], threads)],
                    strict=True,
                )
            )
            for threads in dict.fromkeys(run.threads for run in runs)
        )
        lines += [
            "",
            f"- Each round, plain/audited per second: {slices}",
            f"- At the end: {summary['sealed_at_end']:,} events left to seal, sealed in "
            f"{summary['seal_seconds']:.2f} s; `verify` checked {summary['verified']:,} events "
            f"in {summary['verify_seconds']:.1f} s: "
            + ("intact" if summary["verify_ok"] else f"PROBLEMS {summary['verify_problems']}"),
            "",
        ]
    return "\n".join(lines) + "\n"


def main(args, log, stamp: str, info: dict, postgres_version: str | None) -> int:
    """Measure SQLite (unless --no-sqlite) and PostgreSQL (unless absent); report."""
    from bench.databases import ROOT

    sections = []
    all_results = []
    engines = []
    if not args.no_sqlite:
        engines.append(("sqlite", "SQLite", info["sqlite"]))
    if postgres_version:
        engines.append(("postgresql", "PostgreSQL", postgres_version))
    failed = False
    for dialect, label, version in engines:
        log(f"\n== {label}: audit trail throughput")
        url = database_url(dialect, args.postgres)
        runs, summary = measure(url, dialect, args, log)
        sections.append((label, version, runs, summary))
        all_results += results(label, runs, stamp)
        failed = failed or not summary["verify_ok"]
        if dialect == "postgresql":
            share = ratio(runs, 16)
            log(f"  audited / plain at 16 threads: {share:.0%} (goal ≥ {GOAL:.0%})")
            failed = failed or share is None or share < GOAL
    text_ = markdown(stamp, info, args, sections)
    if args.quick:
        md_path, json_path = OUT / "quick-RESULTS.md", OUT / "quick-results.json"
    else:
        md_path, json_path = ROOT / "bench" / "RESULTS.md", ROOT / "bench" / "results.json"
    report.append_markdown(md_path, text_)
    report.write_json(json_path, all_results, keep=True)
    log("\n" + text_)
    log(f"Written: {md_path.relative_to(ROOT)}, {json_path.relative_to(ROOT)}")
    return 1 if failed else 0
