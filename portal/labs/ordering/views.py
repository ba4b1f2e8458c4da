"""Ordering labs: start a draft from the chart or a visit, find tests as you type, add and
remove them, the details, sign, cancel, the patient's orders, and the requisition PDF.

Thin: load -> authorize (the permission here, the object in the service) -> one service ->
render. Refusals go beside their field with the refusal's status; the catalog search posts
(what is typed for a patient stays out of URLs and logs).
"""

from __future__ import annotations

from flask import Response, flash, redirect, request, url_for

from portal.auth.permissions import require
from portal.charting.encounters.views import encounter_section
from portal.clinic.services import current_clinic
from portal.ids import parse_id
from portal.labs import bp, states
from portal.labs.ordering import services
from portal.labs.ordering.forms import OrderForm, TestSearchForm
from portal.labs.ordering.requisition import render_requisition_pdf
from portal.transaction import Refused
from portal.web import attach_error, current_actor, is_htmx_request, render

ORDER_PAGE = "labs/ordering/order.html"
SIGNED_ORDER = "labs/ordering/_signed_order.html"
LIVE_BADGE = "labs/ordering/_live_badge.html"
# Sent by an order page's badge poll whose answer shows another state than the page: the
# page's details listen for it (``from:body``) and ask for themselves again.
ORDER_CHANGED = "lab-order-changed"


def order_url(order_id: int) -> str:
    return url_for("labs.order", order_id=order_id)


@encounter_section
def visit_lab_orders(actor, page) -> dict:
    """The encounter page's "Order labs" and the visit's orders (the page's event covers
    them)."""
    if not actor.has_permission("chart.read"):
        return {}
    return {
        "visit_lab_orders": services.encounter_orders(actor, page.encounter.id),
        "lab_states": states,
    }


def _form_of(page: services.OrderPage) -> OrderForm:
    order = page.order
    form = OrderForm(
        formdata=None,
        data={
            "diagnoses": (order.diagnoses or "").split(),
            "priority": order.priority,
            "fasting": order.fasting,
            "collection_date": order.collection_date,
            "note": order.note,
            "connector": order.connector or "",
        },
    )
    return form.offer(page.problems, page.labs)


def _render_order(page, form=None, search_form=None, found=None, status=200):
    # htmx asks for a signed order's details alone when its badge reports a new state.
    return render(
        ORDER_PAGE,
        None if page.order.status == states.DRAFT else SIGNED_ORDER,
        view=page,
        order=page.order,
        patient=page.patient,
        form=form or _form_of(page),
        search_form=search_form or TestSearchForm(formdata=None),
        found=found,
        lab_states=states,
        status=status,
    )


@bp.post("/patients/<int:patient_id>/orders")
@require("labs.order")
def start_order(patient_id: int):
    """A new draft for the patient (from the chart, or a visit when the form names it)."""
    encounter_id = parse_id(request.form.get("encounter_id"))
    try:
        order = services.start_order(current_actor(), patient_id, encounter_id)
    except Refused as refused:
        flash(refused.message, "danger")
        return redirect(url_for("labs.patient_orders", patient_id=patient_id), code=303)
    return redirect(order_url(order.id), code=303)


@bp.get("/patients/<int:patient_id>/orders")
@require("chart.read")
def patient_orders(patient_id: int):
    """The patient's lab orders with their states (audited as one view)."""
    patient, rows = services.patient_orders(current_actor(), patient_id)
    return render(
        "labs/ordering/patient_orders.html", patient=patient, rows=rows, lab_states=states
    )


@bp.get("/orders/<int:order_id>")
@require("chart.read")
def order(order_id: int):
    """One order: its prescriber's draft to compose, or what was signed and where it is."""
    return _render_order(services.view_order(current_actor(), order_id))


@bp.get("/orders/<int:order_id>/state")
@require("chart.read")
def order_state(order_id: int):
    """An order's live badge (htmx asks again while the order is in flight; not audited:
    see ``services.order_state``). Asked from the order's own page (``?shown=``, the state
    the page shows), an answer with another state tells the page to refresh its details
    (``ORDER_CHANGED``); the other pages' badges stand alone."""
    live = services.order_state(current_actor(), order_id)
    shown = request.args.get("shown")
    response = render(
        LIVE_BADGE, LIVE_BADGE, live=live, on_order_page=shown is not None, lab_states=states
    )
    if shown is not None and shown != live.status:
        response.headers["HX-Trigger"] = ORDER_CHANGED
    return response


@bp.post("/orders/<int:order_id>/tests/search")
@require("labs.order")
def search_tests(order_id: int):
    """The catalog's tests and panels matching what is typed (a fragment for htmx)."""
    form = TestSearchForm()
    query = (form.test_query.data or "")[:100] if form.validate_on_submit() else ""
    found = services.search_tests(current_actor(), order_id, query)
    if is_htmx_request():
        return render(
            "labs/ordering/_test_results.html",
            "labs/ordering/_test_results.html",
            found=found,
            query=query,
            order_id=order_id,
        )
    page = services.view_order(current_actor(), order_id)
    return _render_order(page, search_form=form, found=found)


@bp.post("/orders/<int:order_id>/tests")
@require("labs.order")
def add_test(order_id: int):
    """Add the chosen test to the draft, then back to the draft with the search empty."""
    loinc = (request.form.get("loinc") or "")[:10]
    try:
        services.add_test(current_actor(), order_id, loinc)
    except Refused as refused:
        page = services.view_order(current_actor(), order_id)
        search_form = TestSearchForm(formdata=None)
        attach_error(search_form, refused)
        return _render_order(page, search_form=search_form, status=refused.status)
    return redirect(order_url(order_id) + "#test_query", code=303)


@bp.post("/orders/<int:order_id>/tests/remove")
@require("labs.order")
def remove_test(order_id: int):
    loinc = (request.form.get("loinc") or "")[:10]
    try:
        services.remove_test(current_actor(), order_id, loinc)
    except Refused as refused:
        flash(refused.message, "danger")
    return redirect(order_url(order_id), code=303)


@bp.post("/orders/<int:order_id>")
@require("labs.order")
def save_order(order_id: int):
    """Save the draft's details, or save and sign (the "Sign order" button)."""
    actor = current_actor()
    page = services.view_order(actor, order_id)
    form = OrderForm().offer(page.problems, page.labs)
    signing = request.form.get("action") == "sign"
    if not form.validate_on_submit():
        return _render_order(page, form=form, status=422)
    try:
        if signing:
            services.sign_order(actor, order_id, form.details())
        else:
            services.save_details(actor, order_id, form.details())
    except Refused as refused:
        page = services.view_order(actor, order_id)
        if page.order.status != states.DRAFT:  # signed or dropped meanwhile: no form to fix
            flash(refused.message, "warning")
            return redirect(order_url(order_id), code=303)
        form.offer(page.problems, page.labs)
        search_form = TestSearchForm(formdata=None)
        attach_error(search_form if refused.field == "test_query" else form, refused)
        return _render_order(page, form=form, search_form=search_form, status=refused.status)
    if signing:
        flash("Order signed.", "success")
    return redirect(order_url(order_id), code=303)


@bp.post("/orders/<int:order_id>/cancel")
@require("labs.order")
def cancel_order(order_id: int):
    """Cancel an order no result has reached (a draft is dropped)."""
    try:
        order = services.cancel_order(current_actor(), order_id)
    except Refused as refused:
        flash(refused.message, "danger")
        return redirect(order_url(order_id), code=303)
    flash("Order cancelled.", "info")
    return redirect(url_for("labs.patient_orders", patient_id=order.patient_id), code=303)


@bp.get("/orders/<int:order_id>/requisition.pdf")
@require("chart.read")
def requisition(order_id: int):
    """The requisition as a PDF (audited as a print)."""
    try:
        content = services.print_requisition(current_actor(), order_id, current_clinic())
    except Refused as refused:
        flash(refused.message, "danger")
        return redirect(order_url(order_id), code=303)
    return Response(
        render_requisition_pdf(content),
        mimetype="application/pdf",
        headers={
            "Content-Disposition": f'inline; filename="lab-requisition-{order_id}.pdf"',
            "Cache-Control": "no-store",
        },
    )
