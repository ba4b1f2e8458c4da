"""The drug search benchmark asks what typing sends and reports both catalog sizes beside a
floor (no timing budget is asserted here: budgets are for bench/, not for tests)."""

from bench import drugs as drug_bench


def test_the_queries_are_what_a_prescriber_types():
    asked = drug_bench.queries()
    assert {"l", "li", "lis", "lisinopril", "p", "pri", "prinivil"} <= set(asked)
    assert {"lisinopril 10", "amox susp", "metformin er"} <= set(asked)
    assert {"a", "mg", "oral"} <= set(asked)  # the broadest


def test_one_round_reports_the_shipped_catalog_and_the_forty_times_larger_one():
    results, loads = drug_bench.measure(1, "2026-01-01 00:00 UTC", log=lambda _: None)
    shipped, large = results
    assert shipped.benchmark.startswith("drug search: local catalog")
    assert large.rows == shipped.rows * drug_bench.COPIES
    for row in results:
        assert row.database == "in-process"
        assert row.requests == len(drug_bench.queries())
        assert 0 <= row.p50_ms <= row.p95_ms <= row.p99_ms
        assert row.floor_p95_ms is not None
    assert loads["shipped_load_ms"] > 0 and loads["large_load_ms"] > 0
