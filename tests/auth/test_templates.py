"""The sign-in pages are usable with a keyboard, a screen reader and a password manager."""

from __future__ import annotations

from html.parser import HTMLParser

from tests.auth.helpers import totp_code
from tests.support.database import PASSWORD, TOTP_SECRETS


class FormControls(HTMLParser):
    """Collects inputs and the ids that labels point at."""

    def __init__(self):
        super().__init__()
        self.inputs: list[dict] = []
        self.label_targets: set[str] = set()

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag in ("input", "select", "textarea"):
            self.inputs.append(attributes)
        elif tag == "label" and attributes.get("for"):
            self.label_targets.add(attributes["for"])


def controls(response) -> FormControls:
    parser = FormControls()
    parser.feed(response.get_data(as_text=True))
    return parser


def visible_inputs_by_name(parsed: FormControls) -> dict[str, dict]:
    visible = [i for i in parsed.inputs if i.get("type") != "hidden"]
    for control in visible:
        assert control.get("id") in parsed.label_targets, f"no label for {control}"
    return {control.get("name"): control for control in visible}


def test_sign_in_page(client):
    fields = visible_inputs_by_name(controls(client.get("/auth/sign-in")))
    assert fields["username"]["autocomplete"] == "username"
    assert fields["password"]["autocomplete"] == "current-password"
    assert fields["password"]["type"] == "password"
    assert "autofocus" in fields["username"]


def test_second_factor_page(client):
    client.refresh_csrf()
    client.post_form("/auth/sign-in", {"username": "drlee", "password": PASSWORD})
    fields = visible_inputs_by_name(controls(client.get("/auth/second-factor")))
    assert fields["code"]["autocomplete"] == "one-time-code"
    assert fields["code"]["inputmode"] == "numeric"
    assert fields["recovery_code"]["autocomplete"] == "off"
    assert "inputmode" not in fields["recovery_code"]  # recovery codes have letters
    assert (
        client.post_form(
            "/auth/second-factor", {"code": totp_code(TOTP_SECRETS["drlee"])}
        ).status_code
        == 302
    )


def test_enrolment_and_account_pages(signed_in):
    browser = signed_in("nurse")
    fields = visible_inputs_by_name(controls(browser.get("/auth/enrol-mfa")))
    assert fields["code"]["autocomplete"] == "one-time-code"
    assert fields["code"]["inputmode"] == "numeric"
    fields = visible_inputs_by_name(controls(browser.get("/auth/account")))
    assert fields["current_password"]["autocomplete"] == "current-password"
    assert fields["new_password"]["autocomplete"] == "new-password"
    assert fields["confirm_password"]["autocomplete"] == "new-password"
