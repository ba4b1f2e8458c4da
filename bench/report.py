"""The machine, the budgets, and the two outputs: bench/RESULTS.md and bench/results.json."""

from __future__ import annotations

import json
import math
import os
import platform
import sqlite3
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.databases import ROOT

SEARCH_BUDGET_MS = 50.0  # every search p95 at 1,000,000 patients
BUDGET_ROWS = 1_000_000
GROWTH_BUDGET = 1.5  # p95 at the large size vs its own p95 at the baseline size
BASELINE_ROWS = 10_000
# p95 budgets (ms) of the scheduling pages.
SCHEDULE_BUDGETS_MS = {
    "schedule: day view, 20 providers": 80.0,
    "schedule: week view, 1 provider": 60.0,
    "schedule: find next available, 20 providers, 30 days": 150.0,
}
# p95 budgets (ms) of the charting pages (bench/chart.py names them).
CHART_BUDGETS_MS = {
    "chart: summary (1,000 encounters, 5,000 vitals)": 100.0,
    "chart: encounter page": 80.0,
    "chart: vitals trend chart (SVG)": 150.0,
    "chart: draft autosave": 40.0,
}
PAGE_BUDGETS_MS = {**SCHEDULE_BUDGETS_MS, **CHART_BUDGETS_MS}
# Goals of the integrations (bench/integrations.py names the rows).
OUTBOX_NOOP_4_WORKERS_PER_S = 200.0  # "outbox delivery, no-op, 4 workers"
OUTBOX_LATENCY_P95_MS = 1000.0  # "outbox commit-to-delivery latency", p95 below
# "webhook intake, 4 clients": both at once. With more clients than the server has threads
# (16 on 2 workers x 4), closed-loop requests queue: their latency is at least clients /
# throughput by Little's law, so that row is held to the rate alone (its latency is shown).
WEBHOOK_INTAKE_PER_S = 300.0
WEBHOOK_INTAKE_P95_MS = 50.0
WEBHOOK_INTAKE_LATENCY_ROW = "webhook intake, 4 clients"
# Goals of the FHIR API (bench/fhir.py names the rows): p95 latencies, rates, memory.
FHIR_P95_BUDGETS_MS = {
    "fhir: Patient search by family name": 50.0,
    "fhir: Patient read": 20.0,
    "fhir: $everything (1,000 encounters, 5,000 vital sets)": 1000.0,
}
FHIR_RATE_BUDGETS_PER_S = {
    "fhir: bulk export, 1 worker": 20_000.0,  # on PostgreSQL (SQLite: shown, not held)
    "fhir: import, transaction bundles, 1 client": 500.0,
}
FHIR_EXPORT_MEMORY_GROWTH_MB = 64.0  # the worker's peak RSS growth over a whole export


@dataclass
class Result:
    benchmark: str
    database: str
    rows: int
    requests: int
    p50_ms: float | None  # None: a throughput row (no per-request latency)
    p95_ms: float | None
    p99_ms: float | None
    floor_p95_ms: float | None
    date: str
    is_search: bool = False
    failures: int = 0
    first_failure: str | None = None
    worker_cpu_ms: float | None = None  # gunicorn worker's CPU time per request
    other_busy: float | None = None  # CPU used by other processes during the run (of all)
    appointments: int | None = None  # scheduling benchmarks: appointments in the database
    bookings_per_second: float | None = None
    conflict_rate: float | None = None  # booking: share of attempts refused as taken
    throughput_per_s: float | None = None  # requests (or events) answered per second
    clients: int | None = None  # concurrent clients (concurrency benchmarks)
    memory_growth_mb: float | None = None  # a worker's peak RSS growth over the run

    def public(self) -> dict:
        """The object results.json holds (the fields regression scripts rely on)."""
        keys = (
            "benchmark",
            "database",
            "rows",
            "requests",
            "p50_ms",
            "p95_ms",
            "p99_ms",
            "floor_p95_ms",
            "date",
        )
        values = asdict(self)
        public = {key: values[key] for key in keys}
        for extra in (
            "appointments",
            "bookings_per_second",
            "conflict_rate",
            "throughput_per_s",
            "clients",
            "memory_growth_mb",
        ):
            if values[extra] is not None:
                public[extra] = values[extra]
        return public


@dataclass
class DatabaseReport:
    """Everything measured on one database engine (all sizes)."""

    label: str
    version: str
    results: list[Result] = field(default_factory=list)
    seeding: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    plans: dict[str, str] = field(default_factory=dict)


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (the value below which pct % of the samples fall)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(pct / 100 * len(ordered))))
    return ordered[rank - 1]


# Goals for many users at once (bench/concurrency.py names the rows).
SQLITE_MIXED_P99_MS = 100.0  # patient and home page, 8 clients, mixed load, SQLite
PATIENT_PAGE_WORKER_CPU_MS = 4.0  # worker CPU per patient page, alone
PATIENT_VS_HOME_THROUGHPUT = 0.8  # PostgreSQL: patient page throughput vs the home page's


def budget(result: Result, all_results: list[Result]) -> tuple[str, str]:
    """(budget text, verdict) of one row."""
    if result.failures:
        return "answers must be right", f"INVALID ({result.failures} bad: {result.first_failure})"
    if result.benchmark.startswith("concurrency: "):
        return _concurrency_budget(result, all_results)
    if result.benchmark.startswith(("outbox ", "webhook intake")):
        return _integrations_budget(result)
    if result.benchmark.startswith("fhir: "):
        return _fhir_budget(result)
    if result.benchmark in PAGE_BUDGETS_MS:
        limit = PAGE_BUDGETS_MS[result.benchmark]
        return f"≤ {limit:.0f}", "pass" if result.p95_ms <= limit else "**FAIL**"
    if not result.is_search:
        return "—", "—"
    baseline = _baseline(result, all_results)
    limits = []
    if result.rows >= BUDGET_ROWS:
        limits.append(SEARCH_BUDGET_MS)
    if baseline is not None:
        limits.append(GROWTH_BUDGET * baseline.p95_ms)
    if not limits:
        return "baseline", "—"
    texts = []
    if result.rows >= BUDGET_ROWS:
        texts.append(f"≤ {SEARCH_BUDGET_MS:.0f}")
    if baseline is not None:
        texts.append(f"≤ 1.5 x {baseline.p95_ms:.1f} = {GROWTH_BUDGET * baseline.p95_ms:.1f}")
    verdict = "pass" if result.p95_ms <= min(limits) else "**FAIL**"
    return " and ".join(texts), verdict


def _concurrency_budget(result: Result, all_results: list[Result]) -> tuple[str, str]:
    name = result.benchmark
    if (
        result.database == "SQLite"
        and result.clients == 8
        and name
        in (
            "concurrency: patient page, mixed, 8 clients",
            "concurrency: home page, mixed, 8 clients",
        )
    ):
        passed = result.p99_ms <= SQLITE_MIXED_P99_MS
        return f"p99 ≤ {SQLITE_MIXED_P99_MS:.0f}", "pass" if passed else "**FAIL**"
    if name.startswith("concurrency: patient page, alone"):
        texts, passed = [], True
        if result.worker_cpu_ms is not None:
            texts.append(f"worker CPU ≤ {PATIENT_PAGE_WORKER_CPU_MS:.0f} ms")
            passed = result.worker_cpu_ms <= PATIENT_PAGE_WORKER_CPU_MS
        home = next(
            (
                other
                for other in all_results
                if other.database == result.database
                and other.benchmark == name.replace("patient page", "home page")
            ),
            None,
        )
        if result.database == "PostgreSQL" and home and home.throughput_per_s:
            share = result.throughput_per_s / home.throughput_per_s
            texts.append(f"throughput ≥ 80% of the home page's ({share:.0%})")
            passed = passed and share >= PATIENT_VS_HOME_THROUGHPUT
        if texts:
            return "; ".join(texts), "pass" if passed else "**FAIL**"
    return "—", "—"


def _integrations_budget(result: Result) -> tuple[str, str]:
    name, rate = result.benchmark, result.throughput_per_s or 0.0
    if name == "outbox delivery, no-op, 4 workers":
        limit = OUTBOX_NOOP_4_WORKERS_PER_S
        return f"≥ {limit:.0f} msg/s", "pass" if rate >= limit else "**FAIL**"
    if name == "outbox commit-to-delivery latency":
        limit = OUTBOX_LATENCY_P95_MS
        return f"p95 < {limit:.0f}", "pass" if result.p95_ms < limit else "**FAIL**"
    if name == WEBHOOK_INTAKE_LATENCY_ROW:
        passed = rate >= WEBHOOK_INTAKE_PER_S and result.p95_ms <= WEBHOOK_INTAKE_P95_MS
        text = f"≥ {WEBHOOK_INTAKE_PER_S:.0f}/s and p95 ≤ {WEBHOOK_INTAKE_P95_MS:.0f}"
        return text, "pass" if passed else "**FAIL**"
    if name.startswith("webhook intake"):
        passed = rate >= WEBHOOK_INTAKE_PER_S
        return f"≥ {WEBHOOK_INTAKE_PER_S:.0f}/s (queueing)", "pass" if passed else "**FAIL**"
    return "—", "—"


def _fhir_budget(result: Result) -> tuple[str, str]:
    name = result.benchmark
    if name in FHIR_P95_BUDGETS_MS:
        limit = FHIR_P95_BUDGETS_MS[name]
        return f"≤ {limit:.0f}", "pass" if result.p95_ms <= limit else "**FAIL**"
    if name in FHIR_RATE_BUDGETS_PER_S:
        limit = FHIR_RATE_BUDGETS_PER_S[name]
        if name.startswith("fhir: bulk export") and result.database != "PostgreSQL":
            return f"(≥ {limit:,.0f}/s on PostgreSQL)", "—"
        texts, passed = [f"≥ {limit:,.0f}/s"], (result.throughput_per_s or 0) >= limit
        if result.memory_growth_mb is not None:
            texts.append(f"RSS growth ≤ {FHIR_EXPORT_MEMORY_GROWTH_MB:.0f} MB")
            passed = passed and result.memory_growth_mb <= FHIR_EXPORT_MEMORY_GROWTH_MB
        return " and ".join(texts), "pass" if passed else "**FAIL**"
    return "—", "—"


def _baseline(result: Result, all_results: list[Result]) -> Result | None:
    peers = [
        other
        for other in all_results
        if other.database == result.database
        and other.benchmark == result.benchmark
        and other.rows < result.rows
    ]
    if not peers:
        return None
    exact = [other for other in peers if other.rows == BASELINE_ROWS]
    return exact[0] if exact else min(peers, key=lambda other: other.rows)


def failing(all_results: list[Result]) -> list[Result]:
    """Rows whose verdict is a failure (budget missed, or answers that were wrong)."""
    return [result for result in all_results if budget(result, all_results)[1] not in ("pass", "—")]


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_gib = int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    try:
        from importlib.metadata import version

        gunicorn = version("gunicorn")
    except Exception:  # reporting only
        gunicorn = "?"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gib": ram_gib,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "gunicorn": gunicorn,
        "os": platform.platform(),
        "load": os.getloadavg(),
    }


def git_revision() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
        return head + (" (with uncommitted changes)" if dirty else "")
    except OSError:
        return "?"


def _ms(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


def markdown(
    stamp: str, info: dict, settings: str, databases: list[DatabaseReport], extra: list[str]
) -> str:
    all_results = [result for db in databases for result in db.results]
    ram = f"{info['ram_gib']:.1f} GiB" if info["ram_gib"] else "?"
    load = ", ".join(f"{value:.2f}" for value in info["load"])
    load_end = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    lines = [
        f"## {stamp}",
        "",
        f"- Machine: {info['cpu']}, {info['cores']} cores, {ram} RAM; {info['os']}",
        f"- Python {info['python']}, SQLite {info['sqlite']}, "
        + ", ".join(f"{db.label} {db.version}" for db in databases if db.label != "SQLite")
        + ("; " if any(db.label != "SQLite" for db in databases) else "")
        + f"gunicorn {info['gunicorn']}",
        f"- Code: {git_revision()}; load average (1, 5, 15 min) at start: {load}, "
        f"at the end: {load_end} (other work on the machine adds noise to the tails)",
        f"- {settings}",
        *[f"- {line}" for line in extra],
        "",
    ]
    for db in databases:
        lines += [f"### {db.label}", ""]
        lines += [f"- {line}" for line in db.seeding + db.notes]
        rates = any(result.throughput_per_s is not None for result in db.results)
        lines += [
            "",
            "| benchmark | rows | requests | "
            + ("throughput /s | " if rates else "")
            + "p50 ms | p95 ms | p99 ms | floor p95 ms "
            "| worker CPU ms/req | other CPU load | budget | result |",
            "|---|---:|---:|"
            + ("---:|" if rates else "")
            + "---:|---:|---:|---:|---:|---:|---|---|",
        ]
        for result in db.results:
            text, verdict = budget(result, all_results)
            rate = f"| {_ms(result.throughput_per_s)} " if rates else ""
            lines.append(
                f"| {result.benchmark} | {result.rows:,} | {result.requests:,} {rate}"
                f"| {_ms(result.p50_ms)} | {_ms(result.p95_ms)} | {_ms(result.p99_ms)} "
                f"| {_ms(result.floor_p95_ms, 2)} | {_ms(result.worker_cpu_ms)} "
                f"| {_percent(result.other_busy)} | {text} | {verdict} |"
            )
        lines.append("")
        for name, plan in db.plans.items():
            lines += [f"Plan of the slow query behind “{name}”:", "", "```", plan, "```", ""]
    return "\n".join(lines) + "\n"


def section_rows(sections, budget_ms) -> list[str]:
    """The rows of an in-process bench's table (benchmark, database, p50 / p95 / p99, the
    reads' floor, our CPU per call, others' CPU, verdict), each database's notes after its
    rows: ``sections`` are (label, results, notes); ``budget_ms(result)`` is the p95 budget.
    A result with wrong answers fails whatever its time."""
    lines = []
    for label, results, notes in sections:
        for r in results:
            verdict = "pass" if r.p95_ms <= budget_ms(r) and not r.failures else "**FAIL**"
            lines.append(
                f"| {r.benchmark} | {label} | {r.p50_ms} | {r.p95_ms} | {r.p99_ms} | "
                f"{r.floor_p95_ms} | {r.worker_cpu_ms} | {r.other_busy:.0%} | {verdict} |"
            )
        lines.append(f"\n{label}: {notes}\n")
    return lines


def append_markdown(path: Path, text: str) -> None:
    if not path.exists():
        path.write_text(
            "# Benchmark results\n\n"
            "Each `make bench` run appends a section (newest last). Latencies are measured from "
            "a client on the same machine over loopback, sequential requests on one keep-alive "
            "connection; the floor is the same SQL run directly from the benchmark process. "
            "Machine-readable figures of the latest run: `bench/results.json`.\n\n"
        )
    with path.open("a") as handle:
        handle.write(text)


def write_json(path: Path, results: list[Result], keep: bool = False) -> None:
    """Write the run's rows; with ``keep``, earlier rows of other benchmarks stay too."""
    rows = [result.public() for result in results]
    if keep and path.exists():
        fresh = {(row["benchmark"], row["database"], row["rows"]) for row in rows}
        earlier = [
            row
            for row in json.loads(path.read_text())
            if (row["benchmark"], row["database"], row["rows"]) not in fresh
        ]
        rows = earlier + rows
    path.write_text(json.dumps(rows, indent=2) + "\n")
