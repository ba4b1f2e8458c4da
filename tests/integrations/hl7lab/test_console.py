"""The lab connector in the integrations console, over the real HTTP stack: its form (a
label for every setting, the code list as a multi-line box), refusals beside their field
with what was typed kept, and a save that connects to the lab sandbox before enabling."""

from __future__ import annotations

import html
import re
import socket

from portal.extensions import db
from portal.integrations import settings
from tests.integrations.hl7lab.helpers import control, settings_for
from tests.support.audit import audit_events

PAGE = "/admin/integrations/hl7lab"


def _form(lab_port: int, **overrides) -> dict:
    values = settings_for(lab_port, **overrides)
    form = {f"setting_{name}": value for name, value in values.items() if name != "use_tls"}
    if values["use_tls"]:
        form["setting_use_tls"] = "y"
    return form


def _setting(app):
    with app.app_context():
        row = settings.setting_of("hl7lab")
        db.session.rollback()
        return row


def test_the_form_has_a_label_for_every_setting(signed_in):
    body = signed_in("admin").get(PAGE).get_data(as_text=True)
    for field_id, label in [
        ("setting_host", "Lab host"),
        ("setting_port", "Lab port"),
        ("setting_timeout_seconds", "Time-out (seconds)"),
        ("setting_sending_facility", "Sending facility (MSH-4)"),
        ("setting_receiving_application", "Receiving application (MSH-5)"),
        ("setting_lab_codes", "The lab&#39;s test codes"),
        ("setting_tls_ca_pem", "Lab&#39;s CA certificate (PEM)"),
    ]:
        assert f'for="{field_id}">{label}' in body, field_id
    assert re.search(r'<textarea [^>]*id="setting_lab_codes"', body)  # several lines
    assert re.search(r'<textarea [^>]*id="setting_tls_ca_pem"', body)
    assert 'for="setting_use_tls">Use TLS' in body


def test_a_bad_code_list_is_refused_beside_it_and_what_was_typed_stays(app, signed_in, lone_lab):
    codes = "24331-1=LIPID^Lipid panel\n4548-5=A1C"
    response = signed_in("admin").post_form(PAGE, _form(lone_lab.mllp_port, lab_codes=codes))
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert 'id="setting_lab_codes-error">Line 2: &#39;4548-5&#39; is not a valid LOINC' in body
    assert html.escape(codes, quote=False) in body
    assert _setting(app) is None


def test_a_lab_that_does_not_answer_is_refused_beside_the_host(app, signed_in):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    response = signed_in("admin").post_form(PAGE, _form(closed))
    assert response.status_code == 422
    assert 'id="setting_host-error">The lab cannot be reached' in response.get_data(as_text=True)
    assert _setting(app) is None


def test_settings_that_reach_the_lab_enable_the_connector(app, signed_in, lone_lab):
    codes = "24331-1=LIPID^Lipid panel"
    response = signed_in("admin").post_form(PAGE, _form(lone_lab.mllp_port, lab_codes=codes))
    assert response.status_code == 302
    with app.app_context():
        setting = settings.setting_of("hl7lab")
        assert setting.enabled
        assert setting.values["port"] == lone_lab.mllp_port
        assert setting.values["lab_codes"] == codes
        assert setting.values["use_tls"] is False
        connector = settings.enabled_connector("hl7lab")
        assert connector.lab_code_for("24331-1") == ("LIPID", "Lipid panel")
        db.session.rollback()
    assert audit_events(app, "integrations.connector_enabled")
    assert control(lone_lab, "/_sandbox/orders")["arrived"] == 0  # connected, sent nothing
