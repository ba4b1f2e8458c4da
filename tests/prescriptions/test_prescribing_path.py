"""The clinic's default prescribing path: the portal's own screens unless an admin chooses the
e-prescribing service's embedded screen; "Prescribe" on the encounter and the chart follows
it (the other path stays reachable). The setting is audited and needs CSRF like the rest of
the clinic's settings."""

from __future__ import annotations

import re

from sqlalchemy import select

from portal.clinic.models import Clinic
from portal.extensions import db
from tests.audit.helpers import events

CLINIC = {
    "name": "Riverside Family Practice",
    "address": "100 Main Street",
    "phone": "(413) 555-0100",
    "time_zone": "America/New_York",
    "date_order": "mdy",
}


def path_of(app) -> str:
    with app.app_context():
        value = db.session.scalar(select(Clinic.prescribing_path))
        db.session.remove()
        return value


def prescribe_control(html: str) -> str:
    """The encounter's "Prescribe" control: a form posting to start a draft, or a link."""
    section = html.split('id="visit-prescribe-heading"', 1)[1].split("</section>", 1)[0]
    return section


def test_the_portal_screens_by_default_then_the_vendors_when_chosen(
    app, chart, make_encounter, signed_in
):
    encounter_id = make_encounter()
    patient_id = chart.patients[0]
    doctor = signed_in("drlee")
    assert path_of(app) == "portal"
    visit = prescribe_control(
        doctor.get(f"/chart/encounters/{encounter_id}").get_data(as_text=True)
    )
    assert f'action="/patients/{patient_id}/prescriptions/new"' in visit or "start" in visit
    assert "eprescribe" not in visit

    admin = signed_in("admin")
    page = admin.get("/admin/clinic").get_data(as_text=True)
    assert '<label class="form-label" for="prescribing_path">Prescribing screen' in page
    wrong = admin.post_form("/admin/clinic", {**CLINIC, "prescribing_path": "fax"})
    assert wrong.status_code == 422 and path_of(app) == "portal"
    saved = admin.post_form("/admin/clinic", {**CLINIC, "prescribing_path": "vendor"})
    assert saved.status_code == 302 and path_of(app) == "vendor"
    assert events(app, "clinic.update")[-1].detail == "changed: prescribing_path"

    visit = prescribe_control(
        doctor.get(f"/chart/encounters/{encounter_id}").get_data(as_text=True)
    )
    assert re.search(rf'href="/patients/{patient_id}/eprescribe">Prescribe</a>', visit)
    summary = doctor.get(f"/chart/patients/{patient_id}").get_data(as_text=True)
    assert re.search(rf'href="/patients/{patient_id}/eprescribe">Prescribe</a>', summary)
    assert "Prescribe (portal screens)" in summary  # the other path, one click away
