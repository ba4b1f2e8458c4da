"""Ordering labs by keyboard in Chromium, shared by the ordering and closed-loop browser
tests: Tab or the arrow keys to a test found as you type, Enter adds it."""

from __future__ import annotations

import pytest

from tests.support.browser import typing_answered


def is_(focused: str, name: str) -> bool:
    """The focused control is ``name`` (a test found reads "Add <name> LOINC ...")."""
    return " ".join(focused.split()) == name or focused.startswith(f"{name} LOINC")


def tab_to(page, name: str, limit: int = 60) -> None:
    """Press Tab until the focused element's text or label starts with ``name``."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            "(document.activeElement.innerText || document.activeElement.value || '').trim()"
        )
        if is_(focused, name):
            return
    pytest.fail(f"{name!r} was not reached with the Tab key")


def arrow_to(page, name: str, limit: int = 15) -> None:
    """Press ArrowDown (from the search box into the results) until ``name`` has the focus."""
    for _ in range(limit):
        page.keyboard.press("ArrowDown")
        focused = page.evaluate("document.activeElement.innerText.trim()")
        if is_(focused, name):
            return
    pytest.fail(f"{name!r} was not reached with the arrow keys")


def add_by_keyboard(page, typed: str, name: str, *, arrows: bool = False) -> None:
    from playwright.sync_api import expect

    search = page.get_by_label("Find a test or panel")
    expect(search).to_be_focused()
    # The search for all of it: an earlier one's list, answered mid-typing, would be replaced
    # under the arrow keys.
    with typing_answered(page, r"/labs/orders/\d+/tests/search$", typed):
        page.keyboard.type(typed)
    expect(page.get_by_role("list", name="Tests found")).to_be_visible()
    if arrows:
        arrow_to(page, f"Add {name}")
    else:
        tab_to(page, f"Add {name}")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    expect(page.get_by_role("list", name="Tests on this order")).to_contain_text(name)
