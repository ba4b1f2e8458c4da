"""The ICD-10-CM search benchmark asks what typing sends, and judges by the slowest search."""

from bench.terminology import _summary, queries


def test_the_queries_are_what_a_clinician_types():
    asked = queries()
    assert {"HTN", "high blood pressure", "T2DM"} <= set(asked)  # the shipped synonyms
    assert {"hy", "hyp", "hypertensio", "hypertension"} <= set(asked)  # keystroke by keystroke
    assert {"E11", "S72", "of", "unspecified"} <= set(asked)  # code prefixes, the broadest words


def test_the_summary_reports_the_slowest_search():
    summary = _summary([float(ms) for ms in range(1, 101)])
    assert summary == {"searches": 100, "p50_ms": 50.5, "p95_ms": 95.0, "max_ms": 100.0}
