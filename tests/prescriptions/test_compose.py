"""Composing a prescription in the portal's own screens: drafts from the visit and the chart,
who may open them, the local drug search, the SIG builder's preview, free-text warnings and
the details' refusals beside their fields, autosave with version conflicts, the safety panel
and its override reasons, favourites, renew, discard, inert payloads and CSRF."""

from __future__ import annotations

import html
import json
import re

import pytest
from sqlalchemy import func, select

from portal.audit.models import AuditEvent
from portal.extensions import db
from portal.prescriptions.models import Prescription, PrescriptionFavorite
from portal.timeutil import utcnow
from portal.transaction import use_case
from tests.prescriptions.compose_helpers import (
    BUILDER_DAILY_30,
    DETAILS_30,
    LISINOPRIL_10,
    OXYCODONE_5_CII,
    a_problem,
    autosave,
    choose,
    draft_row,
    no_known_allergies,
    on_spironolactone,
    start_draft,
)


def audit_count(app, action: str) -> int:
    with app.app_context():
        return db.session.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.action == action)
        )


# --- starting a draft -------------------------------------------------------------------------


def test_prescribe_from_the_visit_makes_a_draft_of_that_visit(
    app, chart, make_encounter, signed_in
):
    encounter_id = make_encounter()
    doctor = signed_in("drlee")
    visit = doctor.get(f"/chart/encounters/{encounter_id}").get_data(as_text=True)
    assert "Prescribe</button>" in visit and "/prescriptions/new" in visit

    draft_id = start_draft(doctor, chart.patients[0], encounter_id)

    row = draft_row(app, draft_id)
    assert (row.origin, row.state, row.encounter_id, row.prescriber_id, row.patient_id) == (
        "portal",
        "draft",
        encounter_id,
        chart.drlee,
        chart.patients[0],
    )
    assert row.signed_at is None and row.vendor_id is None
    assert audit_count(app, "prescription.draft_start") == 1
    page = doctor.get(f"/prescriptions/{draft_id}")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "Lovelace" in text and "New prescription" in text  # under the patient's banner
    assert audit_count(app, "prescription.draft_view") == 1
    # The visit lists its draft.
    visit = doctor.get(f"/chart/encounters/{encounter_id}").get_data(as_text=True)
    assert f"/prescriptions/{draft_id}" in visit


def test_prescribe_from_the_chart_makes_a_draft_without_a_visit(app, chart, signed_in):
    doctor = signed_in("drlee")
    summary = doctor.get(f"/chart/patients/{chart.patients[1]}").get_data(as_text=True)
    assert f"/patients/{chart.patients[1]}/prescriptions/new" in summary
    draft_id = start_draft(doctor, chart.patients[1])
    row = draft_row(app, draft_id)
    assert row.encounter_id is None and row.patient_id == chart.patients[1]


def test_a_visit_of_another_patient_is_not_found(app, chart, make_encounter, signed_in):
    other_visit = make_encounter(patient=1)
    doctor = signed_in("drlee")
    answer = doctor.post_form(
        f"/patients/{chart.patients[0]}/prescriptions/new", {"encounter_id": str(other_visit)}
    )
    assert answer.status_code == 404
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Prescription)) == 0


def test_a_deceased_patient_gets_no_draft(app, chart, signed_in):
    from portal.patients.models import Patient

    with app.app_context():
        patient = db.session.get(Patient, chart.patients[0])
        patient.status = "deceased"
        db.session.commit()
    doctor = signed_in("drlee")
    answer = doctor.post_form(f"/patients/{chart.patients[0]}/prescriptions/new")
    assert answer.status_code == 303
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Prescription)) == 0


def test_only_its_prescriber_opens_or_changes_a_draft(app, chart, signed_in):
    draft_id = start_draft(signed_in("drlee"), chart.patients[0])
    colleague = signed_in("drpatel")
    assert colleague.get(f"/prescriptions/{draft_id}").status_code == 404
    for path, data in (
        (f"/prescriptions/{draft_id}/draft", {"version": "1", **BUILDER_DAILY_30}),
        (f"/prescriptions/{draft_id}/drug", {"choice": f"rxcui:{LISINOPRIL_10}"}),
        (f"/prescriptions/{draft_id}/drugs", {"drug_query": "lisinopril"}),
        (f"/prescriptions/{draft_id}/discard", {}),
        (f"/prescriptions/{draft_id}/favorites", {"label": "mine now"}),
    ):
        assert colleague.post_form(path, data).status_code == 404, path
    assert draft_row(app, draft_id).version == 1  # nothing changed
    nurse = signed_in("nurse")
    assert nurse.get(f"/prescriptions/{draft_id}").status_code == 403
    chart_page = nurse.get(f"/chart/patients/{chart.patients[0]}").get_data(as_text=True)
    assert "/prescriptions/new" not in chart_page  # no "Prescribe" for a nurse
    assert signed_in("drlee").get("/prescriptions/99999").status_code == 404


def test_a_vendor_prescription_is_not_a_draft(app, chart, signed_in):
    with app.app_context():
        row = Prescription(
            patient_id=chart.patients[0],
            origin="vendor",
            state="sent",
            connector="dosespot",
            vendor_id="77",
            prescriber_id=chart.drlee,
            drug="lisinopril 10 MG Oral Tablet",
            fhir_status="active",
        )
        db.session.add(row)
        db.session.commit()
        row_id = row.id
    assert signed_in("drlee").get(f"/prescriptions/{row_id}").status_code == 404


# --- drug search, the SIG builder, the details --------------------------------------------------


def test_local_search_offers_catalog_products_and_choosing_fills_the_draft(app, chart, signed_in):
    doctor = signed_in("drlee")
    draft_id = start_draft(doctor, chart.patients[0])
    found = doctor.htmx_post(f"/prescriptions/{draft_id}/drugs", {"drug_query": "lisino 10"})
    text = found.get_data(as_text=True)
    assert found.status_code == 200
    assert "lisinopril 10 MG Oral Tablet" in text and "the clinic&#39;s catalog" in text
    assert f'value="rxcui:{LISINOPRIL_10}"' in text
    assert "Interaction checking is limited" not in text  # every catalog product matches

    choose(doctor, draft_id, LISINOPRIL_10)

    row = draft_row(app, draft_id)
    assert (row.drug, row.rxcui, row.dose_form, row.schedule) == (
        "lisinopril 10 MG Oral Tablet",
        LISINOPRIL_10,
        "Oral Tablet",
        None,
    )
    assert row.ingredient_rxcuis == "29046" and row.version == 2
    page = doctor.get(f"/prescriptions/{draft_id}").get_data(as_text=True)
    assert "lisinopril 10 MG Oral Tablet" in page


def test_a_product_not_in_the_catalog_is_refused_beside_nothing_changed(app, chart, signed_in):
    doctor = signed_in("drlee")
    draft_id = start_draft(doctor, chart.patients[0])
    answer = doctor.post_form(f"/prescriptions/{draft_id}/drug", {"choice": "rxcui:0000"})
    assert answer.status_code == 303
    assert draft_row(app, draft_id).drug == ""


def test_the_builder_writes_the_directions_as_you_type(app, chart, signed_in):
    doctor = signed_in("drlee")
    draft_id = start_draft(doctor, chart.patients[0])
    choose(doctor, draft_id, LISINOPRIL_10)

    answer = autosave(app, doctor, draft_id, {**BUILDER_DAILY_30, **DETAILS_30})

    assert answer.status_code == 200
    text = answer.get_data(as_text=True)
    assert "Take 1 tablet by mouth once daily for 30 days" in text
    assert "Days supply worked out: <strong>30</strong>" in text
    row = draft_row(app, draft_id)
    assert row.directions == "Take 1 tablet by mouth once daily for 30 days"
    assert json.loads(row.sig)["frequency"] == "once_daily"
    assert (row.quantity, row.dispense_unit, row.refills) == ("30", "tablet", "0")
    # The page opens again where the prescriber left it.
    page = doctor.get(f"/prescriptions/{draft_id}").get_data(as_text=True)
    assert "Take 1 tablet by mouth once daily for 30 days" in page
    assert re.search(r'<option selected value="once_daily"|value="once_daily" selected', page)


def test_the_patients_age_stands_beside_the_dose(app, chart, signed_in):
    from portal.patients.models import Patient

    doctor = signed_in("drlee")
    patient_id = chart.patients[0]
    with app.app_context():
        born = db.session.get(Patient, patient_id).birth_date
    today = utcnow().date()
    age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    draft_id = start_draft(doctor, patient_id)
    choose(doctor, draft_id, LISINOPRIL_10)

    page = doctor.get(f"/prescriptions/{draft_id}").get_data(as_text=True)

    # In the dose's own input group, right of the field, and read out with it.
    group = re.search(
        r'<div class="input-group input-group-sm">(<input[^>]*id="sig-dose_amount"[^>]*>)'
        r"(.*?)</div>",
        page,
        re.S,
    )
    assert group, "the dose has no input group beside it"
    dose, beside = group.groups()
    assert re.search(r'aria-describedby="[^"]*\bpatient-age\b', dose)
    assert 'id="patient-age"' in beside
    # Seen: "40 y"; read out (without what is hidden from assistive technology): "40 years old".
    seen = re.sub(r'<span class="visually-hidden">[^<]*</span>|<[^>]+>', "", beside)
    spoken = re.sub(r'<span aria-hidden="true">[^<]*</span>|<[^>]+>', "", beside)
    assert f"{age}&nbsp;y" in seen
    assert f"Patient: {age} years old" in spoken
    # Once on the page: not also above the directions.
    assert page.count('id="patient-age"') == 1


def test_free_text_directions_show_their_warnings_beside_the_field(app, chart, signed_in):
    doctor = signed_in("drlee")
    draft_id = start_draft(doctor, chart.patients[0])
    choose(doctor, draft_id, LISINOPRIL_10)
    answer = autosave(
        app,
        doctor,
        draft_id,
        {"sig-write_out": "y", "sig-directions": "Take .5 tablet by mouth QD"},
    )
    text = answer.get_data(as_text=True)
    assert answer.status_code == 200
    warnings = text[text.index('id="directions-warnings"') :]
    assert "Check “.5”" in warnings and "Check “QD”" in warnings
    # A warning is not a refusal: the written-out directions are kept as checked directions.
    assert draft_row(app, draft_id).directions == "Take .5 tablet by mouth QD"


def test_refills_of_a_schedule_ii_drug_are_refused_beside_the_field(app, chart, signed_in):
    doctor = signed_in("drlee")
    draft_id = start_draft(doctor, chart.patients[0])
    choose(doctor, draft_id, OXYCODONE_5_CII)
    assert draft_row(app, draft_id).schedule == 2
    answer = autosave(app, doctor, draft_id, {**BUILDER_DAILY_30, **DETAILS_30, "rx-refills": "2"})
    text = answer.get_data(as_text=True)
    error = text[text.index('id="rx-refills-error"') :].split("</div>", 1)[0]
    assert "schedule II" in error or "Schedule II" in error, error
    # Kept as typed (autosave loses nothing); the signing step refuses it again.
    assert draft_row(app, draft_id).refills == "2"


def test_an_oral_liquid_must_be_dosed_in_ml(app, chart, signed_in):
    from portal.terminology.drugs import knowledge

    with app.app_context():
        liquid = next(p for p in knowledge().search("amoxicillin susp") if "Suspension" in p.name)
    doctor = signed_in("drlee")
    draft_id = start_draft(doctor, chart.patients[0])
    choose(doctor, draft_id, liquid.rxcui)
    answer = autosave(app, doctor, draft_id, {**BUILDER_DAILY_30})
    text = answer.get_data(as_text=True)
    assert "dosed in mL" in text[text.index('id="sig-dose_unit-error"') :].split("</div>")[0]
    assert draft_row(app, draft_id).directions is None


# --- autosave ----------------------------------------------------------------------------------


def test_a_save_from_an_older_version_is_refused_in_words(app, chart, signed_in):
    doctor = signed_in("drlee")
    draft_id = start_draft(doctor, chart.patients[0])
    choose(doctor, draft_id, LISINOPRIL_10)  # version 2
    first = autosave(app, doctor, draft_id, {**BUILDER_DAILY_30, "rx-quantity": "30"}, 2)
    assert first.status_code == 200 and 'id="draft-version" value="3"' in first.get_data(
        as_text=True
    )
    stale = autosave(app, doctor, draft_id, {**BUILDER_DAILY_30, "rx-quantity": "90"}, 2)
    assert stale.status_code == 409
    assert "changed in another tab or window" in stale.get_data(as_text=True)
    row = draft_row(app, draft_id)
    assert (row.version, row.quantity) == (3, "30")


def test_discard_deletes_the_draft_and_is_audited(app, chart, make_encounter, signed_in):
    encounter_id = make_encounter()
    doctor = signed_in("drlee")
    draft_id = start_draft(doctor, chart.patients[0], encounter_id)
    answer = doctor.post_form(f"/prescriptions/{draft_id}/discard")
    assert answer.status_code == 303
    assert answer.location.endswith(f"/chart/encounters/{encounter_id}")
    assert draft_row(app, draft_id) is None
    assert audit_count(app, "prescription.draft_discard") == 1


def test_diagnoses_come_from_the_problem_list(app, chart, signed_in):
    a_problem(app, chart.patients[0], "I10", "Essential (primary) hypertension")
    doctor = signed_in("drlee")
    draft_id = start_draft(doctor, chart.patients[0])
    page = doctor.get(f"/prescriptions/{draft_id}").get_data(as_text=True)
    assert "I10 Essential (primary) hypertension" in page
    autosave(app, doctor, draft_id, {"rx-diagnoses": ["I10", "Z99.9"]})
    assert json.loads(draft_row(app, draft_id).diagnoses) == [
        {"code": "I10", "description": "Essential (primary) hypertension"}
    ]


# --- the safety panel ----------------------------------------------------------------------------


def test_the_safety_panel_shows_the_interaction_with_its_source(app, chart, signed_in):
    no_known_allergies(app, chart.patients[0])
    on_spironolactone(app, chart.patients[0])
    doctor = signed_in("drlee")
    draft_id = start_draft(doctor, chart.patients[0])
    before = doctor.get(f"/prescriptions/{draft_id}").get_data(as_text=True)
    assert "Choose a drug" in before
    choose(doctor, draft_id, LISINOPRIL_10)
    page = doctor.get(f"/prescriptions/{draft_id}").get_data(as_text=True)
    panel = page[page.index('id="safety-panel"') :]
    assert "spironolactone" in panel.lower() and "lisinopril" in panel.lower()
    assert "Source:" in panel and "What to do:" in panel


def test_allergies_not_recorded_asks_for_a_reason_kept_on_the_draft(app, chart, signed_in):
    doctor = signed_in("drlee")
    draft_id = start_draft(doctor, chart.patients[0])
    choose(doctor, draft_id, LISINOPRIL_10)
    page = doctor.get(f"/prescriptions/{draft_id}").get_data(as_text=True)
    panel = page[page.index('id="safety-panel"') :]
    assert "Override reason (needed to sign)" in panel
    code = html.unescape(panel.split('name="reason:', 1)[1].split('"', 1)[0])
    autosave(
        app,
        doctor,
        draft_id,
        {
            f"reason:{code}": "other",
            f"comment:{code}": "Allergies asked: none; to record at the desk",
            "reason:forged": "not-a-reason",
        },
    )
    stored = json.loads(draft_row(app, draft_id).overrides)
    assert stored == [
        {
            "code": code,
            "reason": "other",
            "comment": "Allergies asked: none; to record at the desk",
        }
    ]
    page = doctor.get(f"/prescriptions/{draft_id}").get_data(as_text=True)
    assert 'value="other" selected' in page


# --- favourites and renew ------------------------------------------------------------------------


def test_a_favourite_is_saved_and_fills_a_new_draft_in_one_click(app, chart, signed_in):
    doctor = signed_in("drlee")
    draft_id = start_draft(doctor, chart.patients[0])
    choose(doctor, draft_id, LISINOPRIL_10)
    autosave(app, doctor, draft_id, {**BUILDER_DAILY_30, **DETAILS_30, "rx-refills": "3"})
    saved = doctor.htmx_post(
        f"/prescriptions/{draft_id}/favorites", {"label": "Lisinopril 10 daily"}
    )
    assert saved.status_code == 200 and "Lisinopril 10 daily" in saved.get_data(as_text=True)
    again = doctor.htmx_post(
        f"/prescriptions/{draft_id}/favorites", {"label": "Lisinopril 10 daily"}
    )
    assert again.status_code == 409 and "already have a favourite" in again.get_data(as_text=True)
    with app.app_context():
        favorite = db.session.scalars(select(PrescriptionFavorite)).one()
        assert (favorite.owner_id, favorite.rxcui, favorite.refills) == (
            chart.drlee,
            LISINOPRIL_10,
            3,
        )
        favorite_id = favorite.id

    other = start_draft(doctor, chart.patients[1])
    assert "Lisinopril 10 daily" in doctor.get(f"/prescriptions/{other}").get_data(as_text=True)
    used = doctor.post_form(f"/prescriptions/{other}/favorites/{favorite_id}")
    assert used.status_code == 303
    row = draft_row(app, other)
    assert (row.rxcui, row.directions, row.quantity, row.refills) == (
        LISINOPRIL_10,
        "Take 1 tablet by mouth once daily for 30 days",
        "30",
        "3",
    )
    # Another prescriber's favourite is unknown to them.
    colleague = signed_in("drpatel")
    theirs = start_draft(colleague, chart.patients[1])
    used = colleague.post_form(f"/prescriptions/{theirs}/favorites/{favorite_id}")
    assert used.status_code == 404


def test_renew_starts_a_draft_copied_from_a_prescription(app, chart, signed_in):
    with app.app_context():
        old = Prescription(
            patient_id=chart.patients[0],
            origin="vendor",
            state="pharmacy_verified",
            connector="dosespot",
            vendor_id="901",
            prescriber_id=chart.drpatel,
            drug="lisinopril 10 MG Oral Tablet",
            rxcui=LISINOPRIL_10,
            quantity="90",
            refills="1",
            days_supply=90,
            directions="Take 1 tablet by mouth once daily",
            fhir_status="active",
            written_on=utcnow().date(),
        )
        db.session.add(old)
        db.session.commit()
        old_id = old.id
    doctor = signed_in("drlee")
    listing = doctor.get(f"/patients/{chart.patients[0]}/prescriptions").get_data(as_text=True)
    assert f"/prescriptions/{old_id}/renew" in listing
    answer = doctor.post_form(f"/prescriptions/{old_id}/renew")
    assert answer.status_code == 303
    new_id = int(answer.location.rsplit("/", 1)[1])
    row = draft_row(app, new_id)
    assert (row.state, row.origin, row.prescriber_id, row.rxcui, row.quantity) == (
        "draft",
        "portal",
        chart.drlee,
        LISINOPRIL_10,
        "90",
    )
    assert row.dose_form == "Oral Tablet" and row.ingredient_rxcuis == "29046"
    assert audit_count(app, "prescription.renew_start") == 1


# --- payloads and CSRF ---------------------------------------------------------------------

PAYLOAD = '<script>alert("rx")</script><img src=x onerror=alert(1)>'


def test_payloads_in_directions_note_and_override_stay_inert(app, chart, signed_in):
    doctor = signed_in("drlee")
    draft_id = start_draft(doctor, chart.patients[0])
    choose(doctor, draft_id, LISINOPRIL_10)
    page = doctor.get(f"/prescriptions/{draft_id}").get_data(as_text=True)
    panel = page[page.index('id="safety-panel"') :]
    code = html.unescape(panel.split('name="reason:', 1)[1].split('"', 1)[0])
    answer = autosave(
        app,
        doctor,
        draft_id,
        {
            "sig-write_out": "y",
            "sig-directions": f"Take 1 tablet {PAYLOAD}",
            "rx-pharmacist_note": PAYLOAD,
            f"reason:{code}": "other",
            f"comment:{code}": PAYLOAD,
        },
    )
    for text in (answer.get_data(as_text=True), doctor.get(f"/prescriptions/{draft_id}").text):
        assert "<script>alert" not in text and "<img src=x" not in text
    page = doctor.get(f"/prescriptions/{draft_id}").get_data(as_text=True)
    assert "&lt;script&gt;alert(&#34;rx&#34;)&lt;/script&gt;" in page or "&lt;script&gt;" in page


@pytest.mark.parametrize(
    "path",
    [
        "/prescriptions/{d}/draft",
        "/prescriptions/{d}/drugs",
        "/prescriptions/{d}/drug",
        "/prescriptions/{d}/discard",
        "/prescriptions/{d}/favorites",
        "/prescriptions/{d}/pharmacies",
        "/prescriptions/{d}/pharmacy",
        "/prescriptions/{d}/preferred-pharmacies/1/remove",
        "/prescriptions/{d}/renew",
        "/prescriptions/{d}/favorites/1",
        "/patients/{p}/prescriptions/new",
    ],
)
def test_every_post_needs_the_csrf_token(app, chart, signed_in, path):
    doctor = signed_in("drlee")
    draft_id = start_draft(doctor, chart.patients[0])
    answer = doctor.client.post(path.format(d=draft_id, p=chart.patients[0]), data={"version": "1"})
    assert answer.status_code == 400
    assert draft_row(app, draft_id).version == 1


def test_a_signed_prescription_is_no_longer_composed(app, chart, signed_in):
    doctor = signed_in("drlee")
    draft_id = start_draft(doctor, chart.patients[0])
    choose(doctor, draft_id, LISINOPRIL_10)
    with app.app_context():
        # As the signing step leaves it (state first: the triggers guard what is signed).
        db.session.get(Prescription, draft_id).state = "signed"
        db.session.commit()
    page = doctor.get(f"/prescriptions/{draft_id}")
    assert page.status_code == 303
    assert page.location.endswith(f"/patients/{chart.patients[0]}/prescriptions")
    saved = autosave(app, doctor, draft_id, {**BUILDER_DAILY_30})
    assert saved.status_code == 409 and "signed" in saved.get_data(as_text=True)
    assert draft_row(app, draft_id).directions is None


def test_a_draft_composed_here_is_signed_by_the_signing_step(app, chart, signed_in):
    """What the compose page keeps is what the signing step reads: the same draft signs."""
    from tests.support.clients import fresh_totp

    no_known_allergies(app, chart.patients[0])
    doctor = signed_in("drlee")
    draft_id = start_draft(doctor, chart.patients[0])
    choose(doctor, draft_id, LISINOPRIL_10)
    autosave(app, doctor, draft_id, {**BUILDER_DAILY_30, **DETAILS_30, "rx-refills": "2"})
    page = doctor.get(f"/prescriptions/{draft_id}").get_data(as_text=True)
    assert f'href="/prescriptions/{draft_id}/sign"' in page  # "Review and sign"
    dialog = doctor.get(f"/prescriptions/{draft_id}/sign")
    assert dialog.status_code == 200
    assert "Take 1 tablet by mouth once daily for 30 days" in dialog.get_data(as_text=True)
    signed = doctor.post_form(
        f"/prescriptions/{draft_id}/sign",
        {"version": str(draft_row(app, draft_id).version), "totp_code": fresh_totp(app, "drlee")},
    )
    assert signed.status_code in (200, 303), signed.get_data(as_text=True)[:800]
    row = draft_row(app, draft_id)
    assert row.signed_at is not None and row.state in ("signed", "printed", "queued")
    assert (row.directions, row.quantity, row.refills) == (
        "Take 1 tablet by mouth once daily for 30 days",
        "30",
        "2",
    )
    # Signed: no longer composed here.
    assert doctor.get(f"/prescriptions/{draft_id}").status_code == 303


def test_the_signing_dialog_shows_the_override_reasons_given_while_composing(app, chart, signed_in):
    doctor = signed_in("drlee")
    draft_id = start_draft(doctor, chart.patients[0])
    choose(doctor, draft_id, LISINOPRIL_10)
    page = doctor.get(f"/prescriptions/{draft_id}").get_data(as_text=True)
    panel = page[page.index('id="safety-panel"') :]
    code = html.unescape(panel.split('name="reason:', 1)[1].split('"', 1)[0])
    autosave(
        app,
        doctor,
        draft_id,
        {f"reason:{code}": "will_monitor", f"comment:{code}": "Potassium in one week"},
    )
    dialog = doctor.get(f"/prescriptions/{draft_id}/sign").get_data(as_text=True)
    reason_field = dialog.split(f'name="reason:{code}"', 1)[1].split("</select>", 1)[0]
    assert '<option value="will_monitor" selected>' in reason_field
    assert "Potassium in one week</textarea>" in dialog


def test_a_new_dose_form_clears_the_directions_and_a_unit_that_no_longer_fits(
    app, chart, signed_in
):
    from portal.terminology.drugs import knowledge

    with app.app_context():
        liquid = next(p for p in knowledge().search("amoxicillin susp") if "Suspension" in p.name)
    doctor = signed_in("drlee")
    draft_id = start_draft(doctor, chart.patients[0])
    choose(doctor, draft_id, LISINOPRIL_10)
    autosave(app, doctor, draft_id, {**BUILDER_DAILY_30})
    assert draft_row(app, draft_id).directions
    choose(doctor, draft_id, liquid.rxcui)
    row = draft_row(app, draft_id)
    assert row.directions is None
    assert json.loads(row.sig)["dose_unit"] == ""


def test_a_favourite_whose_product_cannot_be_found_is_refused_and_leaves_the_draft(
    app, chart, signed_in
):
    with app.app_context(), use_case():
        favorite = PrescriptionFavorite(
            owner_id=chart.drlee,
            label="Gone from the catalog",
            rxcui="999999999",
            drug="nothing known 1 MG Oral Tablet",
            directions="Take 1 tablet by mouth once daily",
            quantity="30",
            dispense_unit="tablet",
            refills=0,
        )
        db.session.add(favorite)
        db.session.flush()
        favorite_id = favorite.id
    doctor = signed_in("drlee")
    draft_id = start_draft(doctor, chart.patients[0])
    choose(doctor, draft_id, LISINOPRIL_10)
    before = draft_row(app, draft_id)
    used = doctor.post_form(f"/prescriptions/{draft_id}/favorites/{favorite_id}")
    assert used.status_code == 303
    assert "search for the product again" in doctor.get(used.location).get_data(as_text=True)
    row = draft_row(app, draft_id)
    assert (row.drug, row.rxcui, row.version) == (before.drug, LISINOPRIL_10, before.version)


def test_the_catalog_and_the_vendor_disagreeing_keeps_the_stricter_schedule():
    from types import SimpleNamespace

    from portal.prescriptions.compose.services import _set_drug, stricter_schedule

    def product(schedule):
        return SimpleNamespace(
            name="a product",
            rxcui="1",
            ndc=None,
            strength="5 MG",
            dose_form="Oral Tablet",
            route="oral",
            schedule=schedule,
            ingredient_rxcuis=["2"],
        )

    for catalog, vendor, kept in ((4, "2", 2), (2, "4", 2), (None, "III", 3), (5, "", 5)):
        draft = Prescription(dose_form="Oral Tablet")
        _set_drug(
            draft,
            {
                "product": product(catalog),
                "dispensable_drug_id": "7",
                "vendor": {"schedule": vendor},
            },
        )
        assert draft.schedule == kept, (catalog, vendor)
    assert stricter_schedule(None, None) is None
