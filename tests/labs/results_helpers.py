"""What the results tests share: results filed from real ORU messages, a second prescriber,
and reading the inbox's rows as the page shows them."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select, update

from portal.auth.models import User
from portal.extensions import db
from portal.labs import services
from portal.labs.models import PROCESSED, LabOrder, LabResult
from portal.timeutil import utcnow
from tests.labs.helpers import oru

ROW_ID = re.compile(r'data-result-id="(\d+)"')

_counter = iter(range(1, 1_000_000))


def file_oru(zone, **fields) -> int:
    """Receive and file one ORU^R01 (``tests.labs.helpers.oru`` fields) as the listener
    would; a fresh control id each time. Returns the message's id."""
    fields.setdefault("control_id", f"RES{next(_counter):06d}")
    received = services.receive(oru(**fields).encode())
    assert received.ack_code == "AA", received.ack
    assert services.file_message(received.message_id, zone=zone) == PROCESSED
    return received.message_id


def obx(
    index: int,
    code: str,
    name: str,
    value: str,
    units: str = "mg/dL",
    ref: str = "",
    flag: str = "N",
    status: str = "F",
    when: str = "20240102080000",
    kind: str = "NM",
) -> str:
    return f"OBX|{index}|{kind}|{code}^{name}^LN||{value}|{units}|{ref}|{flag}|||{status}|||{when}"


def add_prescriber(username: str, full_name: str, password_hash: str) -> int:
    user = User(username=username, full_name=full_name, password_hash=password_hash)
    user.set_roles(["prescriber"])
    db.session.add(user)
    db.session.commit()
    return user.id


def disable(user_id: int) -> None:
    db.session.execute(update(User).where(User.id == user_id).values(is_enabled=False))
    db.session.commit()


def results_by_name() -> dict[str, LabResult]:
    rows = db.session.scalars(
        select(LabResult).where(LabResult.superseded_at.is_(None)).order_by(LabResult.id)
    ).all()
    db.session.expunge_all()  # read after the context ends: keep the loaded values
    db.session.rollback()
    return {row.name: row for row in rows}


def order_status(order_id: int) -> str:
    status = db.session.scalar(select(LabOrder.status).where(LabOrder.id == order_id))
    db.session.rollback()
    return status


def signed_days_ago(order_id: int, days: int) -> None:
    db.session.execute(
        update(LabOrder)
        .where(LabOrder.id == order_id)
        .values(signed_at=utcnow() - timedelta(days=days))
    )
    db.session.commit()


def inbox_ids(response) -> list[int]:
    return [int(value) for value in ROW_ID.findall(response.get_data(as_text=True))]


def file_glucose(zone, mrn: str, placer: str, values: list[tuple[str, str]], when: str) -> None:
    """One message of glucose results (value, flag) for the order ``placer``."""
    file_oru(
        zone,
        mrn=mrn,
        placer=placer,
        filler=f"F-{placer}",
        obr_code="2345-7^Glucose^LN",
        observations=[
            # One analyte each (a repeated code in a message would be read as its correction).
            obx(index, f"X{index}", f"Glucose {index}", value, ref="70-99", flag=flag, when=when)
            for index, (value, flag) in enumerate(values, start=1)
        ],
    )


def file_a1c(zone, mrn: str, days_ago: list[int]) -> None:
    """One HbA1c result ``days_ago`` each (one message each, as labs send them)."""
    for index, days in enumerate(days_ago):
        when = (utcnow() - timedelta(days=days)).strftime("%Y%m%d%H%M%S")
        file_oru(
            zone,
            mrn=mrn,
            filler=f"F-W{index}-{days}",
            obr_code="4548-4^Hemoglobin A1c^LN",
            observations=[
                obx(
                    1,
                    "4548-4",
                    "Hemoglobin A1c",
                    f"{5 + index / 10:.1f}",
                    "%",
                    "4.0-5.6",
                    when=when,
                )
            ],
        )
