"""FHIR API benchmarks (issue 13): ``python -m bench --fhir``.

On a 1,000,000-patient database with one long chart (``bench/chart.py``: 1,000 encounters,
5,000 vital sets), on SQLite and PostgreSQL:

- ``fhir: Patient search by family name`` (p95 ≤ 50 ms) and ``fhir: Patient read``
  (p95 ≤ 20 ms), each beside its SQL floor (the one query the answer needs, timed alone);
- ``fhir: $everything (1,000 encounters, 5,000 vital sets)``: the long chart's whole record,
  every page followed (≤ 1 s);
- ``fhir: bulk export, 1 worker``: a system export of every type run by the worker's own code
  in a process of its own, resources written per second (≥ 20,000/s on PostgreSQL) and the
  process's peak RSS growth over the run (flat: ≤ 64 MB, whatever the export's size);
- ``fhir: import, transaction bundles, 1 client``: Bundles of one patient and their record
  (one patient's record of 50 resources each, mostly vital signs, as a chart is),
  resources imported per second (≥ 500/s).

Requests go through the whole WSGI stack in process (Flask's test client: routing, the token
check, the view, the database, JSON), not through gunicorn: an API client's token comes
from the access layer, which the bench sets up in process (``_token``). The import writes
patients into the database, so the next run seeds it again (its patient count changed).

Until the resource types land (fres, fapi), the rows that need them report "not measurable"
and the export runs over a stand-in Patient type (``StandInPatients``: patients read by
keyset, as the real types read), named so in its row.
"""

from __future__ import annotations

import gc
import json
import multiprocessing
import queue
import random
import resource
import string
import threading
import time
from dataclasses import dataclass, field

import orjson
from sqlalchemy import create_engine, text

from bench import chart, cpu, databases, report, workload
from bench.databases import OUT, ROOT

ROWS = 1_000_000
SEARCHES = 300
READS = 500
EVERYTHING = 10
IMPORT_BUNDLES = 60
WARMUP = 10
TOKEN = "bench-fhir-token"  # noqa: S105 (a bench database's own stand-in credential)
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/fhir+json"}
SEARCH_ROW = "fhir: Patient search by family name"
READ_ROW = "fhir: Patient read"
EVERYTHING_ROW = "fhir: $everything (1,000 encounters, 5,000 vital sets)"
EXPORT_ROW = "fhir: bulk export, 1 worker"
IMPORT_ROW = "fhir: import, transaction bundles, 1 client"


def _app(url: str):
    """The portal on ``url`` with an API client's token and the bench's export folder."""
    from portal.terminology import icd10

    app = databases.app_for(url)
    _token(app)
    # The first request of a process starts building the ICD-10 index in a thread (seconds
    # of CPU); a worker that has served a while has it. Built here, before anything is
    # timed, so the rows measure the FHIR API, not that start-up sharing the process.
    icd10._lazy.index  # noqa: B018 (built on first read)
    app.config["FHIR_BULK_FOLDER"] = str(OUT / "fhir-bulk")
    return app


def _token(app) -> None:
    """Make ``TOKEN`` a valid access token of the API client "Bench" with every system
    scope: real rows (the client, registered as an administrator would, and the token's
    hash, valid for a day), so every request pays the real token check and rate count."""
    from datetime import timedelta

    from sqlalchemy import delete, insert, select

    from portal.actors import SYSTEM
    from portal.auth.models import User
    from portal.extensions import db
    from portal.fhir import clients
    from portal.fhir.models import AUTH_CLIENT_SECRET, ApiClient, ApiToken
    from portal.timeutil import utcnow

    with app.test_request_context():
        client_pk = db.session.scalar(select(ApiClient.id).where(ApiClient.name == "Bench"))
        if client_pk is None:
            responsible = db.session.scalar(select(User.id).order_by(User.id).limit(1))
            client_pk = clients.register_client(
                SYSTEM,
                name="Bench",
                responsible_user_id=responsible,
                scopes=["system/*.read", "system/*.write"],
                auth_method=AUTH_CLIENT_SECRET,
                rate_limit_per_minute=clients.RATE_LIMIT_MAX,
            ).client.id
        token_hash = clients.hash_secret(TOKEN)
        db.session.execute(delete(ApiToken).where(ApiToken.token_hash == token_hash))
        now = utcnow()
        db.session.execute(
            insert(ApiToken).values(
                token_hash=token_hash,
                client_id=client_pk,
                scopes="system/*.read system/*.write",
                issued_at=now,
                expires_at=now + timedelta(days=1),
                revoked=False,
            )
        )
        db.session.commit()


class StandInPatients:
    """Patients as Patient resources read in keyset chunks: the export's load until the
    real Patient type is registered."""

    type = "Patient"
    search_params: dict = {}
    includes: dict = {}
    chunk = 2000

    def stream(self, since, patient_ids):
        from portal.extensions import db

        last = 0
        while True:
            rows = db.session.execute(
                text(
                    "SELECT id, mrn, given_name, family_name, birth_date, sex_at_birth "
                    "FROM patients WHERE id > :last ORDER BY id LIMIT :n"
                ),
                {"last": last, "n": self.chunk},
            ).all()
            if not rows:
                return
            for row in rows:
                yield {
                    "resourceType": "Patient",
                    "id": str(row.id),
                    "identifier": [{"value": row.mrn}],
                    "name": [{"family": row.family_name, "given": [row.given_name]}],
                    "birthDate": str(row.birth_date),
                    "gender": row.sex_at_birth,
                }
            last = rows[-1].id


# --- latency rows ---------------------------------------------------------------------------


@dataclass
class Timed:
    latencies_ms: list[float]
    problems: list[str]
    # This process's CPU time over the timed requests (the app runs in it: the CPU a
    # worker spends per request), and the share of the machine other processes used
    # meanwhile (the database server counts as other: it serves everyone).
    cpu_ms: list[float] = field(default_factory=list)
    other_busy: float | None = None


class _Load:
    """CPU accounting around a timed run: ``with _Load(timed):``."""

    def __init__(self, timed: Timed):
        self.timed = timed

    def __enter__(self):
        self.jiffies, self.cpu = cpu.machine_jiffies(), cpu.own_cpu_seconds()
        return self

    def __exit__(self, *exc):
        ours = cpu.own_cpu_seconds() - self.cpu
        self.timed.other_busy = cpu.other_fraction(self.jiffies, cpu.machine_jiffies(), ours)
        return False


def _time_requests(client, paths: list[str], check) -> Timed:
    timed = Timed([], [])
    for path in paths[:WARMUP]:
        client.get(path, headers=HEADERS).get_data()
    with _Load(timed):
        for path in paths:
            started, cpu_started = time.perf_counter(), time.process_time()
            response = client.get(path, headers=HEADERS)
            body = response.get_data()
            timed.latencies_ms.append((time.perf_counter() - started) * 1000)
            timed.cpu_ms.append((time.process_time() - cpu_started) * 1000)
            problem = check(path, response.status_code, body)
            if problem:
                timed.problems.append(problem)
    return timed


def _floor(url: str, sql: str, params: list[dict]) -> list[float]:
    """The SQL an answer needs, timed alone on a plain connection."""
    engine = create_engine(url)
    samples = []
    try:
        with engine.connect() as connection:
            for index, values in enumerate(params[:WARMUP] + params):
                started = time.perf_counter()
                connection.execute(text(sql), values).all()
                if index >= WARMUP:
                    samples.append((time.perf_counter() - started) * 1000)
    finally:
        engine.dispose()
    return samples


def _row(
    name, label, timed: Timed, stamp, *, rows=ROWS, floor=None, rate=None, **extra
) -> report.Result:
    latencies = timed.latencies_ms
    return report.Result(
        benchmark=name,
        database=label,
        rows=rows,
        requests=len(latencies),
        p50_ms=round(report.percentile(latencies, 50), 2) if latencies else None,
        p95_ms=round(report.percentile(latencies, 95), 2) if latencies else None,
        p99_ms=round(report.percentile(latencies, 99), 2) if latencies else None,
        floor_p95_ms=round(report.percentile(floor, 95), 2) if floor else None,
        date=stamp,
        failures=len(timed.problems),
        first_failure=timed.problems[0] if timed.problems else None,
        throughput_per_s=round(rate, 1) if rate is not None else None,
        worker_cpu_ms=round(sum(timed.cpu_ms) / len(timed.cpu_ms), 1) if timed.cpu_ms else None,
        other_busy=round(timed.other_busy, 2) if timed.other_busy is not None else None,
        **extra,
    )


def _prefix_range(name: str) -> dict:
    from portal.patients.identifiers import search_key

    key = search_key(name)
    return {"low": key, "high": key[:-1] + chr(ord(key[-1]) + 1)}


def measure_reads(target, app, patient_id: int, db_report, stamp: str, log) -> None:
    """Search, read and $everything through the API, beside their SQL floors."""
    client = app.test_client()
    sampled = workload.sample_patients(target.url, max(SEARCHES, READS))
    label = db_report.label

    def bundle_check(path, status, body):
        if status != 200:
            return f"{path}: {status}"
        found = json.loads(body)
        if found.get("resourceType") != "Bundle" or not found.get("entry"):
            return f"{path}: no match"
        return None

    families = [patient.family_name for patient in sampled[:SEARCHES]]
    searched = _time_requests(
        client, [f"/fhir/Patient?family={name}&_count=50" for name in families], bundle_check
    )
    # FHIR's string search matches the start of the name: the floor reads the same index
    # range (the name as a prefix of family_key) for one page.
    floor = _floor(
        target.url,
        "SELECT * FROM patients WHERE family_key >= :low AND family_key < :high "
        "ORDER BY family_key, given_key, birth_date, id LIMIT 50",
        [_prefix_range(name) for name in families],
    )
    db_report.results.append(
        _row(SEARCH_ROW, label, searched, stamp, rows=target.rows, floor=floor)
    )

    def read_check(path, status, body):
        if status != 200 or json.loads(body).get("id") != path.rsplit("/", 1)[1]:
            return f"{path}: {status}"
        return None

    ids = [patient.id for patient in sampled[:READS]]
    read = _time_requests(client, [f"/fhir/Patient/{pid}" for pid in ids], read_check)
    floor = _floor(target.url, "SELECT * FROM patients WHERE id = :id", [{"id": i} for i in ids])
    db_report.results.append(_row(READ_ROW, label, read, stamp, rows=target.rows, floor=floor))

    # Timed: each page's request until its last byte arrived (what a client waits for);
    # reading the Bundle (tens of megabytes of JSON) is the client's own work and is done
    # with the clock stopped, as a client in another process would.
    everything = Timed([], [])
    load = _Load(everything)
    for index in range(EVERYTHING + 2):
        if index == 2:  # two untimed
            load.__enter__()
        wall, cpu_time = 0.0, 0.0
        path, counts = f"/fhir/Patient/{patient_id}/$everything", {}
        while path:
            started, cpu_started = time.perf_counter(), time.process_time()
            response = client.get(path, headers=HEADERS)
            body = response.get_data()
            wall += time.perf_counter() - started
            cpu_time += time.process_time() - cpu_started
            if response.status_code != 200:
                everything.problems.append(f"$everything: {response.status_code}")
                break
            page = orjson.loads(body)
            for entry in page.get("entry", []):
                kind = entry["resource"]["resourceType"]
                counts[kind] = counts.get(kind, 0) + 1
            path = next(
                (link["url"] for link in page.get("link", []) if link["relation"] == "next"), None
            )
            path = path.split("://", 1)[-1].split("/", 1)[-1] if path else None
            path = f"/{path}" if path else None
        if index >= 2:  # two untimed
            everything.latencies_ms.append(wall * 1000)
            everything.cpu_ms.append(cpu_time * 1000)
            if (
                counts.get("Encounter", 0) < chart.ENCOUNTERS
                or counts.get("Observation", 0) < chart.VITALS
            ):
                everything.problems.append(f"$everything incomplete: {counts}")
    load.__exit__(None, None, None)
    floor = _everything_floor(app, patient_id)
    db_report.results.append(
        _row(EVERYTHING_ROW, label, everything, stamp, rows=target.rows, floor=floor)
    )
    for result in db_report.results[-3:]:
        log(
            f"  {result.benchmark}: p50 {result.p50_ms} ms, p95 {result.p95_ms} ms"
            + (f" (floor p95 {result.floor_p95_ms} ms)" if result.floor_p95_ms else "")
            + f", our CPU {result.worker_cpu_ms} ms/request, others {result.other_busy:.0%}"
            + (f"  PROBLEMS: {result.first_failure}" if result.failures else "")
        )


def _everything_floor(app, patient_id: int) -> list[float]:
    """The SQL ``$everything`` needs, timed alone: every source's rows of the patient, each
    read whole with its own statement (no resources built, nothing serialised), the
    Patient row and a DiagnosticReport's results; repeated as the requests were."""
    from portal.extensions import db
    from portal.fhir.catalog import DIRECTORY_TYPES
    from portal.fhir.resources import RESOURCE_TYPES

    samples = []
    with app.app_context():
        statements = [
            source.select().where(type(source).patient_column == patient_id)
            for name, spec in sorted(RESOURCE_TYPES.items())
            if name not in DIRECTORY_TYPES and hasattr(spec, "sources")
            for source in spec.sources
        ]
        for index in range(EVERYTHING + 2):
            started = time.perf_counter()
            db.session.execute(text("SELECT * FROM patients WHERE id = :id"), {"id": patient_id})
            for statement in statements:
                db.session.execute(statement).all()
            if index >= 2:
                samples.append((time.perf_counter() - started) * 1000)
        db.session.remove()
    return samples


# --- bulk export ----------------------------------------------------------------------------


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / 2**20


class _RssSampler(threading.Thread):
    """The process's resident set every 100 ms while an export runs."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.samples: list[float] = []

    def run(self):
        while not self.stop.wait(0.1):
            self.samples.append(_rss_mb())


def _export_child(url: str, answer) -> None:
    """In a process of its own: queue a system export and run it as the worker does."""
    from portal.actors import SYSTEM
    from portal.extensions import db
    from portal.fhir.bulk import export
    from portal.fhir.resources import RESOURCE_TYPES

    app = _app(url)  # its route modules register the resource types
    stand_in = "Patient" not in RESOURCE_TYPES
    if stand_in:
        RESOURCE_TYPES["Patient"] = StandInPatients()
    with app.app_context():
        types = export.exportable_types("system")
        export.start_export(
            SYSTEM,
            "bench",
            "Bench",
            level="system",
            types=types,
            since=None,
            request_url="bench",
        )
        job = export.claim_job("bench")
        before = _rss_mb()
        sampler = _RssSampler()
        sampler.start()
        started = time.perf_counter()
        cpu_before = time.process_time()
        export.run_job(job)
        seconds = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu_before
        sampler.stop.set()
        sampler.join()
        written = db.session.execute(
            text("SELECT resources_written FROM fhir_bulk_export_jobs WHERE id = :id"),
            {"id": job.id},
        ).scalar()
        db.session.remove()
        db.engine.dispose()
    answer.put(
        {
            "resources": written,
            "seconds": seconds,
            "cpu_seconds": cpu_seconds,
            "types": types,
            "stand_in": stand_in,
            "rss_before_mb": before,
            # The resident set's highest point during the run, above where it started.
            "growth_mb": max(0.0, max(sampler.samples, default=before) - before),
        }
    )


def measure_export(target, db_report, stamp: str, log) -> None:
    context = multiprocessing.get_context("spawn")
    answer = context.Queue()
    process = context.Process(target=_export_child, args=(target.url, answer))
    process.start()
    while True:
        try:
            found = answer.get(timeout=5)
            break
        except queue.Empty:
            if not process.is_alive():
                raise RuntimeError(f"the export process ended ({process.exitcode})") from None
    process.join()
    name = EXPORT_ROW + (", stand-in Patient type" if found["stand_in"] else "")
    rate = found["resources"] / found["seconds"]
    result = _row(
        name,
        db_report.label,
        Timed([], [] if found["resources"] else ["nothing exported"]),
        stamp,
        rows=target.rows,
        rate=rate,
        memory_growth_mb=round(found["growth_mb"], 1),
    )
    result.requests = found["resources"]
    db_report.results.append(result)
    db_report.notes.append(
        f"Bulk export: {found['resources']:,} resources of {', '.join(found['types'])} in "
        f"{found['seconds']:.1f} s ({found['resources'] / found['cpu_seconds']:,.0f} per second "
        f"of the worker's own CPU time, {found['cpu_seconds']:.0f} s: the machine was shared); "
        f"the worker process's RSS {found['rss_before_mb']:.0f} MB "
        f"before, peak growth {found['growth_mb']:.1f} MB"
        + (
            "; over a stand-in Patient type (the resource types had not landed)"
            if found["stand_in"]
            else ""
        )
    )
    log(
        f"  {name}: {found['resources']:,} resources in {found['seconds']:.1f} s = "
        f"{rate:,.0f}/s, peak RSS growth {found['growth_mb']:.1f} MB"
    )


# --- import ---------------------------------------------------------------------------------


def _name(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(9)).capitalize()


VITAL_SETS_PER_RECORD = 10
RESOURCES_PER_RECORD = 1 + 2 + 3 + 2 + 4 * VITAL_SETS_PER_RECORD + 2


def import_bundle(rng: random.Random) -> dict:
    """A transaction of one new patient and their record, shaped like a chart: 1 Patient,
    2 allergies, 3 problems, 2 immunizations, 10 sets of vital signs (4 Observations each:
    the blood pressure panel, heart rate, weight, height) and 2 medications: 50 resources,
    most of them vital signs, as in a real record (the long chart: 5,000 sets, 100 problems)."""
    url = f"urn:uuid:{rng.getrandbits(128):032x}"
    ref = {"reference": url}
    vital = [{"coding": [{"code": "vital-signs"}]}]

    def obs(when, code, value, unit, **more):
        return {
            "resourceType": "Observation",
            "status": "final",
            "category": vital,
            "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
            "subject": ref,
            "effectiveDateTime": when,
            **({"valueQuantity": {"value": value, "code": unit}} if value is not None else {}),
            **more,
        }

    def vital_set(number: int) -> list[dict]:
        when = (
            f"{2014 + number}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}T1{rng.randint(0, 9)}:30:00Z"
        )
        panel = [
            {
                "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
                "valueQuantity": {"value": rng.randint(100, 150), "code": "mm[Hg]"},
            },
            {
                "code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
                "valueQuantity": {"value": rng.randint(60, 90), "code": "mm[Hg]"},
            },
        ]
        return [
            obs(when, "85354-9", None, None, component=panel),
            obs(when, "8867-4", rng.randint(55, 95), "/min"),
            obs(when, "29463-7", round(rng.uniform(50, 110), 1), "kg"),
            obs(when, "8302-2", round(rng.uniform(150, 195), 1), "cm"),
        ]

    resources = [
        {
            "resourceType": "Patient",
            "name": [{"family": _name(rng), "given": [_name(rng)]}],
            "gender": rng.choice(["female", "male"]),
            "birthDate": f"{rng.randint(1930, 2005)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}",
        },
        *[
            {
                "resourceType": "AllergyIntolerance",
                "patient": ref,
                "category": [kind],
                "code": {"text": substance},
            }
            for kind, substance in (("food", "Peanut"), ("environment", "Cat dander"))
        ],
        *[
            {
                "resourceType": "Condition",
                "subject": ref,
                "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": c}]},
            }
            for c in ("E11.9", "I10", "J45.909")
        ],
        *[
            {
                "resourceType": "Immunization",
                "status": "completed",
                "patient": ref,
                "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": c}]},
                "occurrenceDateTime": "2020-05-01",
            }
            for c in ("115", "133")
        ],
        *[resource for number in range(VITAL_SETS_PER_RECORD) for resource in vital_set(number)],
        *[
            {
                "resourceType": "MedicationStatement",
                "status": "active",
                "subject": ref,
                "medicationCodeableConcept": {"text": drug},
            }
            for drug in ("Metformin 500 mg tablet", "Lisinopril 10 mg tablet")
        ],
    ]
    entries = [
        {"resource": r, "request": {"method": "POST", "url": r["resourceType"]}} for r in resources
    ]
    entries[0]["fullUrl"] = url
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def measure_import(target, app, db_report, stamp: str, log) -> None:
    client = app.test_client()
    rng = random.Random(13)
    bundles = [json.dumps(import_bundle(rng)) for _ in range(IMPORT_BUNDLES)]
    headers = {**HEADERS, "Content-Type": "application/fhir+json"}
    timed, resources = Timed([], []), 0
    started = time.perf_counter()
    for body in bundles:
        one = time.perf_counter()
        response = client.post("/fhir", data=body, headers=headers)
        timed.latencies_ms.append((time.perf_counter() - one) * 1000)
        if response.status_code != 200:
            timed.problems.append(
                f"{response.status_code}: {response.get_data(as_text=True)[:200]}"
            )
            continue
        resources += len(response.get_json()["entry"])
    seconds = time.perf_counter() - started
    result = _row(
        IMPORT_ROW, db_report.label, timed, stamp, rows=target.rows, rate=resources / seconds
    )
    result.requests = resources
    db_report.results.append(result)
    log(
        f"  {IMPORT_ROW}: {resources:,} resources in {seconds:.1f} s = {resources / seconds:,.0f}/s"
        + (f"  PROBLEMS: {timed.problems[0]}" if timed.problems else "")
    )


# --- the run --------------------------------------------------------------------------------


def measure(target, patient_id: int, db_report, args, stamp: str, log) -> None:
    from portal.fhir.resources import RESOURCE_TYPES

    app = _app(target.url)
    # As wsgi.py does in every deployed web worker: what start-up made is kept out of the
    # collector's full passes (without it, a long Bundle's allocations set off full passes
    # over ~900,000 start-up objects, 100-250 ms each, that no deployed worker makes).
    gc.freeze()
    parts = args.fhir_parts
    if "reads" in parts and "Patient" in RESOURCE_TYPES:
        cpu.wait_for_quiet(args.quiet_wait, 0.5, log)
        measure_reads(target, app, patient_id, db_report, stamp, log)
    elif "reads" in parts:
        db_report.notes.append(
            "Search, read and $everything not measurable: no resource types registered yet."
        )
        log("  search, read, $everything: no resource types registered yet (skipped)")
    if "export" in parts:
        cpu.wait_for_quiet(args.quiet_wait, 0.5, log)
        measure_export(target, db_report, stamp, log)
    if "import" in parts:
        cpu.wait_for_quiet(args.quiet_wait, 0.5, log)
        measure_import(target, app, db_report, stamp, log)
    with app.app_context():
        from portal.extensions import db

        db.engine.dispose()


def main(args, log, stamp: str, info: dict, postgres_version: str | None) -> int:
    """SQLite and (when it answers) PostgreSQL, 1,000,000 patients and the long chart."""
    engines = [] if args.no_sqlite else [("sqlite", info["sqlite"])]
    if postgres_version and not args.no_postgres:
        engines.append(("postgresql", postgres_version))
    reports = []
    for dialect, version in engines:
        db_report = report.DatabaseReport(
            "SQLite" if dialect == "sqlite" else "PostgreSQL", version
        )
        reports.append(db_report)
        rows = args.rows[-1] if args.quick else ROWS
        if dialect == "sqlite":
            target = databases.sqlite_target(rows, "portal-fhir")
        else:
            target = databases.postgres_target(args.postgres, rows, "portal_bench_fhir")
        log(f"\n== {db_report.label}: FHIR API, {rows:,} patients")
        databases.ensure_seeded(target, args.postgres, reseed=args.reseed, log=log)
        meta = chart.ensure_chart(target, log=log)
        db_report.seeding.append(
            f"{rows:,} patients and one chart of {chart.ENCOUNTERS:,} encounters and "
            f"{chart.VITALS:,} vital sets"
        )
        measure(target, meta["patient_id"], db_report, args, stamp, log)
    settings = (
        "in process through Flask's test client (the WSGI stack: routing, token check, view, "
        f"database, JSON; no gunicorn); {SEARCHES} searches, {READS} reads, {EVERYTHING} "
        f"$everything after {WARMUP} untimed; export: one worker process (spawned), a system "
        f"export of every type; import: {IMPORT_BUNDLES} transaction Bundles of "
        f"{RESOURCES_PER_RECORD} resources (a patient and their record), "
        "one after the other"
    )
    text_ = report.markdown(stamp, info, settings, reports, [])
    text_ = text_.replace(f"## {stamp}", f"## {stamp}: FHIR API", 1)
    if args.quick:
        md_path, json_path = OUT / "quick-RESULTS.md", OUT / "quick-results.json"
    else:
        md_path, json_path = ROOT / "bench" / "RESULTS.md", ROOT / "bench" / "results.json"
    all_results = [result for db_report in reports for result in db_report.results]
    report.append_markdown(md_path, text_)
    report.write_json(json_path, all_results, keep=True)
    log("\n" + text_)
    log(f"Written: {md_path.relative_to(ROOT)}, {json_path.relative_to(ROOT)}")
    failures = report.failing(all_results)
    if failures:
        log(f"{len(failures)} row(s) failed their budget or gave wrong answers.")
        return 1
    return 0
