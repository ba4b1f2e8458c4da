"""``python -m bench.labs_ingest``: lab results (ORU^R01) over MLLP on loopback, stored,
acknowledged, parsed, matched and committed, on SQLite and PostgreSQL.

The listener runs as deployed (``flask lab-listener``, its own process, a thread per
connection); N clients (threads here, each with its own connection, as labs keep one open)
send messages one after another and time each ACK. A message is answered once it is
stored; the listener then files it (parse, match by MRN and date of birth, results and
audit committed) before it reads that connection's next message, so the rate below counts
filed messages: from the first send to the last message's ``processed_at``.

Rows written to bench/results.json (kept beside the other benchmarks' rows):
``ORU ingestion over MLLP, <N> clients`` with ``throughput_per_s`` and the ACK latency
percentiles. The issue's budget: at least 500 messages/s sustained on PostgreSQL with the
ACK's p95 at most 50 ms; the SQLite figure beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench import cpu, report
from bench.databases import (
    DEFAULT_POSTGRES_SERVER,
    INSTANCE,
    OUT,
    ROOT,
    app_for,
    fresh_postgres_url,
    fresh_sqlite_url,
    postgres_reachable,
)

DATABASE = "portal_bench_labs"
PATIENTS = 2000
RESULTS_JSON = ROOT / "bench" / "results.json"
PER_S_BUDGET = 500
ACK_P95_BUDGET_MS = 50
# Figures written beside each row in results.json (the rows' extra keys), by (name, database).
SIDE_FIGURES: dict[tuple[str, str], dict] = {}


def _fresh_database(dialect: str, server_url: str) -> str:
    if dialect == "sqlite":
        return fresh_sqlite_url("portal-labs")
    return fresh_postgres_url(server_url, DATABASE)


def _seed(url: str) -> list[tuple[str, str, str]]:
    """Migrate, add the demo clinic and ``PATIENTS`` patients: their (MRN, family, DOB)."""
    from flask_migrate import upgrade

    from portal.demo.clinic import seed_clinic_and_users
    from portal.extensions import db
    from portal.patients.identifiers import search_key
    from portal.patients.models import Patient

    app = app_for(url)
    rng = random.Random(1)
    people = []
    with app.app_context():
        upgrade()
        seed_clinic_and_users()
        for number in range(PATIENTS):
            family = rng.choice(["Doe", "Nguyen", "Garcia", "Smith", "Okafor", "Kowalski"])
            born = date(1940 + rng.randrange(60), 1 + rng.randrange(12), 1 + rng.randrange(28))
            mrn = f"B{number:07d}"
            db.session.add(
                Patient(
                    mrn=mrn,
                    given_name="Pat",
                    family_name=family,
                    given_key=search_key("Pat"),
                    family_key=search_key(family),
                    birth_date=born,
                    sex_at_birth="female",
                )
            )
            people.append((mrn, family, born.strftime("%Y%m%d")))
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
    return people


def _message(number: int, person: tuple[str, str, str], tag: str) -> bytes:
    mrn, family, born = person
    segments = [
        f"MSH|^~\\&|LIS|BENCH LAB|PORTAL|CLINIC|20261206090000||ORU^R01|{tag}-{number}|P|2.5.1",
        f"PID|1||{mrn}^^^CLINIC^MR||{family}^Pat||{born}|F",
        f"OBR|1||F{tag}{number}|24331-1^Lipid panel^LN|||20261206080000",
        "OBX|1|NM|2093-3^Cholesterol^LN||212|mg/dL|<200|H|||F",
        "OBX|2|NM|2085-9^HDL^LN||52|mg/dL|>39|N|||F",
        "OBX|3|NM|2571-8^Triglyceride^LN||140|mg/dL|<150|N|||F",
    ]
    return b"\x0b" + ("\r".join(segments) + "\r").encode() + b"\x1c\x0d"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start_listener(url: str, port: int) -> subprocess.Popen:
    environment = {**os.environ, "PORTAL_DATABASE_URL": url, "PORTAL_INSTANCE_PATH": str(INSTANCE)}
    command = [
        sys.executable,
        "-m",
        "flask",
        "--app",
        "portal",
        "lab-listener",
        "--port",
        str(port),
    ]
    process = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the lab listener did not start") from None
            time.sleep(0.1)


def _client(port: int, messages: list[bytes], latencies: list[float], problems: list[str]):
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        for message in messages:
            started = time.perf_counter()
            sock.sendall(message)
            answer = b""
            while b"\x1c\x0d" not in answer:
                chunk = sock.recv(4096)
                if not chunk:
                    problems.append("connection closed")
                    return
                answer += chunk
            latencies.append((time.perf_counter() - started) * 1000)
            if b"MSA|AA|" not in answer:
                problems.append(answer[:80].decode(errors="replace"))


def _family_cpu_seconds(pid: int) -> float:
    """CPU of the listener and of its filer processes (its children), in seconds."""
    total = cpu.process_cpu_seconds(pid) or 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:  # its parent is the listener
            total += cpu.process_cpu_seconds(int(stat.parent.name)) or 0.0
    return total


def _ack_floor_ms(url: str, sample: bytes, count: int = 200) -> float:
    """The ACK's SQL floor (p95, ms): one message's row INSERTed and COMMITted alone on a
    plain connection, no HL7, no ORM, no socket (what each ACK would wait for without group
    commit). The rows are deleted afterwards."""
    from portal.labs.models import LabMessage

    table = LabMessage.__table__
    engine = create_engine(make_url(url))
    timings = []
    with engine.connect() as connection:
        for number in range(count):
            started = time.perf_counter()
            connection.execute(
                table.insert(),
                {
                    "direction": "in",
                    "connector": "floor",
                    "sending_facility": "FLOOR",
                    "control_id": f"floor-{number}",
                    "raw": sample,
                    "received_at": datetime.now(UTC),
                    "state": "rejected",
                    "ack_code": "AR",
                    "attempts": 0,
                },
            )
            connection.commit()
            timings.append((time.perf_counter() - started) * 1000)
        connection.execute(table.delete().where(table.c.connector == "floor"))
        connection.commit()
    engine.dispose()
    return round(report.percentile(timings, 95), 2)


def _settled(pid: int, max_seconds: float = 20) -> None:
    """Wait until the listener's filer processes have started (their imports use CPU that
    is not the messages')."""
    deadline = time.monotonic() + max_seconds
    last = _family_cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = _family_cpu_seconds(pid)
        if now - last < 0.02:
            return
        last = now


def run(dialect: str, url: str, people, clients: int, count: int) -> report.Result:
    port = _free_port()
    listener = _start_listener(url, port)
    tag = f"{dialect[:2]}{clients}"
    messages = [_message(n, people[n % len(people)], tag) for n in range(count)]
    shares = [messages[n::clients] for n in range(clients)]
    latencies: list[float] = []
    problems: list[str] = []
    threads = [
        threading.Thread(target=_client, args=(port, share, latencies, problems))
        for share in shares
    ]
    _settled(listener.pid)
    listener_cpu_before = _family_cpu_seconds(listener.pid)
    machine_before = cpu.machine_jiffies()
    own_before = cpu.own_cpu_seconds()
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    acked_seconds = time.perf_counter() - started
    engine = create_engine(make_url(url))
    deadline = time.monotonic() + 120
    with engine.connect() as connection:
        while True:
            waiting, last, filed = connection.execute(
                text(
                    "SELECT sum(CASE WHEN state = 'received' THEN 1 ELSE 0 END), "
                    "max(processed_at), sum(CASE WHEN state = 'processed' THEN 1 ELSE 0 END) "
                    "FROM lab_messages WHERE control_id LIKE :tag"
                ),
                {"tag": f"{tag}-%"},
            ).one()
            if not waiting or time.monotonic() > deadline:
                break
            connection.rollback()
            time.sleep(0.2)
    engine.dispose()
    listener_cpu = _family_cpu_seconds(listener.pid) - listener_cpu_before
    machine_after = cpu.machine_jiffies()
    own_cpu = cpu.own_cpu_seconds() - own_before
    listener.terminate()
    listener.wait(30)
    if isinstance(last, str):
        last = datetime.fromisoformat(last)
    if last.tzinfo is None:
        last = last.replace(tzinfo=UTC)
    seconds = (last - started_at).total_seconds()
    if filed != count:
        problems.append(f"{filed} of {count} filed")
    label = "SQLite" if dialect == "sqlite" else "PostgreSQL"
    floor = _ack_floor_ms(url, messages[0][1:-2])
    # CPU beside the wall times (the machine is shared): the listener's CPU (with its filer
    # processes) per message and over the run's wall time (1.0: one core), the machine's
    # busy share, the share others used (the database server counts as "other"), the load.
    SIDE_FIGURES[(f"ORU ingestion over MLLP, {clients} clients", label)] = {
        "acked_per_s": round(count / acked_seconds, 1),
        "listener_cpu_ms_per_msg": round(listener_cpu * 1000 / max(filed or 0, 1), 3),
        "listener_cpu_of_wall": round(listener_cpu / seconds, 2),
        "machine_busy": round(cpu.busy_fraction(machine_before, machine_after), 2),
        "others_busy": round(
            cpu.other_fraction(machine_before, machine_after, listener_cpu + own_cpu), 2
        ),
        "load_1min": round(os.getloadavg()[0], 2),
    }
    return report.Result(
        benchmark=f"ORU ingestion over MLLP, {clients} clients",
        database=label,
        rows=PATIENTS,
        requests=count,
        p50_ms=round(report.percentile(latencies, 50), 2),
        p95_ms=round(report.percentile(latencies, 95), 2),
        p99_ms=round(report.percentile(latencies, 99), 2),
        floor_p95_ms=floor,
        date=started_at.strftime("%Y-%m-%d %H:%M"),
        failures=len(problems),
        first_failure=problems[0] if problems else None,
        throughput_per_s=round(filed / seconds, 1),
        clients=clients,
        worker_cpu_ms=round(listener_cpu * 1000 / max(filed or 0, 1), 3),
    )


def _add_side_figures(path, results: list[report.Result]) -> None:
    """This run's rows in results.json get the CPU and load figures beside their times."""
    fresh = {(r.benchmark, r.database, r.rows) for r in results}
    rows = json.loads(path.read_text())
    for row in rows:
        if (row["benchmark"], row["database"], row["rows"]) in fresh:
            row.update(SIDE_FIGURES.get((row["benchmark"], row["database"]), {}))
    path.write_text(json.dumps(rows, indent=2) + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument("--clients", default="1,4", help="comma-separated client counts")
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES_SERVER)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument(
        "--quiet-wait", type=float, default=30, help="seconds to wait for a quieter machine"
    )
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    dialects = [] if args.no_sqlite else ["sqlite"]
    if not args.no_postgres and postgres_reachable(args.postgres):
        dialects.append("postgresql")
    results = []
    print(f"load before: {os.getloadavg()}", flush=True)
    for dialect in dialects:
        url = _fresh_database(dialect, args.postgres)
        people = _seed(url)
        for clients in (int(c) for c in args.clients.split(",")):
            cpu.wait_for_quiet(args.quiet_wait, 0.5, lambda line: print(line, flush=True))
            result = run(dialect, url, people, clients, args.messages)
            results.append(result)
            side = SIDE_FIGURES[(result.benchmark, result.database)]
            print(
                f"{result.database:10} {result.benchmark}: {result.throughput_per_s:,.0f} msg/s "
                f"filed ({side['acked_per_s']:,.0f}/s acknowledged), ACK p50 {result.p50_ms} ms "
                f"p95 {result.p95_ms} ms p99 {result.p99_ms} ms (floor {result.floor_p95_ms} "
                f"ms); listener CPU "
                f"{side['listener_cpu_ms_per_msg']} ms/msg ({side['listener_cpu_of_wall']:.0%} "
                f"of a core), machine {side['machine_busy']:.0%} busy "
                f"(others {side['others_busy']:.0%}), load {side['load_1min']}"
                + (f"  PROBLEMS: {result.first_failure}" if result.failures else ""),
                flush=True,
            )
    print(f"load after: {os.getloadavg()}", flush=True)
    report.write_json(RESULTS_JSON, results, keep=True)
    _add_side_figures(RESULTS_JSON, results)
    ok = all(
        r.failures == 0
        and (
            r.database != "PostgreSQL"
            or (r.throughput_per_s >= PER_S_BUDGET and r.p95_ms <= ACK_P95_BUDGET_MS)
        )
        for r in results
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
