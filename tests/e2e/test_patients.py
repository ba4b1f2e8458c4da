"""The patient registry in a real browser: register, find, open; bad input; XSS payloads."""

from __future__ import annotations

import re
from urllib.parse import parse_qs

import pytest
from playwright.sync_api import Page, expect

from tests.support.browser import labelled

pytestmark = pytest.mark.browser

# Finds every element a payload below could have injected if it were parsed as markup:
# event-handler attributes, javascript: URLs, inline scripts and tags the portal never renders.
INJECTED_ELEMENTS = """
() => {
  const found = [];
  for (const el of document.querySelectorAll("*")) {
    for (const attr of el.attributes) {
      if (/^on/i.test(attr.name)) found.push(`<${el.localName} ${attr.name}>`);
      if (["href", "src", "action", "formaction", "srcdoc"].includes(attr.name)
          && /^\\s*javascript:/i.test(attr.value)) {
        found.push(`<${el.localName} ${attr.name}=javascript:>`);
      }
    }
    if (el.localName === "script" && !el.src) found.push("<script> without src");
  }
  for (const tag of ["iframe", "svg", "math", "style", "details", "img", "object", "embed"]) {
    document.querySelectorAll(tag).forEach(() => found.push(`<${tag}>`));
  }
  if (document.querySelectorAll("body").length > 1) found.push("<body> inside the body");
  return found;
}
"""


def fill_form(page: Page, values: dict[str, str]) -> None:
    for label, value in values.items():
        if label == "Sex assigned at birth":
            labelled(page, label).select_option(label=value)
        else:
            labelled(page, label).fill(value)


def submit_registration(page: Page) -> None:
    with page.expect_navigation():
        page.get_by_role("button", name="Register patient").click()


def register(page: Page, values: dict[str, str]) -> None:
    """Fill in the registration form and send it; confirm "different person" if asked."""
    page.goto("/patients/new")
    fill_form(page, values)
    submit_registration(page)
    different = page.get_by_label("This is a different person")
    if different.count():
        different.check()
        submit_registration(page)
    expect(page.get_by_role("region", name="Patient")).to_be_visible()


def search_for(page: Page, text: str):
    """Type into the top-bar search like a person and wait for htmx to swap the results."""
    search = page.get_by_label("Find a patient")
    search.fill("")

    def answers_the_whole_text(response) -> bool:
        if not response.url.endswith("/patients/search"):
            return False
        sent = parse_qs(response.request.post_data or "", keep_blank_values=True)
        return sent.get("q") == [text]

    with page.expect_response(answers_the_whole_text) as answer:
        search.type(text, delay=20)
    assert answer.value.status == 200
    # htmx marks the form while a request runs; the mark goes once the results are swapped.
    page.wait_for_function("() => !document.querySelector('form.patient-search.htmx-request')")
    return page.get_by_role("listbox", name="Matching patients")


def banner_value(page: Page, term: str) -> str:
    banner = page.get_by_role("region", name="Patient")
    return banner.locator(f"dt:text-is('{term}') + dd").inner_text()


def assert_inert(page: Page, watch, payloads) -> None:
    """No script ran, nothing was injected, and each payload reads as plain text."""
    assert page.evaluate("() => typeof window.__xss") == "undefined", "a payload ran"
    assert watch.dialogs == [], f"a payload opened a dialog: {watch.dialogs}"
    injected = page.evaluate(INJECTED_ELEMENTS)
    assert injected == [], f"payload markup reached the DOM: {injected}"
    for payload in payloads:
        expect(page.get_by_text(payload).first).to_be_visible()


def test_register_find_by_family_name_and_open_with_the_keyboard(page, sign_in, shot):
    sign_in("frontdesk")
    page.get_by_role("link", name="Register patient").click()
    expect(page.get_by_role("heading", name="Register a patient")).to_be_visible()
    register(
        page,
        {
            "Legal family name": "Whitfield",
            "Legal given name": "Ada",
            "Date of birth": "1980-02-03",
            "Sex assigned at birth": "Female",
            "Mobile phone": "(413) 555-0123",
            "City": "Springfield",
        },
    )
    expect(page.get_by_role("status")).to_contain_text("Patient registered.")
    ada_mrn = banner_value(page, "MRN")
    register(
        page,
        {
            "Legal family name": "Whitford",
            "Legal given name": "Ben",
            "Date of birth": "1991-07-30",
            "Sex assigned at birth": "Male",
        },
    )

    page.goto("/")
    results = search_for(page, "whitf")
    options = results.get_by_role("option")
    expect(options).to_have_count(2)
    expect(options.nth(0)).to_contain_text("Whitfield, Ada")
    expect(options.nth(0)).to_contain_text("3 Feb 1980")
    expect(options.nth(0)).to_contain_text(ada_mrn)
    expect(options.nth(0)).to_contain_text("(413) 555-0123")
    expect(options.nth(1)).to_contain_text("Whitford, Ben")
    shot("search-results")

    # Only the keyboard from here: the focus never leaves the search box.
    search = page.get_by_label("Find a patient")
    expect(search).to_be_focused()
    expect(options.nth(0)).to_have_attribute("aria-selected", "true")
    page.keyboard.press("ArrowDown")
    expect(options.nth(1)).to_have_attribute("aria-selected", "true")
    expect(options.nth(0)).to_have_attribute("aria-selected", "false")
    page.keyboard.press("ArrowUp")
    expect(options.nth(0)).to_have_attribute("aria-selected", "true")
    expect(search).to_be_focused()
    with page.expect_navigation():
        page.keyboard.press("Enter")

    banner = page.get_by_role("region", name="Patient")
    expect(banner).to_contain_text("Whitfield, Ada")
    assert banner_value(page, "DOB").startswith("3 Feb 1980")
    assert re.search(r"\(\d+ y\)", banner_value(page, "DOB")), "the banner shows the age"
    assert banner_value(page, "MRN") == ada_mrn
    assert banner_value(page, "Sex") == "Female"
    shot("patient-page")


def test_search_ignores_case_and_accents_in_names(page, sign_in):
    sign_in("frontdesk")
    register(
        page,
        {
            "Legal family name": "Núñez",
            "Legal given name": "José",
            "Date of birth": "1972-11-05",
            "Sex assigned at birth": "Male",
        },
    )
    for typed in ("nune", "NUÑ", "nunez, jo"):
        results = search_for(page, typed)
        expect(results.get_by_role("option")).to_have_count(1)
        expect(results.get_by_role("option")).to_contain_text("Núñez, José")


def test_invalid_date_and_phone_get_messages_beside_the_fields_and_keep_the_input(
    page, sign_in, watch, shot
):
    # The invalid form comes back with 422 (Chromium logs that load as an error).
    watch.expect_http_error(422, "/patients/new")
    sign_in("frontdesk")
    page.goto("/patients/new")
    typed = {
        "Legal family name": "Marsh",
        "Legal given name": "Priya",
        "Preferred name": "Pri",
        "Date of birth": "2099-01-01",
        "Sex assigned at birth": "Female",
        "Mobile phone": "12345",
        "Email": "priya.marsh@example.com",
        "Address line 1": "12 Elm Road",
        "City": "Northampton",
        "Postal code": "01060",
        "Payer": "Blue Valley Health",
        "Member ID": "BVH-7731",
    }
    fill_form(page, typed)
    submit_registration(page)

    expect(page.get_by_role("alert")).to_contain_text("nothing was saved")
    for label, message in (
        ("Date of birth", "cannot be in the future"),
        ("Mobile phone", "Not a valid phone number"),
    ):
        control = labelled(page, label)
        expect(control).to_have_attribute("aria-invalid", "true")
        error_id = control.get_attribute("aria-describedby")
        expect(page.locator(f"#{error_id}")).to_contain_text(message)
    # Everything typed is still there, the wrong values included, for the user to correct.
    for label, value in typed.items():
        if label == "Sex assigned at birth":
            expect(labelled(page, label)).to_have_value("female")
        else:
            expect(labelled(page, label)).to_have_value(value)
    expect(labelled(page, "City")).not_to_have_attribute("aria-invalid", "true")
    shot("invalid-date-and-phone")

    labelled(page, "Date of birth").fill("1899-12-31")
    labelled(page, "Mobile phone").fill("(413) 555-0188")
    submit_registration(page)
    expect(
        page.locator(f"#{labelled(page, 'Date of birth').get_attribute('aria-describedby')}")
    ).to_have_text("The date of birth cannot be before 1 Jan 1900.")
    expect(labelled(page, "Mobile phone")).not_to_have_attribute("aria-invalid", "true")

    labelled(page, "Date of birth").fill("1988-09-12")
    submit_registration(page)
    banner = page.get_by_role("region", name="Patient")
    expect(banner).to_contain_text("Marsh, Priya")
    expect(page.get_by_text("Blue Valley Health")).to_be_visible()
    expect(page.get_by_text("(413) 555-0188")).to_be_visible()


# One payload per text field, each within the field's maximum length.
XSS_PAYLOADS = {
    "Legal family name": "<script>window.__xss=1</script>",
    "Legal given name": '<img src=x onerror="window.__xss=1">',
    "Preferred name": '"><svg onload=window.__xss=1>',
    "Gender identity": "javascript:alert(1)",
    "Pronouns": "{{7*7}}",
    "Preferred language": '</dd><iframe srcdoc="x"></iframe>',
    "Address line 1": '<a href="javascript:window.__xss=1">click</a>',
    "Address line 2": "'\"><img src=x onerror=window.__xss=1>",
    "City": "</textarea><script>window.__xss=1</script>",
    "State / region": "<style>body{display:none}</style>",
    "Postal code": "<svg onload=__xss=1>",
    "Name": "<body onload=window.__xss=1>",
    "Relationship": "{{ config }}{% raw %}",
    "Payer": "<math><mtext><table><mglyph><style><img src=x onerror=window.__xss=1>",
    "Member ID": "<details open ontoggle=window.__xss=1>",
    "Group number": "<input autofocus onfocus=window.__xss=1>",
}
# Fields whose validation cannot accept markup: a payload there comes back in a 422 form.
XSS_INVALID_ONLY = {
    "Email": '"><script>window.__xss=1</script>@x.org',
    "Mobile phone": "<script>__xss=1</script>",
    "Home phone": '"><svg onload=__xss=1>',
    "Work phone": "javascript:alert(1)",
    "Phone": "{{7*7}}",
    "Country": '">',
}
VALID_FIXES = {
    "Email": "o'brien+{{7*7}}@example.com",
    "Mobile phone": "(413) 555-0144",
    "Home phone": "",
    "Work phone": "",
    "Phone": "",
    "Country": "US",
}


def test_xss_payloads_in_every_registration_field_render_inert(page, sign_in, watch, shot):
    watch.expect_http_error(422, "/patients/new")
    watch.expect_http_error(409, "/patients/new")
    sign_in("frontdesk")
    page.goto("/patients/new")
    fill_form(page, {"Date of birth": "1975-06-14", "Sex assigned at birth": "Female"})
    fill_form(page, {**XSS_PAYLOADS, **XSS_INVALID_ONLY})
    submit_registration(page)

    # The form comes back with every payload kept, verbatim, as the value of its field.
    expect(page.get_by_role("alert")).to_contain_text("nothing was saved")
    assert page.evaluate("() => typeof window.__xss") == "undefined"
    assert page.evaluate(INJECTED_ELEMENTS) == []
    for label, payload in {**XSS_PAYLOADS, **XSS_INVALID_ONLY}.items():
        expect(labelled(page, label)).to_have_value(payload)
    for label in XSS_INVALID_ONLY:
        expect(labelled(page, label)).to_have_attribute("aria-invalid", "true")
    shot("rejected-payloads")

    fill_form(page, VALID_FIXES)
    submit_registration(page)
    different = page.get_by_label("This is a different person")
    if different.count():
        different.check()
        submit_registration(page)

    shown = [*XSS_PAYLOADS.values(), VALID_FIXES["Email"]]
    expect(page.get_by_role("region", name="Patient")).to_be_visible()
    assert_inert(page, watch, shown)
    shot("patient-page")
    mrn = banner_value(page, "MRN")

    results = search_for(page, mrn)
    option = results.get_by_role("option")
    expect(option).to_have_count(1)
    expect(option).to_contain_text(XSS_PAYLOADS["Legal family name"])
    expect(option).to_contain_text(XSS_PAYLOADS["Legal given name"])
    expect(option).to_contain_text(XSS_PAYLOADS["Preferred name"])
    assert_inert(page, watch, [])
    shot("search-results")

    # Markup and SQL metacharacters typed into the search box are just text, too.
    for typed in ("<img src=x onerror=window.__xss=1>", "'; DROP TABLE patients; --", "%_\\"):
        results = search_for(page, typed)
        expect(results.get_by_role("option")).to_have_count(0)
        expect(results).to_contain_text(re.compile(r"No matching patients|Type at least"))
    assert_inert(page, watch, [])
    results = search_for(page, mrn)
    expect(results.get_by_role("option")).to_have_count(1)


def test_duplicate_check_lists_the_match_and_needs_an_explicit_different_person(
    page, sign_in, watch, shot
):
    watch.expect_http_error(409, "/patients/new")
    sign_in("frontdesk")
    first = {
        "Legal family name": "Okafor",
        "Legal given name": "Chidi",
        "Date of birth": "1969-04-21",
        "Sex assigned at birth": "Male",
    }
    register(page, first)
    first_mrn = banner_value(page, "MRN")

    page.goto("/patients/new")
    fill_form(page, {**first, "Legal given name": "Chinedu", "City": "Holyoke"})
    submit_registration(page)

    matches = page.get_by_role("region", name="This patient may already be registered")
    expect(matches).to_be_visible()
    expect(matches.get_by_role("link", name="Okafor, Chidi")).to_be_visible()
    expect(matches).to_contain_text(first_mrn)
    # Nothing was saved, and what was typed is still there.
    expect(labelled(page, "Legal given name")).to_have_value("Chinedu")
    expect(labelled(page, "City")).to_have_value("Holyoke")
    different = page.get_by_label("This is a different person")
    expect(different).not_to_be_checked()
    shot("possible-duplicate")

    # Sending again without ticking the box stops again.
    submit_registration(page)
    expect(matches).to_be_visible()

    different.check()
    submit_registration(page)
    banner = page.get_by_role("region", name="Patient")
    expect(banner).to_contain_text("Okafor, Chinedu")
    assert banner_value(page, "MRN") != first_mrn

    results = search_for(page, "okafor")
    expect(results.get_by_role("option")).to_have_count(2)


def test_slash_jumps_to_the_search_and_escape_closes_the_results(page, sign_in):
    sign_in("frontdesk")
    register(
        page,
        {
            "Legal family name": "Lindqvist",
            "Legal given name": "Eva",
            "Date of birth": "1958-12-01",
            "Sex assigned at birth": "Female",
        },
    )
    # Focus is on the page, not in a text box: "/" goes to the search.
    expect(page.locator("input:focus")).to_have_count(0)
    page.keyboard.press("/")
    search = page.get_by_label("Find a patient")
    expect(search).to_be_focused()
    results = search_for(page, "lindq")
    expect(results.get_by_role("option")).to_have_count(1)
    expect(search).to_have_attribute("aria-expanded", "true")
    page.keyboard.press("Escape")
    expect(results.get_by_role("option")).to_have_count(0)
    expect(search).to_have_attribute("aria-expanded", "false")


@pytest.mark.parametrize("width", [1280, 768])
def test_patient_page_fits_the_window_without_sideways_scrolling(page, sign_in, width, shot):
    page.set_viewport_size({"width": width, "height": 900})
    sign_in("frontdesk")
    register(
        page,
        {
            "Legal family name": "Featherstonehaugh-Montgomery",
            "Legal given name": "Bartholomew",
            "Preferred name": "Bart",
            "Date of birth": "1949-03-17",
            "Sex assigned at birth": "Male",
            "Email": "christopher.alexander.wellington@massachusettsgeneralphysicians.org",
            "Address line 1": "Apartment 12B, The Old Mill Building, 1450 Connecticut River Road",
            "Payer": "Commonwealth Health Insurance Connector Authority",
        },
    )
    shot(f"patient-page-{width}")
    overflow = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px at {width}px"
    # Long values wrap inside their own column instead of running over the next one.
    spill = page.evaluate(
        """() => Array.from(document.querySelectorAll("main dd")).filter(
             (dd) => dd.scrollWidth > dd.clientWidth + 1).map((dd) => dd.textContent.trim())"""
    )
    assert spill == [], f"values run out of their column: {spill}"
    banner = page.get_by_role("region", name="Patient")
    expect(banner).to_contain_text("Featherstonehaugh-Montgomery, Bartholomew")
    expect(banner).to_contain_text("MRN")
