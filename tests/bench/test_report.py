"""The benchmark's verdicts: what passes, what fails, and the shape of results.json."""

import json

from bench.report import Result, budget, failing, percentile, section_rows, write_json


def result(benchmark="search: MRN", rows=1_000_000, p95=10.0, **extra):
    return Result(
        benchmark=benchmark,
        database="SQLite",
        rows=rows,
        requests=1000,
        p50_ms=p95 / 2,
        p95_ms=p95,
        p99_ms=p95 * 2,
        floor_p95_ms=0.1,
        date="2026-11-25 17:00 UTC",
        is_search=extra.pop("is_search", True),
        **extra,
    )


def test_percentile_is_nearest_rank():
    values = list(range(1, 101))  # 1..100
    assert percentile(values, 50) == 50
    assert percentile(values, 95) == 95
    assert percentile(values, 99) == 99
    assert percentile([7.0], 95) == 7.0


def test_search_at_1m_passes_within_50_ms_and_1_5_times_its_10k_p95():
    small = result(rows=10_000, p95=8.0)
    large = result(rows=1_000_000, p95=11.9)
    assert budget(large, [small, large])[1] == "pass"
    assert failing([small, large]) == []


def test_search_at_1m_fails_when_it_grows_more_than_1_5_times():
    small = result(rows=10_000, p95=8.0)
    large = result(rows=1_000_000, p95=12.5)
    assert budget(large, [small, large])[1] == "**FAIL**"
    assert failing([small, large]) == [large]


def test_search_at_1m_fails_over_50_ms_even_when_10k_was_as_slow():
    small = result(rows=10_000, p95=60.0)
    large = result(rows=1_000_000, p95=61.0)
    assert budget(large, [small, large])[1] == "**FAIL**"


def test_wrong_answers_make_a_row_invalid_whatever_its_speed():
    small = result(rows=10_000, p95=8.0)
    large = result(rows=1_000_000, p95=1.0, failures=3, first_failure="no results")
    assert budget(large, [small, large])[1].startswith("INVALID")
    assert failing([small, large]) == [large]


def test_the_patient_page_has_no_budget():
    page = result(benchmark="patient page", p95=80.0, is_search=False)
    assert budget(page, [page]) == ("—", "—")


def test_results_json_holds_exactly_the_documented_fields(tmp_path):
    path = tmp_path / "results.json"
    write_json(path, [result(worker_cpu_ms=4.2, other_busy=0.3)])
    (entry,) = json.loads(path.read_text())
    assert set(entry) == {
        "benchmark",
        "database",
        "rows",
        "requests",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "floor_p95_ms",
        "date",
    }
    assert entry["rows"] == 1_000_000 and entry["p95_ms"] == 10.0


def test_scheduling_rows_have_issue_3_budgets_and_extra_json_fields(tmp_path):
    day = result("schedule: day view, 20 providers", p95=81.0, is_search=False)
    week = result("schedule: week view, 1 provider", p95=59.0, is_search=False)
    assert budget(day, [day])[1] == "**FAIL**"
    assert budget(week, [week])[1] == "pass"
    booking = result(
        "booking, 8 clients, same slots",
        is_search=False,
        appointments=20_000,
        bookings_per_second=5.0,
        conflict_rate=0.875,
    )
    path = tmp_path / "results.json"
    write_json(path, [booking, week])
    written = json.loads(path.read_text())
    assert written[0]["conflict_rate"] == 0.875
    assert written[0]["appointments"] == 20_000
    assert "conflict_rate" not in written[1]


def test_charting_rows_have_issue_4_budgets():
    summary = result("chart: summary (1,000 encounters, 5,000 vitals)", p95=99.0, is_search=False)
    autosave = result("chart: draft autosave", p95=41.0, is_search=False)
    trend = result("chart: vitals trend chart (SVG)", p95=150.0, is_search=False)
    assert budget(summary, [summary]) == ("≤ 100", "pass")
    assert budget(autosave, [autosave]) == ("≤ 40", "**FAIL**")
    assert budget(trend, [trend])[1] == "pass"
    assert failing([summary, autosave, trend]) == [autosave]


def test_section_rows_judge_each_result_by_its_budget_and_its_answers():
    def result(name, p95, failures=0):
        return Result(
            benchmark=name,
            database="SQLite",
            rows=1,
            requests=10,
            p50_ms=1.0,
            p95_ms=p95,
            p99_ms=p95,
            floor_p95_ms=0.1,
            date="",
            failures=failures,
            worker_cpu_ms=1.0,
            other_busy=0.25,
        )

    rows = section_rows(
        [("SQLite", [result("fast", 5.0), result("slow", 50.0), result("wrong", 1.0, 1)], "n")],
        lambda r: 10.0,
    )
    assert [row.rsplit("|", 2)[1].strip() for row in rows[:3]] == ["pass", "**FAIL**", "**FAIL**"]
    assert "| 25% |" in rows[0] and rows[3] == "\nSQLite: n\n"
