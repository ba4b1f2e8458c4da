"""Sign-and-queue benchmark (issue 11, section 9: "sign-and-queue p95 <= 100 ms").

``python -m bench.rx_sign`` measures the signing use case
(``portal.prescriptions.signing.services._sign``: the patient locked, the draft re-read, the
safety checks again, the conditional UPDATE with the digest, the send in the outbox, the
medication list, the audit events) for the patient of ``bench.rx_safety`` (30 active
medications, 10 allergies, 200 past prescriptions), with an e-prescribing connector enabled
so every signing queues its send. Each sample signs a fresh draft (made before the clock
starts). The prescriber's factors are not in the sample: a TOTP code is good once per 30 s
step, and confirming it is its own use case (one row update and an audit event).

Beside it, the floor: the reads the use case makes (captured from one signing, replayed on
the connection without the ORM). The chart is added to the rx benches' registry of 1,000,000
patients (``bench.rx_safety.registry_url``); the connector is enabled there for the run and
turned off after it (composing is measured on the local catalog). Results go to
bench/RESULTS.md and bench/results.json (``--quick``: bench/out/, among 10,000 patients).
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from sqlalchemy import event, select

from bench import report
from bench.databases import DEFAULT_POSTGRES_SERVER, OUT, ROOT, app_for, postgres_reachable
from bench.rx_compose import set_connector_enabled
from bench.rx_safety import (
    _prepare,
    _result,
    _timed,
    among,
    knowledge_for_bench,
    log,
    registry_rows,
    registry_url,
)

BUDGET_MS = 100.0
NAME = "rx sign and queue (30 medications, 10 allergies, 200 past prescriptions)"
LISINOPRIL = {
    "drug": "lisinopril 10 MG Oral Tablet",
    "rxcui": "314076",
    "ingredient_rxcuis": "29046",
    "strength": "10 MG",
    "dose_form": "Oral Tablet",
    "route": "oral",
    "directions": "Take 1 tablet by mouth once daily for 30 days",
    "quantity": "30",
    "dispense_unit": "tablet",
    "days_supply": 30,
    "refills": "2",
    "pharmacy_id": "3001",
}


def _setup(url: str, patient_id: int, drafts: int):
    """A prescriber linked to the connector, DoseSpot enabled, ``drafts`` drafts to sign."""
    from portal.auth.models import User
    from portal.clinic.models import Clinic
    from portal.extensions import db
    from portal.integrations.models import ConnectorSetting, ExternalId
    from portal.prescriptions.models import Prescription
    from portal.timeutil import utcnow

    app = app_for(url)
    with app.app_context():
        now = utcnow()
        user = db.session.scalars(select(User).filter_by(username="bench-rx")).first()
        if user is None:
            # Never signs in: the factors are not part of the sample.
            user = User(
                username="bench-rx",
                full_name="Bench Prescriber",
                password_hash="!",  # noqa: S106  (no password: it never signs in)
            )
            user.set_roles(["prescriber"])
            db.session.add(user)
            db.session.flush()
            clinic_id = db.session.scalar(select(Clinic.id).limit(1))
            if clinic_id is None:
                clinic = Clinic(name="Bench clinic")
                db.session.add(clinic)
                db.session.flush()
                clinic_id = clinic.id
            if (
                db.session.scalar(
                    select(ConnectorSetting.id).where(
                        ConnectorSetting.clinic_id == clinic_id,
                        ConnectorSetting.connector == "dosespot",
                    )
                )
                is None
            ):
                db.session.add(
                    ConnectorSetting(
                        clinic_id=clinic_id,
                        connector="dosespot",
                        values={},
                        secrets={},
                        enabled=True,
                        enabled_at=now,
                        updated_at=now,
                    )
                )
            db.session.add(
                ExternalId(
                    connector="dosespot",
                    kind="clinician",
                    local_id=user.id,
                    external_id="2001",
                    created_at=now,
                    updated_at=now,
                )
            )
        for setting in db.session.scalars(
            select(ConnectorSetting).where(ConnectorSetting.connector == "dosespot")
        ):
            setting.enabled = True  # every signing queues its send (off again after the run)
        ids = []
        for _ in range(drafts):
            rx = Prescription(
                patient_id=patient_id,
                origin="portal",
                state="draft",
                fhir_status="draft",
                prescriber_id=user.id,
                **LISINOPRIL,
            )
            db.session.add(rx)
            db.session.flush()
            ids.append(rx.id)
        db.session.commit()
        user_id = user.id
        db.session.remove()
    return app, user_id, ids


def _overrides_for(app, actor, rx_id: int) -> dict:
    """A reason for every alert that needs one (the bench signs, it does not stop)."""
    from portal.prescriptions.signing import services as signing

    view = signing.signing_view(actor, rx_id)
    return {
        alert.code: signing.Override("will_monitor")
        for alert in view.alerts
        if alert.needs_override
    }


def measure(url: str, label: str, requests: int, stamp: str, quiet_wait: float, rows: int):
    """Sign and queue with the connector on; it is off again afterwards, whatever happens."""
    try:
        return _measure(url, label, requests, stamp, quiet_wait, rows)
    finally:
        set_connector_enabled(url, False)


def _measure(url: str, label: str, requests: int, stamp: str, quiet_wait: float, rows: int):
    from portal.actors import Actor
    from portal.auth.models import User
    from portal.extensions import db
    from portal.prescriptions.signing import services as signing

    knowledge, which = knowledge_for_bench()
    patient_id = _prepare(url, knowledge)
    warm = min(20, requests)
    app, user_id, drafts = _setup(url, patient_id, 2 * (requests + warm) + 1)
    with app.test_request_context():
        actor = Actor.for_user(db.session.get(User, user_id), "bench")
        overrides = _overrides_for(app, actor, drafts[0])
        queue = iter(drafts)
        captured = []

        def capture(conn, cursor, statement, parameters, context_, executemany):
            if statement.lstrip().upper().startswith("SELECT") and "FOR UPDATE" not in statement:
                captured.append((statement, parameters))

        event.listen(db.engine, "before_cursor_execute", capture)
        signing._sign(actor, next(queue), None, overrides, controlled=False)
        event.remove(db.engine, "before_cursor_execute", capture)

        def sign_one():
            signed = signing._sign(actor, next(queue), None, overrides, controlled=False)
            assert signed.queued

        def floor():
            with db.engine.connect() as connection:
                cursor = connection.connection.driver_connection.cursor()
                for statement, parameters in captured:
                    cursor.execute(statement, parameters)
                    cursor.fetchall()
                cursor.close()
                connection.rollback()

        timing = _timed(sign_one, requests, quiet_wait)
        floor_timing = _timed(floor, requests)
        notes = {
            "knowledge": which,
            "overrides per signing": len(overrides),
            "reads per signing": len(captured),
        }
        db.session.remove()
        db.engine.dispose()
    return [_result(NAME, label, timing, floor_timing, stamp, rows)], notes


def markdown(stamp: str, info: dict, sections) -> str:
    lines = [
        f"\n## Prescription sign-and-queue, {stamp}\n",
        f"{info['cpu']}, {info['cores']} cores, load before {info['load']}. In process, the "
        "signing use case (checks again, digest, outbox, medication list, audit) for one "
        "patient with 30 active medications, 10 allergies, 200 past prescriptions, "
        f"{among(sections)}; factors not included. Budget: p95 ≤ {BUDGET_MS:.0f} ms.\n",
        "| benchmark | database | p50 ms | p95 ms | p99 ms | reads' floor p95 ms | our CPU "
        "ms/call | others' CPU | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += report.section_rows(sections, lambda r: BUDGET_MS)
    return "\n".join(lines) + "\n"


def cli(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES_SERVER)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--quiet-wait", type=float, default=0.0)
    parser.add_argument("--reseed", action="store_true", help="seed the registry again")
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    engines = [] if args.no_sqlite else ["SQLite"]
    if not args.no_postgres and postgres_reachable(args.postgres):
        engines.append("PostgreSQL")
    sections, results = [], []
    for label in engines:
        log(f"\n== {label}: sign and queue")
        url = registry_url(label, args, log)
        rows, notes = measure(
            url, label, args.requests, stamp, args.quiet_wait, registry_rows(args)
        )
        sections.append((label, rows, notes))
        results += rows
        for r in rows:
            log(f"  {r.benchmark}: p50 {r.p50_ms} ms, p95 {r.p95_ms} ms, floor {r.floor_p95_ms}")
    text_ = markdown(stamp, report.machine(), sections)
    if args.quick:
        md_path, json_path = OUT / "quick-RESULTS.md", OUT / "quick-results.json"
    else:
        md_path, json_path = ROOT / "bench" / "RESULTS.md", ROOT / "bench" / "results.json"
    report.append_markdown(md_path, text_)
    report.write_json(json_path, results, keep=True)
    log("\n" + text_)
    return 1 if any(r.p95_ms > BUDGET_MS for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(cli())
