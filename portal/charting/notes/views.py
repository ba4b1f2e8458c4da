"""The note editor (drafts, signing, co-signature, addenda), the encounter page's notes
section, note templates and snippets.

Thin views: load -> authorize (@require, then the services' object checks) -> call a
service in portal.charting.notes.services -> render the page, or its fragment for htmx.
"""

from __future__ import annotations

from datetime import datetime

from flask import abort, flash, redirect, request, url_for

from portal.audit.services import record_denied
from portal.auth.permissions import require
from portal.charting import bp
from portal.charting.encounters.services import EncounterPage, prescriber_names
from portal.charting.encounters.views import (
    encounter_section,
    encounter_url,
    render_encounter_page,
)
from portal.charting.models import NOTE_KINDS
from portal.charting.notes import services as notes
from portal.charting.notes.forms import (
    AddendumForm,
    NoteTextForm,
    SnippetForm,
    StartNoteForm,
    TemplateForm,
)
from portal.charting.notes.services import NotAllowed, NoteLocked, VersionConflict
from portal.clinic.clock import clinic_zone
from portal.ids import parse_id
from portal.transaction import Refused
from portal.web import attach_error, current_actor, is_htmx_request, render


@encounter_section
def notes_section(actor, page: EncounterPage) -> dict:
    """What the encounter page's notes section needs: which drafts the actor may sign, the
    kinds of note not started yet, the actor's snippets and the co-signers to route to."""
    snippets = notes.snippets_for(actor.id) if actor.has_permission("chart.write") else {}
    cosigners = prescriber_names() if actor.has_permission("chart.sign") else []
    drafts = [note for note in page.notes if not note.is_signed]
    # The templates a note not started yet may start from, the visit type's preselected.
    choices = notes.template_choices(page.encounter)
    return {
        "note_kinds": NOTE_KINDS,
        "missing_kinds": [k for k in NOTE_KINDS if k not in {n.kind for n in page.notes}],
        "note_templates": choices.by_kind,
        "default_template_ids": choices.default_ids,
        "signable": {note.id: notes.may_sign(actor, note) for note in drafts},
        "snippets": snippets,
        "cosigners": [p for p in cosigners if p[0] != actor.id],
        "typed": {},
        "errors": {},
        "conflicts": {},
        "addendum_typed": {},
        "addendum_errors": {},
    }


@bp.post("/encounters/<int:encounter_id>/notes")
@require("chart.write")
def start_note(encounter_id: int):
    """Start the encounter's provider or nursing note (from its template), or open it."""
    form = StartNoteForm()
    if not form.validate():
        abort(400)
    try:
        note = notes.start_note(
            current_actor(), encounter_id, form.kind.data, _template_choice(form.template_id.data)
        )
    except Refused as error:
        flash(error.message, "danger")
        return redirect(encounter_url(encounter_id), 303)
    return redirect(encounter_url(encounter_id, note.id), 303)


def _template_choice(value: str | None) -> int | None:
    """The start form's template: None (the default), ``BLANK_NOTE``, or an id; a value no
    template can have is refused beside the choice."""
    value = (value or "").strip()
    if not value:
        return None
    if value == "blank":
        return notes.BLANK_NOTE
    template_id = parse_id(value)
    if template_id is None:
        raise Refused("Choose one of the active templates for this kind of note.", "template_id")
    return template_id


# --- the note editor -------------------------------------------------------------------------


def _status(note, *, error=None, status=200, locked=False):
    """The editor's status line (htmx), with the new version out of band after a save."""
    return render(
        "charting/notes/_note_status.html",
        note=note,
        error=error,
        locked=locked,
        oob=error is None,
        status=status,
    )


def _text_form() -> NoteTextForm:
    """The posted editor form; a bad CSRF token is a 400. The fields themselves are checked
    by the service (an impossible co-signer id too: see sign_note)."""
    form = NoteTextForm()
    form.validate()
    if form.csrf_token.errors:
        abort(400)
    return form


def _refused(note, error: Refused, typed: str):
    """A refused draft save or signing: the status area for htmx, else the page with the
    typed text kept in the editor."""
    if isinstance(error, VersionConflict):
        if is_htmx_request():
            return render(
                "charting/notes/_note_conflict.html", note=error.note, mine=typed, status=409
            )
        return render_encounter_page(
            note.encounter_id, 409, typed={note.id: typed}, conflicts={note.id: typed}
        )
    if is_htmx_request():
        return _status(
            note, error=error.message, status=error.status, locked=isinstance(error, NoteLocked)
        )
    return render_encounter_page(
        note.encounter_id, error.status, typed={note.id: typed}, errors={note.id: error.message}
    )


@bp.post("/notes/<int:note_id>/draft")
@require("chart.write")
def save_draft(note_id: int):
    """Autosave (htmx, debounced and on leaving the field) or "Save draft" without script.

    Answers the status ("Saved at hh:mm") and the new version out of band; a newer stored
    version answers 409 with both texts; a signed note 409; an over-long text 422. A save
    sent after an idle time-out is kept by the sign-in flow and sent again from /auth/resume.
    """
    form = _text_form()
    typed = (form.text.data or "").replace("\r\n", "\n")
    try:
        note = notes.save_draft(current_actor(), note_id, typed, form.version.data)
    except Refused as error:
        return _refused(notes.get_note_for(current_actor(), note_id), error, typed)
    if is_htmx_request():
        return _status(note)
    flash(f"Saved at {_local_hhmm(note.saved_at)}.", "success")
    return redirect(encounter_url(note.encounter_id, note.id), 303)


def _local_hhmm(value: datetime) -> str:
    return value.astimezone(clinic_zone()).strftime("%H:%M")


@bp.post("/notes/<int:note_id>/sign")
@require("chart.sign_nursing")
def sign_note(note_id: int):
    """Sign a draft (with the editor's latest text when htmx sends it); optionally route it
    for co-signature. Who may sign is the service's rule (403 otherwise)."""
    form = _text_form()
    typed = form.text.data
    if typed is not None:
        typed = typed.replace("\r\n", "\n")
    note = notes.get_note_for(current_actor(), note_id)
    # An impossible co-signer id goes on as 0, no user's id: the service refuses it (422)
    # after its own checks of who may sign.
    cosigner_id = 0 if form.cosigner_id.errors else form.cosigner_id.data
    # htmx sends the editor's text and current version; the form without JavaScript sends
    # the version its page was rendered at (``shown_version``), and the stored text is signed.
    version = form.version.data if "version" in request.form else request.form.get("shown_version")
    try:
        note = notes.sign_note(
            current_actor(),
            note_id,
            version,
            text=typed if "text" in request.form else None,
            cosigner_id=cosigner_id,
        )
    except NotAllowed:
        abort(403)
    except Refused as error:
        return _refused(note, error, typed if typed is not None else note.text)
    flash("Note signed.", "success")
    target = encounter_url(note.encounter_id, note.id)
    if is_htmx_request():
        # Reload the page (a redirect to the same page with only an anchor would not).
        response = render("charting/notes/_note_status.html", note=note, error=None, oob=False)
        response.headers["HX-Refresh"] = "true"
        return response
    return redirect(target, 303)


@bp.post("/notes/<int:note_id>/cosign")
@require("chart.sign")
def cosign_note(note_id: int):
    """The prescriber a note was routed to co-signs it."""
    try:
        note = notes.cosign_note(current_actor(), note_id)
    except NotAllowed:
        abort(403)
    flash("Note co-signed.", "success")
    return redirect(encounter_url(note.encounter_id, note.id), 303)


@bp.post("/notes/<int:note_id>/addenda")
@require("chart.write")
def add_addendum(note_id: int):
    """A signed addendum under a signed note (any clinician with chart.write)."""
    form = AddendumForm()
    note = notes.get_note_for(current_actor(), note_id)
    encounter_id = note.encounter_id
    typed = (form.text.data or "").replace("\r\n", "\n")
    if not form.validate():
        if form.csrf_token.errors:
            abort(400)
        return render_encounter_page(
            encounter_id,
            422,
            addendum_typed={note_id: typed},
            addendum_errors={note_id: " ".join(form.text.errors)},
        )
    try:
        notes.add_addendum(current_actor(), note_id, typed)
    except Refused as error:
        return render_encounter_page(
            encounter_id,
            error.status,
            addendum_typed={note_id: typed},
            addendum_errors={note_id: error.message},
        )
    flash("Addendum signed and added.", "success")
    return redirect(encounter_url(encounter_id, note_id), 303)


# --- templates (chart.manage) ----------------------------------------------------------------


def _type_choices() -> list[tuple]:
    return [(None, "Default (any visit type)"), *notes.visit_type_names().items()]


@bp.get("/templates")
@require("chart.manage")
def templates():
    """Note templates: the text new notes start from, per visit type and kind of note."""
    return render(
        "charting/notes/templates.html",
        templates=notes.list_templates(),
        type_names=notes.visit_type_names(),
        note_kinds=NOTE_KINDS,
    )


@bp.route("/templates/new", methods=["GET", "POST"])
@require("chart.manage")
def new_template():
    """Add a template."""
    return _template_form(None)


@bp.route("/templates/<int:template_id>", methods=["GET", "POST"])
@require("chart.manage")
def edit_template(template_id: int):
    """Change a template."""
    return _template_form(template_id)


def _template_form(template_id: int | None):
    template = notes.get_template_or_404(template_id) if template_id else None
    form = TemplateForm(obj=template if request.method == "GET" else None)
    form.appointment_type_id.choices = _type_choices()
    if request.method == "POST":
        if form.validate():
            try:
                notes.save_template(
                    current_actor(),
                    template_id,
                    name=form.name.data,
                    appointment_type_id=form.appointment_type_id.data,
                    note_kind=form.note_kind.data,
                    body=(form.body.data or "").replace("\r\n", "\n"),
                )
            except Refused as error:
                attach_error(form, error)
            else:
                flash("Template saved.", "success")
                return redirect(url_for("charting.templates"), 303)
        return render("charting/notes/template_edit.html", form=form, template=template, status=422)
    return render("charting/notes/template_edit.html", form=form, template=template)


@bp.post("/templates/<int:template_id>/active")
@require("chart.manage")
def set_template_active(template_id: int):
    """Deactivate a template (new notes stop using it) or activate it again."""
    active = request.form.get("active") == "1"
    notes.set_template_active(current_actor(), template_id, active)
    flash("Template activated." if active else "Template deactivated.", "success")
    return redirect(url_for("charting.templates"), 303)


# --- snippets --------------------------------------------------------------------------------
# One page for clinicians (their own snippets, chart.write) and administrators (clinic-wide
# ones, chart.manage): the route needs a signed-in account, and the view asks for either.


def _require_snippet_access() -> None:
    actor = current_actor()
    if not (actor.has_permission("chart.write") or actor.has_permission("chart.manage")):
        record_denied(actor, request.endpoint, "chart.write or chart.manage")
        abort(403)


def _snippets_page(form: SnippetForm, editing=None, status: int = 200):
    actor = current_actor()
    own, clinic = notes.list_snippets(actor.id)
    return render(
        "charting/notes/snippets.html",
        form=form,
        editing=editing,
        own=own,
        clinic=clinic,
        can_own=actor.has_permission("chart.write"),
        can_manage=actor.has_permission("chart.manage"),
        status=status,
    )


@bp.route("/snippets", methods=["GET", "POST"])
@require("account.self")
def snippets():
    """The user's own snippets and the clinic-wide ones, and the form to add one."""
    return _snippet_form(None)


@bp.route("/snippets/<int:snippet_id>", methods=["GET", "POST"])
@require("account.self")
def edit_snippet(snippet_id: int):
    """The same page, with the form changing one snippet (own, or clinic-wide for admins)."""
    return _snippet_form(snippet_id)


def _snippet_form(snippet_id: int | None):
    _require_snippet_access()
    actor = current_actor()
    editing = notes.get_snippet_for(actor, snippet_id) if snippet_id else None
    form = SnippetForm(obj=editing if request.method == "GET" else None)
    if request.method == "GET" and editing is not None:
        form.clinic_wide.data = editing.owner_id is None
    if request.method == "POST":
        if form.validate():
            try:
                notes.save_snippet(
                    actor,
                    snippet_id,
                    trigger=form.trigger.data,
                    body=(form.body.data or "").replace("\r\n", "\n"),
                    clinic_wide=bool(form.clinic_wide.data)
                    or not actor.has_permission("chart.write"),
                )
            except NotAllowed:
                abort(403)
            except Refused as error:
                attach_error(form, error)
            else:
                flash("Snippet saved.", "success")
                return redirect(url_for("charting.snippets"), 303)
        return _snippets_page(form, editing, 422)
    return _snippets_page(form, editing)


@bp.post("/snippets/<int:snippet_id>/delete")
@require("account.self")
def delete_snippet(snippet_id: int):
    """Delete one of the user's snippets (or a clinic-wide one, for administrators)."""
    _require_snippet_access()
    notes.delete_snippet(current_actor(), snippet_id)
    flash("Snippet deleted.", "success")
    return redirect(url_for("charting.snippets"), 303)
