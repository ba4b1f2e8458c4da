"""A maintained FHIR client (fhirpy's SyncFHIRClient) against the API served over real
HTTP: it reads, searches, follows the next links page by page, counts and runs
``$everything`` without knowing anything of this server but its base URL and a token."""

from __future__ import annotations

from datetime import date

from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import AuthorizationError, ResourceNotFound

from tests.fhir.api.helpers import add_patients
from tests.fhir.api_support import api_token
from tests.support.audit import audit_events


def test_fhirpy_reads_searches_pages_and_runs_everything(app, live_server):
    ids = add_patients(app, *[(f"Given{n}", "Fhirpy", date(1960, 1, 1 + n)) for n in range(5)])
    add_patients(app, ("Other", "Person", date(1970, 1, 1)))
    client = SyncFHIRClient(
        f"{live_server}/fhir", authorization=f"Bearer {api_token(app, name='fhirpy')}"
    )

    patient = client.reference("Patient", str(ids[0])).to_resource()
    assert patient["name"][0]["family"] == "Fhirpy"

    search = client.resources("Patient").search(family="fhirpy").limit(2)
    assert [p["id"] for p in search.fetch()] == [str(i) for i in ids[:2]]  # one page
    assert [p["id"] for p in search.fetch_all()] == [str(i) for i in ids]  # three pages
    assert client.resources("Patient").search(family="fhirpy").count() == 5
    assert (
        client.resources("Patient").search(family="fhirpy", birthdate="ge1960-01-04").count() == 2
    )

    everything = client.execute(f"Patient/{ids[0]}/$everything", method="get")
    assert everything["resourceType"] == "Bundle"
    assert everything["entry"][0]["resource"]["id"] == str(ids[0])

    try:
        client.reference("Patient", "987654").to_resource()
        raise AssertionError("an unknown patient was found")
    except ResourceNotFound:
        pass
    events = audit_events(app, "fhir.read") + audit_events(app, "fhir.search")
    assert events and {e.username for e in events} == {"api:fhirpy"}
    assert len(audit_events(app, "fhir.everything")) == 1


def test_fhirpy_without_a_valid_token_is_refused(app, live_server):
    client = SyncFHIRClient(f"{live_server}/fhir", authorization="Bearer not-a-token")
    try:
        client.resources("Patient").fetch()
        raise AssertionError("a made-up token was accepted")
    except AuthorizationError as refusal:  # the 401, with its OperationOutcome
        assert '"code":"login"' in str(refusal)
