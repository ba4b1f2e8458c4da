"""``python -m bench``: seed (or reuse) the databases, serve each with gunicorn, measure, report."""

from __future__ import annotations

import argparse
import os
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime

import requests

from bench import (
    audit,
    chart,
    concurrency,
    cpu,
    databases,
    drugs,
    floors,
    integrations,
    report,
    rx_safety,
    schedule,
    workload,
)
from bench.databases import BENCH_PASSWORD, BENCH_USERNAME, OUT, ROOT
from bench.server import Server

WARMUP = 20
QUIET_THRESHOLD = 0.5  # machine CPU busy fraction under which a benchmark may start


def log(message: str) -> None:
    print(message, flush=True)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Seed 10,000 and 1,000,000 patients, serve with gunicorn, measure search, "
        "the patient page and sign-in; append to bench/RESULTS.md, write bench/results.json.",
    )
    parser.add_argument(
        "--rows",
        default=None,
        help="comma-separated database sizes (default 10000,1000000; --quick: 1000,10000)",
    )
    parser.add_argument("--requests", type=int, default=None, help="timed requests per benchmark")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a small smoke run; results go to bench/out/ instead of bench/RESULTS.md",
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get("PORTAL_BENCH_POSTGRES_URL", databases.DEFAULT_POSTGRES_SERVER),
        help="PostgreSQL server URL; the bench makes its own databases portal_bench* there "
        "(default: $PORTAL_BENCH_POSTGRES_URL or %(default)s)",
    )
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    parser.add_argument("--port", type=int, default=5055, help="loopback port for gunicorn")
    parser.add_argument("--threads", type=int, default=4, help="gthread threads of the worker")
    parser.add_argument("--sign-ins", type=int, default=None, help="sign-ins to time (50)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent sign-in clients")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=None,
        help="before each benchmark, wait up to this many seconds for the machine's CPU to be "
        "under 50%% busy (default 45; --quick: 0)",
    )
    parser.add_argument("--reseed", action="store_true", help="seed again even when cached")
    parser.add_argument(
        "--seed-only", action="store_true", help="seed (or check) the databases, measure nothing"
    )
    parser.add_argument("--explain", action="store_true", help="print every query plan")
    parser.add_argument(
        "--schedule",
        action="store_true",
        help="measure scheduling (day, week, find, booking) instead of the searches",
    )
    parser.add_argument(
        "--appointments",
        type=int,
        default=2_000_000,
        help="appointments to seed for --schedule (default %(default)s, over three years)",
    )
    parser.add_argument(
        "--bookings", type=int, default=None, help="bookings per client for --schedule (25)"
    )
    parser.add_argument(
        "--chart",
        action="store_true",
        help="measure charting (chart summary, encounter page, vitals trend chart, "
        "draft autosave) on one long chart among --rows patients (default 1000000)",
    )
    parser.add_argument(
        "--concurrency",
        action="store_true",
        help="many users at once: home page, patient page, day view and autosave under "
        "--clients-list concurrent clients, gunicorn 2 workers x 4 threads, --rows patients "
        "(default 1000000)",
    )
    parser.add_argument(
        "--clients-list", default="8,32", help="client counts for --concurrency (%(default)s)"
    )
    parser.add_argument(
        "--seconds", type=float, default=None, help="seconds per --concurrency scenario (20)"
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(concurrency.SCENARIOS),
        help="--concurrency scenarios to run (%(default)s)",
    )
    parser.add_argument(
        "--audit",
        action="store_true",
        help="measure the audit trail instead: audited events per second against plain "
        "inserts of the same row, at 1, 4 and 16 threads (PostgreSQL) and 1 and 4 (SQLite), "
        "with the sealer running; verify at the end",
    )
    parser.add_argument(
        "--audit-seconds", type=float, default=None, help="seconds per --audit slice (4)"
    )
    parser.add_argument(
        "--audit-repeats", type=int, default=None, help="rounds of --audit slices (5)"
    )
    parser.add_argument(
        "--drugs",
        action="store_true",
        help="measure drug search on the local catalog, in process (bench/drugs.py)",
    )
    parser.add_argument(
        "--integrations",
        action="store_true",
        help="measure the integrations instead: outbox delivery throughput with 1, 2 and 4 "
        "worker processes (no-op connector and the DoseSpot sandbox), commit-to-delivery "
        "latency of the real worker loop, and webhook intake under gunicorn at "
        "--webhook-clients clients (--seconds each); PostgreSQL (--no-postgres: SQLite, one "
        "worker); verify every message delivered and every webhook stored exactly once",
    )
    parser.add_argument(
        "--outbox-messages",
        type=int,
        default=None,
        help="messages per --integrations no-op run (2000; --quick: 400); sandbox runs a quarter",
    )
    parser.add_argument(
        "--latency-messages",
        type=int,
        default=None,
        help="messages for the --integrations latency run (200; --quick: 30)",
    )
    parser.add_argument(
        "--integration-repeats",
        type=int,
        default=None,
        help="rounds over the worker counts for --integrations (3; --quick: 1)",
    )
    parser.add_argument(
        "--webhook-clients",
        default="4,16",
        help="client counts for the --integrations webhook intake (%(default)s)",
    )
    parser.add_argument(
        "--rx-safety",
        action="store_true",
        help="measure the prescription safety checks instead: the checks in process and the "
        "patient context they read (30 medications, 10 allergies, 200 past prescriptions)",
    )
    args = parser.parse_args(argv)
    args.outbox_messages = args.outbox_messages or (400 if args.quick else 2000)
    args.latency_messages = args.latency_messages or (30 if args.quick else 200)
    args.integration_repeats = args.integration_repeats or (1 if args.quick else 3)
    args.webhook_clients = [int(value) for value in args.webhook_clients.split(",")]
    args.audit_seconds = args.audit_seconds or (1 if args.quick else 4)
    args.audit_repeats = args.audit_repeats or (2 if args.quick else 5)
    default_rows = "1000,10000" if args.quick else "10000,1000000"
    if (args.chart or args.concurrency) and not args.quick:
        default_rows = "1000000"
    args.clients_list = [int(value) for value in args.clients_list.split(",")]
    args.scenarios = [name.strip() for name in args.scenarios.split(",")]
    unknown = set(args.scenarios) - set(concurrency.SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    args.seconds = args.seconds or (5.0 if args.quick else 20.0)
    args.rows = sorted(
        {int(value.replace("_", "")) for value in (args.rows or default_rows).split(",")}
    )
    args.requests = args.requests or (200 if args.quick else 1000)
    args.sign_ins = args.sign_ins or (8 if args.quick else 50)
    args.bookings = args.bookings or 25
    if args.quiet_wait is None:
        args.quiet_wait = 0 if args.quick else 45
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    info = report.machine()
    if args.drugs:
        log(f"Drug search benchmark {stamp}: {info['cpu']}, {info['cores']} cores")
        code = drugs.run(1 if args.quick else 5, args.quick, log)
        log(f"Total time {time.perf_counter() - started:.0f} s.")
        return code
    if args.integrations:
        log(
            f"Integrations benchmark {stamp}: {info['cpu']}, {info['cores']} cores; "
            f"{args.integration_repeats} rounds, {args.outbox_messages} messages a run"
        )
        version = None if args.no_postgres else databases.postgres_reachable(args.postgres)
        if not args.no_postgres and not version:
            log(f"PostgreSQL at {args.postgres} does not answer: measuring SQLite only.")
        code = integrations.main(args, log, stamp, info, version)
        log(f"Total time {time.perf_counter() - started:.0f} s.")
        return code
    if args.rx_safety:
        log(f"Prescription safety benchmark {stamp}: {info['cpu']}, {info['cores']} cores")
        version = None if args.no_postgres else databases.postgres_reachable(args.postgres)
        code = rx_safety.main(args, log, stamp, info, version)
        log(f"Total time {time.perf_counter() - started:.0f} s.")
        return code
    if args.audit:
        log(
            f"Audit benchmark {stamp}: {info['cpu']}, {info['cores']} cores; "
            f"{args.audit_repeats} rounds of {args.audit_seconds:g} s slices"
        )
        version = None if args.no_postgres else databases.postgres_reachable(args.postgres)
        if not args.no_postgres and not version:
            log(f"PostgreSQL at {args.postgres} does not answer: measuring SQLite only.")
        code = audit.main(args, log, stamp, info, version)
        log(f"Total time {time.perf_counter() - started:.0f} s.")
        return code
    log(
        f"Benchmark {stamp}: {info['cpu']}, {info['cores']} cores; sizes "
        f"{', '.join(f'{rows:,}' for rows in args.rows)}; {args.requests} requests each"
    )
    engines: list[tuple[str, str | None]] = []
    if not args.no_sqlite:
        engines.append(("sqlite", None))
    if not args.no_postgres:
        version = databases.postgres_reachable(args.postgres)
        if version:
            engines.append(("postgresql", version))
        else:
            log(f"PostgreSQL at {args.postgres} does not answer: measuring SQLite only.")
    reports = []
    for dialect, version in engines:
        db_report = report.DatabaseReport(
            "SQLite" if dialect == "sqlite" else "PostgreSQL",
            info["sqlite"] if dialect == "sqlite" else version,
        )
        reports.append(db_report)
        targets = []
        for rows in args.rows:
            # The scheduling run keeps its own databases: the search run's stay untouched.
            kind = "sched" if args.schedule else "chart" if args.chart else None
            kind = "conc" if args.concurrency else kind
            if dialect == "sqlite":
                target = databases.sqlite_target(rows, f"portal-{kind}" if kind else "portal")
            else:
                prefix = f"portal_bench_{kind}" if kind else "portal_bench"
                target = databases.postgres_target(args.postgres, rows, prefix)
            log(f"\n== {db_report.label}, {rows:,} patients")
            databases.ensure_seeded(target, args.postgres, reseed=args.reseed, log=log)
            if target.seed_seconds is not None:
                db_report.seeding.append(
                    f"Seeded {rows:,} patients in {target.seed_seconds:.1f} s "
                    f"(migrations + seed_clinic_and_users + seed_patients)"
                )
            else:
                db_report.seeding.append(
                    f"{rows:,} patients: database reused (seeded {target.seeded_at} "
                    f"in {target.cached_seed_seconds} s)"
                )
            targets.append(target)
        if args.schedule:
            for target in targets:
                meta = schedule.ensure_schedule(target, args.appointments, log=log)
                db_report.seeding.append(
                    f"{target.rows:,} patients: {args.appointments:,} appointments, "
                    f"{schedule.PROVIDERS} providers, "
                    + ("reused" if meta["reused"] else "seeded")
                    + f" ({meta['seed_seconds']} s)"
                )
                if not args.seed_only:
                    measure_schedule(target, db_report, args, stamp)
        elif args.chart:
            for target in targets:
                meta = chart.ensure_chart(target, log=log)
                db_report.seeding.append(
                    f"{target.rows:,} patients: one chart of {chart.ENCOUNTERS:,} encounters "
                    f"(signed notes), {chart.VITALS:,} vital sets, {chart.PROBLEMS} problems, "
                    f"{chart.MEDICATIONS} medications, "
                    + ("reused" if meta["reused"] else "seeded")
                    + f" ({meta['seed_seconds']} s)"
                )
                if not args.seed_only:
                    measure_chart(target, db_report, args, stamp, meta["patient_id"])
        elif args.concurrency:
            for target in targets:
                fixture = concurrency.ensure_fixture(target, max(args.clients_list), log)
                if not args.seed_only:
                    measure_concurrency(target, fixture, db_report, args, stamp)
        elif not args.seed_only:
            measure(targets, db_report, args, stamp)
    if args.seed_only:
        for db_report in reports:
            log(f"{db_report.label}: " + "; ".join(db_report.seeding))
        return 0
    all_results = [result for db_report in reports for result in db_report.results]
    settings = (
        "gunicorn as deployed (2 workers x 4 threads) on 127.0.0.1:"
        f"{args.port}; load from {concurrency.LOAD_PROCESSES} generator processes on the same "
        "machine; signed in as a prescriber (sessions made in the database)"
        if args.concurrency
        else f"gunicorn per database size: 1 worker, gthread, {args.threads} threads, on "
        f"127.0.0.1:{args.port}+; {args.requests} timed requests per benchmark and size after "
        f"{WARMUP} untimed, sequential on one keep-alive session (requests) per size, "
        f"alternating between the sizes; signed in as "
        + ("a prescriber (password and TOTP)" if args.chart else "a front-desk user without MFA")
        + "; before "
        f"each benchmark the run waits up to {args.quiet_wait:.0f} s for the CPU to be under "
        f'{QUIET_THRESHOLD:.0%} busy. "Other CPU load" is the machine\'s CPU used by other '
        f"processes (PostgreSQL included) during the benchmark"
    )
    text = report.markdown(stamp, info, settings, reports, [])
    if args.quick:
        md_path, json_path = OUT / "quick-RESULTS.md", OUT / "quick-results.json"
    else:
        md_path, json_path = ROOT / "bench" / "RESULTS.md", ROOT / "bench" / "results.json"
    report.append_markdown(md_path, text)
    report.write_json(json_path, all_results, keep=True)
    log("\n" + text)
    log(f"Written: {md_path.relative_to(ROOT)}, {json_path.relative_to(ROOT)}")
    failures = report.failing(all_results)
    log(f"Total time {time.perf_counter() - started:.0f} s.")
    if failures:
        log(f"{len(failures)} row(s) failed their budget or gave wrong answers.")
        return 1
    return 0


def measure_concurrency(target, fixture, db_report, args, stamp: str) -> None:
    """The concurrency scenarios against gunicorn as deployed (2 workers x 4 threads)."""
    with Server(target.url, args.port, concurrency.THREADS, workers=concurrency.WORKERS) as server:
        log(f"  gunicorn at {server.base}: {concurrency.WORKERS} workers x {concurrency.THREADS}")
        cpu.wait_for_quiet(args.quiet_wait, QUIET_THRESHOLD, log)
        concurrency.measure(
            target,
            server,
            fixture,
            db_report,
            clients_list=args.clients_list,
            scenarios=args.scenarios,
            seconds=args.seconds,
            stamp=stamp,
            log=log,
        )
    db_report.notes.append(
        f"Concurrency: closed-loop clients, each its own signed-in prescriber session and "
        f"draft note, {args.seconds:.0f} s per scenario after {concurrency.WARMUP_SECONDS:.0f} "
        f"s of warm-up; mixed = {', '.join(f'{k} {v}%' for k, v in concurrency.MIX.items())}; "
        f"worker CPU per request is both workers' CPU over every request of the scenario"
    )


@dataclass
class SizeRun:
    """One database size being measured: its server, signed-in session and inputs."""

    target: databases.Target
    server: Server
    session: requests.Session
    token: str
    benchmarks: list[workload.Benchmark]


def measure(targets, db_report: report.DatabaseReport, args, stamp: str) -> None:
    """Every benchmark on every size of one database engine.

    Each size has its own gunicorn, all running at once, and the requests of a benchmark
    alternate between the sizes: whatever else the machine is doing then slows every size
    alike, so the "1M vs 10k" comparison stays fair on a busy machine.
    """
    count = args.requests
    with ExitStack() as stack:
        runs = []
        for offset, target in enumerate(targets):
            server = stack.enter_context(Server(target.url, args.port + offset, args.threads))
            log(f"  {target.rows:,} patients: gunicorn at {server.base} (pid {server.process.pid})")
            session, _ = workload.sign_in(server.base, BENCH_USERNAME, BENCH_PASSWORD)
            stack.callback(session.close)
            token = workload.page_csrf_token(session, server.base)
            patients = workload.sample_patients(target.url, count)
            runs.append(
                SizeRun(target, server, session, token, workload.build_benchmarks(patients))
            )
        for index in range(len(runs[0].benchmarks)):
            cpu.wait_for_quiet(args.quiet_wait, QUIET_THRESHOLD, log)
            measure_benchmark(runs, index, db_report, args, stamp)
        for run in runs:
            cpu.wait_for_quiet(args.quiet_wait, QUIET_THRESHOLD, log)
            measure_sign_in(run, db_report, args, stamp)
    for run in runs:
        for bench in run.benchmarks:
            result = next(
                r
                for r in db_report.results
                if r.benchmark == bench.name and r.rows == run.target.rows
            )
            verdict = report.budget(result, db_report.results)[1]
            if verdict not in ("pass", "—") and not result.failures:
                db_report.plans[f"{bench.name}, {run.target.rows:,} rows"] = floors.explain(
                    run.target.url, run.target.dialect, bench
                )


def measure_benchmark(runs, index: int, db_report, args, stamp: str) -> None:
    """One benchmark, its requests alternating between the sizes; then its floors."""
    count = args.requests
    timings = {run.target.rows: workload.Timings() for run in runs}
    workers = {run.target.rows: run.server.worker_pids()[0] for run in runs}
    worker_before = {rows: cpu.process_cpu_seconds(pid) for rows, pid in workers.items()}
    machine_before = cpu.machine_jiffies()
    own_before = cpu.own_cpu_seconds()
    for step in range(WARMUP + count):
        # Alternate which size goes first, so neither always follows the other.
        for run in runs if step % 2 else reversed(runs):
            bench = run.benchmarks[index]
            case = bench.cases[step % len(bench.cases)]
            elapsed, problem = workload.timed_request(
                run.session, run.server.base, run.token, bench, case
            )
            if step >= WARMUP:
                timings[run.target.rows].add(elapsed, problem)
    machine_after = cpu.machine_jiffies()
    ours = cpu.own_cpu_seconds() - own_before
    worker_ms = {}
    for rows, pid in workers.items():
        after = cpu.process_cpu_seconds(pid)
        if after is not None and worker_before[rows] is not None:
            ours += after - worker_before[rows]
            worker_ms[rows] = (after - worker_before[rows]) * 1000 / (count + WARMUP)
    other_busy = cpu.other_fraction(machine_before, machine_after, ours)
    for run in runs:
        bench = run.benchmarks[index]
        timing = timings[run.target.rows]
        try:
            floor = floors.run_floor(run.target.url, bench, count, WARMUP)
        except floors.Misclassified as error:
            floor = None
            timing.failures += 1
            timing.first_failure = timing.first_failure or str(error)
        latencies = timing.latencies_ms
        result = report.Result(
            benchmark=bench.name,
            database=db_report.label,
            rows=run.target.rows,
            requests=len(latencies),
            p50_ms=round(report.percentile(latencies, 50), 2),
            p95_ms=round(report.percentile(latencies, 95), 2),
            p99_ms=round(report.percentile(latencies, 99), 2),
            floor_p95_ms=round(report.percentile(floor, 95), 3) if floor else None,
            date=stamp,
            is_search=bench.is_search,
            failures=timing.failures,
            first_failure=timing.first_failure,
            worker_cpu_ms=round(worker_ms[run.target.rows], 2)
            if run.target.rows in worker_ms
            else None,
            other_busy=other_busy,
        )
        db_report.results.append(result)
        checked = (
            "all answers right"
            if not timing.failures
            else f"{timing.failures} WRONG ({timing.first_failure})"
        )
        log(
            f"  {bench.name:<28} {run.target.rows:>9,}  p50 {result.p50_ms:6.1f}  "
            f"p95 {result.p95_ms:6.1f}  p99 {result.p99_ms:6.1f}  "
            f"floor p95 {result.floor_p95_ms or 0:5.2f} ms  "
            f"worker CPU {result.worker_cpu_ms or 0:.1f} ms/req, others {other_busy:.0%}"
            f"  [{checked}]"
        )
        if args.explain:
            log(floors.explain(run.target.url, run.target.dialect, bench))


def measure_sign_in(run: SizeRun, db_report, args, stamp: str) -> None:
    """Sign-in throughput against one size's server, and its worker's peak memory."""
    log(f"  {run.target.rows:,}: sign-in, {args.sign_ins} sequential, then {args.clients} clients")
    throughput = workload.sign_in_throughput(
        run.server.base, BENCH_USERNAME, BENCH_PASSWORD, args.sign_ins, args.clients
    )
    peak_kib = run.server.peak_memory_kib()
    latencies = throughput.sequential_latencies_ms
    db_report.results.append(
        report.Result(
            benchmark="sign-in (password, argon2id)",
            database=db_report.label,
            rows=run.target.rows,
            requests=len(latencies),
            p50_ms=round(report.percentile(latencies, 50), 2),
            p95_ms=round(report.percentile(latencies, 95), 2),
            p99_ms=round(report.percentile(latencies, 99), 2),
            floor_p95_ms=None,
            date=stamp,
        )
    )
    peak = f"{peak_kib / 1024:.0f} MiB" if peak_kib else "unknown"
    note = (
        f"{run.target.rows:,} patients: sign-in throughput "
        f"{throughput.sequential_per_second:.1f}/s sequential ({args.sign_ins} sign-ins), "
        f"{throughput.concurrent_per_second:.1f}/s with {throughput.concurrent_clients} "
        f"concurrent clients ({throughput.concurrent_count} sign-ins); peak memory of the "
        f"gunicorn worker (VmHWM) after the run: {peak}"
    )
    db_report.notes.append(note)
    log("  " + note)


def measure_schedule(target, db_report: report.DatabaseReport, args, stamp: str) -> None:
    """Day view, week view and find-next-available on one size; then booking throughput."""
    count = args.requests
    setup = schedule.load_setup(target.url, count)
    with Server(target.url, args.port, args.threads) as server:
        log(f"  {target.rows:,} patients: gunicorn at {server.base} (pid {server.process.pid})")
        session, _ = workload.sign_in(server.base, BENCH_USERNAME, BENCH_PASSWORD)
        token = workload.page_csrf_token(session, server.base)
        schedule.choose_all_providers(session, server.base, token, setup)
        worker = server.worker_pids()[0]
        for kind, name in schedule.BENCHMARKS:
            cpu.wait_for_quiet(args.quiet_wait, QUIET_THRESHOLD, log)
            timing = workload.Timings()
            worker_before = cpu.process_cpu_seconds(worker)
            machine_before = cpu.machine_jiffies()
            own_before = cpu.own_cpu_seconds()
            for step in range(WARMUP + count):
                elapsed, problem = schedule.timed_get(
                    session, server.base, schedule.request_for(kind, setup, step)
                )
                if step >= WARMUP:
                    timing.add(elapsed, problem)
            machine_after = cpu.machine_jiffies()
            ours = cpu.own_cpu_seconds() - own_before
            worker_after = cpu.process_cpu_seconds(worker)
            worker_ms = None
            if worker_before is not None and worker_after is not None:
                ours += worker_after - worker_before
                worker_ms = round((worker_after - worker_before) * 1000 / (count + WARMUP), 2)
            other_busy = cpu.other_fraction(machine_before, machine_after, ours)
            floor = schedule.floor(target.url, kind, setup, count, WARMUP)
            latencies = timing.latencies_ms
            result = report.Result(
                benchmark=name,
                database=db_report.label,
                rows=target.rows,
                requests=len(latencies),
                p50_ms=round(report.percentile(latencies, 50), 2),
                p95_ms=round(report.percentile(latencies, 95), 2),
                p99_ms=round(report.percentile(latencies, 99), 2),
                floor_p95_ms=round(report.percentile(floor, 95), 3),
                date=stamp,
                failures=timing.failures,
                first_failure=timing.first_failure,
                appointments=args.appointments,
                worker_cpu_ms=worker_ms,
                other_busy=other_busy,
            )
            db_report.results.append(result)
            log(
                f"  {name:<52} p50 {result.p50_ms:6.1f}  p95 {result.p95_ms:6.1f}  "
                f"p99 {result.p99_ms:6.1f}  floor p95 {result.floor_p95_ms:6.2f} ms  "
                f"worker CPU {worker_ms or 0:.1f} ms/req, others {other_busy:.0%}  "
                f"[{timing.failures} wrong: {timing.first_failure}]"
            )
        session.close()
        if target.dialect == "postgresql":
            measure_booking(target, server, setup, db_report, args, stamp)


def measure_booking(target, server, setup, db_report, args, stamp: str) -> None:
    """8 clients booking at once: at distinct free slots, then all at the same slots."""
    clients = schedule.BOOKING_CLIENTS
    per_client = args.bookings
    sessions, tokens = [], []
    for _ in range(clients):
        session, _ = workload.sign_in(server.base, BENCH_USERNAME, BENCH_PASSWORD)
        sessions.append(session)
        tokens.append(workload.page_csrf_token(session, server.base))
    distinct = schedule.free_slots(setup, clients * per_client * 2, 0)
    plans = {
        "distinct": [distinct[n * per_client : (n + 1) * per_client] for n in range(clients)],
        "same": [distinct[clients * per_client : clients * per_client + per_client]] * clients,
    }
    for label, plan in plans.items():
        cpu.wait_for_quiet(args.quiet_wait, QUIET_THRESHOLD, log)
        outcome = schedule.booking_run(sessions, server.base, tokens, setup, plan, target.url)
        latencies = outcome.latencies_ms
        rate = outcome.conflicts / max(1, outcome.attempts)
        wrong = outcome.errors + outcome.double_booked
        if label == "same" and outcome.booked != per_client:
            wrong += 1
        name = f"booking, {clients} clients, " + (
            "distinct slots" if label == "distinct" else "same slots"
        )
        db_report.results.append(
            report.Result(
                benchmark=name,
                database=db_report.label,
                rows=target.rows,
                requests=len(latencies),
                p50_ms=round(report.percentile(latencies, 50), 2),
                p95_ms=round(report.percentile(latencies, 95), 2),
                p99_ms=round(report.percentile(latencies, 99), 2),
                floor_p95_ms=None,
                date=stamp,
                failures=wrong,
                first_failure=outcome.first_error
                or (f"{outcome.double_booked} overlapping" if outcome.double_booked else None),
                appointments=args.appointments,
                bookings_per_second=round(outcome.per_second, 1),
                conflict_rate=round(outcome.conflicts / max(1, outcome.attempts), 3),
            )
        )
        note = (
            f"{target.rows:,} patients, {args.appointments:,} appointments: {name}: "
            f"{outcome.attempts} attempts, {outcome.booked} booked, {outcome.conflicts} "
            f"refused as taken (409, conflict rate {rate:.0%}),"
            f" {outcome.errors} other errors, {outcome.per_second:.1f} bookings/s; "
            f"overlapping active appointments afterwards: {outcome.double_booked}"
        )
        db_report.notes.append(note)
        log("  " + note)
    for session in sessions:
        session.close()


def measure_chart(target, db_report: report.DatabaseReport, args, stamp: str, patient_id) -> None:
    """Chart summary, encounter page, trend chart and autosave on one size, with floors.

    A benchmark whose page is not in this build (charting lands in parts) is reported as
    skipped rather than failed.
    """
    from bench.databases import app_for

    count = args.requests
    setup = chart.load_setup(target.url, patient_id)
    app = app_for(target.url)
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    with Server(target.url, args.port, args.threads) as server:
        log(f"  {target.rows:,} patients: gunicorn at {server.base} (pid {server.process.pid})")
        session, token = chart.sign_in_clinician(server.base)
        for kind, name, endpoint in chart.BENCHMARKS:
            if endpoint not in endpoints:
                note = f"{name}: not measured, {endpoint} is not in this build"
                db_report.notes.append(note)
                log("  " + note)
                continue
            cpu.wait_for_quiet(args.quiet_wait, QUIET_THRESHOLD, log)
            requester = chart.Requester(kind, setup, session, server.base, token)
            timing = workload.Timings()
            worker = server.worker_pids()[0]
            worker_before = cpu.process_cpu_seconds(worker)
            for step in range(WARMUP + count):
                elapsed, problem = requester(step)
                if step >= WARMUP:
                    timing.add(elapsed, problem)
            worker_after = cpu.process_cpu_seconds(worker)
            floor = chart.floor(target.url, kind, setup, count, WARMUP)
            latencies = timing.latencies_ms
            result = report.Result(
                benchmark=name,
                database=db_report.label,
                rows=target.rows,
                requests=len(latencies),
                p50_ms=round(report.percentile(latencies, 50), 2),
                p95_ms=round(report.percentile(latencies, 95), 2),
                p99_ms=round(report.percentile(latencies, 99), 2),
                floor_p95_ms=round(report.percentile(floor, 95), 3),
                date=stamp,
                failures=timing.failures,
                first_failure=timing.first_failure,
                worker_cpu_ms=round((worker_after - worker_before) * 1000 / (WARMUP + count), 2)
                if worker_before is not None and worker_after is not None
                else None,
            )
            db_report.results.append(result)
            log(
                f"  {name:<52} p50 {result.p50_ms:6.1f}  p95 {result.p95_ms:6.1f}  "
                f"p99 {result.p99_ms:6.1f}  floor p95 {result.floor_p95_ms:6.2f} ms  "
                f"[{timing.failures} wrong: {timing.first_failure}]"
            )
        session.close()
    plan = chart.explain(target.url, target.dialect, patient_id)
    db_report.plans[f"chart summary, {target.rows:,} rows"] = plan
    if args.explain:
        log(plan)
