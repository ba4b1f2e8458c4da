"""Allergies: record (coded to RxNorm when known), NKA as an explicit dated state, the banner,
edits with history, refusals."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest

from portal.charting.lists import services as clinical_lists
from portal.charting.models import Allergy, ChartItemRevision, NoKnownAllergies
from tests.charting.lists_helpers import audit_events, make_patient, rows, text_of, version_of
from tests.charting.race_helpers import interleave


@pytest.fixture
def patient_id(app):
    return make_patient(app)


@pytest.fixture
def nurse(signed_in):
    return signed_in("nurse")


def record(client, patient_id, **values):
    data = {
        "substance_kind": "drug",
        "substance": "Penicillin G",
        "reactions": ["Hives"],
        "other_reactions": "",
        "severity": "",
        "criticality": "",
        "onset_date": "",
        "status": "active",
        "comment": "",
    }
    data.update(values)
    return client.post_form(f"/chart/patients/{patient_id}/allergies", data)


def banner(client, patient_id) -> str:
    """The banner's allergy slot, as the patient's demographics page shows it."""
    html = text_of(client.get(f"/patients/{patient_id}"))
    start = html.index('id="banner-allergies"')
    return html[start : html.index("</div>", start)]


def test_a_new_patient_shows_allergies_not_recorded(app, signed_in, patient_id):
    assert "Allergies: not recorded" in banner(signed_in("front_desk"), patient_id)


def test_record_a_drug_allergy_coded_with_rxnorm(app, nurse, patient_id):
    response = record(
        nurse,
        patient_id,
        substance="amoxicillin",
        reactions=["Hives", "Anaphylaxis"],
        other_reactions="tongue swelling, Hives",
        severity="severe",
        criticality="high",
        onset_date="2001-06-01",
    )
    assert response.status_code == 303
    (allergy,) = rows(app, Allergy, patient_id=patient_id)
    assert (allergy.substance, allergy.rxnorm_code) == ("amoxicillin", "723")
    assert allergy.reactions == ["Anaphylaxis", "Hives", "tongue swelling"]
    assert allergy.onset_date == date(2001, 6, 1)
    (revision,) = rows(app, ChartItemRevision, item_type="allergy", item_id=allergy.id)
    assert revision.before is None and revision.after["rxnorm_code"] == "723"
    events = audit_events(app, "allergies")
    assert any(action == "allergy.create" and "rxcui 723" in detail for action, _, detail in events)


def test_unknown_drugs_and_foods_are_kept_uncoded(app, nurse, patient_id):
    record(nurse, patient_id, substance="Zzzmadeupamab")
    record(nurse, patient_id, substance_kind="food", substance="Peanut")
    record(nurse, patient_id, substance_kind="food", substance="aspirin")  # not a drug here
    assert {(a.substance, a.rxnorm_code) for a in rows(app, Allergy, patient_id=patient_id)} == {
        ("Zzzmadeupamab", None),
        ("Peanut", None),
        ("aspirin", None),
    }


def test_the_banner_shows_active_allergies_to_every_role_with_severe_marked(
    app, signed_in, nurse, patient_id
):
    record(nurse, patient_id, substance="Peanut", substance_kind="food", severity="severe")
    record(nurse, patient_id, substance="codeine")
    record(nurse, patient_id, substance="latex", substance_kind="environmental", status="inactive")
    for role in ("front_desk", "nurse", "prescriber"):
        slot = banner(signed_in(role), patient_id)
        assert "codeine" in slot and "Peanut" in slot
        assert "latex" not in slot
        assert "severe" in slot.split("Peanut", 1)[1]
        assert "severe" not in slot.split("codeine", 1)[1].split("Peanut")[0]
    # The charting pages carry the banner too.
    assert "Peanut" in text_of(nurse.get(f"/chart/patients/{patient_id}/medications"))


def test_no_known_allergies_is_dated_and_replaced_by_an_allergy(app, signed_in, nurse, patient_id):
    page = text_of(nurse.get(f"/chart/patients/{patient_id}/allergies"))
    assert "Patient has no known allergies" in page and "not recorded yet" in page
    response = nurse.post_form(f"/chart/patients/{patient_id}/allergies/none")
    assert response.status_code == 303
    (nka,) = rows(app, NoKnownAllergies, patient_id=patient_id)
    assert nka.recorded_at is not None
    assert "NKA" in banner(signed_in("front_desk"), patient_id)
    assert ("allergy.nka_record", patient_id, None) in audit_events(app, "allergies")

    record(nurse, patient_id, substance="ibuprofen")
    assert rows(app, NoKnownAllergies, patient_id=patient_id) == []
    slot = banner(nurse, patient_id)
    assert "ibuprofen" in slot and "NKA" not in slot
    page = text_of(nurse.get(f"/chart/patients/{patient_id}/allergies"))
    assert "Patient has no known allergies" not in page  # not offered beside an active allergy


def test_no_known_allergies_is_refused_while_an_allergy_is_active(app, nurse, patient_id):
    record(nurse, patient_id, substance="aspirin")
    response = nurse.post_form(f"/chart/patients/{patient_id}/allergies/none")
    assert response.status_code == 409
    assert "active allergies" in text_of(response)
    assert rows(app, NoKnownAllergies, patient_id=patient_id) == []


# --- races (PostgreSQL; tests/charting/race_helpers.py) -----------------------------------


@pytest.mark.postgres_only
def test_no_known_allergies_racing_a_new_allergy_leaves_only_the_allergy(
    app, signed_in, nurse, patient_id, monkeypatch
):
    """A nurse presses "No known allergies" while a colleague records penicillin: the NKA
    check has found no active allergy when the colleague's allergy (which removes any NKA)
    is saved. The patient must not end with both."""
    colleague = signed_in("prescriber")
    race = interleave(monkeypatch, clinical_lists, "utcnow", lambda: record(colleague, patient_id))
    assert nurse.post_form(f"/chart/patients/{patient_id}/allergies/none").status_code == 303
    assert race.finish().status_code == 303
    assert len(rows(app, Allergy, patient_id=patient_id, status="active")) == 1
    assert rows(app, NoKnownAllergies, patient_id=patient_id) == []


@pytest.mark.postgres_only
def test_a_new_allergy_racing_no_known_allergies_refuses_the_statement(
    app, signed_in, nurse, patient_id, monkeypatch
):
    """The other way round: the allergy has found no NKA to remove when the colleague's
    "No known allergies" is posted; that statement must be refused, not stored beside it."""
    colleague = signed_in("prescriber")
    race = interleave(
        monkeypatch,
        clinical_lists,
        "_record_change",
        lambda: colleague.post_form(f"/chart/patients/{patient_id}/allergies/none"),
    )
    assert record(nurse, patient_id).status_code == 303
    refused = race.finish()
    assert refused.status_code == 409 and "active allergies" in text_of(refused)
    assert len(rows(app, Allergy, patient_id=patient_id, status="active")) == 1
    assert rows(app, NoKnownAllergies, patient_id=patient_id) == []


@pytest.mark.postgres_only
def test_two_no_known_allergies_posts_racing_store_one_statement(
    app, signed_in, nurse, patient_id, monkeypatch
):
    """Two clicks (or two nurses) on "No known allergies" at once: both are answered as
    done and one statement is stored, never an error from the second insert."""
    colleague = signed_in("nurse")
    race = interleave(
        monkeypatch,
        clinical_lists,
        "utcnow",
        lambda: colleague.post_form(f"/chart/patients/{patient_id}/allergies/none"),
    )
    assert nurse.post_form(f"/chart/patients/{patient_id}/allergies/none").status_code == 303
    assert race.finish().status_code == 303
    assert len(rows(app, NoKnownAllergies, patient_id=patient_id)) == 1


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"substance": "   "}, "Enter the substance"),
        ({"substance": "x" * 300}, "At most 200 characters"),
        ({"substance_kind": "mineral"}, "Not a valid choice"),
        ({"status": "maybe"}, "Not a valid choice"),
        ({"severity": "deadly"}, "Not a valid choice"),
        ({"onset_date": (date.today() + timedelta(days=2)).isoformat()}, "in the future"),
        ({"onset_date": "1900-01-01"}, "before the patient&#39;s birth"),
        ({"other_reactions": ",".join(["itch"] * 11)}, "At most 10 other reactions"),
        ({"comment": "y" * 2000}, "At most 1,000 characters"),
    ],
)
def test_bad_input_is_refused_beside_the_field_and_kept(app, nurse, patient_id, values, message):
    response = record(nurse, patient_id, **{"comment": "kept text", **values})
    assert response.status_code == 422
    html = text_of(response)
    assert message in html and "is-invalid" in html
    if "comment" not in values:
        assert "kept text" in html
    assert rows(app, Allergy, patient_id=patient_id) == []


def test_script_payloads_render_inert_in_the_list_and_the_banner(app, nurse, patient_id):
    record(nurse, patient_id, substance="<script>alert(1)</script>", other_reactions="<b>x</b>")
    for path in (f"/chart/patients/{patient_id}/allergies", f"/patients/{patient_id}"):
        html = text_of(nurse.get(path))
        assert "<script>alert(1)" not in html and "<b>x</b>" not in html
        assert "&lt;script&gt;alert(1)" in html


def test_edit_keeps_history_and_refuses_a_stale_form(app, signed_in, patient_id):
    nurse, doctor = signed_in("nurse"), signed_in("prescriber")
    record(nurse, patient_id, substance="codeine", reactions=["Nausea"])
    (allergy,) = rows(app, Allergy, patient_id=patient_id)
    url = f"/chart/patients/{patient_id}/allergies/{allergy.id}"
    form = text_of(doctor.get(url))
    assert version_of(form) == "1"
    assert re.search(r'<input checked[^>]*value="Nausea"', form)  # ticked as recorded
    values = {
        "substance_kind": "drug",
        "substance": "codeine",
        "reactions": ["Nausea"],
        "severity": "",
        "criticality": "",
        "onset_date": "",
        "comment": "",
        "version": "1",
    }
    assert doctor.post_form(url, {**values, "status": "entered_in_error"}).status_code == 303
    stale = nurse.post_form(url, {**values, "status": "active", "severity": "mild"})
    assert stale.status_code == 409
    assert "Someone else changed this allergy" in text_of(stale)
    (allergy,) = rows(app, Allergy, patient_id=patient_id)
    assert (allergy.status, allergy.severity) == ("entered_in_error", None)
    history = text_of(doctor.get(url + "/history"))
    assert "Entered in error" in history and "Active" in history and "Jordan Lee" in history
    assert "Allergies: not recorded" in banner(nurse, patient_id)  # no active allergy left


def test_the_banner_costs_one_query(app, nurse, patient_id):
    from sqlalchemy import event

    from portal.charting.lists.services import allergy_state
    from portal.extensions import db

    record(nurse, patient_id, substance="codeine")
    record(nurse, patient_id, substance="Peanut", substance_kind="food", criticality="high")
    statements = []
    with app.app_context():
        engine = db.engine
        listener = lambda *args: statements.append(args[2])  # noqa: E731
        event.listen(engine, "before_cursor_execute", listener)
        try:
            state = allergy_state(patient_id)
        finally:
            event.remove(engine, "before_cursor_execute", listener)
    assert {a.substance for a in state.allergies} == {"Peanut", "codeine"}
    assert [a.serious for a in state.allergies if a.substance == "Peanut"] == [True]
    assert len([sql for sql in statements if sql.lstrip().upper().startswith("SELECT")]) == 1
