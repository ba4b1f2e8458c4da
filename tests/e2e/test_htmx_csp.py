"""htmx works under the portal's Content-Security-Policy, and the watch really catches trouble."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_top_bar_search_swaps_results_under_the_csp(page, sign_in, watch, shot):
    sign_in("frontdesk")
    # htmx read its configuration from the meta tag: no eval, no cross-origin requests.
    config = page.evaluate(
        "() => ({allowEval: htmx.config.allowEval, selfRequestsOnly: htmx.config.selfRequestsOnly,"
        " historyCacheSize: htmx.config.historyCacheSize})"
    )
    assert config == {"allowEval": False, "selfRequestsOnly": True, "historyCacheSize": 0}

    search = page.get_by_label("Find a patient")
    # The request that carries the whole word (on a busy machine an earlier keystroke's may
    # go first).
    with page.expect_request(
        lambda r: r.url.endswith("/patients/search") and "zzqx" in (r.post_data or "")
    ) as caught:
        search.type("zzqx", delay=30)
    request = caught.value
    assert request.method == "POST"
    # What was typed travels in the body, never in the URL.
    assert "zzqx" not in request.url
    headers = request.all_headers()
    assert headers.get("hx-request") == "true"
    assert headers.get("x-csrftoken"), "htmx must send the CSRF token header"

    results = page.get_by_role("listbox", name="Matching patients")
    expect(results).to_contain_text("No matching patients.")
    shot("search-empty")
    watch.assert_clean(page)


def test_the_watch_records_csp_violations_and_page_errors(page, sign_in, watch):
    """Guard for the fixture itself: an injected inline script is blocked and reported."""
    sign_in("frontdesk")
    # Chromium reports the refusal and the error to Python as events, a moment after the
    # page met them: wait for those events, not for a guessed time.
    with (
        page.expect_console_message(lambda message: "Content Security Policy" in message.text),
        page.expect_event("pageerror", lambda error: "deliberate page error" in str(error)),
    ):
        page.evaluate(
            """() => {
              const s = document.createElement("script");
              s.textContent = "window.__ranInline = 1";
              document.body.append(s);
              setTimeout(() => { throw new Error("deliberate page error"); }, 0);
            }"""
        )
    page.wait_for_function("() => window.__cspViolations.length > 0")
    assert page.evaluate("() => window.__ranInline") is None
    watch.collect_window_violations(page)
    assert any(v["directive"].startswith("script-src") for v in watch.csp_violations)
    assert any("deliberate page error" in e for e in watch.page_errors)
    assert any("Content Security Policy" in e for e in watch.console_errors)
    watch.clear(page)
