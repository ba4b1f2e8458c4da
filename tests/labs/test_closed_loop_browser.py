"""The whole lab loop in Chromium, real sockets everywhere: a prescriber orders a CMP and an
HbA1c from a checked-in patient's visit by keyboard and signs it; the worker (a thread beside
the page) sends it with the hl7lab connector to the lab sandbox; the sandbox reports ORU^R01
results to the real listener, which stores, acknowledges and files them to the order; the
order's badge says Resulted; the prescriber opens the inbox from the top bar's count, signs off
the abnormal ones one by one and the normal ones together, and the order becomes Reviewed.

Why one test for all of it: each part has its own tests; this one proves the parts agree
(the connector's identities, the sandbox's codes, the listener's matching, the inbox's
reviewer) when a person drives them, as in the demo."""

from __future__ import annotations

import re
import threading

import pytest
from playwright.sync_api import expect

from portal.extensions import db
from portal.integrations.delivery import deliver_due
from portal.integrations.sandbox.hl7lab.server import LabSandbox
from portal.integrations.settings import Submitted, save_and_enable
from portal.labs import services
from portal.labs.models import LabOrder, LabResult
from tests.integrations.hl7lab.helpers import FAST, HBA1C, control, settings_for, wait_for
from tests.labs.keyboard import add_by_keyboard, tab_to
from tests.support.chart import chart, make_appointment, make_encounter  # noqa: F401
from tests.support.clients import actor_of

pytestmark = pytest.mark.browser

CMP = "24323-8"


@pytest.fixture
def sandbox(listener):
    """The lab sandbox on free ports, reporting (quickly, the same values each run: seed 12)
    to the real listener; mostly normal values with some abnormal ones."""
    lab = LabSandbox({**FAST, "results_port": listener.port}).start()
    yield lab
    lab.stop()


@pytest.fixture
def worker(app):
    """The worker's two labs duties in a thread beside the page: deliver the outbox (the
    send to the lab) and file any stored results the listener left waiting."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def run():
        while not stop.is_set():
            try:
                with app.app_context():
                    deliver_due(seconds=2.0)
                    services.process_pending()
                    db.session.remove()
            except BaseException as error:  # surfaced by the test, not swallowed
                errors.append(error)
                return
            stop.wait(0.1)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield errors
    stop.set()
    thread.join(timeout=10)
    assert not errors, errors


def _status(app, order_id: int) -> str:
    with app.app_context():
        status = db.session.get(LabOrder, order_id).status
        db.session.rollback()
        return status


def _results(app, order_id: int) -> list[tuple[str, bool]]:
    with app.app_context():
        rows = db.session.scalars(
            db.select(LabResult).where(
                LabResult.order_id == order_id, LabResult.superseded_at.is_(None)
            )
        ).all()
        found = [(r.loinc, bool(r.is_abnormal)) for r in rows]
        db.session.rollback()
        return found


def test_order_labs_get_results_review_them(
    app,
    chart,  # noqa: F811 (the fixtures imported above)
    make_appointment,  # noqa: F811
    make_encounter,  # noqa: F811
    sandbox,
    worker,
    page,
    sign_in,
    watch,
    shot,
):
    control(sandbox, "/_sandbox/faults", {"results": "final"})
    with app.app_context():
        save_and_enable(
            actor_of("admin"),
            "hl7lab",
            Submitted(values=settings_for(sandbox.mllp_port), secrets={}),
        )
        db.session.remove()
    make_appointment(status="arrived")  # the patient is checked in
    encounter_id = make_encounter()

    sign_in("drlee")
    page.goto(f"/chart/encounters/{encounter_id}")
    tab_to(page, "Order labs", limit=200)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    order_id = int(re.search(r"/labs/orders/(\d+)", page.url).group(1))
    add_by_keyboard(page, "metabolic", "Comprehensive metabolic panel (CMP)")
    add_by_keyboard(page, "a1c", "Hemoglobin A1c", arrows=True)
    expect(page.get_by_label("Performing lab")).to_have_value("hl7lab")
    tab_to(page, "Sign order")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    expect(page.get_by_text("Order signed.")).to_be_visible()

    # The worker sends it; the sandbox reports each test; the listener files them.
    wait_for(lambda: _status(app, order_id) == "resulted", timeout=30, what="resulted")
    page.reload()
    expect(page.get_by_test_id("order-state")).to_contain_text("Resulted")
    expect(page.get_by_text("HL7 v2 lab (MLLP)")).to_be_visible()  # its title, not "hl7lab"
    expect(page.get_by_role("link", name="See the results")).to_be_visible()
    # 1280 px with both counts in the top bar: nothing scrolls sideways. The counts come
    # after the page (htmx): measure once they are in, not before.
    expect(page.get_by_role("link", name=re.compile(r"^Results"))).to_be_visible()
    page.wait_for_function("() => !document.querySelector('.htmx-request')")
    assert page.evaluate(
        "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    )
    shot("order-resulted")
    results = _results(app, order_id)
    assert {loinc for loinc, _ in results} >= {HBA1C, "2345-7"}  # the A1c and the CMP's glucose
    abnormal = sum(1 for _, is_abnormal in results if is_abnormal)
    assert 0 < abnormal < len(results)  # seed 12: a mix, so both ways of signing off are used

    count = page.get_by_role("link", name=re.compile(r"^Results"))
    expect(count).to_contain_text(str(len(results)))
    count.click()
    expect(page.get_by_role("heading", name="Results inbox")).to_be_visible()
    shot("inbox")
    table = page.get_by_role("table").first
    # Abnormal first, each opened and signed off alone.
    for _ in range(abnormal):
        first = table.get_by_role("row").nth(1)
        expect(first.locator("input[type=checkbox]")).to_have_count(0)  # not a normal one
        first.get_by_role("link").first.click()
        page.get_by_label("Comment (optional)").fill("Seen; discuss at the next visit.")
        page.get_by_role("button", name="Sign off result").click()
        expect(page.get_by_text("Result signed off.")).to_be_visible()
        page.get_by_role("link", name=re.compile(r"^Results")).click()
    # The normal ones together.
    boxes = table.get_by_role("checkbox")
    expect(boxes).to_have_count(len(results) - abnormal)
    for index in range(len(results) - abnormal):
        boxes.nth(index).check()
    page.get_by_role("button", name="Sign off chosen normal results").click()
    expect(page.get_by_text("Nothing waits for your review.")).to_be_visible()
    page.get_by_role("link", name="Unmatched results").click()
    expect(page.get_by_role("heading", name="Unmatched results")).to_be_visible()
    expect(page.get_by_text("No results wait to be matched.")).to_be_visible()

    assert _status(app, order_id) == "reviewed"
    page.goto(f"/labs/orders/{order_id}")
    expect(page.get_by_test_id("order-state")).to_contain_text("Reviewed")
    assert len(control(sandbox, "/_sandbox/orders")["orders"]) == 1
    watch.assert_clean(page)
