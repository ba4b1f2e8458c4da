"""The order we send a lab: ORM^O01, HL7 v2.5.1, one ORC/OBR pair per test.

Built from plain data (``OrderMessage``), so the connector that sends it needs no model.
Each value is escaped with python-hl7's ``Message.escape`` and the result is parsed back
with python-hl7 before it is returned: a message we could not read ourselves never leaves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import hl7

from portal.labs.hl7.ack import APPLICATION, FACILITY
from portal.timeutil import utcnow

VERSION = "2.5.1"
_ESCAPER = hl7.parse("MSH|^~\\&|\r")


@dataclass(frozen=True)
class OrderedTest:
    loinc: str
    name: str
    lab_code: str | None = None


@dataclass(frozen=True)
class OrderMessage:
    control_id: str
    placer_order_number: str
    patient_mrn: str
    patient_family_name: str
    patient_given_name: str
    patient_birth_date: date
    patient_sex: str  # F, M, U...
    provider_id: str
    provider_family_name: str
    provider_given_name: str
    tests: tuple[OrderedTest, ...]
    priority: str = "routine"  # routine / stat
    collection_date: date | None = None
    fasting: bool = False
    note: str | None = None
    diagnoses: tuple[str, ...] = ()
    receiving_application: str = ""
    receiving_facility: str = ""
    sent_at: datetime | None = None
    # MSH-3/4 as the lab knows us (the connector's settings); empty: the portal's defaults.
    sending_application: str = ""
    sending_facility: str = ""
    # ORC-1: NW a new order, CA a request to cancel it.
    order_control: str = "NW"


def _e(value) -> str:
    return _ESCAPER.escape(str(value)) if value is not None else ""


def _dtm(value: datetime) -> str:
    return value.strftime("%Y%m%d%H%M%S+0000")


def build_orm(order: OrderMessage) -> str:
    """The ORM^O01 message text (segments separated by CR)."""
    sent = order.sent_at or utcnow()
    priority = "S" if order.priority == "stat" else "R"
    sex = order.patient_sex[:1].upper() if order.patient_sex else "U"
    provider = (
        f"{_e(order.provider_id)}^{_e(order.provider_family_name)}^{_e(order.provider_given_name)}"
    )
    segments = [
        "|".join(
            [
                "MSH",
                "^~\\&",
                _e(order.sending_application) or APPLICATION,
                _e(order.sending_facility) or FACILITY,
                _e(order.receiving_application),
                _e(order.receiving_facility),
                _dtm(sent),
                "",
                "ORM^O01^ORM_O01",
                _e(order.control_id),
                "P",
                VERSION,
            ]
        ),
        "|".join(
            [
                "PID",
                "1",
                "",
                f"{_e(order.patient_mrn)}^^^{FACILITY}^MR",
                "",
                f"{_e(order.patient_family_name)}^{_e(order.patient_given_name)}",
                "",
                order.patient_birth_date.strftime("%Y%m%d"),
                _e(sex),
            ]
        ),
    ]
    for number, test in enumerate(order.tests, start=1):
        timing = (
            f"^^^{order.collection_date:%Y%m%d}^^{priority}"
            if order.collection_date
            else f"^^^^^{priority}"
        )
        segments.append(
            "|".join(
                [
                    "ORC",
                    _e(order.order_control),
                    _e(order.placer_order_number),
                    "",
                    "",
                    "",
                    "",
                    timing,
                    "",
                    _dtm(sent),
                    "",
                    "",
                    provider,
                ]
            )
        )
        service = f"{_e(test.loinc)}^{_e(test.name)}^LN"
        if test.lab_code:
            service += f"^{_e(test.lab_code)}^^L"
        obr = [
            "OBR",
            str(number),
            _e(order.placer_order_number),
            "",
            service,
            "S" if priority == "S" else "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",  # OBR-12 danger code
            "Fasting" if order.fasting else "",  # OBR-13 relevant clinical information
            "",
            "",
            provider,  # OBR-16 ordering provider
        ]
        segments.append("|".join(obr))
        if number == 1:
            if order.note:
                segments.append(f"NTE|1|P|{_e(order.note)}")
            for position, code in enumerate(order.diagnoses, start=1):
                segments.append(f"DG1|{position}||{_e(code)}^^I10")
    text = "\r".join(segments) + "\r"
    hl7.parse(text)  # raises if we made something we could not read ourselves
    return text
