"""Helpers of the Rx inbox tests: a prescription signed and sent to the DoseSpot sandbox, a
pharmacy's request made through the sandbox's control API, the requests as stored."""

from __future__ import annotations

from sqlalchemy import select

from portal.extensions import db
from portal.integrations.models import OutboxMessage
from portal.prescriptions.models import RxRequest
from tests.prescriptions.signing_helpers import a_draft, deliver, load
from tests.support.clients import fresh_totp


def sign(doctor, app, rx_id: int, **extra):
    data = {"version": str(load(app, rx_id).version), "totp_code": fresh_totp(app, "drlee")}
    data.update(extra)
    return doctor.post_form(f"/prescriptions/{rx_id}/sign", data)


def a_sent_prescription(app, doctor, patient_id: int) -> tuple[int, int]:
    """Lisinopril signed by Dr. Lee and delivered to the sandbox: (our id, the vendor's)."""
    rx_id = a_draft(app, patient_id)
    assert sign(doctor, app, rx_id).status_code == 303
    assert deliver(app).delivered == 1
    rx = load(app, rx_id)
    assert rx.state == "sent" and rx.vendor_id
    return rx_id, int(rx.vendor_id)


def requests_stored(app) -> list[RxRequest]:
    with app.app_context():
        rows = list(db.session.scalars(select(RxRequest).order_by(RxRequest.id)))
        db.session.expunge_all()
        db.session.remove()
        return rows


def answer_messages(app) -> list[OutboxMessage]:
    with app.app_context():
        rows = list(
            db.session.scalars(
                select(OutboxMessage)
                .where(
                    OutboxMessage.operation.like("%_renewal")
                    | OutboxMessage.operation.like("%_change")
                )
                .order_by(OutboxMessage.id)
            )
        )
        db.session.expunge_all()
        db.session.remove()
        return rows


def sandbox_request(sandbox, request_id: int) -> dict:
    with sandbox.box.state.lock:
        store = sandbox.box.state.store
        found = store.refill_requests.get(request_id) or store.rx_change_requests.get(request_id)
        return dict(found)
