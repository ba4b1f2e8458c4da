"""Every route x every role -> the expected answer, stated here independently of the code.

When a route is added, this test fails until the route's row is written below: deciding who
may use a route is a product decision, not something to infer from the decorator.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from portal.auth.permissions import API_TOKEN, PUBLIC, declared_permission
from portal.extensions import db

ROLES = ("front_desk", "nurse", "prescriber", "admin")
CLINICAL = {"front_desk", "nurse", "prescriber"}
EVERYONE = set(ROLES)
ADMIN = {"admin"}

# endpoint -> the roles that may use it (anything else must get 403).
EXPECTED: dict[str, set[str]] = {
    "main.home": EVERYONE,
    "auth.account": EVERYONE,
    "auth.resume": EVERYONE,
    "auth.discard_resume": EVERYONE,
    "auth.sign_out": EVERYONE,
    # The sign-in gate: a temporary password to replace, notices to acknowledge (issue 14).
    "auth.choose_password": EVERYONE,
    "auth.notices": EVERYONE,
    "patients.register": CLINICAL,
    "patients.search": CLINICAL,
    "patients.show": CLINICAL,
    "patients.edit": CLINICAL,
    "patients.change_status": CLINICAL,
    "admin.users": ADMIN,
    "admin.create_user": ADMIN,
    "admin.edit_user": ADMIN,
    "admin.confirm_user_action": ADMIN,
    "admin.enable_user": ADMIN,
    "admin.reset_password": ADMIN,
    "admin.decide_mfa_reset": ADMIN,  # the two-person rule's second admin (issue 14)
    # EPCS logical access control (issue 11): an administrator records DEA numbers and
    # proposes grants and revokes; a DEA registrant (a prescriber) approves or declines.
    "admin.set_dea_number": ADMIN,
    "admin.epcs_step": ADMIN,
    "admin.epcs_approvals": {"prescriber"},
    "admin.decide_epcs": {"prescriber"},
    "admin.clinic_settings": ADMIN,
    "admin.add_location": ADMIN,
    "admin.edit_location": ADMIN,
    "admin.set_location_active": ADMIN,
    "audit.report": ADMIN,
    "audit.export": ADMIN,
    "audit.patient_lookup": ADMIN,
    # The integrations console: connectors' settings, health, message log, clinician ids.
    "admin.integrations": ADMIN,
    "admin.integration_connector": ADMIN,
    "admin.integration_set_enabled": ADMIN,
    "admin.integration_set_paused": ADMIN,
    "admin.integration_clinicians": ADMIN,
    "admin.integration_messages": ADMIN,
    "admin.integration_replay": ADMIN,
    # FHIR API clients (issue 13): register, disable / enable, a new secret.
    "admin.api_clients": ADMIN,
    "admin.register_api_client": ADMIN,
    "admin.api_client": ADMIN,
    "admin.set_api_client_enabled": ADMIN,
    "admin.rotate_api_client_secret": ADMIN,
    # Scheduling: calendar and booking (issue 3, booking helper).
    "scheduling.index": CLINICAL,
    "scheduling.day": CLINICAL,
    "scheduling.choose_providers": CLINICAL,
    "scheduling.week": CLINICAL,
    "scheduling.type_colours": CLINICAL,
    "scheduling.new_booking": CLINICAL,
    "scheduling.patient_options": CLINICAL,
    "scheduling.book": CLINICAL,
    "scheduling.appointment": CLINICAL,
    "scheduling.reschedule": CLINICAL,
    "scheduling.cancel": CLINICAL,
    # Scheduling: find next available, and the set-up pages (availability work, issue 3).
    "scheduling.find_slots": CLINICAL,
    "scheduling.find_patient_choices": CLINICAL,
    "scheduling.setup_index": ADMIN,
    "scheduling.setup_types": ADMIN,
    "scheduling.setup_edit_type": ADMIN,
    "scheduling.setup_rooms": ADMIN,
    "scheduling.setup_edit_room": ADMIN,
    "scheduling.setup_templates": ADMIN,
    "scheduling.setup_add_block": ADMIN,
    "scheduling.setup_delete_block": ADMIN,
    "scheduling.setup_exceptions": ADMIN,
    "scheduling.setup_delete_exception": ADMIN,
    "scheduling.setup_closures": ADMIN,
    "scheduling.setup_delete_closure": ADMIN,
    # Scheduling: the visit's day (statuses, check-in, flow board, waitlist, calendar feeds).
    "scheduling.appointment_status": CLINICAL,
    "scheduling.change_status": CLINICAL,
    "scheduling.undo_status": CLINICAL,
    "scheduling.check_in": CLINICAL,
    "scheduling.flow_board": CLINICAL,
    "scheduling.waitlist": CLINICAL,
    "scheduling.add_waitlist_entry": CLINICAL,
    "scheduling.waitlist_patient_options": CLINICAL,
    "scheduling.remove_waitlist_entry": CLINICAL,
    "scheduling.waitlist_matches": CLINICAL,
    "scheduling.calendar_feeds": ADMIN,
    "scheduling.revoke_calendar_feed": ADMIN,
    "scheduling.my_calendar_feed": CLINICAL,
    "scheduling.create_my_calendar_feed": CLINICAL,
    "scheduling.revoke_my_calendar_feed": CLINICAL,
    # Charting, part A (notes): encounters, notes, templates, snippets.
    "charting.start_visit": {"nurse", "prescriber"},
    "charting.new_encounter": {"nurse", "prescriber"},
    "charting.encounter_page": {"nurse", "prescriber"},
    "charting.start_note": {"nurse", "prescriber"},
    "charting.save_draft": {"nurse", "prescriber"},
    "charting.sign_note": {"nurse", "prescriber"},  # provider notes: prescribers (service)
    "charting.cosign_note": {"prescriber"},
    "charting.add_addendum": {"nurse", "prescriber"},
    "charting.templates": ADMIN,
    "charting.new_template": ADMIN,
    "charting.edit_template": ADMIN,
    "charting.set_template_active": ADMIN,
    "charting.snippets": {"nurse", "prescriber", "admin"},  # own; admin: clinic-wide
    "charting.edit_snippet": {"nurse", "prescriber", "admin"},
    "charting.delete_snippet": {"nurse", "prescriber", "admin"},
    # Charting B: vital signs, trend charts, immunizations (issue 4, vitals part).
    "charting.patient_vitals": {"nurse", "prescriber"},
    "charting.record_patient_vitals": {"nurse", "prescriber"},
    "charting.record_encounter_vitals": {"nurse", "prescriber"},
    "charting.confirm_vitals_error": {"nurse", "prescriber"},
    "charting.mark_vitals_error": {"nurse", "prescriber"},
    "charting.vitals_chart": {"nurse", "prescriber"},
    "charting.vitals_sparkline": {"nurse", "prescriber"},
    "charting.immunizations": {"nurse", "prescriber"},
    "charting.add_immunization": {"nurse", "prescriber"},
    "charting.record_encounter_immunization": {"nurse", "prescriber"},
    "charting.confirm_immunization_error": {"nurse", "prescriber"},
    "charting.mark_immunization_error": {"nurse", "prescriber"},
    # Charting part C (lists): problems, allergies, medications, ICD-10-CM search, and the
    # encounter page's diagnoses addressed and reconciliation. Nurses and prescribers only.
    "charting.icd10_search": {"nurse", "prescriber"},
    # A prescriber's favourite diagnoses (issue 14): their own preference, no patient data.
    "charting.star_diagnosis": {"prescriber"},
    "charting.unstar_diagnosis": {"prescriber"},
    "charting.problems": {"nurse", "prescriber"},
    "charting.add_problem": {"nurse", "prescriber"},
    "charting.edit_problem": {"nurse", "prescriber"},
    "charting.problem_history": {"nurse", "prescriber"},
    "charting.allergies": {"nurse", "prescriber"},
    "charting.add_allergy": {"nurse", "prescriber"},
    "charting.record_no_known_allergies": {"nurse", "prescriber"},
    "charting.edit_allergy": {"nurse", "prescriber"},
    "charting.allergy_history": {"nurse", "prescriber"},
    "charting.medications": {"nurse", "prescriber"},
    "charting.add_medication": {"nurse", "prescriber"},
    "charting.edit_medication": {"nurse", "prescriber"},
    "charting.stop_medication": {"nurse", "prescriber"},
    "charting.medication_history": {"nurse", "prescriber"},
    "charting.save_diagnoses": {"nurse", "prescriber"},
    "charting.add_encounter_problem": {"nurse", "prescriber"},
    "charting.reconcile_medication": {"nurse", "prescriber"},
    # Charting, part D (summary): chart summary, visit summary print view and PDF.
    "charting.chart_summary": {"nurse", "prescriber"},
    "charting.visit_summary": {"nurse", "prescriber"},
    "charting.visit_summary_pdf": {"nurse", "prescriber"},
    "charting.after_visit_summary": {"nurse", "prescriber"},
    "charting.after_visit_summary_pdf": {"nurse", "prescriber"},
    "prescriptions.eprescribe": {"prescriber"},
    "prescriptions.queues": {"prescriber"},
    "prescriptions.queue_count": {"prescriber"},
    "prescriptions.prescriptions": {"nurse", "prescriber"},
    "prescriptions.messages": {"prescriber"},
    "prescriptions.epcs_credential": {"prescriber"},
    "prescriptions.message": {"prescriber"},
    # Composing in the portal's own screens (issue 11, rxcompose): prescribers only.
    "prescriptions.start_prescription": {"prescriber"},
    "prescriptions.renew_prescription": {"prescriber"},
    "prescriptions.compose": {"prescriber"},
    "prescriptions.save_draft": {"prescriber"},
    "prescriptions.discard_draft": {"prescriber"},
    "prescriptions.search_drugs": {"prescriber"},
    "prescriptions.choose_drug": {"prescriber"},
    "prescriptions.search_pharmacies": {"prescriber"},
    "prescriptions.choose_pharmacy": {"prescriber"},
    "prescriptions.set_preferred_pharmacy": {"prescriber"},
    "prescriptions.remove_preferred_pharmacy": {"prescriber"},
    "prescriptions.save_favorite": {"prescriber"},
    "prescriptions.use_favorite": {"prescriber"},
    # Signing a prescription composed in the portal, and its failed transmissions (issue 11).
    "prescriptions.sign_dialog": {"prescriber"},
    "prescriptions.sign": {"prescriber"},
    "prescriptions.transmission_errors": {"prescriber"},
    "prescriptions.retry": {"prescriber"},
    "prescriptions.state": {"prescriber"},
    # Printing a prescription that will not be sent, its PDF, and cancelling one the
    # pharmacy holds (issue 11).
    "prescriptions.print_prescription": {"prescriber"},
    "prescriptions.prescription_pdf": {"prescriber"},
    "prescriptions.cancel_form": {"prescriber"},
    "prescriptions.cancel": {"prescriber"},
    # Lab results (issue 12, labsresults): prescribers review (their orders' and the shared
    # pool's); nurses and prescribers read a patient's results and trends (chart.read) and
    # work the unmatched queue (labs.match).
    "labs.inbox": {"prescriber"},
    "labs.inbox_count": {"prescriber"},
    "labs.sign_off_normals": {"prescriber"},
    "labs.sign_off_result": {"prescriber"},
    "labs.result": {"nurse", "prescriber"},
    "labs.patient_results": {"nurse", "prescriber"},
    "labs.analyte_results": {"nurse", "prescriber"},
    "labs.analyte_trend": {"nurse", "prescriber"},
    "labs.unmatched_queue": {"nurse", "prescriber"},
    "labs.unmatched_item": {"nurse", "prescriber"},
    "labs.unmatched_lookup": {"nurse", "prescriber"},
    "labs.attach_unmatched": {"nurse", "prescriber"},
    # Lab orders (issue 12): prescribers order, sign and cancel; nurses see the orders and
    # print requisitions (the person drawing the blood needs one).
    "labs.start_order": {"prescriber"},
    "labs.patient_orders": {"nurse", "prescriber"},
    "labs.order": {"nurse", "prescriber"},
    "labs.order_state": {"nurse", "prescriber"},  # the live badge, as the order page
    "labs.search_tests": {"prescriber"},
    "labs.add_test": {"prescriber"},
    "labs.remove_test": {"prescriber"},
    "labs.save_order": {"prescriber"},
    "labs.cancel_order": {"prescriber"},
    "labs.requisition": {"nurse", "prescriber"},
    # The prescriber's Rx inbox: pharmacies' requests, failed transmissions, cancel
    # responses (issue 11, section 6).
    "prescriptions.rx_inbox": {"prescriber"},
    "prescriptions.rx_request": {"prescriber"},
    "prescriptions.approve_rx_request": {"prescriber"},
    "prescriptions.deny_rx_request": {"prescriber"},
    "prescriptions.rx_inbox_prescription": {"prescriber"},
    "prescriptions.acknowledge_rx": {"prescriber"},
}
# Reached without signing in.
PUBLIC_ENDPOINTS = {
    "static",
    "main.health",
    "auth.sign_in",
    "auth.second_factor",
    "auth.enrol_mfa",
    "scheduling.calendar_feed",  # the token in its URL is the credential
    "integrations.webhook",  # the connector verifies the sender's shared secret
    "fhir.token",  # OAuth client credentials: the client's secret or signed assertion
    "fhir.metadata",  # the FHIR CapabilityStatement: read before a client has a token
    "fhir.smart_discovery",  # SMART's discovery document: where tokens come from
}
# Ids the walk leaves unknown: an allowed request answers 404 (still "allowed").
ID_ARGUMENTS_WITHOUT_ROWS = {
    "type_id",
    "room_id",
    "block_id",
    "exception_id",
    "closure_id",  # scheduling set-up
    "appointment_id",
    "entry_id",
    "feed_id",  # appointments, waitlist, feeds
    "encounter_id",
    "note_id",
    "template_id",
    "snippet_id",  # charting (notes)
    "vitals_id",  # charting B
    "immunization_id",
    "problem_id",
    "allergy_id",
    "medication_id",  # charting lists (part C)
    "message_id",  # the integrations console's message log
    "prescription_id",  # prescriptions (signing, send again, renew)
    "draft_id",
    "favorite_id",
    "preferred_id",  # composing prescriptions
    "request_id",  # the Rx inbox's pharmacy requests
    "api_client_id",  # FHIR API clients
    "result_id",
    "unmatched_id",  # lab results and the unmatched queue
    "order_id",  # lab orders
}
# For routes with an <action> argument: one that leaves the walk able to go on.
HARMLESS_ACTIONS = {
    "admin.confirm_user_action": "end-sessions",
    "admin.epcs_step": "withdraw",  # of a proposal nobody made: refused, harmless
    "admin.set_location_active": "deactivate",
    "admin.integration_set_enabled": "disable",
    "admin.integration_set_paused": "pause",
    "admin.set_api_client_enabled": "disable",
}
# Requests that would end the very session the matrix is walking with: checked last.
SESSION_ENDING = {"auth.sign_out"}


def _rules(app):
    return sorted(
        app.url_map.iter_rules(),
        key=lambda rule: (rule.endpoint in SESSION_ENDING, rule.endpoint, rule.rule),
    )


def _token_endpoints(app) -> set[str]:
    """The FHIR API's routes: no role reaches them, only a bearer token
    (``tests/fhir/auth`` tests who does; ``test_sessions_never_reach_the_fhir_api`` here)."""
    with app.test_request_context():
        return {
            rule.endpoint
            for rule in app.url_map.iter_rules()
            if declared_permission(rule.endpoint) == API_TOKEN
        }


def test_every_route_has_a_row_in_the_matrix(app):
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()} - _token_endpoints(app)
    missing = sorted(endpoints - set(EXPECTED) - PUBLIC_ENDPOINTS)
    assert not missing, f"routes without an expected row: {missing}"
    stale = sorted((set(EXPECTED) | PUBLIC_ENDPOINTS) - endpoints)
    assert not stale, f"rows for routes that no longer exist: {stale}"


def test_public_endpoints_are_declared_public(app):
    with app.test_request_context():
        for endpoint in PUBLIC_ENDPOINTS:
            assert declared_permission(endpoint) == PUBLIC, endpoint
        for endpoint in EXPECTED:
            assert declared_permission(endpoint) not in (None, PUBLIC), endpoint


def _url_values(app, rule) -> dict:
    """Real ids for the rule's arguments, so an allowed request reaches its view."""
    from portal.auth.models import User
    from portal.clinic.models import Location
    from portal.patients.models import Patient

    values = {}
    with app.app_context():
        for argument in rule.arguments:
            if argument == "patient_id":
                values[argument] = _any_patient_id()
            elif argument == "user_id":
                values[argument] = db.session.scalar(
                    select(User.id).where(User.username == "nurse")
                )
            elif argument == "location_id":
                values[argument] = db.session.scalar(select(Location.id).limit(1))
            elif argument == "action":
                values[argument] = HARMLESS_ACTIONS[rule.endpoint]
            elif argument == "decision":
                values[argument] = "withdraw"  # of a reset nobody proposed: refused, harmless
            elif argument in ID_ARGUMENTS_WITHOUT_ROWS:
                values[argument] = 1  # no such row: an allowed request gets 404, not 403
            elif argument == "chart":
                values[argument] = "weight"  # a vitals trend chart
            elif argument == "connector":
                values[argument] = "not-installed"  # no such connector: allowed means 404
            elif argument == "filename":
                values[argument] = "css/portal.css"
            elif argument == "direction":
                values[argument] = "sent"  # of an integration message (none: allowed means 404)
            else:
                raise AssertionError(f"the matrix does not know how to fill <{argument}>")
        del Patient
    return values


def _any_patient_id() -> int:
    from datetime import date

    from portal.patients.identifiers import new_mrn, search_key
    from portal.patients.models import Patient

    patient = db.session.scalars(select(Patient).limit(1)).first()
    if patient is None:
        patient = Patient(
            mrn=new_mrn(),
            given_name="Ada",
            family_name="Matrix",
            given_key=search_key("Ada"),
            family_key=search_key("Matrix"),
            birth_date=date(1970, 1, 1),
            sex_at_birth="female",
        )
        db.session.add(patient)
        db.session.commit()
    return patient.id


def test_sessions_never_reach_the_fhir_api(app, signed_in):
    """Every role's session, on every bearer-token route: 401, whatever the arguments."""
    browser = signed_in("prescriber")
    token_endpoints = _token_endpoints(app)
    outcomes = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint not in token_endpoints:
            continue
        values = {
            name: 1 if type(converter).__name__ == "IdConverter" else "Patient"
            for name, converter in rule._converters.items()
        }
        path = rule.build(values, append_unknown=False)[1]
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            got = browser.open(path, method=method, headers={"X-CSRFToken": browser.csrf})
            if got.status_code != 401:
                outcomes.append(f"{method} {rule.endpoint}: expected 401, got {got.status_code}")
    assert not outcomes, "\n".join(outcomes)


@pytest.mark.parametrize("role", ROLES)
def test_matrix(app, signed_in, role):
    browser = signed_in(role)
    outcomes = []
    token_endpoints = _token_endpoints(app)
    for rule in _rules(app):
        if rule.endpoint in PUBLIC_ENDPOINTS or rule.endpoint in token_endpoints:
            continue
        path = rule.build(_url_values(app, rule), append_unknown=False)[1]
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            if method == "GET":
                response = browser.get(path)
            else:
                response = browser.open(
                    path,
                    method=method,
                    data={"csrf_token": browser.csrf},
                    headers={"X-CSRFToken": browser.csrf},
                )
            response.close()  # a streamed export must finish before the next request
            allowed = role in EXPECTED[rule.endpoint]
            got = response.status_code
            sent_to_sign_in = got == 302 and "/auth/sign-in" in response.location
            if rule.endpoint in SESSION_ENDING:
                sent_to_sign_in = False  # signing out lands on the sign-in page, as it should
            if allowed and (got in (401, 403) or sent_to_sign_in):
                outcomes.append(f"{method} {rule.endpoint}: expected allowed, got {got}")
            elif not allowed and got != 403:
                outcomes.append(f"{method} {rule.endpoint}: expected 403, got {got}")
    assert not outcomes, f"{role}:\n" + "\n".join(outcomes)


def test_patient_scoped_urls_404_on_unknown_ids(app, signed_in):
    browser = signed_in("front_desk")
    checked = 0
    for rule in app.url_map.iter_rules():
        if "patient_id" not in rule.arguments or "front_desk" not in EXPECTED[rule.endpoint]:
            continue
        values = {name: 1 for name in rule.arguments}
        values["patient_id"] = 987654321
        path = rule.build(values, append_unknown=False)[1]
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            response = browser.open(path, method=method, data={"csrf_token": browser.csrf})
            assert response.status_code == 404, f"{method} {path} -> {response.status_code}"
            checked += 1
    assert checked >= 1
