"""In Chromium: register, find by typing, open with the keyboard; hostile input stays inert."""

from __future__ import annotations

import re

import pytest

from tests.patients.helpers import VALID

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
    assert page.evaluate(injected) == 0
    page.wait_for_timeout(300)
    watch.assert_clean(page)
