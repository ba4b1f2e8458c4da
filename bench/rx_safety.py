"""Prescription safety checks benchmark (issue 11, section 9: "the safety checks <= 10 ms in
process").

``python -m bench --rx-safety`` (or ``python -m bench.rx_safety``) measures, for a patient
with 30 active medications, 10 allergies and 200 past prescriptions:

1. ``safety.check_prescription`` in process: the allergy, duplicate-therapy, interaction and
   patient checks of one drug against that context (budget: p95 <= 10 ms), for several
   drugs (lisinopril, which many shipped rules name; simvastatin; ibuprofen; cephalexin);
2. ``safety.patient_context``: the chart read the checks stand on (two queries), on SQLite
   and PostgreSQL, beside its SQL floor (the same two statements run on the connection,
   without the ORM and without building the context).

The drug knowledge is rxdrugs' shipped one (``portal.terminology.drugs.knowledge()``) when
it is installed; otherwise a stand-in built here from the shipped interaction rules and
allergy classes (every rule ingredient as a product; classes from the rule groups), with
the same reads (dictionary lookups): the row's name says which ran.

The patient's chart is added, on every run, to a registry of 1,000,000 patients seeded by
``bench.databases`` (``bench/out/sqlite/portal-rx-1000000.sqlite`` and ``portal_bench_rx`` on
PostgreSQL; reused while its seed fingerprint matches), the size issue 11 sets the budgets at.
Each run's patient is new, so it has exactly the chart above (signed prescriptions of earlier
runs are immutable and stay with earlier runs' patients). Results go to bench/RESULTS.md and
bench/results.json (``--quick``: bench/out/, on a registry of 10,000).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import text

from bench import cpu, databases, report
from bench.databases import DEFAULT_POSTGRES_SERVER, OUT, ROOT, app_for, postgres_reachable

BUDGET_MS = 10.0
REGISTRY_ROWS = 1_000_000  # patients in the registry the chart is added to
QUICK_REGISTRY_ROWS = 10_000
SQLITE_PREFIX = "portal-rx"  # bench/out/sqlite/portal-rx-<rows>.sqlite
POSTGRES_PREFIX = "portal_bench_rx"  # portal_bench_rx (1M), portal_bench_rx_<rows> otherwise
# The tables the chart is written to: analysed after seeding it (not the whole registry).
CHART_TABLES = ("patients", "medications", "allergies", "prescriptions", "vital_signs")
ACTIVE = (
    "spironolactone", "atorvastatin", "metoprolol", "hydrochlorothiazide", "amlodipine",
    "warfarin", "omeprazole", "levothyroxine", "sertraline", "metformin", "glipizide",
    "prednisone", "alendronate", "calcium carbonate", "ferrous sulfate", "folic acid",
    "methotrexate", "clopidogrel", "aspirin", "acetaminophen", "losartan", "furosemide",
    "tramadol", "alprazolam", "zolpidem", "donepezil", "cyanocobalamin", "niacin",
    "ondansetron", "fluticasone",
)  # fmt: skip
ALLERGIES = (
    ("drug_class", "Penicillins", None, "ATC:J01C"),
    ("drug_class", "Sulfonamide antibiotics", None, "PORTAL:sulfonamide-antibiotics"),
    ("drug", "codeine", "2670", None),
    ("drug", "ciprofloxacin", "2551", None),
    ("drug", "carbamazepine", "2002", None),
    ("drug", "vancomycin", "11124", None),
    ("drug", "morphine", "7052", None),
    ("food", "peanut", None, None),
    ("food", "shellfish", None, None),
    ("environmental", "latex", None, None),
)
PRESCRIBED = ("lisinopril", "simvastatin", "ibuprofen", "cephalexin")
PAST_PRESCRIPTIONS = 200


def log(message: str) -> None:
    print(message, flush=True)


# --- a stand-in knowledge, until rxdrugs' catalog is installed -------------------------------


@dataclass(frozen=True)
class _Product:
    rxcui: str
    name: str
    strength: str
    dose_form: str
    route: str
    schedule: int | None
    ingredient_rxcuis: tuple[str, ...]
    ingredient_names: tuple[str, ...]
    ndc: str | None
    tty: str


@dataclass(frozen=True)
class _Class:
    code: str
    name: str
    system: str


@dataclass(frozen=True)
class _Group:
    code: str
    name: str
    note: str | None = None


class StandInKnowledge:
    """Every ingredient of the shipped interaction rules as a product; its classes are the
    rule groups it is in; allergy groups are the shipped allergy classes."""

    def __init__(self):
        from portal.terminology import allergy_classes
        from portal.terminology.interactions import shipped_rules

        rules = shipped_rules()
        self.names: dict[str, str] = {}
        self.classes: dict[str, list[_Class]] = {}
        for rule in rules.rules:
            for side in (rule.a, rule.b):
                for member in side.members:
                    self.names[member.rxcui] = member.name
                    if side.group:
                        found = self.classes.setdefault(member.rxcui, [])
                        if all(c.code != side.group for c in found):
                            found.append(_Class(side.group, side.name, "bench"))
        extra = {"lisinopril": "29046", "cephalexin": "2231", "amoxicillin": "723"}
        extra |= {"vancomycin": "11124", "codeine": "2670", "morphine": "7052"}
        extra |= {"metformin": "6809", "furosemide": "4603", "zolpidem": "39993"}
        extra |= {"donepezil": "135447"}
        for name, code in extra.items():
            self.names.setdefault(code, name)
        self.by_name = {name.lower(): code for code, name in self.names.items()}
        self.groups = {
            code: [_Group(c.code, c.name, c.note) for c in allergy_classes.classes_containing(name)]
            for code, name in self.names.items()
        }
        self.cross = {"ATC:J01C": [_Group("PORTAL:cephalosporins", "Cephalosporins")]}
        self.cross["PORTAL:cephalosporins"] = [_Group("ATC:J01C", "Penicillins")]

    def product(self, rxcui):
        name = self.names.get(rxcui)
        if name is None:
            return None
        return _Product(
            rxcui, name, "", "Oral Tablet", "oral", None, (rxcui,), (name,), None, "SCD"
        )

    def search(self, text, limit=20):
        return []

    def classes_of(self, ingredient_rxcui):
        return self.classes.get(ingredient_rxcui, [])

    def allergy_groups_of(self, ingredient_rxcui):
        return self.groups.get(ingredient_rxcui, [])

    def cross_sensitive_groups(self, group_code):
        return self.cross.get(group_code, [])

    def ingredient_by_name(self, name):
        return self.by_name.get((name or "").strip().lower())


def product_of(knowledge, ingredient_name: str):
    """A single-ingredient product of the ingredient: the knowledge's own search (the shipped
    catalog's products are SCD/SBD concepts, not ingredients)."""
    code = knowledge.ingredient_by_name(ingredient_name)
    for product in knowledge.search(ingredient_name, 50):
        if tuple(product.ingredient_rxcuis) == (code,):
            return product
    return knowledge.product(code)  # the stand-in: its products are its ingredients


def knowledge_for_bench():
    """(knowledge, its label): rxdrugs' shipped knowledge when installed, else the stand-in."""
    try:
        from portal.terminology import drugs

        return drugs.knowledge(), "shipped knowledge"
    except ImportError:
        return StandInKnowledge(), "stand-in knowledge"


# --- the chart -------------------------------------------------------------------------------


def _prepare(url: str, knowledge) -> int:
    """A new patient with the bench chart in the (migrated) database; returns its id."""
    from flask_migrate import upgrade
    from sqlalchemy import select

    from portal.charting.models import Allergy, Medication, VitalSigns
    from portal.extensions import db
    from portal.patients.identifiers import new_mrn, search_key
    from portal.patients.models import Patient
    from portal.prescriptions.models import Prescription
    from portal.timeutil import utcnow

    app = app_for(url)
    with app.app_context():
        upgrade()
        mrn = new_mrn()
        while db.session.scalar(select(Patient.id).where(Patient.mrn == mrn)) is not None:
            mrn = new_mrn()  # a random MRN may already be one of the registry's million
        patient = Patient(
            mrn=mrn,
            given_name="Bench",
            family_name="Safety",
            given_key=search_key("Bench"),
            family_key=search_key("Safety"),
            birth_date=date(1950, 6, 1),
            sex_at_birth="female",
        )
        db.session.add(patient)
        db.session.flush()
        now = utcnow()
        for name in ACTIVE:
            db.session.add(
                Medication(
                    patient_id=patient.id, drug=name, rxnorm_code=knowledge.ingredient_by_name(name)
                )
            )
        for kind, substance, code, class_code in ALLERGIES:
            db.session.add(
                Allergy(
                    patient_id=patient.id,
                    substance_kind=kind,
                    substance=substance,
                    rxnorm_code=code,
                    drug_class_code=class_code,
                )
            )
        for n in range(PAST_PRESCRIPTIONS):
            name = ACTIVE[n % len(ACTIVE)]
            db.session.add(
                Prescription(
                    patient_id=patient.id,
                    connector="dosespot",
                    vendor_id=f"bench-{patient.id}-{n}",
                    drug=name,
                    rxcui=knowledge.ingredient_by_name(name),
                    status="Completed",
                    fhir_status="completed",
                    written_on=(now - timedelta(days=7 * n)).date(),
                )
            )
        db.session.add(
            VitalSigns(patient_id=patient.id, taken_at=now, weight_kg=70.0, height_cm=165.0)
        )
        db.session.commit()
        if url.startswith("postgresql"):
            for table in CHART_TABLES:  # the planner's statistics, as autovacuum would soon
                db.session.execute(text(f"ANALYZE {table}"))
            db.session.commit()
        patient_id = patient.id
        db.session.remove()
        db.engine.dispose()
    return patient_id


QUIET_THRESHOLD = 0.5


@dataclass
class Timing:
    """Wall-clock samples (ms), and the CPU this process used per call and the share of the
    machine other processes used meanwhile: on a shared machine the wall-clock tail is mostly
    other people's work, the CPU per call is ours alone."""

    samples: list[float]
    cpu_ms_per_call: float
    other_busy: float


def _timed(call, count: int, quiet_wait: float = 0.0) -> Timing:
    if quiet_wait:
        cpu.wait_for_quiet(quiet_wait, QUIET_THRESHOLD, log)
    for _ in range(min(20, count)):  # warm-up: caches, compiled statements, connections
        call()
    samples = []
    machine_before, cpu_before = cpu.machine_jiffies(), time.process_time()
    for _ in range(count):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    ours = time.process_time() - cpu_before
    other = cpu.other_fraction(machine_before, cpu.machine_jiffies(), ours)
    return Timing(samples, round(ours / count * 1000, 3), round(other, 2))


def registry_url(label: str, args, log_) -> str:
    """The URL of the bench registry (1,000,000 patients; ``--quick``: 10,000) on SQLite or
    PostgreSQL, seeded by ``bench.databases`` unless a database with the same fingerprint is
    there already; the rx benches add their patient's chart to it."""
    rows = registry_rows(args)
    if label == "SQLite":
        target = databases.sqlite_target(rows, SQLITE_PREFIX)
    else:
        target = databases.postgres_target(args.postgres, rows, POSTGRES_PREFIX)
    databases.ensure_seeded(
        target,
        args.postgres,
        reseed=getattr(args, "reseed", False),
        log=log_,
        added_patients=True,
    )
    return target.url


def registry_rows(args) -> int:
    return QUICK_REGISTRY_ROWS if getattr(args, "quick", False) else REGISTRY_ROWS


def _result(name: str, database: str, timing: Timing, floor: Timing | None, stamp, rows: int):
    samples = timing.samples
    return report.Result(
        benchmark=name,
        database=database,
        rows=rows,
        requests=len(samples),
        p50_ms=round(report.percentile(samples, 50), 3),
        p95_ms=round(report.percentile(samples, 95), 3),
        p99_ms=round(report.percentile(samples, 99), 3),
        floor_p95_ms=round(report.percentile(floor.samples, 95), 3) if floor else None,
        date=stamp,
        worker_cpu_ms=timing.cpu_ms_per_call,
        other_busy=timing.other_busy,
    )


def measure(
    url: str,
    label: str,
    requests: int,
    stamp: str,
    quiet_wait: float = 0.0,
    rows: int = REGISTRY_ROWS,
) -> tuple[list[report.Result], dict]:
    from sqlalchemy import event

    from portal.extensions import db
    from portal.prescriptions import safety

    knowledge, which = knowledge_for_bench()
    patient_id = _prepare(url, knowledge)
    app = app_for(url)
    results: list[report.Result] = []
    notes: dict = {"knowledge": which}
    with app.app_context():
        context = safety.patient_context(patient_id)
        notes["active"] = len(context.active)
        notes["allergies"] = len(context.allergies)
        # The floor: the same two statements, compiled once, run on the connection.
        captured = []

        def capture(conn, cursor, statement, parameters, context_, executemany):
            if statement.lstrip().upper().startswith("SELECT"):
                captured.append((statement, parameters))

        event.listen(db.engine, "before_cursor_execute", capture)
        safety.patient_context(patient_id)
        event.remove(db.engine, "before_cursor_execute", capture)
        db.session.rollback()

        def read_context():
            safety.patient_context(patient_id)
            db.session.rollback()

        def floor():
            with db.engine.connect() as connection:
                raw = connection.connection.driver_connection
                cursor = raw.cursor()
                for statement, parameters in captured:
                    cursor.execute(statement, parameters)
                    cursor.fetchall()
                cursor.close()
                connection.rollback()

        read_context()
        floor()
        results.append(
            _result(
                "rx safety: patient context (30 medications, 10 allergies, 200 past prescriptions)",
                label,
                _timed(read_context, requests, quiet_wait),
                _timed(floor, requests),
                stamp,
                rows,
            )
        )
        for name in PRESCRIBED:
            product = product_of(knowledge, name)
            alerts = safety.check_prescription(context, product, knowledge=knowledge)
            notes[f"alerts for {name}"] = [f"{a.kind}/{a.severity}" for a in alerts]
            # A check that could not run is fast and wrong: such a row must not pass.
            failed = [a for a in alerts if a.kind == safety.KNOWLEDGE_UNAVAILABLE]
            timing = _timed(
                lambda p=product: safety.check_prescription(context, p, knowledge=knowledge),
                requests,
                quiet_wait,
            )
            row = _result(
                f"rx safety: checks in process, {name} ({which})", label, timing, None, stamp, rows
            )
            if failed:
                row.failures, row.first_failure = len(failed), failed[0].evidence[0]
            results.append(row)
        db.session.remove()
        db.engine.dispose()
    return results, notes


def among(sections) -> str:
    """ "among 1,000,000 patients": the registry the rows of a report were measured in."""
    sizes = sorted({r.rows for _label, results, _notes in sections for r in results})
    return "among " + " and ".join(f"{rows:,}" for rows in sizes) + " patients"


def markdown(stamp: str, info: dict, sections: list[tuple[str, list, dict]]) -> str:
    lines = [
        f"\n## Prescription safety checks, {stamp}\n",
        f"{info['cpu']}, {info['cores']} cores, load before {info['load']}. In process, one "
        f"patient with 30 active medications, 10 allergies, 200 past prescriptions, "
        f"{among(sections)}. Budget: the checks p95 ≤ {BUDGET_MS:.0f} ms.\n",
        "| benchmark | database | p50 ms | p95 ms | p99 ms | SQL floor p95 ms | our CPU ms/call "
        "| others' CPU | budget | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, results, notes in sections:
        for r in results:
            is_check = "checks in process" in r.benchmark
            verdict = ("pass" if r.p95_ms <= BUDGET_MS else "**FAIL**") if is_check else "—"
            if r.failures:
                verdict = f"INVALID ({r.first_failure})"
            floor = f"{r.floor_p95_ms}" if r.floor_p95_ms is not None else "—"
            budget = f"≤ {BUDGET_MS:.0f}" if is_check else "—"
            lines.append(
                f"| {r.benchmark} | {label} | {r.p50_ms} | {r.p95_ms} | {r.p99_ms} | {floor} | "
                f"{r.worker_cpu_ms} | {r.other_busy:.0%} | {budget} | {verdict} |"
            )
        lines.append(f"\n{label}: {notes}\n")
    return "\n".join(lines) + "\n"


def main(args, log_, stamp: str, info: dict, postgres_version: str | None) -> int:
    """Measure SQLite (unless --no-sqlite) and PostgreSQL (when it answers); report."""
    engines = []
    if not getattr(args, "no_sqlite", False):
        engines.append("SQLite")
    if postgres_version:
        engines.append("PostgreSQL")
    sections, all_results = [], []
    for label in engines:
        log_(f"\n== {label}: prescription safety checks")
        quiet = getattr(args, "quiet_wait", 0) or 0
        url = registry_url(label, args, log_)
        results, notes = measure(url, label, args.requests, stamp, quiet, registry_rows(args))
        sections.append((label, results, notes))
        all_results += results
        for r in results:
            log_(f"  {r.benchmark}: p50 {r.p50_ms} ms, p95 {r.p95_ms} ms, floor {r.floor_p95_ms}")
    text_ = markdown(stamp, info, sections)
    if args.quick:
        md_path, json_path = OUT / "quick-RESULTS.md", OUT / "quick-results.json"
    else:
        md_path, json_path = ROOT / "bench" / "RESULTS.md", ROOT / "bench" / "results.json"
    report.append_markdown(md_path, text_)
    report.write_json(json_path, all_results, keep=True)
    log_("\n" + text_)
    log_(f"Written: {md_path.relative_to(ROOT)}, {json_path.relative_to(ROOT)}")
    failed = any(
        r.failures or r.p95_ms > BUDGET_MS
        for r in all_results
        if "checks in process" in r.benchmark
    )
    return 1 if failed else 0


def cli(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES_SERVER)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--quiet-wait", type=float, default=45.0)
    parser.add_argument("--reseed", action="store_true", help="seed the registry again")
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    version = None if args.no_postgres else postgres_reachable(args.postgres)
    return main(args, log, stamp, report.machine(), version)


if __name__ == "__main__":
    sys.exit(cli())
