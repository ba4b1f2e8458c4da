"""Drug search benchmark (issue 11: "drug search p95 <= 30 ms (local catalog)").

``python -m bench.drugs`` (or ``python -m bench --drugs``) measures, in process, what the
prescribe screen's search-as-you-type will call: ``drugs.knowledge().search(text)`` for every
keystroke of common drug and brand names ("l", "li", "lis", ... "lisinopril"), names with a
strength or a form ("lisinopril 10", "amox susp", "metformin er") and the broadest queries
(one letter, which matches hundreds of products and sorts them all), on:

1. the shipped catalog (data/drug_products.csv);
2. a catalog forty times its size (each product repeated under new RxCUIs: ~25,000 products,
   the order of a full RxNorm "current prescribable content" load by ``flask rxnorm-load``),
   the worst case for ranking since every query then matches forty times as many products.

The search never touches the database, so there is no SQL floor; the floor given beside each
row is the same process's p95 for a bare ``product(rxcui)`` lookup (a dict read): the least
any call into the knowledge costs. The first load of the catalog (once per process) is
reported too. Rows go to bench/results.json through bench.report (kept beside other rows) and
a section is appended to bench/RESULTS.md; ``--quick`` writes to bench/out/ instead.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import report
from bench.databases import OUT, ROOT
from portal.terminology import drugs

BUDGET_P95_MS = 30.0
COPIES = 40
TYPED = (
    "lisinopril",
    "amlodipine",
    "atorvastatin",
    "metformin",
    "amoxicillin",
    "azithromycin",
    "sertraline",
    "hydrochlorothiazide",
    "oxycodone",
    "alprazolam",
    "gabapentin",
    "warfarin",
    "spironolactone",
    "prednisone",
    "tramadol",
    "prinivil",
    "xanax",
)
WHOLE = (
    "lisinopril 10",
    "amoxicillin 500",
    "amox susp",
    "metformin er",
    "oxycodone 5 tab",
    "hydrocodone acetaminophen",
    "sulfamethoxazole trimethoprim",
    "warfarin 5",
)
BROAD = ("a", "c", "h", "m", "p", "s", "t", "hy", "ch", "me", "or", "oral", "tablet", "10", "mg")


def queries() -> list[str]:
    """What a prescriber's typing sends, keystroke by keystroke, and the broadest words."""
    typed = [name[:n] for name in TYPED for n in range(1, len(name) + 1)]
    return typed + list(WHOLE) + list(BROAD)


def _timed(call, items, repeats: int) -> list[float]:
    samples = []
    for _ in range(repeats):
        for item in items:
            started = time.perf_counter()
            call(item)
            samples.append((time.perf_counter() - started) * 1000)
    return samples


def _large_catalog(folder: Path) -> drugs.ShippedDrugKnowledge:
    """The shipped catalog COPIES times over under fresh RxCUIs (same names and ingredients)."""
    rows = drugs._data_rows(drugs.PRODUCTS_FILE)
    path = folder / "drug_products.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        for copy in range(COPIES):
            for row in rows:
                writer.writerow({**row, "rxcui": f"{row['rxcui']}{copy:03d}9"})
    return drugs.ShippedDrugKnowledge(path, drugs.INGREDIENTS_FILE, drugs.CLASSES_FILE)


def _row(name: str, products: int, samples: list[float], floor: list[float], stamp: str):
    return report.Result(
        benchmark=name,
        database="in-process",
        rows=products,
        requests=len(samples),
        p50_ms=round(report.percentile(samples, 50), 3),
        p95_ms=round(report.percentile(samples, 95), 3),
        p99_ms=round(report.percentile(samples, 99), 3),
        floor_p95_ms=round(report.percentile(floor, 95), 4),
        date=stamp,
    )


def measure(repeats: int, stamp: str, log=print) -> tuple[list[report.Result], dict]:
    """The two rows (shipped catalog, forty times larger) and the load times."""
    drugs.forget_loaded()
    started = time.perf_counter()
    shipped = drugs.knowledge()
    load_ms = (time.perf_counter() - started) * 1000
    typed = queries()
    rxcuis = [p.rxcui for p in shipped.products()]
    results = []
    samples = _timed(shipped.search, typed, repeats)
    floor = _timed(shipped.product, rxcuis, 1)
    results.append(
        _row(
            "drug search: local catalog",
            len(rxcuis),
            samples,
            floor,
            stamp,
        )
    )
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        large = _large_catalog(Path(folder))
        large_load_ms = (time.perf_counter() - started) * 1000
        large_rxcuis = [p.rxcui for p in large.products()]
        samples = _timed(large.search, typed, repeats)
        floor = _timed(large.product, large_rxcuis[:5000], 1)
        results.append(
            _row(
                f"drug search: catalog x{COPIES}",
                len(large_rxcuis),
                samples,
                floor,
                stamp,
            )
        )
    loads = {"shipped_load_ms": round(load_ms, 1), "large_load_ms": round(large_load_ms, 1)}
    for result in results:
        log(
            f"{result.benchmark}: {result.requests} searches, p50 {result.p50_ms} ms, "
            f"p95 {result.p95_ms} ms, p99 {result.p99_ms} ms (floor {result.floor_p95_ms} ms)"
        )
    log(
        f"catalog load: shipped {loads['shipped_load_ms']} ms, "
        f"x{COPIES} {loads['large_load_ms']} ms"
    )
    return results, loads


def _markdown(stamp: str, results: list[report.Result], loads: dict, repeats: int) -> str:
    info = report.machine()
    load = ", ".join(f"{value:.2f}" for value in info["load"])
    lines = [
        f"## {stamp}: drug search",
        "",
        f"- Machine: {info['cpu']}, {info['cores']} cores; load average at start {load}",
        f"- In process, {repeats} rounds over {len(queries())} queries (every keystroke of "
        f"{len(TYPED)} names, {len(WHOLE)} names with strength or form, {len(BROAD)} broad "
        "words); floor: p95 of a bare product(rxcui) lookup (no SQL: the catalog is in memory)",
        f"- Catalog load once per process: shipped {loads['shipped_load_ms']} ms, "
        f"x{COPIES} {loads['large_load_ms']} ms",
        "",
        "| benchmark | products | searches | p50 ms | p95 ms | p99 ms | floor p95 ms | budget "
        "| verdict |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for r in results:
        verdict = "pass" if r.p95_ms <= BUDGET_P95_MS else "**FAIL**"
        lines.append(
            f"| {r.benchmark} | {r.rows} | {r.requests} | {r.p50_ms} | {r.p95_ms} | {r.p99_ms} "
            f"| {r.floor_p95_ms} | p95 ≤ {BUDGET_P95_MS:.0f} | {verdict} |"
        )
    return "\n".join(lines) + "\n\n"


def run(repeats: int, quick: bool, log=print) -> int:
    """Measure, write results.json and RESULTS.md (or their quick- copies), return 0 on pass."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    results, loads = measure(repeats, stamp, log)
    if quick:
        OUT.mkdir(parents=True, exist_ok=True)
        md_path, json_path = OUT / "quick-RESULTS.md", OUT / "quick-results.json"
    else:
        md_path, json_path = ROOT / "bench" / "RESULTS.md", ROOT / "bench" / "results.json"
    report.append_markdown(md_path, _markdown(stamp, results, loads, repeats))
    report.write_json(json_path, results, keep=True)
    log(f"Written: {md_path.relative_to(ROOT)}, {json_path.relative_to(ROOT)}")
    failed = [r for r in results if r.p95_ms > BUDGET_P95_MS]
    for r in failed:
        log(f"FAIL {r.benchmark}: p95 {r.p95_ms} ms > {BUDGET_P95_MS} ms")
    return 1 if failed else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="rounds over the queries (5)")
    parser.add_argument("--quick", action="store_true", help="one round, into bench/out/")
    args = parser.parse_args(argv)
    print(f"load average before: {os.getloadavg()}")
    return run(1 if args.quick else args.repeats, args.quick)


if __name__ == "__main__":
    sys.exit(main())
