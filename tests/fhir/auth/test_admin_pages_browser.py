"""The API clients' pages in Chromium: an admin registers a client (a refused form first),
copies the secret shown once, and disables the client."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.support.browser import labelled


@pytest.mark.browser
def test_an_admin_registers_a_client_and_sees_its_secret_once(page, sign_in, watch):
    sign_in("admin")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="API clients").click()
    expect(page.get_by_text("No client is registered yet.")).to_be_visible()
    page.get_by_role("link", name="Register a client").click()

    labelled(page, "Name").fill("County health exchange")
    labelled(page, "Responsible person").select_option(label="Jordan Lee")
    watch.expect_http_error(422, "/admin/api-clients/new")
    page.get_by_role("button", name="Register").click()
    expect(page.get_by_text("Give the client at least one scope.")).to_be_visible()
    expect(labelled(page, "Name")).to_have_value("County health exchange")

    page.get_by_role("checkbox", name="system/Patient.read").check()
    page.get_by_role("checkbox", name="system/Observation.read").check()
    page.get_by_role("button", name="Register").click()
    expect(page.get_by_role("heading", name="County health exchange is registered")).to_be_visible()
    secret_box = labelled(page, "Client secret")
    expect(secret_box).to_be_visible()
    expect(secret_box).to_have_accessible_description(
        "Copy it now (select it, then copy) and hand it to the client's operator over a safe "
        "channel. It is shown only this once: the portal keeps only a hash of it. Lost, it can "
        "only be replaced by a new one."
    )
    secret = secret_box.input_value()
    assert len(secret) >= 40

    page.get_by_role("link", name="Done").click()
    expect(page.get_by_text("system/Observation.read system/Patient.read")).to_be_visible()
    assert secret not in page.content()
    page.get_by_role("button", name="Disable").click()
    expect(page.get_by_text("County health exchange is disabled")).to_be_visible()
    expect(page.get_by_role("button", name="Enable")).to_be_visible()
    page.get_by_role("link", name="API clients", exact=True).first.click()
    expect(page.get_by_role("cell", name="Disabled")).to_be_visible()
    assert secret not in page.content()
