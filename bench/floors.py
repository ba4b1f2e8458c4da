"""The floor of each benchmark: the query the service runs, sent straight to the database.

The search text goes through the service's own parser (``classify_query``, not timed) and
statement builder (``search_statements``), and the statements are executed on a plain
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
EXPECTED_KIND = {
    "prefix": "name",
    "given_family": "name",
    "near_miss": "name",
    "dob": "birth_date",
    "mrn": "mrn",
    "phone": "phone",
}


class Misclassified(ValueError):
    """The service would read an input as another kind of search than the benchmark means."""


def classified(kind: str, case: Case):
    """The service's reading of the benchmark's input (None for the patient page)."""
    if kind == "page":
        return None
    query = services.classify_query(case.query, REGION)
    if query.kind != EXPECTED_KIND[kind]:
        raise Misclassified(f"{case.query!r} is read as {query.kind}, not {EXPECTED_KIND[kind]}")
    return query


def statements(kind: str, case: Case, dialect: str) -> list:
    """The SELECTs the portal may run for this request (the patient page's load by key; a
    name search's tiers and its near-miss name lookups), for EXPLAIN."""
    query = classified(kind, case)
    if query is None:
        return [select(TABLE).where(TABLE.c.id == case.patient.id)]
    return services.search_statements(query, dialect)


def run_floor(url: str, bench: Benchmark, count: int, warmup: int) -> list[float]:
    """Latencies (ms) of the benchmark's queries run directly, over the same inputs: the
    service's own search loop (``find_patients``: its statements in rank order until 20
    patients, the near misses chosen from the names list) on a plain connection."""
    engine = create_engine(url)
    dialect = engine.dialect.name
    queries = [classified(bench.kind, case) for case in bench.cases]
    latencies = []
    with engine.connect() as connection:

        def fetch(statement):
            return connection.execute(statement).fetchall()

        def fetch_keys(statement):
            return connection.execute(statement).all()

        for index in range(warmup + count):
            case = bench.cases[index % len(bench.cases)]
            query = queries[index % len(queries)]
            started = time.perf_counter()
            if query is None:
                fetch(select(TABLE).where(TABLE.c.id == case.patient.id))
            else:
                services.find_patients(query, dialect, fetch, fetch_keys)
            elapsed = (time.perf_counter() - started) * 1000
            if index >= warmup:
                latencies.append(elapsed)
        connection.rollback()
    engine.dispose()
    return latencies


def explain(url: str, dialect: str, bench: Benchmark) -> str:
    """The plans of the benchmark's queries for its first input (EXPLAIN [QUERY PLAN])."""
    engine = create_engine(url)
    lines = []
    with engine.connect() as connection:
        for statement in statements(bench.kind, bench.cases[0], dialect):
            compiled = statement.compile(
                dialect=engine.dialect, compile_kwargs={"render_postcompile": True}
            )
            if dialect == "sqlite":
                params = tuple(_plain(compiled.params[name]) for name in compiled.positiontup)
                rows = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + str(compiled), params)
                lines += [row[-1] for row in rows]
            else:
                rows = connection.exec_driver_sql(
                    "EXPLAIN (ANALYZE, BUFFERS) " + str(compiled), compiled.params
                )
                lines += [row[0] for row in rows]
            lines.append("--")
        connection.rollback()
    engine.dispose()
    return "\n".join(lines)


def _plain(value):
    # SQLite stores dates as ISO text; the driver-level call skips SQLAlchemy's conversion.
    return value.isoformat() if hasattr(value, "isoformat") else value
