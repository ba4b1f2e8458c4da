"""Prescription composing benchmark (issue 11, section 9: "the prescribe page p95 <= 80 ms;
drug search p95 <= 30 ms (local catalog)").

``python -m bench.rx_compose`` measures, for a patient with 30 active medications, 10
allergies and 200 past prescriptions (the chart of ``bench.rx_safety``), signed in as a
prescriber through the real form (password and TOTP):

1. the compose page of a draft with lisinopril chosen (``GET /prescriptions/<id>``: the
   draft, the patient banner, the forms, the safety panel run on the server);
2. drug search as you type on the local catalog (``POST /prescriptions/<id>/drugs``,
   "lisino", no connector enabled);
3. an autosave of the SIG builder and details (``POST /prescriptions/<id>/draft``: the save,
   the preview and the safety panel run again);

4. the patient's prescriptions page (``GET /patients/<id>/prescriptions``: the drafts, the
   active and the past prescriptions with their states, pharmacies, refills and fills);

each beside its SQL floor (the SELECTs the request ran, replayed on the connection without
the ORM, the templates or the checks). Requests go through Flask's test client in process
(no HTTP server): what is measured is the portal's own work. The chart is added to the rx
benches' registry of 1,000,000 patients (``bench.rx_safety.registry_url``), with no
e-prescribing connector enabled (the sign-and-queue bench enables one on the same database
while it runs and turns it off again). Results go to bench/RESULTS.md and bench/results.json
(``--quick``: bench/out/, among 10,000 patients).
"""

from __future__ import annotations

import argparse
import re
import time
from datetime import UTC, datetime

import pyotp
from sqlalchemy import event, select

from bench import report, rx_safety
from bench.chart import CLINICIAN, CLINICIAN_TOTP, _ensure_clinician
from bench.databases import (
    BENCH_PASSWORD,
    DEFAULT_POSTGRES_SERVER,
    OUT,
    ROOT,
    app_for,
    postgres_reachable,
)

BUDGETS_MS = {"page": 80.0, "search": 30.0, "autosave": None, "list": 80.0}
NAMES = {
    "page": "rx compose: the prescribe page (30 medications, 10 allergies, 200 past prescriptions)",
    "search": "rx compose: drug search as you type (local catalog)",
    "autosave": "rx compose: draft autosave with the safety panel",
    "list": "rx: the prescriptions page (200 past prescriptions)",
}
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
VERSION = re.compile(r'id="draft-version" value="(\d+)"')
LISINOPRIL_10 = "314076"


def log(message: str) -> None:
    print(message, flush=True)


def _csrf(page: str) -> str:
    match = CSRF_META.search(page)
    if not match:
        raise RuntimeError("no CSRF token on the page")
    return match.group(1)


def _signed_in(app):
    client = app.test_client()
    token = _csrf(client.get("/auth/sign-in").get_data(as_text=True))
    answer = client.post(
        "/auth/sign-in",
        data={"csrf_token": token, "username": CLINICIAN, "password": BENCH_PASSWORD},
    )
    if "second-factor" not in answer.headers.get("Location", ""):
        raise RuntimeError(f"sign-in answered {answer.status_code}")
    token = _csrf(client.get("/auth/second-factor").get_data(as_text=True))
    client.post(
        "/auth/second-factor", data={"csrf_token": token, "code": pyotp.TOTP(CLINICIAN_TOTP).now()}
    )
    return client, _csrf(client.get("/").get_data(as_text=True))


def measure(
    url: str,
    label: str,
    requests: int,
    stamp: str,
    quiet_wait: float = 0.0,
    rows: int = rx_safety.REGISTRY_ROWS,
):
    from portal.extensions import db

    knowledge, which = rx_safety.knowledge_for_bench()
    patient_id = rx_safety._prepare(url, knowledge)
    set_connector_enabled(url, False)  # the local catalog: a crashed sign run may have left it
    _ensure_clinician(url)
    app = app_for(url)
    client, token = _signed_in(app)
    headers = {"HX-Request": "true", "X-CSRFToken": token}
    answer = client.post(f"/patients/{patient_id}/prescriptions/new", data={"csrf_token": token})
    draft_id = int(answer.headers["Location"].rsplit("/", 1)[1])
    client.post(
        f"/prescriptions/{draft_id}/drug",
        data={"csrf_token": token, "choice": f"rxcui:{LISINOPRIL_10}"},
    )
    page = client.get(f"/prescriptions/{draft_id}").get_data(as_text=True)
    version = [int(VERSION.search(page).group(1))]
    fields = {
        "sig-dose_amount": "1",
        "sig-dose_unit": "tablet",
        "sig-route": "oral",
        "sig-frequency": "once_daily",
        "sig-duration_amount": "30",
        "sig-duration_unit": "days",
        "rx-quantity": "30",
        "rx-dispense_unit": "tablet",
        "rx-refills": "0",
    }

    def compose_page():
        answer = client.get(f"/prescriptions/{draft_id}")
        assert answer.status_code == 200, answer.status_code

    def search():
        answer = client.post(
            f"/prescriptions/{draft_id}/drugs", data={"drug_query": "lisino"}, headers=headers
        )
        assert answer.status_code == 200 and b"lisinopril" in answer.data

    def autosave():
        answer = client.post(
            f"/prescriptions/{draft_id}/draft",
            data={**fields, "version": str(version[0])},
            headers=headers,
        )
        assert answer.status_code == 200, answer.status_code
        version[0] = int(VERSION.search(answer.get_data(as_text=True)).group(1))

    def prescriptions_page():
        answer = client.get(f"/patients/{patient_id}/prescriptions")
        assert answer.status_code == 200 and b"spironolactone" in answer.data, answer.status_code

    results, notes = [], {"knowledge": which}
    calls = (
        ("page", compose_page),
        ("search", search),
        ("autosave", autosave),
        ("list", prescriptions_page),
    )
    for kind, call in calls:
        statements = _statements_of(app, db, call)
        notes[f"{kind} SELECTs"] = len(statements)

        def floor(statements=statements):
            with app.app_context(), db.engine.connect() as connection:
                cursor = connection.connection.driver_connection.cursor()
                for statement, parameters in statements:
                    cursor.execute(statement, parameters)
                    cursor.fetchall()
                cursor.close()
                connection.rollback()

        row = rx_safety._result(
            NAMES[kind],
            label,
            rx_safety._timed(call, requests, quiet_wait),
            rx_safety._timed(floor, requests),
            stamp,
            rows,
        )
        results.append(row)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    return results, notes


def set_connector_enabled(url: str, enabled: bool) -> None:
    """Turn the bench clinic's DoseSpot setting on or off (when there is one): composing is
    measured on the local catalog, signing with a connector that queues every send."""
    app = app_for(url)
    with app.app_context():
        from portal.extensions import db
        from portal.integrations.models import ConnectorSetting

        for setting in db.session.scalars(
            select(ConnectorSetting).where(ConnectorSetting.connector == "dosespot")
        ):
            setting.enabled = enabled
        db.session.commit()
        db.session.remove()
        db.engine.dispose()


def _statements_of(app, db, call) -> list:
    """The SELECTs one request runs (the floor replays them)."""
    captured = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT"):
            captured.append((statement, parameters))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", capture)
    try:
        call()
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    return captured


def _budget(name: str) -> float | None:
    return next((BUDGETS_MS[k] for k, v in NAMES.items() if v == name), None)


def markdown(stamp: str, info: dict, sections) -> str:
    lines = [
        f"\n## Prescription composing, {stamp}\n",
        f"{info['cpu']}, {info['cores']} cores, load before {info['load']}. Flask's test "
        "client in process, signed in as a prescriber; one patient with 30 active "
        "medications, 10 allergies, 200 past prescriptions, "
        f"{rx_safety.among(sections)}; lisinopril chosen.\n",
        "| benchmark | database | p50 ms | p95 ms | p99 ms | SQL floor p95 ms | our CPU ms/call "
        "| others' CPU | budget | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, results, notes in sections:
        for r in results:
            budget = _budget(r.benchmark)
            verdict = "—" if budget is None else ("pass" if r.p95_ms <= budget else "**FAIL**")
            lines.append(
                f"| {r.benchmark} | {label} | {r.p50_ms} | {r.p95_ms} | {r.p99_ms} | "
                f"{r.floor_p95_ms} | {r.worker_cpu_ms} | {r.other_busy:.0%} | "
                f"{f'≤ {budget:g}' if budget else '—'} | {verdict} |"
            )
        lines.append(f"\n{label}: {notes}\n")
    return "\n".join(lines) + "\n"


def main(args, log_, stamp: str, info: dict, postgres_version: str | None) -> int:
    engines = []
    if not args.no_sqlite:
        engines.append("SQLite")
    if postgres_version:
        engines.append("PostgreSQL")
    sections, all_results = [], []
    for label in engines:
        log_(f"\n== {label}: prescription composing")
        url = rx_safety.registry_url(label, args, log_)
        rows = rx_safety.registry_rows(args)
        results, notes = measure(url, label, args.requests, stamp, args.quiet_wait, rows)
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
        (budget := _budget(r.benchmark)) is not None and r.p95_ms > budget for r in all_results
    )
    return 1 if failed else 0


def cli(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES_SERVER)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--quiet-wait", type=float, default=0.0)
    parser.add_argument("--reseed", action="store_true", help="seed the registry again")
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    version = None if args.no_postgres else postgres_reachable(args.postgres)
    started = time.perf_counter()
    code = main(args, log, stamp, report.machine(), version)
    log(f"Total time {time.perf_counter() - started:.0f} s.")
    return code


if __name__ == "__main__":
    raise SystemExit(cli())
