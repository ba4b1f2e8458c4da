"""The audit report for admins: filter, sort by any column, keyset pages, CSV export.

The query string carries only filters, sort and cursors (ids, usernames of staff, action
names, dates): no patient data. Viewing the report and exporting it are themselves audited.

These pages live in admin, the top layer, because they need the layers above the audit
trail (the signed-in user's permissions, the clinic's calendar, the accounts by name), and
the trail itself is the lowest layer, which every domain writes to. They stay on the audit
blueprint, so their endpoints are still ``audit.report`` and ``audit.export``.
"""

from __future__ import annotations

import csv
import io

from flask import Response, current_app, request, stream_with_context, url_for

from portal.admin.audit_trail import bp
from portal.admin.audit_trail.forms import PatientLookupForm, ReportFilterForm
from portal.admin.audit_trail.services import exactly_named, patient_labels
from portal.audit import report as audit_report
from portal.auth import services as auth_services
from portal.auth.permissions import require
from portal.clinic.clock import day_bounds
from portal.clinic.services import clinic_time_zone
from portal.patients.services import search_patients
from portal.timeutil import to_zone, utcnow
from portal.web import current_actor, is_htmx_request, render

CATEGORY = "audit trail"
FILTER_KEYS = ("start", "end", "user", "patient", "action", "outcome")
# The filters a patient lookup carries over into the links it offers (all but the patient).
KEPT_BY_LOOKUP = ("start", "end", "user", "action", "outcome", "sort", "dir")
CSV_HEADER = (
    "id",
    "seq",
    "time_utc",
    "time_local",
    "user_id",
    "username",
    "user_roles",
    "action",
    "category",
    "patient_id",
    "object_type",
    "object_id",
    "source",
    "outcome",
    "detail",
    "previous_hash",
    "entry_hash",
    "event_mac",
)


def _filter_form() -> ReportFilterForm:
    form = ReportFilterForm(request.args)
    form.set_actions(audit_report.known_actions())
    return form


def _filters(form: ReportFilterForm, **extra) -> audit_report.Filters:
    # Whole days on the clinic's calendar; the end day is included.
    username = (form.user.data or "").lower() or None
    account = auth_services.find_user(username) if username else None
    return audit_report.Filters(
        starts_at=day_bounds(form.start.data)[0] if form.start.data else None,
        ends_before=day_bounds(form.end.data)[1] if form.end.data else None,
        user_id=account.id if account else None,
        username=username,
        patient_id=form.patient.data,
        action=form.action.data or None,
        outcome=form.outcome.data or None,
        **extra,
    )


def _query_args(form: ReportFilterForm) -> dict:
    """The current filters and sort as query-string values (blank ones left out)."""
    args = {key: request.args.get(key, "").strip() for key in FILTER_KEYS}
    args = {key: value for key, value in args.items() if value}
    args["sort"] = form.sort_key
    args["dir"] = "desc" if form.descending else "asc"
    return args


def _describe(form: ReportFilterForm, page_label: str) -> str:
    """The audit detail of a report view: which filters, which sort (no patient data)."""
    used = [
        f"{key}={request.args[key].strip()}"
        for key in FILTER_KEYS
        if request.args.get(key, "").strip()
    ]
    direction = "desc" if form.descending else "asc"
    return (
        f"filters: {'; '.join(used) or 'none'}; sort {form.sort_key} {direction}; {page_label}"
    )[:500]


@bp.get("/")
@require("audit.read")
def report():
    form = _filter_form()
    sort, descending = form.sort_key, form.descending
    page = audit_report.Page()
    status = 200
    page_label = "first page"
    cursor_error = None
    if form.validate():
        after = before = None
        try:
            if request.args.get("after"):
                after = audit_report.Cursor.decode(request.args["after"], sort)
                page_label = "next page"
            elif request.args.get("before"):
                before = audit_report.Cursor.decode(request.args["before"], sort)
                page_label = "previous page"
        except ValueError:
            cursor_error = "That page link is out of date; showing the first page."
            after = before = None
            page_label = "first page"
        page = audit_report.view_page(
            current_actor(),
            _filters(form),
            sort=sort,
            descending=descending,
            after=after,
            before=before,
            limit=current_app.config.get("AUDIT_REPORT_PAGE_SIZE", 50),
            description=_describe(form, page_label),
        )
    else:
        status = 422
    args = _query_args(form)
    # Patients by name and MRN: those on this page and the one filtered on (read after the
    # view's event, which names the filter; the page's rows are what it records reading).
    chosen = form.patient.data if not form.patient.errors else None
    labels = patient_labels([*(row.patient_id for row in page.rows), chosen])
    return render(
        "admin/audit_trail/report.html",
        fragment="admin/audit_trail/_results.html",
        form=form,
        lookup_form=PatientLookupForm(formdata=None),
        patients=labels,
        chosen_patient_id=chosen,
        results=page,
        args=args,
        sort=sort,
        descending=descending,
        cursor_error=cursor_error,
        time_zone=clinic_time_zone(),
        columns=SORTABLE_HEADERS,
        oob=is_htmx_request(),
        status=status,
    )


@bp.post("/patients")
@require("audit.read")
def patient_lookup():
    """Find the patient to filter on by exact name or MRN (the registry's search, audited
    as one, narrowed to exact names): each match is a link to the report filtered on that
    patient, keeping the other filters. A fragment for htmx; a small page without JavaScript."""
    form = PatientLookupForm()
    outcome = None
    if form.validate():
        typed = form.patient_query.data or ""
        outcome = search_patients(
            current_actor(), typed, current_app.config["DEFAULT_PHONE_REGION"]
        )
        outcome.patients = exactly_named(outcome.patients, typed)
    kept = {key: request.form.get(key, "").strip() for key in KEPT_BY_LOOKUP}
    return render(
        "admin/audit_trail/patient_lookup.html",
        fragment="admin/audit_trail/_patient_options.html",
        lookup_form=form,
        outcome=outcome,
        kept={key: value for key, value in kept.items() if value},
        status=200 if outcome is not None else 422,
    )


# Column headers that sort: (sort key, label).
SORTABLE_HEADERS = (
    ("time", "Time"),
    ("user", "User"),
    ("action", "Action"),
    ("patient", "Patient"),
    ("category", "Category"),
    ("outcome", "Outcome"),
)


def _csv_safe(value) -> str:
    """Text a spreadsheet will not run as a formula (=, +, -, @ and friends are escaped)."""
    if value is None:
        return ""
    text = str(value)
    if text and text[0] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


@bp.get("/export.csv")
@require("audit.read")
def export():
    """Every event that matches the filters, streamed as CSV in the report's order."""
    form = _filter_form()
    if not form.validate():
        return Response(
            "The filters are not valid: "
            + "; ".join(f"{name}: {' '.join(errors)}" for name, errors in form.errors.items())
            + "\n",
            status=422,
            mimetype="text/plain",
        )
    # A snapshot: rows written while the file downloads (this export's own event too) are left
    # out, so the file is exactly the trail as it stood when asked for.
    filters = audit_report.start_export(
        current_actor(), _filters(form), _describe(form, "csv export")
    )
    zone = clinic_time_zone()
    sort, descending = form.sort_key, form.descending
    batch_size = current_app.config.get("AUDIT_EXPORT_BATCH_SIZE", 1000)

    def generate():
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_HEADER)
        for count, row in enumerate(
            audit_report.iter_rows(
                filters, sort=sort, descending=descending, batch_size=batch_size
            ),
            start=1,
        ):
            writer.writerow(
                [
                    row.id,
                    row.seq,
                    row.occurred_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                    to_zone(row.occurred_at, zone).isoformat(timespec="seconds"),
                    row.user_id if row.user_id is not None else "",
                    _csv_safe(row.username),
                    _csv_safe(row.user_roles),
                    _csv_safe(row.action),
                    _csv_safe(row.category),
                    row.patient_id if row.patient_id is not None else "",
                    _csv_safe(row.object_type),
                    _csv_safe(row.object_id),
                    _csv_safe(row.source),
                    _csv_safe(row.outcome),
                    _csv_safe(row.detail),
                    row.previous_hash,
                    row.entry_hash,
                    row.event_mac,
                ]
            )
            if count % 500 == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    filename = f"audit-trail-{to_zone(utcnow(), zone):%Y%m%d-%H%M}.csv"
    return Response(
        stream_with_context(generate()),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def page_url(args: dict, **changes) -> str:
    """The report's URL with the current filters plus ``changes`` (None removes a key)."""
    merged = {**args, **changes}
    clean = {key: value for key, value in merged.items() if value not in (None, "")}
    return url_for("audit.report", **clean)


@bp.app_template_global("audit_page_url")
def _audit_page_url(args: dict, **changes) -> str:
    return page_url(args, **changes)


@bp.app_template_global("audit_export_url")
def _audit_export_url(args: dict) -> str:
    return url_for("audit.export", **args)
