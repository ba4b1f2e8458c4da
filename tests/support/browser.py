"""Playwright fixtures for the browser tests: Debian's Chromium against the live server.

A test folder's conftest.py imports them (``from tests.support.browser import page, ...``),
which makes ``browser`` package-scoped to that folder: one Chromium for the folder's tests. Each
test gets a fresh context (no cookies, no storage) and a page watched for trouble; ``new_page``
opens more such pages, each in its own context (a second signed-in user, JavaScript off). A test
fails when the browser reports any of:

- a console message of type "error" (this includes failed loads such as a 404 favicon, and
  Chromium's own "Refused to ..." CSP messages),
- an uncaught exception in the page ("pageerror"),
- a Content-Security-Policy violation (a ``securitypolicyviolation`` listener installed by an
  init script, which runs outside the page's CSP, records them into ``window.__cspViolations``
  and also reports each one to Python at once so a later navigation cannot lose it),
- a JavaScript dialog (alert/confirm/prompt): the portal has none, so one means injected code.

An HTTP error status that a test provokes on purpose (a 401 for a wrong password, a 422 for an
invalid form) makes Chromium log "Failed to load resource" (and htmx, for a request of its that
the page treats as an error, "Response Status Error Code ..."); the test declares it with
``watch.expect_http_error(status, path)`` and only those exact messages are forgiven.

On failure a full-page screenshot is saved in ``test-artifacts/`` (git-ignored). With
``PORTAL_E2E_SCREENSHOTS=1`` every test also keeps the screenshots it asks for with ``shot()``.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest
from playwright.sync_api import Browser, Locator, Page, sync_playwright
from playwright.sync_api import Error as PlaywrightError

from tests.support.clients import open_signed_in_session, session_cookie_name
from tests.support.database import PASSWORD, TOTP_SECRETS

CHROMIUM = os.environ.get("PORTAL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
TIMEOUT_MS = 10_000

WATCH_SCRIPT = """
(() => {
  window.__cspViolations = [];
  document.addEventListener("securitypolicyviolation", (event) => {
    const violation = {
      directive: event.violatedDirective,
      blocked: event.blockedURI,
      sample: event.sample,
      source: event.sourceFile,
      line: event.lineNumber,
      page: document.location.href,
    };
    window.__cspViolations.push(violation);
    if (typeof window.__portalReportCsp === "function") {
      window.__portalReportCsp(violation);
    }
  }, true);
})();
"""


SUPERSEDED_REQUEST_MESSAGES = frozenset({"htmx:sendAbort", "htmx:afterRequest"})


@dataclass
class BrowserWatch:
    """What went wrong in the browser during one test, and what the test said to expect."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    csp_violations: list[dict] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    expected_http_errors: set[tuple[int, str]] = field(default_factory=set)

    def expect_http_error(self, status: int, path: str) -> None:
        """Forgive Chromium's "Failed to load resource" message for this status on this path."""
        self.expected_http_errors.add((status, path))

    def on_console(self, message) -> None:
        if message.type != "error":
            return
        url = (message.location or {}).get("url", "")
        status = re.match(
            r"Failed to load resource: the server responded with a status of (\d+)", message.text
        )
        if status:
            path = re.sub(r"^https?://[^/]+", "", url).split("?")[0]
            if (int(status.group(1)), path) in self.expected_http_errors:
                return
        by_htmx = re.fullmatch(r"Response Status Error Code (\d+) from (\S+)", message.text)
        if by_htmx:
            path = by_htmx.group(2).split("?")[0]
            if (int(by_htmx.group(1)), path) in self.expected_http_errors:
                return
        # A typeahead (hx-sync "this:replace") aborts its request in flight when a newer
        # keystroke's request replaces it, and htmx logs the abort, and the aborted request's
        # end, as errors. On a busy machine that happens whenever typing outpaces a reply; it
        # is the intended behaviour, not a fault. A failed request still logs htmx:sendError,
        # htmx:timeout or a response error, which are kept.
        if message.text in SUPERSEDED_REQUEST_MESSAGES:
            return
        self.console_errors.append(f"{message.text} (at {url or 'unknown location'})")

    def on_page_error(self, error) -> None:
        self.page_errors.append(str(error))

    def on_csp_violation(self, source, violation: dict) -> None:
        if violation not in self.csp_violations:
            self.csp_violations.append(violation)

    def on_dialog(self, dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def collect_window_violations(self, page: Page) -> None:
        """Read the page's own record too (the current document's violations)."""
        try:
            found = page.evaluate("() => window.__cspViolations || []")
        except PlaywrightError:  # page closed or mid-navigation: nothing left to read
            return
        for violation in found:
            self.on_csp_violation(None, violation)

    def problems(self) -> list[str]:
        lines = [f"console error: {text}" for text in self.console_errors]
        lines += [f"page error: {text}" for text in self.page_errors]
        lines += [f"CSP violation: {violation}" for violation in self.csp_violations]
        lines += [f"dialog opened: {text}" for text in self.dialogs]
        return lines

    def clear(self, page: Page | None = None) -> None:
        """Forget what was seen so far (for tests that provoke a problem on purpose)."""
        if page is not None:
            page.evaluate("() => { window.__cspViolations = []; }")
        self.console_errors.clear()
        self.page_errors.clear()
        self.csp_violations.clear()
        self.dialogs.clear()

    def assert_clean(self, page: Page | None = None) -> None:
        if page is not None:
            self.collect_window_violations(page)
        problems = self.problems()
        assert not problems, "the browser reported problems:\n" + "\n".join(problems)


_reports = pytest.StashKey[dict]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item so fixtures can see whether the test failed."""
    report = yield
    item.stash.setdefault(_reports, {})[report.when] = report
    return report


def totp_now(app, username: str) -> str:
    """The code an authenticator app shows right now (the next one if this one was used).

    Not the previous step's code: typed near a 30-second boundary, that one may already be
    outside the server's ±1-step window when the request arrives, and the test would flake.
    """
    from portal.auth.models import User
    from portal.extensions import db

    with app.app_context():
        user = db.session.scalars(db.select(User).filter_by(username=username)).one()
        last = user.totp_last_step
        db.session.remove()
    step = int(time.time()) // 30
    if last is not None and step <= last:
        step = last + 1
    return pyotp.TOTP(TOTP_SECRETS[username]).at(step * 30)


@pytest.fixture(scope="package")
def browser() -> Browser:
    """Debian's Chromium, headless, shared by the tests of the folder that imports it.

    Package scope, not session: Playwright's sync API refuses to start while another sync
    instance is alive in the thread, so the browser is closed when the folder is done and
    browser tests elsewhere in the suite can start their own.
    """
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def watch() -> BrowserWatch:
    return BrowserWatch()


def _artifact_name(nodeid: str, suffix: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid.split("::", 1)[-1])[:120]
    return ARTIFACTS / f"{safe}{suffix}.png"


def _open_page(browser: Browser, base_url: str, watch: BrowserWatch, **context_options) -> Page:
    """A page in a fresh browser context, every kind of trouble reported to ``watch``."""
    context = browser.new_context(
        **{
            "base_url": base_url,
            "viewport": {"width": 1280, "height": 800},
            "locale": "en-US",
            "timezone_id": "America/New_York",
            **context_options,
        }
    )
    context.set_default_timeout(TIMEOUT_MS)
    context.expose_binding("__portalReportCsp", watch.on_csp_violation)
    context.add_init_script(WATCH_SCRIPT)
    tab = context.new_page()
    tab.on("console", watch.on_console)
    tab.on("pageerror", watch.on_page_error)
    tab.on("dialog", watch.on_dialog)
    return tab


def _close_pages(tabs: list[Page], watch: BrowserWatch, request) -> None:
    """Close the test's pages (screenshots first if it failed); fail it on browser trouble."""
    for tab in tabs:
        watch.collect_window_violations(tab)
    problems = watch.problems()
    call = request.node.stash.get(_reports, {}).get("call")
    for number, tab in enumerate(tabs, start=1):
        if (call is not None and call.failed) or problems:
            ARTIFACTS.mkdir(exist_ok=True)
            suffix = "-failure" if number == 1 else f"-failure-{number}"
            # A screenshot that cannot be taken must not hide the real failure.
            with contextlib.suppress(PlaywrightError):
                tab.screenshot(path=_artifact_name(request.node.nodeid, suffix), full_page=True)
        tab.context.close()
    if problems:
        pytest.fail("the browser reported problems:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def page(browser, live_server, watch, request) -> Page:
    """A page in a fresh browser context on the live server; fails the test on browser trouble."""
    tab = _open_page(browser, live_server, watch)
    yield tab
    _close_pages([tab], watch, request)


@pytest.fixture
def new_page(browser, live_server, watch, request):
    """new_page(**context_options) -> another watched page, in a browser context of its own.

    For what ``page`` alone cannot do: two people signed in at once (a context each), or
    context options such as ``java_script_enabled=False``. Its pages share the test's
    ``watch`` and are checked and closed like ``page``. Sign in on one with
    ``sign_in_by_cookie`` (set-up) or ``sign_in_through_form`` (tests about signing in).
    """
    tabs: list[Page] = []

    def open_page(**context_options) -> Page:
        tabs.append(_open_page(browser, live_server, watch, **context_options))
        return tabs[-1]

    yield open_page
    _close_pages(tabs, watch, request)


@pytest.fixture
def shot(page, request):
    """shot("name"): keep a screenshot of the page when PORTAL_E2E_SCREENSHOTS is set."""

    def take(name: str) -> None:
        if os.environ.get("PORTAL_E2E_SCREENSHOTS"):
            ARTIFACTS.mkdir(exist_ok=True)
            # caret="initial": to hide the text caret Playwright writes a style attribute
            # on every input and leaves style="" behind; htmx then copies that attribute
            # onto a swapped-in element with the same id, which the page's CSP refuses, so
            # a test with screenshots on would fail where the same test without passes.
            page.screenshot(
                path=_artifact_name(request.node.nodeid, f"-{name}"),
                full_page=True,
                caret="initial",
            )

    return take


def sign_in_through_form(page: Page, app, username: str, password: str | None = None) -> None:
    """Sign in on this page through the form, typing a fresh TOTP code when asked."""

    page.goto("/auth/sign-in")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password or PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    if page.url.endswith("/auth/second-factor"):
        # The code is computed only now, as a person would read it off the phone.
        page.get_by_label("6-digit code").fill(totp_now(app, username))
        with page.expect_navigation():
            page.get_by_role("button", name="Verify and sign in").click()
    assert "/auth/" not in page.url, f"sign-in as {username} ended on {page.url}"


def sign_in_by_cookie(page: Page, app, username: str) -> None:
    """Start signed in on this page without the form, then open the home page (where the
    form would have landed): the cookie of a session made directly in the table.

    For tests that sign in only as set-up; tests about signing in, sessions, MFA or
    time-outs use ``sign_in_through_form``.
    """

    signed = open_signed_in_session(app, username)
    # Host-only, like the server's own cookie (a cookie is not bound to a port).
    page.context.add_cookies(
        [
            {
                "name": session_cookie_name(app),
                "value": signed.token,
                "url": "http://127.0.0.1/",
                "httpOnly": True,
                "sameSite": "Lax",
            }
        ]
    )
    page.goto("/")
    assert "/auth/" not in page.url, f"signed in as {username} by cookie, ended on {page.url}"


@pytest.fixture
def sign_in(page, app):
    """sign_in("drlee") starts ``page`` signed in (``sign_in_by_cookie``), on the home page.

    ``sign_in("drlee", through_the_form=True)`` (or with a password) signs in through the
    form instead, for tests about signing in. For a page of new_page's: the functions.
    """

    def run(username: str, password: str | None = None, *, through_the_form: bool = False):
        if through_the_form or password is not None:
            sign_in_through_form(page, app, username, password)
        else:
            sign_in_by_cookie(page, app, username)

    return run


def labelled(page: Page | Locator, label: str) -> Locator:
    """The form control whose label is ``label``, however the label goes on after it.

    A required field's label adds " * (required)", so an exact name would miss it and a
    substring would also match "Onset date" for "Onset"; this matches the words up to a
    word boundary.
    """
    return page.get_by_label(re.compile(rf"^{re.escape(label)}(\W|$)"))


def post_from_page(page: Page, path: str, data: dict[str, str]) -> int:
    """POST ``data`` to ``path`` from the page's own script, as a stale tab's autosave would
    (the session's cookie, the page's CSRF token, htmx's header); returns the status.

    For what the page no longer offers (saving a signed note): the server must refuse it
    itself. A refusal is an HTTP error the browser logs: declare it with
    ``watch.expect_http_error`` first.
    """
    return page.evaluate(
        """async ([path, data]) => {
            const token = document.querySelector('meta[name="csrf-token"]').content;
            const response = await fetch(path, {method: "POST", body: new URLSearchParams(data),
                headers: {"X-CSRFToken": token, "HX-Request": "true"}});
            return response.status;
        }""",
        [path, data],
    )


@contextlib.contextmanager
def typing_answered(page: Page, path: str, typed: str) -> Iterator[None]:
    """Wait, after the typing done inside the block, until the request that carries all of
    ``typed`` (a search, an autosave) has been answered and its answer swapped into the page.

    A typeahead searches once typing pauses (htmx's ``delay:``). On a loaded machine the
    keystrokes themselves can pause that long, so a search for the first letters goes out
    and is answered while the rest is still being typed: waiting for "a response" or for
    "a match is listed" can return on that early list, and the next click or key then acts
    on a list that the answer for the whole text replaces a moment later (an autosave: the
    saved text is not yet all of it). ``path`` is a regular expression for the request's
    path (``/appointments/patients$``); ``typed`` is a field's whole value in it.
    """

    def for_all_of_it(response) -> bool:
        request = response.request
        if not re.search(path, urlsplit(request.url).path):
            return False
        fields = parse_qs(urlsplit(request.url).query)
        for name, values in parse_qs(request.post_data or "").items():
            fields.setdefault(name, []).extend(values)
        return any(typed in values for values in fields.values())

    with page.expect_response(for_all_of_it):
        yield
    # htmx swaps the answer and takes its request's class off in the same task.
    page.wait_for_function("() => !document.querySelector('.htmx-request')")
