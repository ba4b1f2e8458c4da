"""The audit benchmark's rows: their names, the slices combined, and the audited/plain ratio."""

from bench.audit import Run, combined, ratio, results


def run(kind, threads, transactions, latencies):
    return Run(kind, threads, transactions, 4.0, latencies, 0.1)


def test_rows_combine_every_slice_of_a_kind_with_its_throughput():
    runs = [
        run("plain insert", 16, 12_000, [1.0, 2.0]),
        run("audit append", 16, 10_000, [2.0]),
        run("plain insert", 16, 8_000, [3.0]),
        run("audit append", 16, 6_000, [4.0, 5.0]),
    ]
    plain, audited = combined(runs)
    assert (plain.kind, plain.transactions, plain.seconds) == ("plain insert", 20_000, 8.0)
    assert (audited.kind, audited.transactions, audited.seconds) == ("audit append", 16_000, 8.0)
    assert plain.latencies_ms == [1.0, 2.0, 3.0] and audited.latencies_ms == [2.0, 4.0, 5.0]
    assert ratio(runs, 16) == 16_000 / 20_000
    rows = [row.public() for row in results("PostgreSQL", runs, "2026-11-26 10:00 UTC")]
    assert [row["benchmark"] for row in rows] == [
        "plain insert, 16 threads",
        "audit append, 16 threads",
    ]
    assert [row["throughput_per_s"] for row in rows] == [2500.0, 2000.0]
    assert rows[0]["requests"] == 20_000 and rows[1]["p50_ms"] == 4.0
