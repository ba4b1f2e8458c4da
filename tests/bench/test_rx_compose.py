"""The prescription composing benchmark judges the prescribe page and the drug search by the
issue's budgets, and reports the autosave without one."""

from bench import report
from bench.rx_compose import BUDGETS_MS, NAMES, markdown


def _row(kind, p95):
    return report.Result(
        NAMES[kind], "SQLite", 1, 10, 1.0, p95, p95, 0.5, "now", worker_cpu_ms=2.0, other_busy=0.1
    )


def test_each_row_is_judged_by_its_budget():
    info = {"cpu": "test", "cores": 2, "load": (0, 0, 0)}
    rows = [_row("page", 79.0), _row("search", 31.0), _row("autosave", 500.0)]
    text = markdown("now", info, [("SQLite", rows, {})])
    lines = {line.split(" | ")[0]: line for line in text.splitlines() if line.startswith("| rx")}
    assert lines[f"| {NAMES['page']}"].endswith("| ≤ 80 | pass |")
    assert lines[f"| {NAMES['search']}"].endswith("| ≤ 30 | **FAIL** |")
    assert lines[f"| {NAMES['autosave']}"].endswith("| — | — |")
    assert BUDGETS_MS["page"] == 80.0 and BUDGETS_MS["search"] == 30.0
