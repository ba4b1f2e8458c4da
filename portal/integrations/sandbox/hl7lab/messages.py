"""[sandbox] Reading an order and writing the lab's messages: the ACK and ORU^R01 v2.5.1.

Orders are read with python-hl7. ORM^O01 and OML^O21 are taken; each ORC/OBR pair is one
ordered test, its code OBR-4 in LOINC (first triplet, or the alternate one when the first is
the lab's own code). ORC-1 ``NW`` orders, ``CA`` cancels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import hl7

from portal.terminology import lab_tests

LAB_APPLICATION = "SANDBOX_LIS"
LAB_FACILITY = "SANDBOX_LAB"
LAB_NAME = "Sandbox Reference Laboratory"
ORDER_TYPES = {("ORM", "O01"), ("OML", "O21")}


class OrderRefused(Exception):
    """The order is answered AE or AR; ``code`` and ``text`` say which and why."""

    def __init__(self, code: str, text: str, error_code: str = "207"):
        super().__init__(text)
        self.code = code
        self.text = text
        self.error_code = error_code


@dataclass
class OrderedTest:
    loinc: str
    name: str
    service: str  # OBR-4 as the portal sent it (the result echoes it)
    analytes: tuple[str, ...]


@dataclass
class Order:
    """What one order message asked for (the sandbox's own record of it)."""

    control_id: str
    placer_order_number: str
    control: str  # ORC-1: NW, CA...
    sending_application: str
    sending_facility: str
    receiving_application: str
    receiving_facility: str
    patient_identifiers: str  # PID-3 as sent
    patient_name: str  # PID-5 as sent
    birth_date: str  # PID-7 as sent
    sex: str
    ordering_provider: str
    tests: list[OrderedTest] = field(default_factory=list)

    def summary(self) -> dict:
        """What the control API lists (names no patient beyond the order's own ids)."""
        return {
            "control_id": self.control_id,
            "placer_order_number": self.placer_order_number,
            "control": self.control,
            "sending_facility": self.sending_facility,
            "tests": [test.loinc for test in self.tests],
        }


def now_stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%d%H%M%S+0000")


def _get(message, segment: str, number: int, field_number: int, component: int = 1) -> str:
    try:
        return str(message.extract_field(segment, number, field_number, 1, component) or "")
    except (KeyError, IndexError):
        return ""


def _raw_field(segment, number: int) -> str:
    """A field exactly as sent (escapes and components kept), "" when absent."""
    try:
        return str(segment[number])
    except IndexError:
        return ""


def read_order(text: str) -> Order:
    """The order in ``text``; ``OrderRefused`` (AR: not an order message; AE: an order we
    cannot carry out) otherwise."""
    text = text.replace("\r\n", "\r").replace("\n", "\r").strip("\r")
    if not text.startswith("MSH"):
        raise OrderRefused("AR", "Not an HL7 message", "100")
    try:
        message = hl7.parse(text)
    except Exception as error:  # python-hl7 raises several kinds for bad input
        raise OrderRefused("AR", "Unreadable HL7 message", "100") from error
    kind = (_get(message, "MSH", 1, 9, 1), _get(message, "MSH", 1, 9, 2))
    control_id = _get(message, "MSH", 1, 10)
    if not control_id:
        raise OrderRefused("AR", "MSH-10 (message control id) missing", "101")
    if kind not in ORDER_TYPES:
        raise OrderRefused("AR", f"Unsupported message type {'^'.join(kind)}", "200")
    try:
        pid = message.segment("PID")
    except KeyError:
        raise OrderRefused("AE", "PID segment missing", "100") from None
    if not _get(message, "PID", 1, 3):
        raise OrderRefused("AE", "PID-3 (patient identifier) missing", "101")
    order = Order(
        control_id=control_id,
        placer_order_number="",
        control="NW",
        sending_application=_get(message, "MSH", 1, 3),
        sending_facility=_get(message, "MSH", 1, 4),
        receiving_application=_get(message, "MSH", 1, 5),
        receiving_facility=_get(message, "MSH", 1, 6),
        patient_identifiers=_raw_field(pid, 3),
        patient_name=_raw_field(pid, 5),
        birth_date=_raw_field(pid, 7),
        sex=_raw_field(pid, 8),
        ordering_provider="",
    )
    control = "NW"
    for segment in message:
        kind_of = str(segment[0])
        if kind_of == "ORC":
            control = _raw_field(segment, 1) or "NW"
            order.placer_order_number = order.placer_order_number or _raw_field(segment, 2)
        elif kind_of == "OBR":
            order.control = control
            order.placer_order_number = _raw_field(segment, 2) or order.placer_order_number
            order.ordering_provider = order.ordering_provider or _raw_field(segment, 16)
            order.tests.append(_ordered_test(_raw_field(segment, 4)))
    if not order.tests:
        raise OrderRefused("AE", "No OBR segment: nothing is ordered", "100")
    if not order.placer_order_number:
        raise OrderRefused("AE", "No placer order number (ORC-2 / OBR-2)", "101")
    return order


def _ordered_test(service: str) -> OrderedTest:
    parts = service.split("^")
    parts += [""] * (6 - len(parts))
    if parts[2] == "LN":
        loinc, name = parts[0], parts[1]
    elif parts[5] == "LN":
        loinc, name = parts[3], parts[4]
    else:
        raise OrderRefused("AE", f"Unknown test code {parts[0] or '(none)'}", "103")
    test = lab_tests.get(loinc)
    if test is None:
        raise OrderRefused("AE", f"Test {loinc} is not offered by this lab", "103")
    analytes = test.members if test.is_panel else (test.loinc,)
    return OrderedTest(loinc=loinc, name=name or test.name, service=service, analytes=analytes)


def _escape(text: str) -> str:
    text = text.replace("\\", "\\E\\")
    for char, code in (("|", "F"), ("^", "S"), ("&", "T"), ("~", "R")):
        text = text.replace(char, f"\\{code}\\")
    return " ".join(text.split())


def ack(
    *,
    code: str,
    control_id: str,
    answered: Order | None,
    ack_id: str,
    text: str = "",
    error_code: str = "207",
) -> str:
    """The ACK^O01 (or ^O21) to an order message: MSA, and ERR with the reason for AE/AR."""
    to_app = answered.sending_application if answered else ""
    to_facility = answered.sending_facility if answered else ""
    segments = [
        f"MSH|^~\\&|{LAB_APPLICATION}|{LAB_FACILITY}|{_escape(to_app)}|{_escape(to_facility)}|"
        f"{now_stamp()}||ACK^O01^ACK|{ack_id}|P|2.5.1",
        f"MSA|{code}|{_escape(control_id)}|{_escape(text)[:80]}",
    ]
    if code != "AA":
        where = "OBR^1^4" if error_code == "103" else ""
        coded = f"{error_code}^{_escape(text)[:60]}^HL70357"
        segments.append(f"ERR||{where}|{coded}|E||||{_escape(text)}")
    return "\r".join(segments) + "\r"


@dataclass(frozen=True)
class Observation:
    loinc: str
    name: str
    value_type: str
    value: str
    units: str
    reference_range: str
    flag: str
    note: str = ""


def oru(
    *,
    order: Order,
    test: OrderedTest,
    control_id: str,
    filler_order_number: str,
    status: str,  # P, F, C
    observations: list[Observation],
    collected: str,
) -> str:
    """One ORU^R01 v2.5.1 reporting one ordered test: the order's patient as sent, ORC/OBR
    with the placer and filler numbers, an OBX per analyte (NTE after a corrected one)."""
    reported = now_stamp()
    segments = [
        f"MSH|^~\\&|{LAB_APPLICATION}|{LAB_FACILITY}|{_escape(order.sending_application)}|"
        f"{_escape(order.sending_facility)}|{reported}||ORU^R01^ORU_R01|{control_id}|P|2.5.1|||AL|NE",
        f"PID|1||{order.patient_identifiers}||{order.patient_name}||{order.birth_date}|{order.sex}",
        f"ORC|RE|{order.placer_order_number}|{filler_order_number}||CM",
        "|".join(
            [
                "OBR",
                "1",
                order.placer_order_number,
                filler_order_number,
                test.service,
                "",
                "",
                collected,
                "",
                "",
                "",
                "",
                "",
                "",
                reported,
                "",
                order.ordering_provider,
                "",
                "",
                "",
                "",
                "",
                reported,
                "",
                "",
                status,
            ]
        ),
    ]
    for number, item in enumerate(observations, start=1):
        segments.append(
            "|".join(
                [
                    "OBX",
                    str(number),
                    item.value_type,
                    f"{item.loinc}^{_escape(item.name)}^LN",
                    "",
                    item.value if item.value_type == "CWE" else _escape(item.value),
                    item.units,
                    item.reference_range,
                    item.flag,
                    "",
                    "",
                    status,
                    "",
                    "",
                    collected,
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                    LAB_NAME,
                ]
            )
        )
        if item.note:
            segments.append(f"NTE|1|L|{_escape(item.note)}")
    return "\r".join(segments) + "\r"
