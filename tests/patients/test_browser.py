"""In Chromium: register, find by typing, open with the keyboard; hostile input stays inert."""

from __future__ import annotations

import re
from datetime import date

import pytest
from playwright.sync_api import expect

from tests.patients.helpers import VALID, add_patient
from tests.support.browser import typing_answered

pytestmark = pytest.mark.browser


def fill_registration(page, values: dict):
    page.goto("/patients/new")
    for name, value in values.items():
        if name == "sex_at_birth":
            page.select_option(f"#{name}", value)
        else:
            page.fill(f"#{name}", value)
    page.click("text=Register patient >> nth=-1")
    page.wait_for_url(re.compile(r".*/patients/\d+$"))


def test_register_find_by_typing_and_open_with_the_keyboard(page, sign_in, watch):
    sign_in("frontdesk")
    fill_registration(page, VALID)
    assert "Muñoz, Ana" in page.inner_text("#patient-banner")
    page.goto("/")
    page.keyboard.press("/")  # jumps to the search box
    with typing_answered(page, r"/patients/search$", "munoz, a"):
        page.keyboard.type("munoz, a", delay=30)
    page.wait_for_selector("#search-result-1[aria-selected=true]")
    assert "3 Feb 1980" in page.inner_text("#patient-search-results")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/patients/\d+$"))
    assert "Allergies: not recorded" in page.inner_text("#banner-allergies")
    watch.assert_clean(page)


def test_hostile_input_renders_inert_in_chromium(page, sign_in, watch):
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
    sign_in("frontdesk")
    fill_registration(page, values)
    injected = (
        "document.querySelectorAll('img[src=x], svg[onload], i[onclick], main script').length"
    )
    assert page.evaluate(injected) == 0
    assert page.inner_text("#patient-banner").count("alert(") >= 1  # shown as text
    page.fill("#patient-search-input", '"><img')  # the family name's payload
    page.wait_for_selector("#search-result-1")
    # No such element exists, so no handler of one can still run later: nothing to wait for.
    assert page.evaluate(injected) == 0
    watch.assert_clean(page)


def test_find_by_given_then_family_and_by_a_near_miss(app, page, sign_in, watch):
    """What staff type on the first day: the name as said aloud, and a misspelling."""
    add_patient(app, "Rosalind", "Quibbleworth", date(1980, 3, 2))
    add_patient(app, "Hugo", "Quibleworth", date(1971, 5, 6))
    sign_in("frontdesk")
    page.goto("/")
    box = page.get_by_role("combobox", name="Find a patient")
    options = page.get_by_role("listbox", name="Matching patients").get_by_role("option")
    box.fill("Rosalind Quibbleworth")
    expect(options).to_have_count(1)
    expect(options.first).to_contain_text("Quibbleworth, Rosalind")
    box.fill("rosalind")
    expect(options).to_have_count(1)
    expect(options.first).to_contain_text("2 Mar 1980")
    box.fill("quibleworth")
    expect(options).to_have_count(2)
    expect(options.nth(0)).to_contain_text("Quibleworth, Hugo")
    expect(options.nth(0)).not_to_contain_text("Similar name")
    expect(options.nth(1)).to_contain_text("Quibbleworth, Rosalind")
    expect(options.nth(1)).to_contain_text("Similar name")
    box.press("ArrowDown")
    box.press("ArrowDown")
    box.press("Enter")
    page.wait_for_url(re.compile(r".*/patients/\d+$"))
    expect(page.locator("#patient-banner")).to_contain_text("Quibbleworth, Rosalind")
    watch.assert_clean(page)
