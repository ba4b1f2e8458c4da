"""The prescription safety benchmark measures the issue's patient (30 medications, 10
allergies) against a knowledge that answers like the shipped one, and judges the checks by
their p95."""

from datetime import date

from bench import report
from bench.rx_safety import ACTIVE, ALLERGIES, BUDGET_MS, StandInKnowledge, markdown
from portal.prescriptions import safety
from portal.prescriptions.safety import ActiveDrug, PatientContext


def test_the_workload_is_the_issue_patient():
    assert len(ACTIVE) == 30 and len(set(ACTIVE)) == 30
    assert len(ALLERGIES) == 10


def test_the_stand_in_knowledge_codes_the_workload_and_finds_the_issue_interaction():
    knowledge = StandInKnowledge()
    assert all(knowledge.ingredient_by_name(name) for name in ACTIVE)
    lisinopril = knowledge.product(knowledge.ingredient_by_name("lisinopril"))
    context = PatientContext(
        patient_id=1,
        birth_date=date(1950, 1, 1),
        age_years=76,
        deceased=False,
        deceased_date=None,
        no_known_allergies=True,
        allergies=(),
        active=(ActiveDrug("medication", 1, "spironolactone", "9997"),),
        weight=None,
        height=None,
    )
    alerts = safety.check_prescription(context, lisinopril, knowledge=knowledge)
    assert [(a.kind, a.severity) for a in alerts] == [("interaction", "high")]


def _row(name, p95):
    return report.Result(
        name, "SQLite", 1, 10, 0.1, p95, p95, None, "now", worker_cpu_ms=0.2, other_busy=0.1
    )


def test_only_the_checks_are_held_to_the_budget():
    text = markdown(
        "now",
        {"cpu": "cpu", "cores": 2, "load": (0, 0, 0)},
        [
            (
                "SQLite",
                [
                    _row("rx safety: checks in process, lisinopril (x)", BUDGET_MS + 1),
                    _row("rx safety: checks in process, ibuprofen (x)", BUDGET_MS - 1),
                    _row("rx safety: patient context (...)", 50.0),
                ],
                {},
            )
        ],
    )
    lines = [line for line in text.splitlines() if line.startswith("| rx safety")]
    assert lines[0].endswith("| **FAIL** |")
    assert lines[1].endswith("| pass |")
    assert lines[2].endswith("| — |")
