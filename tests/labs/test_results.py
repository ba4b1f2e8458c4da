"""The results inbox and review (issue 12, sections 4-5), over real HTTP on a real database,
with results filed from real ORU^R01 messages: the inbox's order, whose results are in it
(and the shared pool), signing off one or several normal ones, orders becoming reviewed,
another prescriber's results, previous values and corrections, the chart's flag, recent
results and trends, overdue orders, inert text, and the audit of every view."""

from __future__ import annotations

import re
from datetime import date

from sqlalchemy import select
from werkzeug.exceptions import NotFound

from portal.extensions import db
from portal.labs.models import LabResult
from tests.labs.helpers import add_order, add_patient
from tests.labs.results_helpers import (
    add_prescriber,
    disable,
    file_oru,
    inbox_ids,
    obx,
    order_status,
    results_by_name,
    signed_days_ago,
)
from tests.support.audit import audit_events

LIPIDS = (("24331-1", "Lipid panel"),)


def _lipids(mrn, placer, *, chol=("180", "N"), hdl=("55", "N"), ldl=("90", "N"), status="F"):
    return [
        obx(1, "2093-3", "Cholesterol", chol[0], ref="<200", flag=chol[1], status=status),
        obx(2, "2085-9", "HDL Cholesterol", hdl[0], ref=">39", flag=hdl[1], status=status),
        obx(3, "13457-7", "LDL Cholesterol", ldl[0], ref="0-99", flag=ldl[1], status=status),
    ]


def test_the_inbox_lists_critical_then_abnormal_then_normal_oldest_first(app, signed_in, zone):
    with app.app_context():
        patient_id, mrn = add_patient()
        add_order(patient_id, "P-1", tests=LIPIDS)
        add_order(patient_id, "P-2", tests=(("2345-7", "Glucose"),))
        file_oru(
            zone,
            mrn=mrn,
            placer="P-1",
            filler="F-1",
            observations=_lipids(mrn, "P-1", chol=("240", "H"), ldl=("160", "H")),
        )
        file_oru(
            zone,
            mrn=mrn,
            placer="P-2",
            filler="F-2",
            obr_code="2345-7^Glucose^LN",
            observations=[obx(1, "2345-7", "Glucose", "38", ref="70-99", flag="LL")],
        )
        named = results_by_name()
    drlee = signed_in("drlee")
    page = drlee.get("/labs/inbox")
    assert page.status_code == 200
    assert inbox_ids(page) == [
        named["Glucose"].id,  # critical, though newest
        named["Cholesterol"].id,  # abnormal, oldest first
        named["LDL Cholesterol"].id,
        named["HDL Cholesterol"].id,  # normal
    ]
    text = page.get_data(as_text=True)
    assert "1 critical, 2 abnormal, 1 normal" in text
    # Only normal results can be chosen for signing off together.
    assert f'value="{named["HDL Cholesterol"].id}"' in text
    assert f'value="{named["Glucose"].id}"' not in text
    # The page names the patient: each patient shown is audited.
    events = audit_events(app, "lab.inbox.view")
    assert [(e.patient_id, e.detail) for e in events] == [(patient_id, "4 results")]
    count = drlee.get("/labs/inbox/count").get_data(as_text=True)
    assert "4 waiting, 1 critical" in count


def test_another_prescribers_results_stay_out_of_my_inbox(app, signed_in, zone, password_hash):
    """Rules: another (present) prescriber's results are theirs to review; I can open them
    from the chart (audited) but not sign them off. Once their account is disabled (they
    left), their orders' results are in the shared pool, which any prescriber signs."""
    with app.app_context():
        patel = add_prescriber("drpatel", "Anita Patel", password_hash)
        patient_id, mrn = add_patient()
        add_order(patient_id, "P-9", tests=LIPIDS, provider_id=patel)
        file_oru(zone, mrn=mrn, placer="P-9", observations=_lipids(mrn, "P-9"))
        hdl = results_by_name()["HDL Cholesterol"]
    drlee = signed_in("drlee")
    assert inbox_ids(drlee.get("/labs/inbox")) == []
    assert "0 waiting" in drlee.get("/labs/inbox/count").get_data(as_text=True)
    assert len(inbox_ids(signed_in("drpatel").get("/labs/inbox"))) == 3
    opened = drlee.get(f"/labs/results/{hdl.id}")
    assert opened.status_code == 200
    assert "Sign off result" not in opened.get_data(as_text=True)
    assert [e.object_id for e in audit_events(app, "lab.result.view")] == [str(hdl.id)]
    refused = drlee.post_form(f"/labs/results/{hdl.id}/sign-off", {"comment": ""})
    assert refused.status_code == 403
    with app.app_context():
        assert results_by_name()["HDL Cholesterol"].reviewed_at is None
        disable(patel)
    page = drlee.get("/labs/inbox")
    assert len(inbox_ids(page)) == 3 and "shared pool" in page.get_data(as_text=True)
    assert drlee.post_form(f"/labs/results/{hdl.id}/sign-off", {}).status_code == 303


def test_results_without_an_order_are_in_the_shared_pool(app, signed_in, zone):
    with app.app_context():
        _patient_id, mrn = add_patient()
        file_oru(zone, mrn=mrn, placer="", observations=_lipids(mrn, ""))
    page = signed_in("drlee").get("/labs/inbox")
    assert len(inbox_ids(page)) == 3
    assert "no order" in page.get_data(as_text=True)


def test_signing_off_one_with_a_comment_and_the_normals_together_reviews_the_order(
    app, signed_in, zone
):
    with app.app_context():
        patient_id, mrn = add_patient()
        order_id = add_order(patient_id, "P-3", tests=LIPIDS)
        file_oru(zone, mrn=mrn, placer="P-3", observations=_lipids(mrn, "P-3", chol=("240", "H")))
        named = results_by_name()
        assert order_status(order_id) == "resulted"
    drlee = signed_in("drlee")
    signed = drlee.post_form(
        f"/labs/results/{named['Cholesterol'].id}/sign-off",
        {"comment": "Diet advice given; repeat in 3 months."},
    )
    assert signed.status_code == 303 and signed.location.endswith("/labs/inbox")
    with app.app_context():
        assert order_status(order_id) == "resulted"  # two still wait
    bulk = drlee.post_form(
        "/labs/inbox/sign-off",
        {"result_ids": [named["HDL Cholesterol"].id, named["LDL Cholesterol"].id]},
    )
    assert bulk.status_code == 303
    assert "Signed off 2 results." in drlee.get("/labs/inbox").get_data(as_text=True)
    with app.app_context():
        after = results_by_name()
        assert all(row.reviewed_at is not None for row in after.values())
        assert after["Cholesterol"].review_comment == "Diet advice given; repeat in 3 months."
        assert after["HDL Cholesterol"].review_comment is None
        assert order_status(order_id) == "reviewed"
    events = audit_events(app, "lab.result.reviewed")
    assert sorted((e.object_id, e.detail) for e in events) == sorted(
        [
            (str(named["Cholesterol"].id), "single; with comment"),
            (str(named["HDL Cholesterol"].id), "bulk"),
            (str(named["LDL Cholesterol"].id), "bulk"),
        ]
    )
    assert {e.patient_id for e in events} == {patient_id}
    assert [e.object_id for e in audit_events(app, "lab.order.reviewed")] == [str(order_id)]
    # A second click on a result signed already is told so; nothing changes.
    again = drlee.post_form(f"/labs/results/{named['Cholesterol'].id}/sign-off", {})
    assert again.status_code == 409
    assert len(audit_events(app, "lab.result.reviewed")) == 3
    result_page = drlee.get(f"/labs/results/{named['Cholesterol'].id}").get_data(as_text=True)
    assert "Signed off by Jordan Lee" in result_page
    assert "Diet advice given; repeat in 3 months." in result_page


def test_signing_off_together_refuses_an_abnormal_result(app, signed_in, zone):
    with app.app_context():
        patient_id, mrn = add_patient()
        add_order(patient_id, "P-4", tests=LIPIDS)
        file_oru(zone, mrn=mrn, placer="P-4", observations=_lipids(mrn, "P-4", chol=("240", "H")))
        named = results_by_name()
    drlee = signed_in("drlee")
    refused = drlee.post_form(
        "/labs/inbox/sign-off",
        {"result_ids": [named["HDL Cholesterol"].id, named["Cholesterol"].id]},
    )
    assert refused.status_code == 422
    assert "Only normal results are signed off together" in refused.get_data(as_text=True)
    with app.app_context():
        assert all(row.reviewed_at is None for row in results_by_name().values())
    assert audit_events(app, "lab.result.reviewed") == []


def test_a_result_opens_with_previous_values_and_its_corrections(app, signed_in, zone):
    with app.app_context():
        patient_id, mrn = add_patient()
        add_order(patient_id, "P-5", tests=(("4548-4", "Hemoglobin A1c"),))
        add_order(patient_id, "P-6", tests=(("4548-4", "Hemoglobin A1c"),))
        a1c = "4548-4^Hemoglobin A1c^LN"
        file_oru(
            zone,
            mrn=mrn,
            placer="P-5",
            filler="F-5",
            obr_code=a1c,
            observations=[
                obx(1, "4548-4", "Hemoglobin A1c", "6.1", "%", "4.0-5.6", "H", when="20230601")
            ],
        )
        file_oru(
            zone,
            mrn=mrn,
            placer="P-6",
            filler="F-6",
            obr_code=a1c,
            observations=[
                obx(1, "4548-4", "Hemoglobin A1c", "9.9", "%", "4.0-5.6", "H", when="20240601")
            ],
        )
        file_oru(  # the lab corrects the second
            zone,
            mrn=mrn,
            placer="P-6",
            filler="F-6",
            obr_code=a1c,
            observations=[
                obx(
                    1,
                    "4548-4",
                    "Hemoglobin A1c",
                    "7.4",
                    "%",
                    "4.0-5.6",
                    "H",
                    status="C",
                    when="20240601",
                )
            ],
        )
        rows = db.session.scalars(select(LabResult).order_by(LabResult.id)).all()
        db.session.expunge_all()
        db.session.rollback()
        first, replaced, corrected = rows
        assert corrected.supersedes_id == replaced.id
    drlee = signed_in("drlee")
    text = drlee.get(f"/labs/results/{corrected.id}").get_data(as_text=True)
    assert "7.4 %" in text and "corrected" in text
    assert "Earlier versions (replaced)" in text and "<s>9.9 %</s>" in text
    previous = text.split("Previous values", 1)[1]
    assert "6.1 %" in previous and "9.9" not in previous.split("</table>", 1)[0]
    assert "Sign off result" in text
    old = drlee.get(f"/labs/results/{replaced.id}").get_data(as_text=True)
    assert "A newer result replaced this one" in old and "Sign off result" not in old
    # The inbox holds the current one only; the replaced one cannot be signed off.
    assert sorted(inbox_ids(drlee.get("/labs/inbox"))) == [first.id, corrected.id]
    assert drlee.post_form(f"/labs/results/{replaced.id}/sign-off", {}).status_code == 409


def test_the_chart_flags_critical_unreviewed_results_until_signed_off(app, signed_in, zone):
    with app.app_context():
        patient_id, mrn = add_patient()
        add_order(patient_id, "P-7", tests=(("2823-3", "Potassium"),))
        file_oru(
            zone,
            mrn=mrn,
            placer="P-7",
            obr_code="2823-3^Potassium^LN",
            observations=[obx(1, "2823-3", "Potassium", "6.9", "mmol/L", "3.5-5.1", "HH")],
        )
        potassium = results_by_name()["Potassium"]
    nurse = signed_in("nurse")
    summary = nurse.get(f"/chart/patients/{patient_id}").get_data(as_text=True)
    assert "Critical results unreviewed: 1" in summary
    assert "Recent results" in summary and "6.9 mmol/L" in summary
    # Front desk sees the banner without the chart: no lab flag.
    front = signed_in("frontdesk").get(f"/patients/{patient_id}").get_data(as_text=True)
    assert "Critical results unreviewed" not in front
    drlee = signed_in("drlee")
    assert drlee.post_form(f"/labs/results/{potassium.id}/sign-off", {}).status_code == 303
    summary = nurse.get(f"/chart/patients/{patient_id}").get_data(as_text=True)
    assert "Critical results unreviewed" not in summary


def test_text_results_and_lab_notes_are_shown_as_text(app, signed_in, zone):
    with app.app_context():
        patient_id, mrn = add_patient()
        file_oru(
            zone,
            mrn=mrn,
            observations=[
                "OBX|1|ST|5778-6^Color of Urine^LN||<script>alert(1)</script>||||||F",
                "NTE|1|L|<img src=x onerror=alert(2)> Specimen hemolysed.",
            ],
        )
        result = results_by_name()["Color of Urine"]
    drlee = signed_in("drlee")
    for path in (
        f"/labs/results/{result.id}",
        "/labs/inbox",
        f"/labs/patients/{patient_id}/results",
        f"/chart/patients/{patient_id}",
    ):
        text = drlee.get(path).get_data(as_text=True)
        assert "<script>alert(1)" not in text and "<img src=x" not in text, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text, path
    assert "&lt;img src=x onerror=alert(2)&gt; Specimen hemolysed." in drlee.get(
        f"/labs/results/{result.id}"
    ).get_data(as_text=True)


def test_the_patients_results_page_and_an_analytes_trend(app, signed_in, zone):
    with app.app_context():
        patient_id, mrn = add_patient()
        for index, (value, when) in enumerate((("5.4", "20220101"), ("6.0", "20230101"))):
            file_oru(
                zone,
                mrn=mrn,
                filler=f"F-T{index}",
                obr_code="4548-4^Hemoglobin A1c^LN",
                observations=[
                    obx(1, "4548-4", "Hemoglobin A1c", value, "%", "4.0-5.6", "N", when=when)
                ],
            )
    nurse = signed_in("nurse")
    page = nurse.get(f"/labs/patients/{patient_id}/results")
    assert page.status_code == 200
    assert "Hemoglobin A1c" in page.get_data(as_text=True)
    analyte = nurse.get(f"/labs/patients/{patient_id}/results/analyte?code=4548-4")
    text = analyte.get_data(as_text=True)
    assert analyte.status_code == 200 and "Trend of Hemoglobin A1c, all results: 2 values" in text
    image = re.search(r'src="([^"]*/results/trend\.svg[^"]*)"', text).group(1)
    image = image.replace("&amp;", "&")
    events_before = len(audit_events(app))
    covered = nurse.get(image)
    assert covered.status_code == 200 and covered.mimetype == "image/svg+xml"
    assert b"<script" not in covered.data and b"Hemoglobin A1c" in covered.data
    assert len(audit_events(app)) == events_before  # covered by the page's event
    bare = nurse.get(f"/labs/patients/{patient_id}/results/trend.svg?code=4548-4")
    assert bare.status_code == 200
    assert [e.patient_id for e in audit_events(app, "lab.trend.view")] == [patient_id]
    views = audit_events(app, "lab.results.view")
    assert [(e.patient_id, e.detail) for e in views] == [
        (patient_id, "results page"),
        (patient_id, "analyte 4548-4"),
    ]
    assert nurse.get(f"/labs/patients/{patient_id}/results/analyte?code=9999-9").status_code == 404
    assert nurse.get("/labs/patients/999999/results").status_code == 404


def test_overdue_orders_have_their_own_list(app, signed_in, zone):
    with app.app_context():
        patient_id, _mrn = add_patient()
        late = add_order(patient_id, "P-LATE", tests=(("4548-4", "Hemoglobin A1c"),))
        fresh = add_order(patient_id, "P-FRESH", tests=(("4548-4", "Hemoglobin A1c"),))
        signed_days_ago(late, 10)
        signed_days_ago(fresh, 0)
    overdue = signed_in("drlee").get("/labs/inbox").get_data(as_text=True)
    overdue = overdue.split("Overdue orders", 1)[1]
    assert "P-LATE" in overdue and "P-FRESH" not in overdue
    assert [(e.patient_id, e.detail) for e in audit_events(app, "lab.inbox.view")] == [
        (patient_id, "overdue order")
    ]


def test_results_not_attached_to_a_patient_are_not_reachable_as_results(app, signed_in, zone):
    with app.app_context():
        add_patient(mrn="MRN-1")
        file_oru(zone, mrn="NOBODY", observations=_lipids("NOBODY", ""))
        queued = db.session.scalars(select(LabResult.id)).first()
        db.session.rollback()
    drlee = signed_in("drlee")
    assert drlee.get(f"/labs/results/{queued}").status_code == 404
    assert drlee.post_form(f"/labs/results/{queued}/sign-off", {}).status_code == 404
    assert inbox_ids(drlee.get("/labs/inbox")) == []


def test_the_unmatched_queue_compares_and_attaches_audited(app, signed_in, zone):
    with app.app_context():
        patient_id, mrn = add_patient(birth_date=date(1980, 1, 2))
        other_id, other_mrn = add_patient("Ann", "Other", date(1990, 5, 5))
        # The MRN is the patient's but the date of birth differs: never attached by itself.
        file_oru(zone, mrn=mrn, birth_date="19800201", observations=_lipids(mrn, ""))
    nurse = signed_in("nurse")
    queue = nurse.get("/labs/unmatched")
    assert queue.status_code == 200
    # A nurse has no results inbox: the top bar leads to the queue.
    assert 'href="/labs/unmatched"' in nurse.get("/").get_data(as_text=True)
    item_path = queue.get_data(as_text=True).split('href="/labs/unmatched/', 1)[1].split('"')[0]
    unmatched_id = int(item_path)
    item = nurse.get(f"/labs/unmatched/{unmatched_id}").get_data(as_text=True)
    assert "The message says" in item and "1 Feb 1980" in item.replace("01 Feb", "1 Feb")
    assert "Attach to Doe, Jane" in item
    assert [e.object_id for e in audit_events(app, "lab.unmatched.view")] == [str(unmatched_id)]
    assert [e.patient_id for e in audit_events(app, "lab.unmatched.candidate_view")] == [patient_id]
    # Another patient's MRN typed in: they are put beside the message (posted, not in a URL).
    compared = nurse.post_form(f"/labs/unmatched/{unmatched_id}/lookup", {"mrn": other_mrn})
    assert compared.status_code == 200 and "Attach to Other, Ann" in compared.get_data(as_text=True)
    unknown = nurse.post_form(f"/labs/unmatched/{unmatched_id}/lookup", {"mrn": "NO-SUCH"})
    assert unknown.status_code == 422 and "No patient has this MRN." in unknown.get_data(
        as_text=True
    )
    attached = nurse.post_form(f"/labs/unmatched/{unmatched_id}/attach", {"patient_id": patient_id})
    assert attached.status_code == 303
    assert attached.location.endswith(f"/labs/patients/{patient_id}/results")
    events = audit_events(app, "lab.unmatched_attached")
    assert [(e.patient_id, e.object_id) for e in events] == [(patient_id, str(unmatched_id))]
    with app.app_context():
        assert {row.patient_id for row in results_by_name().values()} == {patient_id}
    # Attached results reach the prescribers' shared pool (no order).
    assert len(inbox_ids(signed_in("drlee").get("/labs/inbox"))) == 3
    again = nurse.post_form(f"/labs/unmatched/{unmatched_id}/attach", {"patient_id": other_id})
    assert again.status_code == 303 and again.location.endswith("/labs/unmatched")
    assert "attached already" in nurse.get("/labs/unmatched").get_data(as_text=True)
    assert len(audit_events(app, "lab.unmatched_attached")) == 1


def test_results_attached_to_their_order_reach_the_orderers_inbox(
    app, signed_in, zone, password_hash
):
    """Attaching from the queue links the order named in the message, and with it the
    reviewer: the orderer's inbox, not the pool."""
    with app.app_context():
        patel = add_prescriber("drpatel", "Anita Patel", password_hash)
        patient_id, mrn = add_patient(birth_date=date(1980, 1, 2))
        add_order(patient_id, "P-Q", tests=LIPIDS, provider_id=patel)
        file_oru(zone, mrn=mrn, placer="P-Q", birth_date="19800201", observations=_lipids(mrn, ""))
        unmatched_id = db.session.scalar(select(LabResult.unmatched_id))
        db.session.rollback()
    nurse = signed_in("nurse")
    attached = nurse.post_form(f"/labs/unmatched/{unmatched_id}/attach", {"patient_id": patient_id})
    assert attached.status_code == 303
    with app.app_context():
        assert {row.reviewer_id for row in results_by_name().values()} == {patel}
    assert inbox_ids(signed_in("drlee").get("/labs/inbox")) == []
    assert len(inbox_ids(signed_in("drpatel").get("/labs/inbox"))) == 3


def test_the_mrn_lookup_shows_only_a_patient_the_user_may_see(app, signed_in, zone, monkeypatch):
    """The unmatched queue's MRN lookup goes through the patients domain's visibility check:
    a record hidden from the user answers exactly as an unknown MRN (and nothing of it is
    shown or audited as viewed)."""
    from portal.labs.results import services
    from portal.patients import services as patients

    with app.app_context():
        _patient_id, mrn = add_patient(birth_date=date(1980, 1, 2))
        hidden_id, hidden_mrn = add_patient("Hana", "Hidden", date(1991, 3, 4))
        file_oru(zone, mrn=mrn, birth_date="19800201", observations=_lipids(mrn, ""))
    nurse = signed_in("nurse")
    queue = nurse.get("/labs/unmatched").get_data(as_text=True)
    unmatched_id = int(queue.split('href="/labs/unmatched/', 1)[1].split('"')[0])
    seen = []

    def visible_except_hidden(actor, wanted):
        seen.append(wanted)
        if wanted == hidden_id:
            raise NotFound()  # as a record the user may not see will answer
        return patients.get_patient_for(actor, wanted)

    monkeypatch.setattr(services, "get_patient_for", visible_except_hidden)
    looked_up = nurse.post_form(f"/labs/unmatched/{unmatched_id}/lookup", {"mrn": hidden_mrn})
    page = looked_up.get_data(as_text=True)
    assert looked_up.status_code == 422 and "No patient has this MRN." in page
    assert "Hidden" not in page and hidden_id in seen
    viewed = [e.patient_id for e in audit_events(app, "lab.unmatched.candidate_view")]
    assert hidden_id not in viewed
