"""The audit benchmark's rows: their names, the median run, and the audited/plain ratio."""

from bench.audit import Run, median_runs, ratio, results


def run(kind, threads, transactions):
    return Run(kind, threads, transactions, 10.0, [1.0, 2.0, 3.0], 0.1)


def test_rows_are_the_median_runs_with_their_throughput():
    runs = [
        run("plain insert", 16, 30_000),
        run("audit append", 16, 25_000),
        run("plain insert", 16, 10_000),
        run("audit append", 16, 27_000),
        run("plain insert", 16, 32_000),
        run("audit append", 16, 5_000),
    ]
    assert [(r.kind, r.transactions) for r in median_runs(runs)] == [
        ("plain insert", 30_000),
        ("audit append", 25_000),
    ]
    assert ratio(runs, 16) == 25_000 / 30_000
    rows = [row.public() for row in results("PostgreSQL", runs, "2026-11-26 10:00 UTC")]
    assert [row["benchmark"] for row in rows] == [
        "plain insert, 16 threads",
        "audit append, 16 threads",
    ]
    assert [row["throughput_per_s"] for row in rows] == [3000.0, 2500.0]
    assert rows[0]["requests"] == 30_000 and rows[0]["p50_ms"] == 2.0
