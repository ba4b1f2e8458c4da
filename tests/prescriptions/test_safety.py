"""The safety checks a prescription goes through before signing: each check in each
direction, on a patient context built by hand (the checks themselves) and read from the
chart (``patient_context``, both databases)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, timedelta

import pytest
from sqlalchemy import event

from portal.charting.models import Allergy, Medication, NoKnownAllergies, VitalSigns
from portal.extensions import db
from portal.prescriptions import safety
from portal.prescriptions.models import Prescription
from portal.prescriptions.safety import (
    ActiveDrug,
    AllergyFact,
    Measure,
    PatientContext,
    UnmatchedDrug,
    check_prescription,
    patient_context,
)
from portal.terminology import drugs, interactions
from portal.timeutil import utcnow
from tests.prescriptions.knowledge_stub import (
    AMPICILLIN,
    BUPROPION,
    CEPHALEXIN,
    CLARITHROMYCIN,
    IBUPROFEN,
    INGREDIENTS,
    LISINOPRIL,
    LISINOPRIL_HCTZ,
    MEROPENEM,
    PHENYTOIN,
    PRAVASTATIN,
    SIMVASTATIN,
    SMX_TMP,
    StubKnowledge,
)
from tests.support.factories import patient_row

NOW = utcnow()


def adult(**changes) -> PatientContext:
    """A 50-year-old with no known allergies and nothing active."""
    context = PatientContext(
        patient_id=1,
        birth_date=date(1976, 1, 1),
        age_years=50,
        deceased=False,
        deceased_date=None,
        no_known_allergies=True,
        allergies=(),
        active=(),
        weight=None,
        height=None,
        as_of=NOW,
    )
    return replace(context, **changes)


def allergy(substance, *, kind="drug", rxcui=None, class_code=None, severity="severe", id=1):
    return AllergyFact(
        id=id, substance=substance, kind=kind, rxcui=rxcui, class_code=class_code, severity=severity
    )


def on_list(name, rxcui=None, *, id=1, source="medication"):
    return ActiveDrug(source=source, id=id, name=name, rxcui=rxcui)


def check(context, drug):
    return check_prescription(context, drug, knowledge=StubKnowledge())


def kinds(alerts):
    return [alert.kind for alert in alerts]


# --- allergies -----------------------------------------------------------------------------


def test_no_alert_for_a_patient_with_no_known_allergies_and_nothing_active():
    assert check(adult(), LISINOPRIL) == []


def test_allergy_to_the_ingredient_is_high_and_needs_an_override():
    context = adult(no_known_allergies=False, allergies=(allergy("lisinopril", rxcui="29046"),))
    (alert,) = check(context, LISINOPRIL_HCTZ)
    assert (alert.kind, alert.severity, alert.needs_override) == ("allergy", "high", True)
    assert "lisinopril" in alert.evidence[1]
    assert alert.code == "allergy:1:29046"


def test_allergy_recorded_by_name_only_is_matched_through_the_knowledge():
    context = adult(no_known_allergies=False, allergies=(allergy("Lisinopril"),))
    assert kinds(check(context, LISINOPRIL)) == ["allergy"]


def test_allergy_to_a_group_catches_another_member_of_the_group():
    """Allergic to amoxicillin (a penicillin), prescribed ampicillin (a penicillin)."""
    context = adult(no_known_allergies=False, allergies=(allergy("amoxicillin", rxcui="723"),))
    (alert,) = check(context, AMPICILLIN)
    assert (alert.kind, alert.severity, alert.needs_override) == ("allergy", "high", True)
    assert "Penicillins" in alert.evidence[1]


def test_allergy_to_a_drug_class_catches_its_members():
    context = adult(
        no_known_allergies=False,
        allergies=(
            allergy(
                "Sulfonamide antibiotics",
                kind="drug_class",
                class_code="PORTAL:sulfonamide-antibiotics",
            ),
        ),
    )
    (alert,) = check(context, SMX_TMP)
    assert alert.kind == "allergy" and "sulfamethoxazole" in alert.evidence[1]


def test_cross_sensitivity_is_lower_severity_and_needs_no_override():
    """Allergic to penicillins (class), prescribed cephalexin (a cephalosporin)."""
    context = adult(
        no_known_allergies=False,
        allergies=(allergy("Penicillins", kind="drug_class", class_code="ATC:J01C"),),
    )
    (alert,) = check(context, CEPHALEXIN)
    assert (alert.kind, alert.severity, alert.needs_override) == (
        "cross_sensitivity",
        "moderate",
        False,
    )
    assert "Cephalosporins" in alert.title and "Penicillins" in alert.title


def test_cross_sensitivity_works_in_the_other_direction_too():
    context = adult(no_known_allergies=False, allergies=(allergy("cephalexin", rxcui="2231"),))
    assert kinds(check(context, AMPICILLIN)) == ["cross_sensitivity"]


def test_cross_sensitivity_says_what_the_knowledge_says_of_the_pair():
    """The pair's own severity (a carbapenem crosses a penicillin allergy weakly), note and
    source, when the knowledge gives them (rxdrugs' ``cross_sensitivities``)."""
    context = adult(no_known_allergies=False, allergies=(allergy("amoxicillin", rxcui="723"),))
    (weak,) = check(context, MEROPENEM)
    assert (weak.kind, weak.severity) == ("cross_sensitivity", "low")
    (usual,) = check(context, CEPHALEXIN)
    assert usual.severity == "moderate"
    assert usual.source == "Test source for the pair."
    assert any(line.startswith("Test note:") for line in usual.evidence)


def test_an_unrelated_allergy_gives_no_alert():
    context = adult(
        no_known_allergies=False,
        allergies=(
            allergy("Penicillins", kind="drug_class", class_code="ATC:J01C"),
            allergy("peanut", kind="food", id=2),
        ),
    )
    assert check(context, LISINOPRIL) == []


def test_allergies_not_recorded_is_an_alert_to_acknowledge():
    (alert,) = check(adult(no_known_allergies=False), LISINOPRIL)
    assert (alert.kind, alert.severity, alert.needs_override) == (
        "allergies_not_recorded",
        "high",
        True,
    )


def test_no_known_allergies_or_any_recorded_allergy_counts_as_recorded():
    assert check(adult(no_known_allergies=True), LISINOPRIL) == []
    food_only = adult(no_known_allergies=False, allergies=(allergy("peanut", kind="food"),))
    assert check(food_only, LISINOPRIL) == []


# --- duplicate therapy ---------------------------------------------------------------------


def test_duplicate_by_ingredient_against_the_medication_list():
    context = adult(active=(on_list("lisinopril 20 mg", "29046"),))
    (alert,) = check(context, LISINOPRIL)
    assert (alert.kind, alert.severity, alert.needs_override) == (
        "duplicate_ingredient",
        "moderate",
        False,
    )
    assert "lisinopril 20 mg" in alert.evidence[0]
    # The combination product duplicates lisinopril and brings its thiazide's interaction.
    assert sorted(kinds(check(context, LISINOPRIL_HCTZ))) == ["duplicate_ingredient", "interaction"]


def test_duplicate_by_ingredient_against_an_open_prescription():
    context = adult(
        active=(
            on_list(
                "Lisinopril 10 mg tablet",
                "test:lisinopril-10-mg-oral-tablet",
                source="prescription",
            ),
        )
    )
    (alert,) = check(context, LISINOPRIL)
    assert alert.kind == "duplicate_ingredient" and "open prescription" in alert.evidence[0]


def test_duplicate_by_class():
    context = adult(active=(on_list("atorvastatin 40 mg", "83367"),))
    (alert,) = check(context, PRAVASTATIN)
    assert (alert.kind, alert.severity, alert.needs_override) == ("duplicate_class", "low", False)
    assert "C10AA" in alert.evidence[1]


def test_no_duplicate_within_a_catch_all_class():
    """Bupropion and trazodone are both "Other antidepressants" (N06AX): not duplicates."""
    assert check(adult(active=(on_list("trazodone 50 mg", "10737"),)), BUPROPION) == []


def test_no_duplicate_between_different_classes():
    context = adult(active=(on_list("atorvastatin 40 mg", "83367"),))
    assert check(context, LISINOPRIL) == []


# --- interactions ---------------------------------------------------------------------------


def test_the_issue_scenario_lisinopril_with_spironolactone():
    context = adult(active=(on_list("Spironolactone 25 mg tablet", "9997"),))
    (alert,) = check(context, LISINOPRIL)
    assert (alert.kind, alert.severity, alert.needs_override) == ("interaction", "high", True)
    assert alert.source.startswith("Project addition")
    assert "Spironolactone 25 mg tablet" in alert.evidence[0]
    assert "hyperkalaemia" in alert.evidence[1]


def test_high_priority_interaction_found_in_either_order():
    """Simvastatin with clarithromycin on the list, and clarithromycin with simvastatin."""
    one = check(adult(active=(on_list("clarithromycin", "21212"),)), SIMVASTATIN)
    other = check(adult(active=(on_list("simvastatin", "36567"),)), CLARITHROMYCIN)
    assert [(a.kind, a.severity) for a in one] == [("interaction", "high")]
    assert [(a.kind, a.severity) for a in other] == [("interaction", "high")]
    assert "2012" in one[0].source and "row 25" in one[0].source


def test_non_interruptive_interaction_needs_no_override():
    context = adult(active=(on_list("ibuprofen", "5640"),))
    (alert,) = check(context, LISINOPRIL)
    assert (alert.severity, alert.needs_override) == ("moderate", False)
    assert "2013" in alert.source


def test_near_miss_no_interaction():
    """Pravastatin is not cleared by CYP3A4: no interaction with clarithromycin."""
    assert check(adult(active=(on_list("clarithromycin", "21212"),)), PRAVASTATIN) == []


def test_every_active_drug_is_checked_and_uncoded_ones_are_named():
    context = adult(
        active=(
            on_list("spironolactone", "9997", id=1),
            on_list("ibuprofen", "5640", id=2),
            on_list("Grandma's herbal tea", None, id=3),
        )
    )
    alerts = check(context, LISINOPRIL)
    assert [(a.kind, a.severity) for a in alerts] == [
        ("interaction", "high"),
        ("interaction", "moderate"),
        ("unmatched_product", "low"),
    ]
    assert "Grandma's herbal tea" in alerts[-1].evidence[0]


def test_an_active_medication_coded_by_name_only_is_resolved():
    context = adult(active=(on_list("Spironolactone", None),))
    assert kinds(check(context, LISINOPRIL)) == ["interaction"]


def test_an_unknown_code_is_not_taken_for_an_ingredient():
    """A product code from another catalog: resolved by its name when it can be, else named
    as not checked (never silently passed as an ingredient nobody knows)."""
    by_name = adult(active=(on_list("Spironolactone 25 mg (vendor)", "99999999"),))
    assert kinds(check(by_name, LISINOPRIL)) == ["interaction"]
    unknown = adult(active=(on_list("Aldactazide", "99999999"),))
    assert kinds(check(unknown, LISINOPRIL)) == ["unmatched_product"]


def test_a_class_typed_as_a_drug_allergy_is_read_as_the_class():
    """Recorded before classes were coded: a 'drug' allergy to "sulfa"."""
    context = adult(no_known_allergies=False, allergies=(allergy("sulfa"),))
    (alert,) = check(context, SMX_TMP)
    assert alert.kind == "allergy" and "Sulfonamide antibiotics" in alert.evidence[1]


# --- the patient ----------------------------------------------------------------------------


def test_deceased_patient_is_refused():
    alerts = check(adult(deceased=True, deceased_date=date(2026, 1, 2)), LISINOPRIL)
    assert [(a.kind, a.severity, a.needs_override) for a in alerts] == [
        ("deceased", "blocking", False)
    ]
    assert alerts[0].blocks_signing


def test_child_without_a_recent_weight_and_height_is_blocked():
    (alert,) = check(adult(age_years=18, birth_date=date(2008, 6, 1)), LISINOPRIL)
    assert (alert.kind, alert.severity) == ("paediatric_weight_missing", "blocking")
    assert "weight and height" in alert.title


def test_child_with_an_old_weight_is_blocked_and_told_which():
    recent = Measure(110.0, NOW - timedelta(days=3))
    old = Measure(20.0, NOW - timedelta(days=31))
    (alert,) = check(adult(age_years=6, weight=old, height=recent), LISINOPRIL)
    assert alert.kind == "paediatric_weight_missing"
    assert "A current weight is needed" in alert.title
    assert any("20 kg" in line for line in alert.evidence)


def test_child_with_a_recent_weight_and_height_passes():
    recent = Measure(20.0, NOW - timedelta(days=29))
    assert (
        check(adult(age_years=6, weight=recent, height=replace(recent, value=110.0)), LISINOPRIL)
        == []
    )


def test_nineteen_needs_no_weight():
    assert check(adult(age_years=19), LISINOPRIL) == []


# --- an unmatched product, and knowledge that cannot be read -------------------------------


def test_unmatched_product_is_checked_for_allergies_by_name_and_flagged():
    context = adult(no_known_allergies=False, allergies=(allergy("amoxicillin", rxcui="723"),))
    alerts = check(context, UnmatchedDrug("Amoxicillin 500 mg capsule (vendor)"))
    assert kinds(alerts) == ["allergy", "unmatched_product"]
    assert alerts[1].severity == "moderate" and "allergies by name only" in alerts[1].evidence[1]


def test_unmatched_product_without_any_code_matches_the_allergy_words():
    context = adult(no_known_allergies=False, allergies=(allergy("zopiclone"),))
    alerts = check(context, UnmatchedDrug("Zopiclone 7.5 mg"))
    assert kinds(alerts) == ["allergy", "unmatched_product"]


def test_unmatched_product_is_not_checked_for_interactions():
    context = adult(active=(on_list("spironolactone", "9997"),))
    assert kinds(check(context, UnmatchedDrug("Lisinopril 10 mg (vendor)"))) == [
        "unmatched_product"
    ]


def test_unreadable_knowledge_is_one_blocking_alert():
    context = adult(active=(on_list("spironolactone", "9997"),))
    alerts = check_prescription(context, LISINOPRIL, knowledge=StubKnowledge(broken=True))
    assert [(a.kind, a.severity) for a in alerts] == [("knowledge_unavailable", "blocking")]
    assert "OSError" in alerts[0].evidence[0]


def test_knowledge_that_cannot_be_loaded_is_one_blocking_alert():
    """The loader itself is handed over (as ``drugs.knowledge``) and fails when called."""

    class KnowledgeUnavailable(RuntimeError):
        pass

    def load():
        raise KnowledgeUnavailable("drug catalog missing")

    alerts = check_prescription(adult(), LISINOPRIL, knowledge=load)
    assert [(a.kind, a.severity) for a in alerts] == [("knowledge_unavailable", "blocking")]
    assert "KnowledgeUnavailable" in alerts[0].evidence[0]
    # A loader that works is called and used.
    context = adult(active=(on_list("spironolactone", "9997"),))
    alerts = check_prescription(context, LISINOPRIL, knowledge=lambda: StubKnowledge())
    assert kinds(alerts) == ["interaction"]


def test_unreadable_interaction_rules_block_too(monkeypatch):
    def unreadable():
        raise interactions.InteractionDataError("cannot read drug_interactions.json")

    monkeypatch.setattr(interactions, "shipped_rules", unreadable)
    alerts = check(adult(deceased=True), LISINOPRIL)
    assert [(a.kind, a.severity) for a in alerts] == [
        ("deceased", "blocking"),
        ("knowledge_unavailable", "blocking"),
    ]


def test_alerts_are_sorted_most_severe_first():
    context = adult(
        no_known_allergies=False,
        active=(on_list("ibuprofen", "5640", id=1), on_list("spironolactone", "9997", id=2)),
        deceased=True,
    )
    severities = [a.severity for a in check(context, LISINOPRIL)]
    assert severities == sorted(severities, key=safety.SEVERITIES.index)
    assert severities[0] == "blocking"


def test_phenytoin_allergy_class_is_aromatic_anticonvulsants():
    context = adult(
        no_known_allergies=False,
        allergies=(allergy("carbamazepine", rxcui=INGREDIENTS["carbamazepine"]),),
    )
    assert kinds(check(context, PHENYTOIN)) == ["allergy"]


def test_ibuprofen_against_an_nsaid_class_allergy():
    context = adult(
        no_known_allergies=False,
        allergies=(allergy("NSAIDs", kind="drug_class", class_code="PORTAL:nsaids"),),
    )
    assert kinds(check(context, IBUPROFEN)) == ["allergy"]


def test_an_alert_as_the_signed_prescription_keeps_it():
    (alert,) = check(adult(active=(on_list("Spironolactone", "9997"),)), LISINOPRIL)
    record = alert.as_record()
    assert record["code"] == alert.code and record["needs_override"] is True
    assert json.loads(json.dumps(record)) == record


# --- with the shipped drug knowledge, once it is installed (rxdrugs) -------------------------


def _shipped_product(knowledge, ingredient_rxcui):
    name = {"29046": "lisinopril", "733": "ampicillin", "2231": "cephalexin"}[ingredient_rxcui]
    return next(p for p in knowledge.search(name, 50) if p.ingredient_rxcuis == (ingredient_rxcui,))


def test_the_issue_scenario_with_the_shipped_knowledge():
    knowledge = drugs.knowledge()
    context = adult(active=(on_list("spironolactone 25 mg", "9997"),))
    alerts = check_prescription(context, _shipped_product(knowledge, "29046"), knowledge=knowledge)
    assert [(a.kind, a.severity, a.needs_override) for a in alerts] == [
        ("interaction", "high", True)
    ]


def test_penicillin_allergies_with_the_shipped_knowledge():
    knowledge = drugs.knowledge()
    context = adult(no_known_allergies=False, allergies=(allergy("amoxicillin", rxcui="723"),))
    group = check_prescription(context, _shipped_product(knowledge, "733"), knowledge=knowledge)
    cross = check_prescription(context, _shipped_product(knowledge, "2231"), knowledge=knowledge)
    assert kinds(group) == ["allergy"]
    assert kinds(cross) == ["cross_sensitivity"]


# --- the context from the chart ----------------------------------------------------------


def _count_queries():
    statements = []

    def before(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", before)
    return statements, lambda: event.remove(db.engine, "before_cursor_execute", before)


@pytest.fixture
def chart(app):
    """A 40-year-old with a drug allergy, a class allergy, an entered-in-error allergy, two
    active and one stopped medication, an open prescription, one already on the list, one
    cancelled, a draft (not in force), and vitals (a newer weight without height, an older
    height)."""
    with app.app_context():
        patient = patient_row("Ada", "Safety", date(1985, 3, 1))
        db.session.add(patient)
        db.session.flush()
        pid = patient.id
        now = utcnow()
        db.session.add_all(
            [
                Allergy(
                    patient_id=pid,
                    substance_kind="drug",
                    substance="amoxicillin",
                    rxnorm_code="723",
                    severity="severe",
                ),
                Allergy(
                    patient_id=pid,
                    substance_kind="drug_class",
                    substance="NSAIDs",
                    drug_class_code="PORTAL:nsaids",
                ),
                Allergy(
                    patient_id=pid,
                    substance_kind="drug",
                    substance="codeine",
                    rxnorm_code="2670",
                    status="entered_in_error",
                ),
                Medication(patient_id=pid, drug="spironolactone 25 mg", rxnorm_code="9997"),
                Medication(patient_id=pid, drug="atorvastatin 40 mg", rxnorm_code="83367"),
                Medication(patient_id=pid, drug="ibuprofen", rxnorm_code="5640", status="stopped"),
                VitalSigns(
                    patient_id=pid,
                    taken_at=now - timedelta(days=40),
                    height_cm=170.0,
                    weight_kg=71.0,
                ),
                VitalSigns(patient_id=pid, taken_at=now - timedelta(days=2), weight_kg=70.5),
                VitalSigns(
                    patient_id=pid,
                    taken_at=now - timedelta(days=1),
                    weight_kg=99.0,
                    entered_in_error=True,
                ),
            ]
        )
        listed = Medication(patient_id=pid, drug="lisinopril 10 mg", rxnorm_code="29046")
        db.session.add(listed)
        db.session.flush()
        db.session.add_all(
            [
                Prescription(
                    patient_id=pid,
                    connector="dosespot",
                    vendor_id="1",
                    drug="clarithromycin 500 mg",
                    rxcui="21212",
                    status="eRxSent",
                    fhir_status="active",
                ),
                Prescription(
                    patient_id=pid,
                    connector="dosespot",
                    vendor_id="2",
                    drug="lisinopril 10 mg",
                    rxcui="29046",
                    status="PharmacyVerified",
                    fhir_status="active",
                    medication_id=listed.id,
                ),
                Prescription(
                    patient_id=pid,
                    connector="dosespot",
                    vendor_id="3",
                    drug="warfarin 5 mg",
                    rxcui="11289",
                    status="Cancelled",
                    fhir_status="cancelled",
                ),
                Prescription(
                    patient_id=pid,
                    connector="portal",
                    vendor_id="4",
                    drug="naproxen 500 mg",
                    rxcui="7258",
                    status="Draft",
                    fhir_status="draft",
                ),
            ]
        )
        db.session.commit()
        return pid


def test_patient_context_reads_the_chart_in_two_queries(app, chart):
    with app.app_context():
        statements, stop = _count_queries()
        try:
            context = patient_context(chart, today=date(2026, 12, 6))
        finally:
            stop()
        assert len(statements) == 2
    assert context.age_years == 41
    assert not context.deceased
    assert not context.no_known_allergies and context.allergies_recorded
    assert [(a.substance, a.kind, a.rxcui, a.class_code) for a in context.allergies] == [
        ("amoxicillin", "drug", "723", None),
        ("NSAIDs", "drug_class", None, "PORTAL:nsaids"),
    ]
    assert sorted((d.source, d.name, d.rxcui) for d in context.active) == [
        ("medication", "atorvastatin 40 mg", "83367"),
        ("medication", "lisinopril 10 mg", "29046"),
        ("medication", "spironolactone 25 mg", "9997"),
        ("prescription", "clarithromycin 500 mg", "21212"),
    ]
    assert context.weight.value == 70.5  # the newest, not the one entered in error
    assert context.height.value == 170.0


def test_patient_context_feeds_the_checks(app, chart):
    with app.app_context():
        context = patient_context(chart)
    alerts = check(context, SIMVASTATIN)
    assert sorted((a.kind, a.severity) for a in alerts) == [
        ("duplicate_class", "low"),  # atorvastatin on the list
        ("interaction", "high"),  # clarithromycin prescribed
    ]
    assert kinds(check(context, IBUPROFEN))[0] == "allergy"  # the NSAIDs class allergy


def test_patient_context_of_a_deceased_child_without_allergies_recorded(app):
    with app.app_context():
        patient = patient_row(
            "Tim", "Small", date(2018, 5, 5), status="deceased", deceased_date=date(2026, 1, 1)
        )
        db.session.add(patient)
        db.session.commit()
        context = patient_context(patient.id, today=date(2026, 12, 6))
    assert (context.age_years, context.deceased, context.allergies_recorded) == (8, True, False)
    assert context.weight is None and context.height is None
    assert kinds(check(context, LISINOPRIL)) == [
        "deceased",
        "paediatric_weight_missing",
        "allergies_not_recorded",
    ]


def test_no_known_allergies_statement_is_read(app):
    with app.app_context():
        patient = patient_row("Nora", "Clear", date(1990, 1, 1))
        db.session.add(patient)
        db.session.flush()
        db.session.add(NoKnownAllergies(patient_id=patient.id))
        db.session.commit()
        context = patient_context(patient.id)
    assert context.no_known_allergies and context.allergies_recorded


def test_unknown_patient_has_no_context(app):
    with app.app_context():
        assert patient_context(987654) is None


def test_the_prescription_being_checked_is_left_out(app, chart):
    with app.app_context():
        open_one = db.session.scalar(
            db.select(Prescription.id).where(
                Prescription.patient_id == chart, Prescription.vendor_id == "1"
            )
        )
        context = patient_context(chart, excluding_prescription=open_one)
    assert "clarithromycin 500 mg" not in [d.name for d in context.active]
