"""Results pages (issue 12, sections 4-5): thin views over portal.labs.results.services.

The prescribers' inbox and its count in the top bar, one result, signing off (one, or several
normal ones), the patient's results and an analyte's trend, the unmatched queue; and the two
hooks the chart's pages ask for (the banner's critical flag, the summary's recent results)."""

from __future__ import annotations

from flask import Response, abort, flash, redirect, request, url_for

from portal.auth.permissions import require
from portal.charting.vitals import charts
from portal.charting.vitals.views import IMAGE_TICKET_ARG
from portal.ids import parse_id
from portal.labs import bp
from portal.labs.results import services
from portal.labs.results.forms import AttachForm, BulkSignOffForm, LookupForm, SignOffForm
from portal.transaction import Refused
from portal.web import attach_error, current_actor, is_htmx_request, render


@bp.app_context_processor
def lab_chart_hooks() -> dict:
    """What the chart's pages ask of labs (patients and charting import no labs): the
    banner's count of critical unreviewed results, the summary's recent results, and the
    words for flags and statuses."""
    return {
        "lab_critical_waiting": services.critical_waiting,
        "lab_recent_results": services.recent_results,
        "lab_flag_labels": services.FLAG_LABELS,
        "lab_status_labels": services.STATUS_LABELS,
        "lab_severity_of": services.severity_of,
    }


def _inbox_page(form=None, status: int = 200, after: int | None = None):
    page = services.inbox(current_actor(), after=after)
    return render(
        "labs/results/inbox.html", inbox=page, form=form or BulkSignOffForm(), status=status
    )


def _after_arg() -> int | None:
    """``?after=``: the result the page starts after (a result id, the keyset's cursor)."""
    raw = request.args.get("after")
    if raw is None:
        return None
    after = parse_id(raw)
    if after is None:
        abort(404)
    return after


@bp.get("/inbox")
@require("labs.review")
def inbox():
    """The prescriber's results waiting for review (critical, abnormal, normal; oldest
    first), the shared pool's beside them, and the overdue orders; a page at a time.
    ``?after=`` asked by htmx ("Show more results") answers the next rows alone, to be
    appended to those shown; asked as a page (no script), the page of them."""
    after = _after_arg()
    if after is not None and is_htmx_request():
        rows = services.more_results(current_actor(), after)
        return render(
            "labs/results/inbox.html",
            "labs/results/_inbox_rows.html",
            inbox=rows,
            focus_first=True,
        )
    return _inbox_page(after=after)


@bp.get("/inbox/count")
@require("labs.review")
def inbox_count():
    """The top bar's count of results waiting (an htmx fragment)."""
    return render(
        "labs/results/_inbox_count.html",
        "labs/results/_inbox_count.html",
        counts=services.waiting_counts(current_actor()),
    )


@bp.post("/inbox/sign-off")
@require("labs.review")
def sign_off_normals():
    """Sign off the chosen normal results together."""
    form = BulkSignOffForm()
    if not form.validate_on_submit():
        return _inbox_page(form, 422)
    try:
        outcome = services.sign_off(current_actor(), form.result_ids.data or [], bulk=True)
    except Refused as refused:
        if refused.status == 403:
            abort(403)
        attach_error(form, refused)
        return _inbox_page(form, refused.status)
    message = f"Signed off {len(outcome.signed)} result{'s' if len(outcome.signed) != 1 else ''}."
    if outcome.already:
        message += f" {len(outcome.already)} had been signed off by someone else already."
    flash(message, "success")
    return redirect(url_for("labs.inbox"), 303)


def _result_page(result_id: int, form=None, status: int = 200):
    page = services.open_result(current_actor(), result_id)
    return render(
        "labs/results/result.html",
        view=page,
        patient=page.patient,
        form=form or SignOffForm(),
        status=status,
    )


@bp.get("/results/<int:result_id>")
@require("chart.read")
def result(result_id: int):
    """One result under the patient's banner: value, range, flag, status, notes, the lab,
    its corrections, the previous values of the analyte; the sign-off form when it is the
    viewer's to sign."""
    return _result_page(result_id)


@bp.post("/results/<int:result_id>/sign-off")
@require("labs.review")
def sign_off_result(result_id: int):
    """Sign off one result, with an optional comment; back to the inbox."""
    form = SignOffForm()
    if not form.validate_on_submit():
        return _result_page(result_id, form, 422)
    try:
        services.sign_off(current_actor(), [result_id], form.comment.data)
    except Refused as refused:
        if refused.status == 403:
            abort(403)
        attach_error(form, refused)
        return _result_page(result_id, form, refused.status)
    flash("Result signed off.", "success")
    return redirect(url_for("labs.inbox"), 303)


@bp.get("/patients/<int:patient_id>/results")
@require("chart.read")
def patient_results(patient_id: int):
    """The patient's results: the latest, and each analyte with a link to its trend."""
    page = services.patient_results(current_actor(), patient_id)
    return render("labs/results/patient_results.html", view=page, patient=page.patient)


def _code_arg() -> str:
    code = request.args.get("code", "").strip()
    if not code or len(code) > 50:
        abort(404)
    return code


def _window_arg() -> services.TrendWindow | None:
    """``?window=``: one of the trend's windows; none given, None; any other word, 404."""
    raw = request.args.get("window")
    if raw is None:
        return None
    window = services.trend_window(raw)
    if window is None:
        abort(404)
    return window


@bp.get("/patients/<int:patient_id>/results/analyte")
@require("chart.read")
def analyte_results(patient_id: int):
    """One analyte's results (``?code=``: a LOINC code or the lab's own; reference data, no
    patient data) with its trend chart, corrections and what they replaced included, in a
    time window (``?window=``: 3m, 1y, 5y, all; by default the last year, or all when it
    holds too few values for a trend)."""
    actor = current_actor()
    page = services.analyte_results(actor, patient_id, _code_arg(), _window_arg())
    return render(
        "labs/results/analyte.html",
        view=page,
        patient=page.patient,
        image_ticket=charts.image_ticket(actor, patient_id),
        ticket_arg=IMAGE_TICKET_ARG,
    )


@bp.get("/patients/<int:patient_id>/results/trend.svg")
@require("chart.read")
def analyte_trend(patient_id: int):
    """One analyte's trend as an SVG image (the vitals' chart drawing)."""
    actor = current_actor()
    covered = charts.covered_by_page(actor, patient_id, request.args.get(IMAGE_TICKET_ARG))
    svg = services.trend_svg(
        actor, patient_id, _code_arg(), covered=covered, window=_window_arg() or services.ALL_TIME
    )
    return Response(svg, mimetype="image/svg+xml")


@bp.get("/unmatched")
@require("labs.match")
def unmatched_queue():
    """Results no patient could be matched to safely, oldest first."""
    return render("labs/results/unmatched.html", items=services.unmatched_queue(current_actor()))


def _item_page(unmatched_id: int, lookup=None, mrn: str | None = None, status: int = 200):
    page = services.unmatched_item(current_actor(), unmatched_id, mrn)
    return render(
        "labs/results/unmatched_item.html",
        view=page,
        lookup=lookup or LookupForm(),
        attach_form=AttachForm,
        status=status,
    )


@bp.get("/unmatched/<int:unmatched_id>")
@require("labs.match")
def unmatched_item(unmatched_id: int):
    """A queued message's patient and results beside the patients it could mean."""
    return _item_page(unmatched_id)


@bp.post("/unmatched/<int:unmatched_id>/lookup")
@require("labs.match")
def unmatched_lookup(unmatched_id: int):
    """Put the patient of a typed MRN beside the message (posted: an MRN stays out of URLs)."""
    form = LookupForm()
    if not form.validate_on_submit():
        return _item_page(unmatched_id, form, status=422)
    try:
        return _item_page(unmatched_id, form, form.mrn.data)
    except Refused as refused:
        attach_error(form, refused)
        return _item_page(unmatched_id, form, status=422)


@bp.post("/unmatched/<int:unmatched_id>/attach")
@require("labs.match")
def attach_unmatched(unmatched_id: int):
    """Attach the queued results to the chosen patient (audited); to their chart."""
    form = AttachForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        services.attach(current_actor(), unmatched_id, form.patient_id.data)
    except Refused as refused:
        flash(refused.message, "warning")
        return redirect(url_for("labs.unmatched_queue"), 303)
    flash("Results attached to the patient.", "success")
    return redirect(url_for("labs.patient_results", patient_id=form.patient_id.data), 303)
