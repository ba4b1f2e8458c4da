"""Text is readable: every piece of visible text meets WCAG 2 AA contrast (4.5:1, 3:1 large)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

# For each element that holds text itself, compare its colour with the background it is drawn
# on (ancestors' backgrounds composited, opacity applied). Elements over an image or gradient
# are skipped: their background cannot be known from styles.
LOW_CONTRAST = """
() => {
  const parse = (c) => {
    const m = c.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const p = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number);
    return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
  };
  const over = (top, bottom) => {
    const a = top.a + bottom.a * (1 - top.a);
    const mix = (t, b) => (t * top.a + b * bottom.a * (1 - top.a)) / (a || 1);
    return { r: mix(top.r, bottom.r), g: mix(top.g, bottom.g), b: mix(top.b, bottom.b), a };
  };
  const lum = (c) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
  };
  const background = (el) => {
    const layers = [];
    for (let node = el; node; node = node.parentElement) {
      const style = getComputedStyle(node);
      if (style.backgroundImage !== "none" && node !== document.documentElement) return null;
      const bg = parse(style.backgroundColor);
      if (bg && bg.a > 0) layers.push(bg);
      if (bg && bg.a >= 1) break;
    }
    let result = { r: 255, g: 255, b: 255, a: 1 };
    for (const layer of layers.reverse()) result = over(layer, result);
    return result;
  };
  const opacity = (el) => {
    let value = 1;
    for (let node = el; node; node = node.parentElement) {
      value *= Number(getComputedStyle(node).opacity);
    }
    return value;
  };
  const failures = [];
  for (const el of document.body.querySelectorAll("*")) {
    const ownText = Array.from(el.childNodes)
      .filter((n) => n.nodeType === Node.TEXT_NODE)
      .map((n) => n.textContent.trim())
      .join(" ")
      .trim();
    if (!ownText || !el.getClientRects().length || el.closest("[aria-hidden='true']")) continue;
    if (el.matches(":disabled, option, script, style")) continue;
    const style = getComputedStyle(el);
    if (style.visibility !== "visible" || style.clip === "rect(0px, 0px, 0px, 0px)") continue;
    if (el.closest(".visually-hidden, .visually-hidden-focusable:not(:focus)")) continue;
    const bg = background(el);
    if (!bg) continue;
    const fg = parse(style.color);
    fg.a *= opacity(el);
    const shown = over(fg, bg);
    const [hi, lo] = [lum(shown), lum(bg)].sort((a, b) => b - a);
    const ratio = (hi + 0.05) / (lo + 0.05);
    const size = parseFloat(style.fontSize);
    const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5)) {
      const where = `<${el.localName} class="${el.getAttribute("class") || ""}">`;
      failures.push(`${ratio.toFixed(2)}:1 "${ownText.slice(0, 40)}" ${where}`);
    }
  }
  return failures;
}
"""


def low_contrast(page) -> list[str]:
    return page.evaluate(LOW_CONTRAST)


def test_sign_in_page_text_is_readable(page, watch):
    watch.expect_http_error(401, "/auth/sign-in")
    page.goto("/auth/sign-in")
    assert low_contrast(page) == []
    page.get_by_label("Username").fill("frontdesk")
    page.get_by_label("Password").fill("not the right password")
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    assert low_contrast(page) == []


def test_signed_in_pages_text_is_readable(page, sign_in, watch):
    watch.expect_http_error(422, "/patients/new")
    sign_in("frontdesk")
    assert low_contrast(page) == [], "home page"

    page.goto("/patients/new")
    page.get_by_role("button", name="Register patient").click()
    expect(page.get_by_role("alert")).to_be_visible()
    assert low_contrast(page) == [], "registration form with errors"

    page.get_by_label("Legal family name").fill("Abernathy")
    page.get_by_label("Legal given name").fill("Rose")
    page.get_by_label("Date of birth").fill("1961-05-09")
    page.get_by_label("Sex assigned at birth").select_option(label="Female")
    with page.expect_navigation():
        page.get_by_role("button", name="Register patient").click()
    expect(page.get_by_role("region", name="Patient")).to_be_visible()
    assert low_contrast(page) == [], "patient page"

    with page.expect_response("**/patients/search"):
        page.get_by_label("Find a patient").type("aber", delay=20)
    results = page.get_by_role("listbox", name="Matching patients")
    expect(results.get_by_role("option")).to_have_count(1)
    assert low_contrast(page) == [], "search results"


@pytest.mark.parametrize(
    "path", ["/admin/users", "/admin/users/new", "/admin/clinic", "/admin/audit/", "/auth/account"]
)
def test_admin_pages_text_is_readable(page, sign_in, path):
    sign_in("admin")
    page.goto(path)
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    assert low_contrast(page) == []
