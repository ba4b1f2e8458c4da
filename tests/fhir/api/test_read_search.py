"""The FHIR API over HTTP: read, search, paging, the parameters, errors as
OperationOutcome, and the audit of every patient read."""

from __future__ import annotations

from datetime import date
from urllib.parse import parse_qs, urlsplit

from portal.extensions import db
from portal.patients.models import Patient
from tests.fhir.api.helpers import add_patients
from tests.fhir.api_support import api_headers
from tests.support.audit import audit_events

FHIR_JSON = "application/fhir+json"


def _outcome(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == FHIR_JSON
    body = response.get_json(force=True)
    assert body["resourceType"] == "OperationOutcome"
    if code:
        assert body["issue"][0]["code"] == code
    return body


def _ids(bundle: dict, mode: str = "match") -> list[str]:
    return [
        entry["resource"]["id"]
        for entry in bundle.get("entry", [])
        if entry["search"]["mode"] == mode
    ]


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def test_read_a_patient(app):
    [ada] = add_patients(app, ("Ada", "Lovelace", date(1815, 12, 10)))
    client = app.test_client()
    response = client.get(f"/fhir/Patient/{ada}", headers=api_headers(app))
    assert response.status_code == 200
    assert response.mimetype == FHIR_JSON
    body = response.get_json(force=True)
    assert body["resourceType"] == "Patient" and body["id"] == str(ada)
    assert body["name"][0] == {"use": "official", "family": "Lovelace", "given": ["Ada"]}
    assert body["birthDate"] == "1815-12-10"
    # A bearer-token API: no session, no cookie, never cached.
    assert "Set-Cookie" not in response.headers
    assert response.headers["Cache-Control"] == "no-store"


def test_a_read_is_audited_once_with_the_clients_name(app):
    [ada] = add_patients(app, ("Ada", "Lovelace", date(1815, 12, 10)))
    headers = api_headers(app, name="Registry sync")
    app.test_client().get(f"/fhir/Patient/{ada}", headers=headers)
    [event] = audit_events(app, "fhir.read")
    assert event.patient_id == ada
    assert event.username == "api:Registry sync"
    assert event.category == "fhir" and event.detail == "types=Patient"
    # The directory is not patient data: reading it is not audited.
    app.test_client().get("/fhir/Organization/1", headers=headers)
    assert len(audit_events(app, "fhir.read")) == 1


def test_errors_are_operation_outcomes(app):
    [ada] = add_patients(app, ("Ada", "Lovelace", date(1815, 12, 10)))
    client = app.test_client()
    headers = api_headers(app)
    # No token, a token nobody issued, a token whose scopes do not cover the type.
    response = client.get(f"/fhir/Patient/{ada}")
    _outcome(response, 401, "login")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    response = client.get(f"/fhir/Patient/{ada}", headers={"Authorization": "Bearer nope"})
    _outcome(response, 401)
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    narrow = api_headers(app, scopes=["system/Practitioner.read"])
    response = client.get(f"/fhir/Patient/{ada}", headers=narrow)
    _outcome(response, 403, "forbidden")
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
    [denied] = audit_events(app, "access.denied")
    assert denied.username == "api:Test client" and denied.outcome == "denied"
    assert denied.object_id == "fhir.read" and denied.detail == "needs scope system/Patient.read"
    assert client.get("/fhir/Practitioner", headers=narrow).status_code == 200
    # Unknown ids, malformed ids, unknown types, unknown paths, methods no route takes.
    _outcome(client.get("/fhir/Patient/987654", headers=headers), 404, "not-found")
    _outcome(client.get("/fhir/Patient/a!b", headers=headers), 400)
    _outcome(client.get("/fhir/Spaceship/1", headers=headers), 404, "not-supported")
    _outcome(client.get("/fhir/Patient/1/2/3", headers=headers), 404)
    _outcome(client.delete(f"/fhir/Patient/{ada}", headers=headers), 405)
    # Nothing was read: nothing audited.
    assert audit_events(app, "fhir.read") == []


def test_json_only_xml_is_refused(app):
    [ada] = add_patients(app, ("Ada", "Lovelace", date(1815, 12, 10)))
    client = app.test_client()
    headers = api_headers(app)
    for accept in ("application/fhir+xml", "application/xml", "text/html"):
        response = client.get(f"/fhir/Patient/{ada}", headers={**headers, "Accept": accept})
        _outcome(response, 406, "not-supported")
    _outcome(client.get(f"/fhir/Patient/{ada}?_format=xml", headers=headers), 406)
    for accept in ("application/json", "*/*", "application/fhir+json; fhirVersion=4.0"):
        response = client.get(f"/fhir/Patient/{ada}", headers={**headers, "Accept": accept})
        assert response.status_code == 200, accept
    # _format wins over Accept, as FHIR says.
    xml_accept = {**headers, "Accept": "application/fhir+xml"}
    assert client.get(f"/fhir/Patient/{ada}?_format=json", headers=xml_accept).status_code == 200


def test_a_staff_session_is_no_key_to_the_api(app, signed_in):
    [ada] = add_patients(app, ("Ada", "Lovelace", date(1815, 12, 10)))
    browser = signed_in("prescriber")
    response = browser.get(f"/fhir/Patient/{ada}")
    _outcome(response, 401)
    assert "Set-Cookie" not in response.headers


def test_search_by_name_family_given_birthdate_gender_identifier_phone(app):
    ids = add_patients(
        app,
        ("Zoë", "Quintero", date(1980, 3, 2)),
        ("Zachary", "Quinn", date(1990, 7, 1)),
        ("Maria", "Quintero-Ruiz", date(1980, 11, 30)),
    )
    with app.app_context():
        db.session.get(Patient, ids[1]).sex_at_birth = "male"
        db.session.get(Patient, ids[1]).phone_mobile = "+14155550123"
        db.session.commit()
        mrn = db.session.get(Patient, ids[0]).mrn
    client = app.test_client()
    headers = api_headers(app)

    def found(query: str) -> set[int]:
        response = client.get(f"/fhir/Patient?{query}", headers=headers)
        assert response.status_code == 200, response.get_data(as_text=True)
        return {int(i) for i in _ids(response.get_json(force=True))}

    zoe, zach, maria = ids
    assert found("family=quint") == {zoe, maria}
    assert found("family=QUINTERO") == {zoe, maria}
    assert found("given=zoe") == {zoe}  # accents folded, as the registry's search does
    assert found("given:exact=Zoe") == set()
    assert found("given:exact=Zoë") == {zoe}
    assert found("name=zach") == {zach}
    assert found("name=maria quint") == {maria}
    assert found("name=zoe,zach") == {zoe, zach}  # a comma is OR
    assert found("family=quint&given=m") == {maria}  # two parameters are AND
    assert found("birthdate=1980") == {zoe, maria}
    assert found("birthdate=1980-03") == {zoe}
    assert found("birthdate=ge1980-03-03") == {zach, maria}
    assert found("birthdate=lt1980-11-30") == {zoe}
    assert found("birthdate=ne1980") == {zach}
    assert found("gender=male") == {zach}
    assert found(f"identifier={mrn}") == {zoe}
    assert found(f"identifier=urn:practice-portal:mrn|{mrn}") == {zoe}
    assert found(f"identifier=http://other.example/mrn|{mrn}") == set()
    assert found("phone=(415) 555-0123") == {zach}
    assert found(f"_id={zoe},{maria}") == {zoe, maria}
    assert found(f"_id={zoe}&family=quinn") == set()


def test_bad_search_values_are_400_naming_the_parameter(app):
    client = app.test_client()
    headers = api_headers(app)
    for query, parameter in (
        ("birthdate=yesterday", "birthdate"),
        ("birthdate=sa1970", "birthdate"),
        ("gender=robot", "gender"),
        ("family:contains=x", "family"),
        ("_id:missing=true", "_id"),
        ("_id:not=1&family=x", "_id"),
        ("phone=not-a-phone", "phone"),
        ("_count=-1", "_count"),
        ("_count=ten", "_count"),
        ("_after=xyz", "_after"),
    ):
        body = _outcome(client.get(f"/fhir/Patient?{query}", headers=headers), 400)
        assert body["issue"][0]["expression"] == [parameter], query


def test_paging_follows_next_links_and_is_stable_under_inserts(app):
    ids = add_patients(app, *[(f"Given{n}", "Pager", date(1970, 1, 1 + n)) for n in range(7)])
    client = app.test_client()
    headers = api_headers(app)
    response = client.get("/fhir/Patient?family=pager&_count=3", headers=headers)
    bundle = response.get_json(force=True)
    assert "total" not in bundle  # more than a page: not counted
    seen = _ids(bundle)
    assert len(seen) == 3
    # Someone registers a "Pager" between pages: the pages already read do not shift.
    [late] = add_patients(app, ("Late", "Pager", date(1999, 1, 1)))
    pages = 1
    while True:
        links = {link["relation"]: link["url"] for link in bundle["link"]}
        assert "family=pager" in links["self"]
        if "next" not in links:
            break
        query = parse_qs(urlsplit(links["next"]).query)
        assert query["family"] == ["pager"] and query["_count"] == ["3"]
        bundle = client.get(_path(links["next"]), headers=headers).get_json(force=True)
        seen += _ids(bundle)
        pages += 1
    assert pages == 3
    assert [int(i) for i in seen] == [*ids, late]  # each once, in order, the new one last
    # A result that fits one page says how many.
    small = client.get("/fhir/Patient?family=pager&_count=500", headers=headers)
    assert small.get_json(force=True)["total"] == 8
    # _count above the maximum is served at the maximum, not refused.
    assert client.get("/fhir/Patient?_count=100000", headers=headers).status_code == 200


def test_a_name_search_pages_in_name_order_and_inserts_never_shift_a_page(app):
    """Searches by family or given name are read in the name index's order (family, given,
    birth date, id); the page key is still an id, and a patient registered between pages
    either sorts after the place reached (seen once) or before it (on no page): never a
    repeated or skipped row."""
    people = [("Cleo", "Order"), ("Abe", "Order"), ("Bea", "Orderly"), ("Abe", "Orde")]
    ids = add_patients(app, *[(given, family, date(1980, 1, 1)) for given, family in people])
    cleo, abe, bea, abe_orde = ids
    client, headers = app.test_client(), api_headers(app)

    def walk(query: str, between=None) -> list[int]:
        bundle = client.get(f"/fhir/Patient?{query}&_count=2", headers=headers).get_json(force=True)
        seen = [int(i) for i in _ids(bundle)]
        if between:
            between()
        while True:
            links = {link["relation"]: link["url"] for link in bundle["link"]}
            if "next" not in links:
                return seen
            assert set(parse_qs(urlsplit(links["next"]).query)["_after"][0]) <= set("0123456789")
            bundle = client.get(_path(links["next"]), headers=headers).get_json(force=True)
            seen += [int(i) for i in _ids(bundle)]

    assert walk("family=orde") == [abe_orde, abe, cleo, bea]  # orde < order < orderly
    late = []

    def register():
        late.extend(add_patients(app, ("Aaron", "Orde", date(1990, 1, 1))))  # before the place
        late.extend(add_patients(app, ("Zed", "Order", date(1990, 1, 1))))  # after it

    seen = walk("family=orde", between=register)
    assert seen == [abe_orde, abe, cleo, late[1], bea]
    assert walk("given=abe") == [abe_orde, abe]  # given, then family
    bad = client.get("/fhir/Patient?family=orde&_after=999999", headers=headers)
    _outcome(bad, 400)


def test_summary_count_gives_the_total_only(app):
    add_patients(app, *[(f"G{n}", "Counted", date(1970, 1, 1)) for n in range(4)])
    response = app.test_client().get(
        "/fhir/Patient?family=counted&_summary=count", headers=api_headers(app)
    )
    bundle = response.get_json(force=True)
    assert bundle["total"] == 4 and "entry" not in bundle
    # "_count=0" asks the same (FHIR's reading of it; fhirpy's count() sends it).
    response = app.test_client().get(
        "/fhir/Patient?family=counted&_count=0", headers=api_headers(app)
    )
    assert response.get_json(force=True)["total"] == 4
    # Counting patient data is audited (without a patient: nobody's record was sent).
    events = audit_events(app, "fhir.count")
    assert len(events) == 2
    assert {(e.patient_id, e.object_id) for e in events} == {(None, "Patient")}
    assert audit_events(app, "fhir.search") == []


def test_unknown_parameters_warn_or_under_strict_handling_refuse(app):
    add_patients(app, ("Ada", "Lovelace", date(1815, 12, 10)))
    client = app.test_client()
    headers = api_headers(app)
    response = client.get("/fhir/Patient?family=love&shoe-size=9", headers=headers)
    bundle = response.get_json(force=True)
    assert response.status_code == 200
    assert len(_ids(bundle)) == 1
    [outcome] = [e for e in bundle["entry"] if e["search"]["mode"] == "outcome"]
    issue = outcome["resource"]["issue"][0]
    assert issue["severity"] == "warning" and issue["expression"] == ["shoe-size"]
    strict = {**headers, "Prefer": "handling=strict"}
    body = _outcome(client.get("/fhir/Patient?family=love&shoe-size=9", headers=strict), 400)
    assert body["issue"][0]["expression"] == ["shoe-size"]
    assert client.get("/fhir/Patient?family=love", headers=strict).status_code == 200
    # An _include the type does not have is an unknown parameter too.
    body = _outcome(client.get("/fhir/Patient?_include=Patient:link", headers=strict), 400)


def test_post_search_keeps_names_out_of_the_url(app):
    [ada] = add_patients(app, ("Ada", "Lovelace", date(1815, 12, 10)))
    add_patients(app, ("Bea", "Other", date(1990, 1, 1)))
    client = app.test_client()
    headers = api_headers(app)
    # Form-encoded, no CSRF token: a bearer-token API has no cookie to forge.
    response = client.post("/fhir/Patient/_search", data={"family": "love"}, headers=headers)
    assert response.status_code == 200
    assert _ids(response.get_json(force=True)) == [str(ada)]
    assert "Set-Cookie" not in response.headers
    response = client.post("/fhir/Patient/_search", json={"family": "love"}, headers=headers)
    _outcome(response, 415)


def test_post_search_pages_by_posting_the_next_key(app):
    """A client that keeps names out of URLs may also post the same form again with the
    next link's ``_after``."""
    ids = add_patients(app, *[(f"G{n}", "Poster", date(1970, 1, 1)) for n in range(3)])
    client = app.test_client()
    headers = api_headers(app)
    form = {"family": "poster", "_count": "2"}
    first = client.post("/fhir/Patient/_search", data=form, headers=headers).get_json(force=True)
    [next_url] = [link["url"] for link in first["link"] if link["relation"] == "next"]
    after = parse_qs(urlsplit(next_url).query)["_after"][0]
    second = client.post(
        "/fhir/Patient/_search", data={**form, "_after": after}, headers=headers
    ).get_json(force=True)
    assert [int(i) for i in _ids(first) + _ids(second)] == ids


def test_a_posted_search_links_pages_without_the_criteria_in_the_url(app):
    """The links of a POSTed search carry its criteria sealed (encrypted, for this client,
    for an hour): following them pages on, and no name is ever in a URL."""
    ids = add_patients(app, *[(f"G{n}", "Sealwright", date(1970, 1, 1)) for n in range(3)])
    client = app.test_client()
    headers = api_headers(app)
    form = {"family": "sealwright", "_count": "2"}
    first = client.post("/fhir/Patient/_search", data=form, headers=headers).get_json(force=True)
    links = {link["relation"]: link["url"] for link in first["link"]}
    assert all("sealwright" not in url.lower() for url in links.values())
    second = client.get(_path(links["next"]), headers=headers)
    assert second.status_code == 200
    second = second.get_json(force=True)
    assert [int(i) for i in _ids(first) + _ids(second)] == ids
    assert all("sealwright" not in link["url"].lower() for link in second["link"])
    # Another client cannot use this client's sealed search; a forged one is refused.
    other = api_headers(app, name="Other client")
    _outcome(client.get(_path(links["next"]), headers=other), 400, "value")
    _outcome(client.get("/fhir/Patient?_query=forged", headers=headers), 400, "value")


def test_search_audits_one_event_per_patient(app):
    ids = add_patients(app, *[(f"G{n}", "Audited", date(1970, 1, 1)) for n in range(3)])
    app.test_client().get("/fhir/Patient?family=audited", headers=api_headers(app))
    events = audit_events(app, "fhir.search")
    assert sorted(e.patient_id for e in events) == ids
    assert {e.username for e in events} == {"api:Test client"}
    # A search that finds nobody shows nobody's data: nothing to record.
    app.test_client().get("/fhir/Patient?family=nobody", headers=api_headers(app))
    assert len(audit_events(app, "fhir.search")) == 3


def test_directory_types_and_location_include(app):
    client = app.test_client()
    headers = api_headers(app)
    bundle = client.get("/fhir/Practitioner", headers=headers).get_json(force=True)
    names = {e["resource"]["name"][0]["text"] for e in bundle["entry"]}
    assert names == {"Jordan Lee", "Sam Okafor"}  # the clinical staff, not front desk/admin
    bundle = client.get("/fhir/Practitioner?name=jor", headers=headers).get_json(force=True)
    assert [e["resource"]["name"][0]["text"] for e in bundle["entry"]] == ["Jordan Lee"]
    bundle = client.get("/fhir/Location?_include=Location:organization", headers=headers).get_json(
        force=True
    )
    locations = _ids(bundle)
    assert len(locations) == 2
    [organization] = _ids(bundle, "include")
    assert client.get(f"/fhir/Organization/{organization}", headers=headers).status_code == 200
