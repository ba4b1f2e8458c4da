"""The lab sandbox itself: its control API (loopback only, switches validated, reset), what
it answers to messages that are not orders it can carry out, cancels, framing trouble, the
values it makes up, and its command line."""

from __future__ import annotations

import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from portal.integrations.sandbox.hl7lab import values
from portal.integrations.sandbox.hl7lab.control import create_control_app
from portal.integrations.sandbox.hl7lab.server import LabSandbox
from portal.terminology import lab_tests
from tests.integrations.hl7lab.helpers import control, order_message, set_faults, wait_for

ROOT = Path(__file__).resolve().parents[3]
QUICK = {
    "mllp_port": 0,
    "control_port": 0,
    "result_delay": 0.1,
    "final_delay": 0.1,
    "correction_delay": 0.1,
    "results_timeout": 1.0,
    "retry_delays": (0.2,),
}


@pytest.fixture
def collector():
    """A stand-in results listener that answers AA and keeps what it got."""
    server = socket.create_server(("127.0.0.1", 0))
    got: list[str] = []

    def serve():
        while True:
            try:
                peer, _ = server.accept()
            except OSError:
                return
            with peer:
                data = b""
                while b"\x1c\r" not in data:
                    chunk = peer.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                text = data[1 : data.index(b"\x1c")].decode()
                got.append(text)
                control_id = text.split("\r")[0].split("|")[9]
                ack = f"MSH|^~\\&|P|P|L|L|2025||ACK|A|P|2.5.1\rMSA|AA|{control_id}\r"
                peer.sendall(b"\x0b" + ack.encode() + b"\x1c\r")

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1], got
    server.close()


@pytest.fixture
def sandbox(collector):
    port, _got = collector
    lab = LabSandbox({**QUICK, "results_port": port}).start()
    yield lab
    lab.stop()


def _exchange(port: int, payload: bytes) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(payload)
        data = b""
        while b"\x1c\r" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return data[1 : data.index(b"\x1c")].decode()


def _msa(ack: str) -> list[str]:
    return next(s for s in ack.split("\r") if s.startswith("MSA")).split("|")


def _framed(text: str) -> bytes:
    return b"\x0b" + text.encode() + b"\x1c\r"


def test_the_control_api_answers_loopback_callers_only():
    lab = LabSandbox({**QUICK, "control_port": None})
    client = create_control_app(lab).test_client()
    assert client.get("/_sandbox/faults").status_code == 200
    far = client.get("/_sandbox/faults", environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert far.status_code == 403
    refused = client.post(
        "/_sandbox/faults", json={"ack": "AE"}, environ_base={"REMOTE_ADDR": "10.1.2.3"}
    )
    assert refused.status_code == 403 and lab.state.faults.ack == "AA"


@pytest.mark.parametrize(
    "switches",
    [
        {"ack": "maybe"},
        {"nonsense": 1},
        {"slow_seconds": -1},
        {"times": 0},
        {"results": "sometimes"},
        {"abnormal": "very"},
        {"duplicate_ack": "yes"},
        {"ack": "AE", "typo_here": True},  # one bad name refuses the whole change
    ],
)
def test_unknown_switches_and_values_are_refused_and_nothing_changes(sandbox, switches):
    response = requests.post(
        f"http://127.0.0.1:{sandbox.control_port}/_sandbox/faults", json=switches, timeout=10
    )
    assert response.status_code == 400 and response.json()["error"]
    assert control(sandbox, "/_sandbox/faults")["ack"] == "AA"


def test_times_puts_the_order_switches_back_and_keeps_the_result_ones(sandbox):
    set_faults(sandbox, ack="AR", times=2, results="none")
    codes = [
        _msa(
            _exchange(sandbox.mllp_port, _framed(order_message(control_id=f"T{n}", placer=f"P{n}")))
        )[1]
        for n in range(3)
    ]
    assert codes == ["AR", "AR", "AA"]
    faults = control(sandbox, "/_sandbox/faults")
    assert (faults["ack"], faults["times"], faults["results"]) == ("AA", None, "none")


@pytest.mark.parametrize(
    ("message", "code", "words"),
    [
        (order_message().replace("ORM^O01^ORM_O01", "ADT^A01^ADT_A01"), "AR", "Unsupported"),
        (order_message().replace("|ORD-1|", "||"), "AR", "MSH-10"),
        ("hello lab", "AR", "Not an HL7 message"),
        (order_message().replace("PL-1", ""), "AE", "placer order number"),
        (order_message().split("\rORC")[0] + "\r", "AE", "nothing is ordered"),
        (order_message().replace("MRN-1^^^", "^^^"), "AE", "PID-3"),
    ],
    ids=["not an order", "no control id", "not HL7", "no placer number", "no OBR", "no MRN"],
)
def test_what_the_lab_cannot_carry_out_is_refused_with_the_reason(sandbox, message, code, words):
    ack = _exchange(sandbox.mllp_port, _framed(message))
    fields = _msa(ack)
    assert fields[1] == code and words in fields[3]
    assert "\rERR|" in ack


def test_bytes_outside_a_frame_are_refused_and_the_connection_still_serves(sandbox):
    with socket.create_connection(("127.0.0.1", sandbox.mllp_port), timeout=5) as sock:
        sock.sendall(b"no start block here\x1c\r" + _framed(order_message(control_id="AFTER")))
        data = b""
        while data.count(b"\x1c\r") < 2:
            data += sock.recv(65536)
    first, second = data.split(b"\x1c\r")[:2]
    assert _msa(first[1:].decode())[1] == "AR"
    assert _msa(second[1:].decode())[1:3] == ["AA", "AFTER"]


def test_a_cancel_is_acknowledged_and_nothing_is_reported(sandbox, collector):
    _port, got = collector
    set_faults(sandbox, results="final")
    cancel = order_message(control_id="CA-1", placer="PL-CA").replace("ORC|NW|", "ORC|CA|")
    assert _msa(_exchange(sandbox.mllp_port, _framed(cancel)))[1] == "AA"
    time.sleep(0.5)
    assert got == []
    assert control(sandbox, "/_sandbox/orders")["orders"][0]["control"] == "CA"


def test_reset_forgets_orders_and_drops_results_not_yet_sent(collector):
    port, got = collector
    lab = LabSandbox({**QUICK, "results_port": port, "result_delay": 1.0}).start()
    try:
        assert _msa(_exchange(lab.mllp_port, _framed(order_message())))[1] == "AA"
        assert control(lab, "/_sandbox/reset", {}) == {"ok": True}
        time.sleep(1.5)
        assert got == []
        assert control(lab, "/_sandbox/orders") == {"orders": [], "arrived": 0}
        # the same placer number is new again after a reset
        assert _msa(_exchange(lab.mllp_port, _framed(order_message())))[1] == "AA"
        wait_for(lambda: len(got) == 2, what="the results after the reset")
    finally:
        lab.stop()


def test_each_result_message_is_one_ordered_test_with_the_patient_as_ordered(sandbox, collector):
    _port, got = collector
    set_faults(sandbox, results="final")
    _exchange(sandbox.mllp_port, _framed(order_message(placer="PL-SHAPE", mrn="M77")))
    wait_for(lambda: len(got) == 2, what="two result messages")
    by_test = {text.split("\rOBR|1|")[1].split("|")[2].split("^")[0]: text for text in got}
    assert set(by_test) == {"24331-1", "4548-4"}
    lipid = by_test["24331-1"]
    assert "\rPID|1||M77^^^PORTAL^MR||Doe^Jane||19800102|F\r" in lipid
    assert "\rORC|RE|PL-SHAPE|" in lipid and "\rOBR|1|PL-SHAPE|" in lipid
    assert lipid.count("\rOBX|") == len(lab_tests.get("24331-1").members)
    assert len({text.split("\r")[0].split("|")[9] for text in got}) == 2  # own control ids


def test_made_up_values_are_plausible_and_flagged_by_their_range():
    rng = random.Random(3)
    analytes = {m for t in lab_tests.catalog().values() for m in (t.members or (t.loinc,))}
    for loinc in sorted(analytes):
        for mode in ("none", "all", "critical"):
            value = values.draw(loinc, rng, mode)
            if value.value_type != "NM":
                assert value.flag == ("N" if mode == "none" else "A")
                continue
            number = float(value.value)
            low, high = (float(x) for x in value.reference_range.split("-"))
            assert number >= 0
            if mode == "none":
                assert low <= number <= high and value.flag == "N", (loinc, value)
            elif mode == "all":
                assert value.flag in ("H", "L") and not low <= number <= high, (loinc, value)
            else:
                assert value.flag in ("HH", "LL"), (loinc, value)
    # about one in four abnormal when left to chance
    flags = [values.draw("2345-7", rng).flag for _ in range(2000)]
    assert 0.18 < sum(f != "N" for f in flags) / len(flags) < 0.32


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_command_line_serves_both_ports_and_stops_on_sigterm():
    mllp, control_port = _free_port(), _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "portal.integrations.sandbox.hl7lab",
            "--mllp-port",
            str(mllp),
            "--control-port",
            str(control_port),
            "--results-port",
            str(_free_port()),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                about = requests.get(f"http://127.0.0.1:{control_port}/", timeout=30).json()
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.1)
        assert about["mllp_port"] == mllp
        assert _msa(_exchange(mllp, _framed(order_message())))[1] == "AA"
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0
    assert f"orders over MLLP on 127.0.0.1:{mllp}" in output
