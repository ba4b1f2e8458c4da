"""`make run`'s demo Rx inbox: the seed queues a signed lisinopril of Dr. Lee's; the sandbox,
started with ``demo_renewal``, asks for its renewal once it reaches the pharmacy; the worker
brings the request into Dr. Lee's inbox, matched to the patient and the prescription."""

from __future__ import annotations

from portal.demo.integrations import seed_eprescribing
from portal.demo.patients import seed_patients
from portal.demo.prescriptions import seed_renewal_demo
from portal.extensions import db
from tests.integrations.dosespot.helpers import SandboxServer
from tests.prescriptions.rx_inbox_helpers import requests_stored
from tests.prescriptions.signing_helpers import load, work_until


def test_the_demo_has_one_renewal_request_for_dr_lee(app, live_server, signed_in):
    sandbox = SandboxServer(
        webhook_url=f"{live_server}/integrations/dosespot/webhook",
        portal_origin=live_server,
        webhook_backoff=(0.05, 0.05, 0.05, 0.05),
        demo_renewal=True,
    )
    try:
        with app.app_context():
            seed_patients(20, seed=3)
            assert seed_eprescribing(sandbox.url)
            assert seed_renewal_demo()
            assert not seed_renewal_demo()  # once
            db.session.remove()
        work_until(app, lambda: len(requests_stored(app)) == 1, "the demo's renewal request")
        [request] = requests_stored(app)
        assert request.kind == "renewal" and request.prescription_id is not None
        original = load(app, request.prescription_id)
        assert original.drug == "lisinopril 10 MG Oral Tablet"
        assert request.patient_id == original.patient_id
        bar = signed_in("drlee").get("/eprescribe/count").get_data(as_text=True)
        assert 'aria-label="1 in the Rx inbox"' in bar
    finally:
        sandbox.stop()
