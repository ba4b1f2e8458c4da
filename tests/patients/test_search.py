"""Patient search: each query kind, accents, SQL metacharacters, the audit, the fallback page."""

from __future__ import annotations

import re
from datetime import date

import pytest

from portal.extensions import db
from portal.patients import services
from tests.patients.helpers import add_patient, result_ids, search
from tests.support.audit import audit_events


@pytest.fixture
def registry(app):
    """A small registry whose names test prefixes, accents and ordering."""
    return {
        "ana": add_patient(
            app,
            "Ana",
            "Muñoz",
            date(1980, 2, 3),
            phone_mobile="+14135550142",
            sex_at_birth="female",
        ),
        "jose": add_patient(app, "José", "Muñoz", date(1975, 7, 1), phone_work="+14135550143"),
        "ben": add_patient(app, "Ben", "Munro", date(1980, 2, 3), sex_at_birth="male"),
        "obrien": add_patient(app, "Liam", "O'Brien", date(1990, 1, 1), phone_home="+14135550144"),
        "smith": add_patient(app, "Joan", "Smith", date(1962, 11, 30)),
        "smyth": add_patient(app, "John", "Smyth", date(1962, 11, 30)),
        "under": add_patient(app, "Ursula", "Under_Score", date(2001, 3, 4)),
    }


def ids(registry, *names) -> list[int]:
    return [registry[name][0] for name in names]


def test_family_prefix_is_case_and_accent_insensitive(desk, registry):
    assert result_ids(search(desk, "mun")) == ids(registry, "ana", "jose", "ben")
    assert result_ids(search(desk, "munoz")) == ids(registry, "ana", "jose")
    assert result_ids(search(desk, "MUÑOZ")) == ids(registry, "ana", "jose")
    assert result_ids(search(desk, "Munr")) == ids(registry, "ben")


def test_results_are_ordered_by_family_given_birth_date(desk, registry):
    assert result_ids(search(desk, "sm")) == ids(registry, "smith", "smyth")
    assert result_ids(search(desk, "mu")) == ids(registry, "ana", "jose", "ben")


def test_family_comma_given_prefixes(desk, registry):
    assert result_ids(search(desk, "munoz, jo")) == ids(registry, "jose")
    assert result_ids(search(desk, "Mu,A")) == ids(registry, "ana")
    # Smyth, John is a near miss of "smith, jo": listed, after the exact match.
    assert result_ids(search(desk, "smith, jo")) == ids(registry, "smith", "smyth")
    assert result_ids(search(desk, "munoz,")) == ids(registry, "ana", "jose")


@pytest.mark.parametrize(
    "typed",
    [
        "1980-02-03",
        "02/03/1980",
        "2/3/1980",
        "3 Feb 1980",
        "Feb 3 1980",
        "Feb 3, 1980",
        "3 February 1980",
        "February 3 1980",
    ],
)
def test_birth_date_in_common_formats(desk, registry, typed):
    assert result_ids(search(desk, typed)) == ids(registry, "ana", "ben")


def test_mrn_finds_exactly_one(desk, registry):
    patient_id, mrn = registry["smyth"]
    assert result_ids(search(desk, mrn)) == [patient_id]
    assert result_ids(search(desk, f"  {mrn} ")) == [patient_id]


def test_mrn_with_wrong_check_digit_finds_nobody(desk, registry):
    _, mrn = registry["smyth"]
    wrong = mrn[:-1] + str((int(mrn[-1]) + 1) % 10)
    assert result_ids(search(desk, wrong)) == []


@pytest.mark.parametrize(
    "typed",
    [
        "(413) 555-0142",
        "413-555-0142",
        "413.555.0142",
        "4135550142",
        "+1 413 555 0142",
        "+14135550142",
        "1 (413) 555 0142",
    ],
)
def test_phone_in_any_format(desk, registry, typed):
    assert result_ids(search(desk, typed)) == ids(registry, "ana")


def test_phone_matches_home_and_work_columns_too(desk, registry):
    assert result_ids(search(desk, "413 555 0143")) == ids(registry, "jose")
    assert result_ids(search(desk, "(413) 555-0144")) == ids(registry, "obrien")


def test_result_shows_name_dob_age_sex_mrn_phone_as_options(desk, registry):
    html = search(desk, "munoz, a").get_data(as_text=True)
    _, mrn = registry["ana"]
    assert html.count('role="option"') == 1
    assert re.search(r'<a id="search-result-1" role="option" aria-selected="false"', html)
    assert "Muñoz, Ana" in html and "3 Feb 1980" in html and "Female" in html
    assert mrn in html and "(413) 555-0142" in html
    assert "<html" not in html  # an htmx request gets the fragment only


@pytest.mark.parametrize(
    "typed",
    [
        "'",
        "%",
        "_",
        "'; DROP TABLE patients; --",
        "%%",
        "o'",
        "x' OR '1'='1",
        '"',
        "\\",
        "--",
        "; --",
    ],
)
def test_sql_metacharacters_find_nothing_or_literal_matches(app, desk, registry, typed):
    response = search(desk, typed)
    assert response.status_code == 200
    found = set(result_ids(response))
    # Only names that literally start with the typed text may come back.
    assert found <= set(ids(registry, "obrien", "under"))
    with app.app_context():
        assert db.session.execute(db.text("SELECT COUNT(*) FROM patients")).scalar() == 7


def test_apostrophe_and_underscore_are_literal(desk, registry):
    assert result_ids(search(desk, "o'b")) == ids(registry, "obrien")
    assert result_ids(search(desk, "under_")) == ids(registry, "under")
    assert result_ids(search(desk, "under%")) == []
    assert result_ids(search(desk, "unde_")) == []  # "_" is not a wildcard


def test_too_short_query_shows_a_hint(desk, registry):
    html = search(desk, "m").get_data(as_text=True)
    assert "Type at least 2 characters" in html
    assert 'role="option"' not in html


def test_no_match_says_so(desk, registry):
    assert "No matching patients" in search(desk, "zzz").get_data(as_text=True)


def test_at_most_twenty_results(app, desk):
    for index in range(23):
        add_patient(app, f"Kid{index:02d}", "Clone", date(2000, 1, 1))
    assert len(result_ids(search(desk, "clone"))) == 20


def test_each_search_with_results_writes_one_audit_event_without_the_query(app, desk, registry):
    search(desk, "munoz")
    search(desk, "02/03/1980")
    search(desk, "zzz")  # nothing listed, nothing to record
    search(desk, "m")
    events = audit_events(app, "patient.search")
    assert [(e.detail, e.category, e.username) for e in events] == [
        ("results=2 kind=name", "demographics", "frontdesk"),
        ("results=2 kind=birth_date", "demographics", "frontdesk"),
    ]


def test_audit_names_each_query_kind(app, desk, registry):
    _, mrn = registry["ana"]
    for query in (mrn, "413 555 0142", "munoz, ana"):
        search(desk, query)
    details = [e.detail for e in audit_events(app, "patient.search")]
    assert details == ["results=1 kind=mrn", "results=1 kind=phone", "results=1 kind=family_given"]
    for detail in details:
        assert mrn not in detail and "555" not in detail and "munoz" not in detail


def test_without_javascript_the_form_shows_a_results_page(desk, registry):
    response = search(desk, "munoz", htmx=False)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" in html and '<h1 class="h5">Patient search</h1>' in html
    assert result_ids(response)[:2] == ids(registry, "ana", "jose")
    assert response.headers["Cache-Control"] == "no-store"
    assert "Vary" in response.headers and "HX-Request" in response.headers["Vary"]


def test_search_is_post_only_and_needs_sign_in(client, desk):
    assert desk.get("/patients/search?q=munoz").status_code == 405
    client.refresh_csrf()
    response = client.post_form("/patients/search", {"q": "munoz"})
    assert response.status_code in (302, 401)


def test_search_box_in_top_bar_posts_with_htmx_debounced(desk):
    html = desk.get("/").get_data(as_text=True)
    form = re.search(r'<form class="patient-search".*?</form>', html, re.S).group(0)
    assert 'method="post"' in form and 'hx-post="/patients/search"' in form
    assert "delay:" in form
    assert 'id="patient-search-input"' in form and 'id="patient-search-results"' in form


def _plans(typed: str) -> list[str]:
    """The query plan of each statement the search for ``typed`` runs."""
    dialect = db.engine.dialect.name
    query = services.classify_query(typed, "US")
    statements = services.search_statements(query, dialect)
    # The near misses' reads of patients, with the keys a lookup could have chosen.
    statements += services._near_miss_statements(query, lambda term: ["smith", "smyth"])
    plans = []
    for statement in statements:
        if dialect == "sqlite":
            compiled = statement.compile(db.engine, compile_kwargs={"literal_binds": True})
            plan = db.session.execute(db.text(f"EXPLAIN QUERY PLAN {compiled}")).all()
            plans.append("\n".join(str(row[-1]) for row in plan))
        else:
            # Bound parameters, not literals: pg_trgm's "%" operator would be escaped twice.
            compiled = statement.compile(db.engine, compile_kwargs={"render_postcompile": True})
            db.session.execute(db.text("SET LOCAL enable_seqscan = off"))
            plan = db.session.connection().exec_driver_sql(f"EXPLAIN {compiled}", compiled.params)
            plans.append("\n".join(row[0] for row in plan))
    return plans


@pytest.mark.parametrize(
    ("typed", "indexes"),
    [
        ("mun", {"ix_patients_name_key", "ix_patients_given_key"}),
        ("munoz, a", {"ix_patients_name_key"}),
        ("rosalind quibleworth", {"ix_patients_name_key", "ix_patients_given_key"}),
        ("quibleworth", {"ix_patient_names_sound", "ix_patients_given_key"}),
        ("1980-02-03", {"ix_patients_birth_date"}),
        ("(413) 555-0142", {"ix_patients_phone_"}),
        ("MRN", {"mrn"}),
    ],
)
def test_every_query_kind_is_served_by_an_index(app, registry, typed, indexes):
    """No statement of any kind of search reads the whole table or a whole index (the range
    form of the prefix, the phone UNION, the near misses' name list by phonetic key and
    trigram, and their patients by key)."""
    from portal.demo.patients import seed_patients

    if typed == "MRN":
        typed = registry["ana"][1]
    with app.app_context():
        # Plans depend on table size: give the planners enough rows and fresh statistics.
        seed_patients(5000, seed=7)
        db.session.execute(db.text("ANALYZE"))
        db.session.commit()
        plans = _plans(typed)
        postgres = db.engine.dialect.name == "postgresql"
        db.session.rollback()
    text = "\n".join(plans)
    for index in indexes:
        assert index in text, text
    if postgres and typed == "quibleworth":
        assert "ix_patient_names_trgm" in text, text
    for plan in plans:
        assert "Seq Scan" not in plan, plan
        # SQLite: "SCAN patients [USING INDEX ...]" reads every row (or every index entry).
        assert not any(line.startswith("SCAN patients") for line in plan.splitlines()), plan


def test_emptied_box_gets_an_empty_answer_so_the_dropdown_closes(app, desk, registry):
    response = search(desk, "   ")
    assert response.status_code == 200
    assert response.get_data(as_text=True).strip() == ""
    assert audit_events(app, "patient.search") == []


def test_twenty_results_are_read_with_one_query(app, desk):
    """Rendering the list must not reload each patient (the audit commit expires rows)."""
    from sqlalchemy import event

    for index in range(20):
        add_patient(app, f"Kid{index:02d}", "Clone", date(2000, 1, 1))
    statements = []

    def count(_conn, _cursor, statement, *_args):
        if "FROM patients" in statement:
            statements.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        assert len(result_ids(search(desk, "clone"))) == 20
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(statements) == 1


def test_overlong_query_gets_a_hint_not_an_error(app, desk, registry):
    for query in ("munoz" * 30, "x" * 1024 * 1024):
        response = search(desk, query)
        assert response.status_code == 200
        assert "too long to search for" in response.get_data(as_text=True)
    assert audit_events(app, "patient.search") == []
