"""``python -m bench``: seed (or reuse) the databases, serve each with gunicorn, measure, report."""

from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, datetime

from bench import cpu, databases, floors, report, workload
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
    args = parser.parse_args(argv)
    default_rows = "1000,10000" if args.quick else "10000,1000000"
    args.rows = sorted(
        {int(value.replace("_", "")) for value in (args.rows or default_rows).split(",")}
    )
    args.requests = args.requests or (200 if args.quick else 1000)
    args.sign_ins = args.sign_ins or (8 if args.quick else 50)
    if args.quiet_wait is None:
        args.quiet_wait = 0 if args.quick else 45
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    info = report.machine()
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
        for rows in args.rows:
            if dialect == "sqlite":
                target = databases.sqlite_target(rows)
            else:
                target = databases.postgres_target(args.postgres, rows)
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
            if not args.seed_only:
                measure(target, db_report, args, stamp)
    if args.seed_only:
        for db_report in reports:
            log(f"{db_report.label}: " + "; ".join(db_report.seeding))
        return 0
    all_results = [result for db_report in reports for result in db_report.results]
    settings = (
        f"gunicorn: 1 worker, gthread, {args.threads} threads, 127.0.0.1:{args.port}; "
        f"{args.requests} timed requests per benchmark after {WARMUP} untimed, sequential, "
        f"one keep-alive session (requests); signed in as a front-desk user without MFA"
    )
    text = report.markdown(stamp, info, settings, reports, [])
    if args.quick:
        md_path, json_path = OUT / "quick-RESULTS.md", OUT / "quick-results.json"
    else:
        md_path, json_path = ROOT / "bench" / "RESULTS.md", ROOT / "bench" / "results.json"
    report.append_markdown(md_path, text)
    report.write_json(json_path, all_results)
    log("\n" + text)
    log(f"Written: {md_path.relative_to(ROOT)}, {json_path.relative_to(ROOT)}")
    failures = report.failing(all_results)
    log(f"Total time {time.perf_counter() - started:.0f} s.")
    if failures:
        log(f"{len(failures)} row(s) failed their budget or gave wrong answers.")
        return 1
    return 0


def measure(target, db_report: report.DatabaseReport, args, stamp: str) -> None:
    """Every benchmark on one seeded database, served by gunicorn."""
    count = args.requests
    patients = workload.sample_patients(target.url, count)
    benchmarks = workload.build_benchmarks(patients)
    with Server(target.url, args.port, args.threads) as server:
        log(f"  gunicorn up at {server.base} (master pid {server.process.pid})")
        session, _ = workload.sign_in(server.base, BENCH_USERNAME, BENCH_PASSWORD)
        token = workload.page_csrf_token(session, server.base)
        for bench in benchmarks:
            cpu.wait_for_quiet(args.quiet_wait, QUIET_THRESHOLD, log)
            worker = server.worker_pids()[0]
            worker_before = cpu.process_cpu_seconds(worker)
            machine_before = cpu.machine_jiffies()
            own_before = cpu.own_cpu_seconds()
            timings = workload.run_http(session, server.base, token, bench, count, WARMUP)
            machine_after = cpu.machine_jiffies()
            worker_after = cpu.process_cpu_seconds(worker)
            ours = cpu.own_cpu_seconds() - own_before
            if worker_before is not None and worker_after is not None:
                ours += worker_after - worker_before
            other_busy = cpu.other_fraction(machine_before, machine_after, ours)
            worker_ms = (
                (worker_after - worker_before) * 1000 / (count + WARMUP)
                if worker_before is not None and worker_after is not None
                else None
            )
            try:
                floor = floors.run_floor(target.url, bench, count, WARMUP)
            except floors.Misclassified as error:
                floor = None
                timings.failures += 1
                timings.first_failure = timings.first_failure or str(error)
            result = report.Result(
                benchmark=bench.name,
                database=db_report.label,
                rows=target.rows,
                requests=len(timings.latencies_ms),
                p50_ms=round(report.percentile(timings.latencies_ms, 50), 2),
                p95_ms=round(report.percentile(timings.latencies_ms, 95), 2),
                p99_ms=round(report.percentile(timings.latencies_ms, 99), 2),
                floor_p95_ms=round(report.percentile(floor, 95), 3) if floor else None,
                date=stamp,
                is_search=bench.is_search,
                failures=timings.failures,
                first_failure=timings.first_failure,
                worker_cpu_ms=round(worker_ms, 2) if worker_ms is not None else None,
                other_busy=other_busy,
            )
            db_report.results.append(result)
            checked = (
                "all answers right"
                if not timings.failures
                else f"{timings.failures} WRONG ({timings.first_failure})"
            )
            log(
                f"  {bench.name:<28} p50 {result.p50_ms:7.1f}  p95 {result.p95_ms:7.1f}  "
                f"p99 {result.p99_ms:7.1f}  floor p95 {result.floor_p95_ms or 0:7.2f} ms"
                f"  worker CPU {result.worker_cpu_ms or 0:.1f} ms/req, others {other_busy:.0%}"
                f"  [{checked}]"
            )
            if args.explain:
                log(floors.explain(target.url, target.dialect, bench))
        session.close()
        log(f"  sign-in throughput: {args.sign_ins} sequential, then {args.clients} clients ...")
        throughput = workload.sign_in_throughput(
            server.base, BENCH_USERNAME, BENCH_PASSWORD, args.sign_ins, args.clients
        )
        peak_kib = server.peak_memory_kib()
    latencies = throughput.sequential_latencies_ms
    db_report.results.append(
        report.Result(
            benchmark="sign-in (password, argon2id)",
            database=db_report.label,
            rows=target.rows,
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
        f"{target.rows:,} patients: sign-in throughput {throughput.sequential_per_second:.1f}/s "
        f"sequential ({args.sign_ins} sign-ins), {throughput.concurrent_per_second:.1f}/s with "
        f"{throughput.concurrent_clients} concurrent clients ({throughput.concurrent_count} "
        f"sign-ins); peak memory of the gunicorn worker (VmHWM) after the run: {peak}"
    )
    db_report.notes.append(note)
    log("  " + note)
    for bench in benchmarks:
        result = next(
            r for r in db_report.results if r.benchmark == bench.name and r.rows == target.rows
        )
        verdict = report.budget(result, db_report.results)[1]
        if verdict not in ("pass", "—") and not result.failures:
            db_report.plans[f"{bench.name}, {target.rows:,} rows"] = floors.explain(
                target.url, target.dialect, bench
            )
