"""Allergy drug classes (issue 14): the kind "Drug class" offers real classes (penicillins,
sulfonamide antibiotics, NSAIDs ...) and stores each with its stable code, so prescriptions
can check a drug's ingredients against the class's members."""

from __future__ import annotations

import re

import pytest

from portal.charting.models import Allergy, ChartItemRevision
from portal.extensions import db
from portal.terminology.allergy_classes import by_code
from tests.charting.lists_helpers import audit_events, make_patient, rows, text_of, version_of


@pytest.fixture
def patient_id(app):
    return make_patient(app)


@pytest.fixture
def nurse(signed_in):
    return signed_in("nurse")


def record(client, patient_id, **values):
    data = {
        "substance_kind": "drug_class",
        "substance": "Penicillins",
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


def datalist(html: str, list_id: str) -> list[str]:
    body = re.search(rf'<datalist id="{list_id}">(.*?)</datalist>', html, re.S).group(1)
    return re.findall(r'<option value="([^"]+)"', body)


def test_the_form_offers_classes_not_drugs_for_a_drug_class(app, nurse, patient_id):
    html = text_of(nurse.get(f"/chart/patients/{patient_id}/allergies"))
    classes = datalist(html, "allergy-classes")
    for name in ("Penicillins", "Cephalosporins", "Sulfonamide antibiotics", "NSAIDs", "Opioids"):
        assert name in classes
    assert "amoxicillin" not in classes and "ibuprofen" not in classes
    assert 'data-class-list="allergy-classes"' in html  # allergies.js switches to it


def test_record_a_class_stores_its_code(app, nurse, patient_id):
    assert record(nurse, patient_id, substance="penicillins").status_code == 303
    (allergy,) = rows(app, Allergy, patient_id=patient_id)
    assert (allergy.substance_kind, allergy.substance, allergy.drug_class_code) == (
        "drug_class",
        "Penicillins",
        "ATC:J01C",
    )
    assert allergy.rxnorm_code is None
    assert "amoxicillin" in by_code(allergy.drug_class_code).members
    (revision,) = rows(app, ChartItemRevision, item_type="allergy", item_id=allergy.id)
    assert revision.after["drug_class_code"] == "ATC:J01C"
    events = audit_events(app, "allergies")
    assert any(a == "allergy.create" and "class ATC:J01C" in d for a, _, d in events)
    page = text_of(nurse.get(f"/chart/patients/{patient_id}/allergies"))
    assert "class ATC:J01C" in page


def test_a_class_typed_by_its_common_name_is_the_class(app, nurse, patient_id):
    record(nurse, patient_id, substance="sulfa")
    (allergy,) = rows(app, Allergy, patient_id=patient_id)
    assert (allergy.substance, allergy.drug_class_code) == (
        "Sulfonamide antibiotics",
        "PORTAL:sulfonamide-antibiotics",
    )


def test_a_class_recorded_as_a_drug_is_recorded_as_the_class(app, nurse, patient_id):
    assert record(nurse, patient_id, substance_kind="drug", substance="NSAIDs").status_code == 303
    (allergy,) = rows(app, Allergy, patient_id=patient_id)
    assert (allergy.substance_kind, allergy.drug_class_code) == ("drug_class", "PORTAL:nsaids")


def test_a_drug_is_not_a_class_and_the_error_sits_beside_the_field(app, nurse, patient_id):
    response = record(nurse, patient_id, substance="amoxicillin", comment="kept")
    assert response.status_code == 422
    html = text_of(response)
    error = re.search(r'id="substance-error">(.*?)</div>', html, re.S).group(1)
    assert "Choose a drug class from the list" in error
    assert 'value="amoxicillin"' in html and "kept" in html
    assert rows(app, Allergy, patient_id=patient_id) == []


def test_a_drug_stays_a_drug_and_a_food_is_never_a_class(app, nurse, patient_id):
    record(nurse, patient_id, substance_kind="drug", substance="amoxicillin")
    record(nurse, patient_id, substance_kind="food", substance="Penicillins")
    found = {
        (a.substance_kind, a.substance, a.rxnorm_code, a.drug_class_code)
        for a in rows(app, Allergy, patient_id=patient_id)
    }
    assert found == {
        ("drug", "amoxicillin", "723", None),
        ("food", "Penicillins", None, None),
    }


def test_editing_a_class_to_a_drug_clears_its_code(app, nurse, patient_id):
    record(nurse, patient_id)
    (allergy,) = rows(app, Allergy, patient_id=patient_id)
    url = f"/chart/patients/{patient_id}/allergies/{allergy.id}"
    form = text_of(nurse.get(url))
    values = {
        "substance_kind": "drug",
        "substance": "amoxicillin",
        "reactions": ["Hives"],
        "other_reactions": "",
        "severity": "",
        "criticality": "",
        "onset_date": "",
        "status": "active",
        "comment": "",
        "version": version_of(form),
    }
    response = nurse.post_form(url, values)
    assert response.status_code == 303
    (allergy,) = rows(app, Allergy, patient_id=patient_id)
    assert (allergy.substance_kind, allergy.rxnorm_code, allergy.drug_class_code) == (
        "drug",
        "723",
        None,
    )


def test_an_edit_that_keeps_a_drugs_name_keeps_it_a_drug(app, nurse, patient_id):
    """A drug allergy recorded before classes existed ("Penicillin", kind Drug) is not
    turned into the class by an edit of its severity; retyping the substance would."""
    with app.app_context():
        allergy = Allergy(
            patient_id=patient_id, substance_kind="drug", substance="Penicillin", reactions=[]
        )
        db.session.add(allergy)
        db.session.commit()
        allergy_id = allergy.id
    url = f"/chart/patients/{patient_id}/allergies/{allergy_id}"
    values = {
        "substance_kind": "drug",
        "substance": "Penicillin",
        "other_reactions": "",
        "severity": "severe",
        "criticality": "",
        "onset_date": "",
        "status": "active",
        "comment": "",
        "version": version_of(text_of(nurse.get(url))),
    }
    assert nurse.post_form(url, values).status_code == 303
    (allergy,) = rows(app, Allergy, patient_id=patient_id)
    assert (allergy.substance_kind, allergy.severity, allergy.drug_class_code) == (
        "drug",
        "severe",
        None,
    )
    values.update(substance="penicillin", version=version_of(text_of(nurse.get(url))))
    assert nurse.post_form(url, values).status_code == 303
    (allergy,) = rows(app, Allergy, patient_id=patient_id)
    assert (allergy.substance_kind, allergy.drug_class_code) == ("drug_class", "ATC:J01C")
