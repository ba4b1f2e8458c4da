"""The floor of each benchmark: the query the service runs, sent straight to the database.

The search text goes through the service's own parser (``classify_query``, not timed) and
statement builder (``search_statement``), and the statement is executed on a plain
connection: no ORM objects, no request. The patient page's floor is its load by primary
key. The gap between a benchmark's p95 and its floor is what Flask, sessions, templates,
the audit write and HTTP add.
"""

from __future__ import annotations

import time

from sqlalchemy import create_engine, select

from bench.workload import Benchmark, Case
from portal.patients import services
from portal.patients.models import Patient

TABLE = Patient.__table__
REGION = "US"
# What the service must recognise each benchmark's inputs as.
EXPECTED_KIND = {"prefix": "family", "dob": "birth_date", "mrn": "mrn", "phone": "phone"}


class Misclassified(ValueError):
    """The service would read an input as another kind of search than the benchmark means."""


def statement(kind: str, case: Case):
    """The SELECT the portal runs for this request."""
    if kind == "page":
        return select(TABLE).where(TABLE.c.id == case.patient.id)
    query = services.classify_query(case.query, REGION)
    if query.kind != EXPECTED_KIND[kind] and not (
        kind == "prefix" and query.kind == "family_given"
    ):
        raise Misclassified(f"{case.query!r} is read as {query.kind}, not {EXPECTED_KIND[kind]}")
    # The service's own statement builder: same SQL, same bound values.
    return services.search_statement(query)


def run_floor(url: str, bench: Benchmark, count: int, warmup: int) -> list[float]:
    """Latencies (ms) of the benchmark's query run directly, over the same inputs."""
    prepared = [statement(bench.kind, case) for case in bench.cases]
    engine = create_engine(url)
    latencies = []
    with engine.connect() as connection:
        for index in range(warmup + count):
            query = prepared[index % len(prepared)]
            started = time.perf_counter()
            connection.execute(query).fetchall()
            elapsed = (time.perf_counter() - started) * 1000
            if index >= warmup:
                latencies.append(elapsed)
        connection.rollback()
    engine.dispose()
    return latencies


def explain(url: str, dialect: str, bench: Benchmark) -> str:
    """The plan of the benchmark's query for its first input (EXPLAIN [QUERY PLAN])."""
    engine = create_engine(url)
    compiled = statement(bench.kind, bench.cases[0]).compile(dialect=engine.dialect)
    with engine.connect() as connection:
        if dialect == "sqlite":
            params = tuple(_plain(compiled.params[name]) for name in compiled.positiontup)
            rows = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + str(compiled), params)
            lines = [row[-1] for row in rows]
        else:
            rows = connection.exec_driver_sql(
                "EXPLAIN (ANALYZE, BUFFERS) " + str(compiled), compiled.params
            )
            lines = [row[0] for row in rows]
        connection.rollback()
    engine.dispose()
    return "\n".join(lines)


def _plain(value):
    # SQLite stores dates as ISO text; the driver-level call skips SQLAlchemy's conversion.
    return value.isoformat() if hasattr(value, "isoformat") else value
