"""In Chromium: register, find by typing, open with the keyboard; hostile input stays inert."""

from __future__ import annotations

import re

import pytest

from tests.conftest import PASSWORD
from tests.patients.conftest import VALID

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Records CSP violations the page would otherwise only report to the console.
WATCH_CSP = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(e.violatedDirective));
"""


def _is_problem(message) -> bool:
    """Console errors count, except Chromium's own favicon probe (base.html links none)."""
    if message.type != "error":
        return False
    return not (message.location or {}).get("url", "").endswith("/favicon.ico")


@pytest.fixture
def page(live_server):
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
        )
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        tab = context.new_page()
        tab.add_init_script(WATCH_CSP)
        tab.problems = []
        tab.dialogs = []
        tab.on("console", lambda m: _is_problem(m) and tab.problems.append(m.text))
        tab.on("pageerror", lambda e: tab.problems.append(str(e)))

        def on_dialog(dialog):
            tab.dialogs.append(dialog.message)
            dialog.dismiss()

        tab.on("dialog", on_dialog)
        tab.base = live_server
        yield tab
        context.close()
        browser.close()


def sign_in(page):
    page.goto(page.base + "/auth/sign-in")
    page.fill("#username", "frontdesk")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(page.base + "/")


def fill_registration(page, values: dict):
    page.goto(page.base + "/patients/new")
    for name, value in values.items():
        if name == "sex_at_birth":
            page.select_option(f"#{name}", value)
        else:
            page.fill(f"#{name}", value)
    page.click("text=Register patient >> nth=-1")
    page.wait_for_url(re.compile(r".*/patients/\d+$"))


def assert_clean(page):
    assert page.problems == []
    assert page.evaluate("window.__csp") == []
    assert page.dialogs == []


def test_register_find_by_typing_and_open_with_the_keyboard(page):
    sign_in(page)
    fill_registration(page, VALID)
    assert "Muñoz, Ana" in page.inner_text("#patient-banner")
    page.goto(page.base + "/")
    page.keyboard.press("/")  # jumps to the search box
    page.keyboard.type("munoz, a", delay=30)
    page.wait_for_selector("#search-result-1[aria-selected=true]")
    assert "3 Feb 1980" in page.inner_text("#patient-search-results")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/patients/\d+$"))
    assert "Allergies: not recorded" in page.inner_text("#banner-allergies")
    assert_clean(page)


def test_hostile_input_renders_inert_in_chromium(page):
    payloads = [
        "<script>alert(1)</script>",
        '"><img src=x onerror=alert(2)>',
        "'><svg onload=alert(3)>",
    ]
    values = dict(VALID)
    for index, name in enumerate(
        [
            "given_name",
            "family_name",
            "preferred_name",
            "gender_identity",
            "pronouns",
            "address_line1",
            "address_line2",
            "city",
            "state",
            "preferred_language",
            "emergency_contact_name",
            "emergency_contact_relationship",
            "insurance_payer",
            "insurance_member_id",
            "insurance_group",
        ]
    ):
        values[name] = payloads[index % len(payloads)]
    values["postal_code"] = "<i onclick=alert(4)>"
    sign_in(page)
    fill_registration(page, values)
    injected = (
        "document.querySelectorAll('img[src=x], svg[onload], i[onclick], main script').length"
    )
    assert page.evaluate(injected) == 0
    assert page.inner_text("#patient-banner").count("alert(") >= 1  # shown as text
    page.fill("#patient-search-input", '"><img')  # the family name's payload
    page.wait_for_selector("#search-result-1")
    assert page.evaluate(injected) == 0
    page.wait_for_timeout(300)
    assert_clean(page)
