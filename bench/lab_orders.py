"""``python -m bench.lab_orders``: lab orders sent by the HL7 lab connector over MLLP on
loopback to the lab sandbox, each waiting for its ACK, with 1 and 4 clients.

What a worker does per order, apart from the database: a new connection, the ORM^O01 framed
and sent, the sandbox's ACK read and parsed (python-hl7), its control id checked. The
sandbox runs as deployed (its own process, ``python -m portal.integrations.sandbox.hl7lab``)
and reports no results during the run (``results: none``). No database is involved, so the
floor is a socket floor instead of a SQL one: the same connect-send-receive of the same
bytes to a bare MLLP peer that answers a canned ACK at once (no HL7 parsing on either
side). The machine's load and the CPU other processes used are printed beside the figures.

Rows in bench/results.json: ``lab order send over MLLP (connector to lab sandbox), <N>
clients`` with the ACK latency percentiles, ``throughput_per_s`` and ``floor_p95_ms``.
``--quick`` writes to bench/out/ instead.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime

import requests

from bench import cpu, report
from bench.databases import OUT, ROOT
from portal.integrations.hl7lab import mllp
from portal.integrations.hl7lab.connector import Hl7LabConnector
from portal.labs.hl7.orm import OrderedTest, OrderMessage, build_orm

BENCHMARK = "lab order send over MLLP (connector to lab sandbox), {clients} clients"
DATABASE = "none (sockets)"
CANNED_ACK = "MSH|^~\\&|LAB|LAB|P|P|20260101||ACK^O01^ACK|A1|P|2.5.1\rMSA|AA|{control_id}\r"
# A bare MLLP peer for the floor: answers every frame with a canned ACK, parses nothing.
FLOOR_PEER = """
import socketserver, sys
ACK = b"\\x0bMSH|^~\\\\&|LAB|LAB|P|P|1||ACK|A|P|2.5.1\\rMSA|AA|X\\r\\x1c\\r"
class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        data = b""
        while True:
            chunk = self.request.recv(65536)
            if not chunk:
                return
            data += chunk
            while b"\\x1c\\r" in data:
                data = data.split(b"\\x1c\\r", 1)[1]
                self.request.sendall(ACK)
class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
Server(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the peer did not start") from None
            time.sleep(0.1)


def _order(number: int, tag: str) -> str:
    return build_orm(
        OrderMessage(
            control_id=f"{tag}-{number}",
            placer_order_number=f"{tag}{number}",
            patient_mrn=f"B{number:07d}",
            patient_family_name="Doe",
            patient_given_name="Pat",
            patient_birth_date=datetime(1970, 1, 1).date(),
            patient_sex="F",
            provider_id="1",
            provider_family_name="Lee",
            provider_given_name="Ann",
            tests=(OrderedTest("24331-1", "Lipid panel"), OrderedTest("4548-4", "Hemoglobin A1c")),
            receiving_application="SANDBOX_LIS",
            receiving_facility="SANDBOX_LAB",
        )
    )


def _connector(port: int) -> Hl7LabConnector:
    return Hl7LabConnector(
        {
            "host": "127.0.0.1",
            "port": port,
            "use_tls": False,
            "timeout_seconds": 10,
            "sending_application": "PRACTICE_PORTAL",
            "sending_facility": "PORTAL",
            "receiving_application": "SANDBOX_LIS",
            "receiving_facility": "SANDBOX_LAB",
            "lab_codes": "",
        }
    )


def _timed(clients: int, count: int, send) -> tuple[list[float], float, list[str]]:
    """Run ``send(n)`` for n in 0..count-1 over ``clients`` threads: (latencies ms, seconds,
    problems)."""
    latencies: list[float] = []
    problems: list[str] = []

    def client(numbers):
        for number in numbers:
            started = time.perf_counter()
            try:
                send(number)
            except Exception as error:
                problems.append(f"{type(error).__name__}: {error}")
                continue
            latencies.append((time.perf_counter() - started) * 1000)

    threads = [
        threading.Thread(target=client, args=(range(n, count, clients),)) for n in range(clients)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, time.perf_counter() - started, problems


def measure(
    count: int, clients_list: list[int], log=print
) -> tuple[list[report.Result], list[str]]:
    notes = []
    sandbox_mllp, sandbox_control, floor_port = _free_port(), _free_port(), _free_port()
    sandbox = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "portal.integrations.sandbox.hl7lab",
            "--mllp-port",
            str(sandbox_mllp),
            "--control-port",
            str(sandbox_control),
            "--results-port",
            str(_free_port()),
            "--result-delay",
            "3600",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    floor_peer = subprocess.Popen([sys.executable, "-c", FLOOR_PEER, str(floor_port)])
    results = []
    try:
        _wait_for_port(sandbox_mllp, sandbox)
        _wait_for_port(floor_port, floor_peer)
        requests.post(
            f"http://127.0.0.1:{sandbox_control}/_sandbox/faults",
            json={"results": "none"},
            timeout=10,
        ).raise_for_status()
        connector = _connector(sandbox_mllp)
        for clients in clients_list:
            tag = f"B{clients}{int(time.time()) % 100000}"
            orders = [_order(n, tag) for n in range(count)]
            floor_latencies, _s, floor_problems = _timed(
                clients,
                count,
                lambda n, orders=orders: mllp.exchange(
                    "127.0.0.1", floor_port, orders[n], timeout=10
                ),
            )
            before = cpu.machine_jiffies()
            own_before = cpu.own_cpu_seconds()
            sandbox_before = cpu.process_cpu_seconds(sandbox.pid) or 0.0
            latencies, seconds, problems = _timed(
                clients,
                count,
                lambda n, orders=orders: _accepted(connector.send_order(orders[n])),
            )
            ours = (cpu.own_cpu_seconds() - own_before) + (
                (cpu.process_cpu_seconds(sandbox.pid) or 0.0) - sandbox_before
            )
            other = cpu.other_fraction(before, cpu.machine_jiffies(), ours)
            result = report.Result(
                benchmark=BENCHMARK.format(clients=clients),
                database=DATABASE,
                rows=0,
                requests=count,
                p50_ms=round(report.percentile(latencies, 50), 2),
                p95_ms=round(report.percentile(latencies, 95), 2),
                p99_ms=round(report.percentile(latencies, 99), 2),
                floor_p95_ms=round(report.percentile(floor_latencies, 95), 2),
                date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
                failures=len(problems) + len(floor_problems),
                first_failure=(problems + floor_problems)[0]
                if problems or floor_problems
                else None,
                throughput_per_s=round(len(latencies) / seconds, 1),
                clients=clients,
                other_busy=round(other, 3),
            )
            results.append(result)
            line = (
                f"{result.benchmark}: {result.throughput_per_s:,.0f} orders/s, ACK p50 "
                f"{result.p50_ms} ms p95 {result.p95_ms} ms p99 {result.p99_ms} ms "
                f"(socket floor p95 {result.floor_p95_ms} ms); other processes used "
                f"{other:.0%} of the CPU; load {os.getloadavg()[0]:.2f}"
                + (f"  PROBLEMS: {result.first_failure}" if result.failures else "")
            )
            notes.append(line)
            log(line, flush=True)
    finally:
        for process in (sandbox, floor_peer):
            process.terminate()
            process.wait(30)
    return results, notes


def _accepted(ack) -> None:
    if not ack.accepted:
        raise RuntimeError(f"the lab answered {ack.code}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=2000, help="orders per client count")
    parser.add_argument("--clients", default="1,4", help="comma-separated client counts")
    parser.add_argument("--quick", action="store_true", help="200 orders, into bench/out/")
    args = parser.parse_args(argv)
    count = 200 if args.quick else args.orders
    load_before = os.getloadavg()
    print(f"load before: {load_before}", flush=True)
    results, notes = measure(count, [int(c) for c in args.clients.split(",")])
    load_after = os.getloadavg()
    print(f"load after: {load_after}", flush=True)
    if args.quick:
        OUT.mkdir(parents=True, exist_ok=True)
        md_path, json_path = OUT / "quick-RESULTS.md", OUT / "quick-results.json"
    else:
        md_path, json_path = ROOT / "bench" / "RESULTS.md", ROOT / "bench" / "results.json"
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = (
        f"## {stamp}: lab orders over MLLP (bench/lab_orders.py)\n\n"
        f"- Code: {report.git_revision()}; load average at start {load_before}, at the end "
        f"{load_after}; {count} orders per row, the sandbox in its own process\n"
        + "".join(f"- {note}\n" for note in notes)
        + "\n"
    )
    report.append_markdown(md_path, text)
    report.write_json(json_path, results, keep=True)
    return 0 if all(result.failures == 0 for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
