"""Shared fixtures of the prescription tests: a small chart to prescribe on
(tests/support/chart.py)."""

from tests.support.chart import chart  # noqa: F401
