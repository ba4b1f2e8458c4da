"""The floor of each benchmark: the query the service runs, sent straight to the database.

The SQL here mirrors ``portal/patients`` (same WHERE, ORDER BY and LIMIT); the gap between
a benchmark's p95 and its floor is what Flask, templates, the audit write and HTTP cost.
Keep the two in step when the service's queries change.
"""

from __future__ import annotations

import time
from datetime import date, datetime

from sqlalchemy import create_engine, text

from bench.workload import Benchmark, Case
from portal.patients.identifiers import normalise_phone, search_key

# Written out in full (no string building), each as the service sends it.
QUERIES = {
    "prefix": (
        "SELECT id, mrn, given_name, family_name, preferred_name, birth_date, sex_at_birth, "
        "phone_mobile FROM patients WHERE family_key >= :low AND family_key < :high "
        "ORDER BY family_key, given_key, birth_date, id LIMIT 20"
    ),
    "dob": (
        "SELECT id, mrn, given_name, family_name, preferred_name, birth_date, sex_at_birth, "
        "phone_mobile FROM patients WHERE birth_date = :birth "
        "ORDER BY family_key, given_key, birth_date, id LIMIT 20"
    ),
    "mrn": (
        "SELECT id, mrn, given_name, family_name, preferred_name, birth_date, sex_at_birth, "
        "phone_mobile FROM patients WHERE mrn = :mrn "
        "ORDER BY family_key, given_key, birth_date, id LIMIT 20"
    ),
    "phone": (
        "SELECT id, mrn, given_name, family_name, preferred_name, birth_date, sex_at_birth, "
        "phone_mobile FROM patients "
        "WHERE phone_mobile = :phone OR phone_home = :phone OR phone_work = :phone "
        "ORDER BY family_key, given_key, birth_date, id LIMIT 20"
    ),
    "page": "SELECT * FROM patients WHERE id = :id",
}
DOB_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%d %b %Y")


def _parse_date(value: str) -> date:
    for fmt in DOB_FORMATS:
        try:
            return datetime.strptime(value, fmt).date()
        except ValueError:
            continue
    raise ValueError(value)


def parameters(kind: str, case: Case) -> dict:
    """The bound parameters the service would derive from the typed text."""
    if kind == "prefix":
        key = search_key(case.query)
        return {"low": key, "high": key[:-1] + chr(ord(key[-1]) + 1)}
    if kind == "dob":
        return {"birth": _parse_date(case.query)}
    if kind == "mrn":
        return {"mrn": case.query}
    if kind == "phone":
        return {"phone": normalise_phone(case.query, "US")}
    return {"id": case.patient.id}


def run_floor(url: str, bench: Benchmark, count: int, warmup: int) -> list[float]:
    """Latencies (ms) of the benchmark's query run directly, over the same inputs."""
    sql = text(QUERIES[bench.kind])
    prepared = [parameters(bench.kind, case) for case in bench.cases]
    engine = create_engine(url)
    latencies = []
    with engine.connect() as connection:
        for index in range(warmup + count):
            params = prepared[index % len(prepared)]
            started = time.perf_counter()
            connection.execute(sql, params).fetchall()
            elapsed = (time.perf_counter() - started) * 1000
            if index >= warmup:
                latencies.append(elapsed)
        connection.rollback()
    engine.dispose()
    return latencies


def explain(url: str, dialect: str, bench: Benchmark) -> str:
    """The plan of the benchmark's query for its first input (EXPLAIN [QUERY PLAN])."""
    params = parameters(bench.kind, bench.cases[0])
    engine = create_engine(url)
    with engine.connect() as connection:
        if dialect == "sqlite":
            rows = connection.execute(text("EXPLAIN QUERY PLAN " + QUERIES[bench.kind]), params)
            lines = [row[-1] for row in rows]
        else:
            rows = connection.execute(
                text("EXPLAIN (ANALYZE, BUFFERS) " + QUERIES[bench.kind]), params
            )
            lines = [row[0] for row in rows]
        connection.rollback()
    engine.dispose()
    return "\n".join(lines)
