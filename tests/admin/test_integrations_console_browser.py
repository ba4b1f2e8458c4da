"""The integrations console in Chromium: an admin sets up the echo connector, a wrong token
is refused beside its field, the right one enables it and the health says so."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from portal.integrations import registry
from tests.integrations.helpers import TOKEN, EchoConnector, ReceiverServer
from tests.support.browser import labelled


@pytest.fixture
def receiver():
    server = ReceiverServer()
    registry.register(EchoConnector)
    yield server
    registry.unregister(EchoConnector.name)
    server.stop()


@pytest.mark.browser
def test_an_admin_enables_a_connector_after_a_refused_token(page, sign_in, watch, receiver):
    sign_in("admin")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Integrations").click()
    expect(page.get_by_role("heading", name="Laboratory")).to_be_visible()
    page.get_by_role("link", name="Echo (tests)").click()
    expect(page.get_by_text("Not set up")).to_be_visible()

    labelled(page, "Receiver URL").fill(receiver.url)
    labelled(page, "Access token").fill("not-the-token")
    watch.expect_http_error(422, "/admin/integrations/test-echo")
    page.get_by_role("button", name="Save and enable").click()
    token = labelled(page, "Access token")
    expect(token).to_have_attribute("aria-invalid", "true")
    expect(token).to_have_accessible_description(
        "not set Stored encrypted and never shown again. The receiver refused this access token."
    )
    expect(token).to_have_value("")  # a secret is never sent back
    expect(labelled(page, "Receiver URL")).to_have_value(receiver.url)

    token.fill(TOKEN)
    page.get_by_role("button", name="Save and enable").click()
    expect(page.get_by_text("Echo (tests) is saved and enabled.")).to_be_visible()
    health = page.get_by_role("region", name="Health")
    expect(health.get_by_text("Healthy")).to_be_visible()
    expect(page.get_by_text("State: Enabled")).to_be_visible()
    expect(page.get_by_role("button", name="Pause delivery")).to_be_visible()
    expect(labelled(page, "Access token")).to_have_value("")
