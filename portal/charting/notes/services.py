"""Clinical notes: drafts saved as the clinician types, signing, co-signature, addenda;
the home page's worklist of notes waiting for the user; note templates per visit type and
text snippets.

Each public function that changes something (or audits a read) is one use case
(``use_case()``); refusals are ``Refused`` (beside a field), with ``NoteLocked``,
``VersionConflict`` (carrying the note someone else saved) and ``NotAllowed`` (403) where a
view answers them differently.

Signed is signed. Every change here names the state it expects in its UPDATE's WHERE clause
(``signed_at IS NULL`` and the version the editor was loaded at), so a note signed or saved
by someone else in the meantime is never written over; the triggers of migration 0003 refuse
any change to a signed note besides, whatever code runs.

Auditing drafts: an autosave runs every second or so while someone types, and an event for
each would bury the trail. A draft save is audited when it is the user's first save of that
note in ``DRAFT_AUDIT_EVERY`` (10 minutes): the trail still shows who edited which note and
when, to within ten minutes. Creating, signing, co-signing and every addendum are always
audited (category "clinical notes"); detail holds ids and codes, never text.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import set_committed_value
from werkzeug.exceptions import NotFound

from portal.audit import services as audit
from portal.audit.models import DETAIL_MAX_CHARS, AuditEvent
from portal.charting.encounters.services import check_prescriber, get_encounter_for
from portal.charting.models import (
    NOTE_KINDS,
    NOTE_MAX_CHARS,
    Encounter,
    Note,
    NoteAddendum,
    NoteSnippet,
    NoteTemplate,
)
from portal.extensions import db
from portal.patients.models import Patient
from portal.patients.services import get_patient_for
from portal.scheduling.models import Appointment, AppointmentType
from portal.timeutil import utcnow
from portal.transaction import Conflict, Refused, use_case

CATEGORY = "clinical notes"
DRAFT_AUDIT_EVERY = timedelta(minutes=10)
SNIPPET_TRIGGER = re.compile(r"\.[A-Za-z0-9]{1,31}")
SNIPPET_MAX_CHARS = 20_000
TEMPLATE_MAX_CHARS = 50_000
WORKLIST_LIMIT = 50
UNSIGNED_AFTER_HOURS = 24
TRIGGER_TAKEN = "That trigger is already used: choose another."


class NoteLocked(Conflict):
    """The note is signed: its text can no longer change (the editor says so and locks)."""

    def __init__(self):
        super().__init__(
            "This note is signed and can no longer be changed. Add an addendum instead.", "text"
        )


class NotAllowed(Refused):
    """The actor may not do this to this note (answered 403)."""


class VersionConflict(Conflict):
    """Someone saved the note after the editor loaded it; ``note`` holds their version."""

    def __init__(self, note: Note):
        super().__init__("Someone else saved this note while you were typing.", "text")
        self.note = note


def sha256_text(text: str) -> str:
    """The SHA-256 of ``text`` as signed (UTF-8), in hex."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_length(text: str, what: str = "A note") -> None:
    """Refuse (never cut) a text over NOTE_MAX_CHARS."""
    if len(text) > NOTE_MAX_CHARS:
        raise Refused(
            f"{what} may hold at most {NOTE_MAX_CHARS:,} characters; this one has "
            f"{len(text):,}. Nothing was saved: shorten it and it will be saved again.",
            "text",
        )


def get_note_for(actor, note_id: int) -> Note:
    """The note ``actor`` may see (through its patient), or 404."""
    note = db.session.get(Note, note_id)
    if note is None:
        raise NotFound()
    get_patient_for(actor, note.patient_id)
    return note


# ``start_note``'s template_id for "no template": the note starts blank.
BLANK_NOTE = 0


def _appointment_type_of(encounter: Encounter) -> int | None:
    if encounter.appointment_id is None:
        return None
    return db.session.scalar(
        select(Appointment.appointment_type_id).where(Appointment.id == encounter.appointment_id)
    )


def _default_among(templates: list, type_id: int | None):
    """The default of these active templates of one kind: the newest for the visit's type,
    else the newest for no type, else None (``templates`` rows have ``appointment_type_id``,
    ``updated_at`` and ``id``)."""
    newest_first = sorted(templates, key=lambda t: (t.updated_at, t.id), reverse=True)
    own = [t for t in newest_first if type_id is not None and t.appointment_type_id == type_id]
    general = [t for t in newest_first if t.appointment_type_id is None]
    return (own or general or [None])[0]


def default_template(encounter: Encounter, kind: str) -> NoteTemplate | None:
    """The template a new note of this kind starts from unless the clinician picks another:
    the active one for the appointment's type, else the default one (no type), else None."""
    candidates = db.session.scalars(
        select(NoteTemplate).where(NoteTemplate.is_active.is_(True), NoteTemplate.note_kind == kind)
    ).all()
    return _default_among(candidates, _appointment_type_of(encounter))


@dataclass
class TemplateChoices:
    """What a note not started yet may start from: per kind, the active templates (id,
    name) by name, and the id of the default one (None: no template applies)."""

    by_kind: dict[str, list[tuple[int, str]]]
    default_ids: dict[str, int | None]


def template_choices(encounter: Encounter) -> TemplateChoices:
    """The templates of every kind a clinician may start this encounter's notes from, with
    each kind's default: one query for the templates (and one for the visit's type), however
    many notes the encounter has."""
    rows = db.session.execute(
        select(
            NoteTemplate.id,
            NoteTemplate.name,
            NoteTemplate.note_kind,
            NoteTemplate.appointment_type_id,
            NoteTemplate.updated_at,
        )
        .where(NoteTemplate.is_active.is_(True))
        .order_by(NoteTemplate.name)
    ).all()
    type_id = _appointment_type_of(encounter)
    by_kind = {kind: [row for row in rows if row.note_kind == kind] for kind in NOTE_KINDS}
    defaults = {kind: _default_among(of_kind, type_id) for kind, of_kind in by_kind.items()}
    return TemplateChoices(
        by_kind={kind: [(r.id, r.name) for r in of_kind] for kind, of_kind in by_kind.items()},
        default_ids={kind: row.id if row else None for kind, row in defaults.items()},
    )


def _chosen_template(encounter: Encounter, kind: str, template_id: int | None):
    if template_id is None:
        return default_template(encounter, kind)
    if template_id == BLANK_NOTE:
        return None
    template = db.session.get(NoteTemplate, template_id)
    if template is None or not template.is_active or template.note_kind != kind:
        raise Refused("Choose one of the active templates for this kind of note.", "template_id")
    return template


def _note_of_kind(encounter_id: int, kind: str) -> Note | None:
    return db.session.scalar(
        select(Note).where(Note.encounter_id == encounter_id, Note.kind == kind)
    )


def start_note(actor, encounter_id: int, kind: str, template_id: int | None = None) -> Note:
    """The encounter's note of this kind, created the first time from the template the
    clinician picked (``template_id``: an active template of this kind, or ``BLANK_NOTE``),
    or by default from the visit type's (``default_template``).

    Idempotent like "Start visit": an encounter has one note of each kind (a unique index),
    so of two clicks racing, the one whose insert loses opens the note the other made.
    """
    if kind not in NOTE_KINDS:
        raise Refused("Choose a provider note or a nursing note.", "kind")
    with use_case():
        encounter = get_encounter_for(actor, encounter_id)
        existing = _note_of_kind(encounter.id, kind)
        if existing is not None:
            return existing
        template = _chosen_template(encounter, kind, template_id)
        now = utcnow()
        note = Note(
            encounter_id=encounter.id,
            patient_id=encounter.patient_id,
            author_id=actor.id,
            kind=kind,
            text=template.body if template else "",
            version=1,
            saved_at=now,
            saved_by_id=actor.id,
            created_at=now,
        )
        try:
            # On PostgreSQL a racing insert waits on the unique index until the winner
            # commits, then fails: the savepoint undoes it alone.
            with db.session.begin_nested():
                db.session.add(note)
                db.session.flush()
        except IntegrityError:
            winner = _note_of_kind(encounter.id, kind)  # the other click won: open its note
            if winner is None:
                raise
            return winner
        audit.record(
            actor,
            "note.create",
            patient_id=encounter.patient_id,
            obj=note,
            category=CATEGORY,
            detail=(
                f"encounter={encounter.id} kind={kind} "
                f"template={template.id if template else 'none'}"
            ),
        )
    return note


def _draft_audited_recently(actor, note_id: int, now: datetime) -> bool:
    return (
        db.session.scalar(
            select(AuditEvent.id)
            .where(
                AuditEvent.user_id == actor.id,
                AuditEvent.occurred_at >= now - DRAFT_AUDIT_EVERY,
                AuditEvent.action == "note.draft_save",
                AuditEvent.object_id == str(note_id),
            )
            .limit(1)
        )
        is not None
    )


def _parse_version(version) -> int | None:
    try:
        return int(version)
    except (TypeError, ValueError):
        return None


def save_draft(actor, note_id: int, text: str, version, *, now: datetime | None = None) -> Note:
    """Save the editor's text over the version it was loaded at; returns the saved note.

    Refuses a signed note (NoteLocked), a text over NOTE_MAX_CHARS (Refused), and a
    version older than the stored one (VersionConflict, carrying the stored note) unless
    the texts are the same. Saving unchanged text writes nothing.
    """
    now = now or utcnow()
    text = text or ""
    with use_case():
        note = get_note_for(actor, note_id)
        if note.is_signed:
            raise NoteLocked()
        check_length(text)
        expected = _parse_version(version)
        if text == note.text:
            return note  # nothing to write
        if expected != note.version:
            raise VersionConflict(note)
        # The WHERE clause, not the read above, decides a race with another save or a sign.
        written = db.session.execute(
            update(Note)
            .where(Note.id == note.id, Note.version == expected, Note.signed_at.is_(None))
            .values(text=text, version=expected + 1, saved_at=now, saved_by_id=actor.id)
            .execution_options(synchronize_session=False)
        ).rowcount
        if written != 1:
            _raise_lost_race(note)
        if not _draft_audited_recently(actor, note.id, now):
            audit.record(
                actor,
                "note.draft_save",
                patient_id=note.patient_id,
                object_type="notes",
                object_id=note.id,
                category=CATEGORY,
                detail=f"version={expected + 1}",
            )
        # The row now holds what was written: say so without reading it back (autosave
        # runs every second; a reload per save is a query for nothing).
        for name, value in (
            ("text", text),
            ("version", expected + 1),
            ("saved_at", now),
            ("saved_by_id", actor.id),
        ):
            set_committed_value(note, name, value)
    return note


def _raise_lost_race(note: Note) -> None:
    """Another save or a signing committed between this use case's read and its write: say
    which, with the note as it is now."""
    db.session.refresh(note)
    if note.is_signed:
        raise NoteLocked()
    raise VersionConflict(note)


def may_sign(actor, note: Note) -> bool:
    """Who signs: prescribers (chart.sign) a provider note; its author a nursing note."""
    if note.kind == "provider":
        return actor.has_permission("chart.sign")
    return note.author_id == actor.id and actor.has_permission("chart.sign_nursing")


def sign_note(
    actor,
    note_id: int,
    version,
    *,
    text: str | None = None,
    cosigner_id: int | None = None,
    now: datetime | None = None,
) -> Note:
    """Sign a draft (saving ``text`` first when the editor sent it): it is locked from now on.

    ``cosigner_id`` routes the note to a prescriber who must co-sign it (a supervised
    clinician's note). Refuses who may not sign (NotAllowed), a signed note (NoteLocked),
    an empty or too long text, and a missing version or one older than the stored one
    (VersionConflict).
    """
    now = now or utcnow()
    with use_case():
        note = get_note_for(actor, note_id)
        if note.is_signed:
            raise NoteLocked()
        if not may_sign(actor, note):
            raise NotAllowed(
                "Only a prescriber can sign a provider note."
                if note.kind == "provider"
                else "A nursing note is signed by the nurse who wrote it."
            )
        final = note.text if text is None else text
        check_length(final)
        if not final.strip():
            raise Refused("An empty note cannot be signed: write the note first.", "text")
        # The signer signs what they saw: the version their page showed (without the text,
        # the stored text is signed, so it must be that version), or the editor's text,
        # which may be signed over a newer version only when it is that version's text.
        expected = _parse_version(version)
        if expected != note.version and (text is None or final != note.text):
            raise VersionConflict(note)
        if cosigner_id is not None:
            try:
                check_prescriber(cosigner_id)
            except Refused as error:
                raise Refused("Choose a prescriber to co-sign.", "cosigner_id") from error
            if cosigner_id == actor.id:
                raise Refused("Choose someone else to co-sign your note.", "cosigner_id")
        changed = final != note.text
        values = {
            "signed_at": now,
            "signed_by_id": actor.id,
            "signed_text_sha256": sha256_text(final),
            "cosigner_id": cosigner_id,
        }
        if changed:
            values.update(text=final, version=note.version + 1, saved_at=now, saved_by_id=actor.id)
        written = db.session.execute(
            update(Note)
            .where(Note.id == note.id, Note.version == note.version, Note.signed_at.is_(None))
            .values(**values)
            .execution_options(synchronize_session=False)
        ).rowcount
        if written != 1:
            _raise_lost_race(note)
        audit.record(
            actor,
            "note.sign",
            patient_id=note.patient_id,
            object_type="notes",
            object_id=note.id,
            category=CATEGORY,
            detail=f"kind={note.kind}" + (f" cosigner={cosigner_id}" if cosigner_id else ""),
        )
    db.session.refresh(note)
    return note


def cosign_note(actor, note_id: int, *, now: datetime | None = None) -> Note:
    """The named co-signer co-signs a signed note (only ``cosigned_at`` changes)."""
    now = now or utcnow()
    with use_case():
        note = get_note_for(actor, note_id)
        if note.cosigner_id != actor.id or not note.is_signed:
            raise NotAllowed("Only the prescriber this note was routed to can co-sign it.")
        if note.cosigned_at is not None:
            return note
        note.cosigned_at = now
        audit.record(actor, "note.cosign", patient_id=note.patient_id, obj=note, category=CATEGORY)
    return note


def add_addendum(actor, note_id: int, text: str) -> NoteAddendum:
    """Add a signed addendum (author and time) under a signed note.

    Any clinician who may write in the chart (chart.write) may add one, to a provider's or
    a nurse's note: it corrects or adds without touching what was signed, and it is itself
    signed by its author as it is written.
    """
    text = (text or "").rstrip()
    with use_case():
        note = get_note_for(actor, note_id)
        if not note.is_signed:
            raise Refused("Addenda are for signed notes: edit the draft instead.", "text")
        if not text.strip():
            raise Refused("Write the addendum first.", "text")
        check_length(text, "An addendum")
        addendum = NoteAddendum(
            note_id=note.id,
            author_id=actor.id,
            text=text,
            signed_at=utcnow(),
            signed_text_sha256=sha256_text(text),
        )
        db.session.add(addendum)
        audit.record(
            actor,
            "note.addendum",
            patient_id=note.patient_id,
            obj=addendum,
            category=CATEGORY,
            detail=f"note={note.id}",
        )
    return addendum


# --- the clinician's worklist (home page) ---------------------------------------------------


def _worklist_rows(condition, order_by) -> list:
    """The first ``WORKLIST_LIMIT`` notes matching ``condition``, as plain rows of what the
    home page shows (ids, dates, the patient's name and MRN): never the note's text, which a
    draft may hold 200,000 characters of. The author / co-signer indexes lead the search."""
    return db.session.execute(
        select(
            Note.id.label("note_id"),
            Note.kind,
            Note.created_at,
            Note.signed_at,
            Encounter.id.label("encounter_id"),
            Encounter.occurred_at,
            Patient.id.label("patient_id"),
            Patient.family_name,
            Patient.given_name,
            Patient.mrn,
        )
        .join(Encounter, Encounter.id == Note.encounter_id)
        .join(Patient, Patient.id == Note.patient_id)
        .where(condition)
        .order_by(order_by, Note.id)
        .limit(WORKLIST_LIMIT)
    ).all()


def unsigned_notes_older_than(user_id: int, hours: int = UNSIGNED_AFTER_HOURS) -> list:
    """Drafts started more than ``hours`` ago that wait on the user, oldest first; reads only.

    Their own drafts, and the provider notes of encounters they are the provider of: a nurse
    may start the provider note that only the prescriber can sign. Two queries, each led by
    its own index (the author's, and the partial index of unsigned notes), merged here.
    """
    cutoff = utcnow() - timedelta(hours=hours)
    unsigned = Note.signed_at.is_(None) & (Note.created_at < cutoff)
    own = _worklist_rows((Note.author_id == user_id) & unsigned, Note.created_at)
    as_provider = _worklist_rows(
        (Encounter.provider_id == user_id)
        & (Note.kind == "provider")
        & (Note.author_id != user_id)
        & unsigned,
        Note.created_at,
    )
    rows = sorted([*own, *as_provider], key=lambda row: (row.created_at, row.note_id))
    return rows[:WORKLIST_LIMIT]


def notes_awaiting_cosignature(user_id: int) -> list:
    """Signed notes routed to the user for co-signature and not co-signed yet, oldest
    first; reads only."""
    return _worklist_rows(
        (Note.cosigner_id == user_id) & Note.cosigned_at.is_(None) & Note.signed_at.is_not(None),
        Note.signed_at,
    )


def worklist(actor, *, may_cosign: bool) -> dict:
    """The home page's lists, recorded in the audit trail when they show any patient: one
    event per patient shown (the patient's id, and the ids of their notes listed), in one
    batched write, so that "who saw this patient" finds the home page too."""
    unsigned = unsigned_notes_older_than(actor.id)
    cosign = notes_awaiting_cosignature(actor.id) if may_cosign else []
    shown: dict[int, list[int]] = {}
    for row in [*unsigned, *cosign]:
        shown.setdefault(row.patient_id, []).append(row.note_id)
    if shown:
        # Each list holds at most WORKLIST_LIMIT notes, so at most twice that many events.
        with use_case():
            audit.record_many(
                actor,
                "chart.worklist.view",
                [
                    {"patient_id": patient_id, "object_type": "notes", "detail": detail}
                    for patient_id, note_ids in shown.items()
                    for detail in _id_lists("notes=", note_ids)
                ],
                category=CATEGORY,
            )
    return {"unsigned_notes": unsigned, "cosign_notes": cosign}


def _id_lists(prefix: str, ids: list[int], limit: int = DETAIL_MAX_CHARS) -> list[str]:
    """``prefix`` and the ids, comma-separated, in as many strings of at most ``limit``
    characters as they need (an audit event's detail has a limit: never cut a list short)."""
    details, current = [], ""
    for text in map(str, ids):
        if current and len(current) + 1 + len(text) > limit:
            details.append(current)
            current = ""
        current = f"{current},{text}" if current else prefix + text
    return [*details, current] if current else details


# --- templates (chart.manage) ----------------------------------------------------------------


def list_templates() -> list[NoteTemplate]:
    """Every template, active ones first, by name."""
    return list(
        db.session.scalars(
            select(NoteTemplate).order_by(NoteTemplate.is_active.desc(), NoteTemplate.name)
        )
    )


def visit_type_names() -> dict[int, str]:
    """Appointment (visit) type id -> name, by name: what a template may be for."""
    return dict(
        db.session.execute(
            select(AppointmentType.id, AppointmentType.name).order_by(AppointmentType.name)
        ).all()
    )


def get_template_or_404(template_id: int) -> NoteTemplate:
    """The note template ``template_id``, or 404."""
    template = db.session.get(NoteTemplate, template_id)
    if template is None:
        raise NotFound()
    return template


def save_template(
    actor,
    template_id: int | None,
    *,
    name: str,
    appointment_type_id: int | None,
    note_kind: str,
    body: str,
) -> NoteTemplate:
    """Add a template (``template_id`` None) or change one; names are unique."""
    name = (name or "").strip()
    body = body or ""
    with use_case(conflict=Refused("Another template has that name.", "name")):
        if not name:
            raise Refused("Give the template a name.", "name")
        if note_kind not in NOTE_KINDS:
            raise Refused("Choose provider note or nursing note.", "note_kind")
        if (
            appointment_type_id is not None
            and db.session.get(AppointmentType, appointment_type_id) is None
        ):
            raise Refused("Choose a visit type from the list.", "appointment_type_id")
        if not body.strip():
            raise Refused("Write the template's text.", "body")
        if len(body) > TEMPLATE_MAX_CHARS:
            raise Refused(f"A template may hold at most {TEMPLATE_MAX_CHARS:,} characters.", "body")
        template = get_template_or_404(template_id) if template_id else NoteTemplate(is_active=True)
        template.name = name
        template.appointment_type_id = appointment_type_id
        template.note_kind = note_kind
        template.body = body
        db.session.add(template)
        db.session.flush()
        audit.record(
            actor,
            "note_template.save",
            obj=template,
            category=CATEGORY,
            detail=f"kind={note_kind} type={appointment_type_id or 'default'}",
        )
    return template


def set_template_active(actor, template_id: int, active: bool) -> NoteTemplate:
    """Activate a template (new notes start from it again) or deactivate it."""
    with use_case():
        template = get_template_or_404(template_id)
        template.is_active = active
        audit.record(
            actor,
            "note_template.activate" if active else "note_template.deactivate",
            obj=template,
            category=CATEGORY,
        )
    return template


# --- snippets --------------------------------------------------------------------------------


def snippets_for(user_id: int) -> dict[str, str]:
    """Trigger -> text for the editor: clinic-wide snippets, with the user's own winning."""
    rows = db.session.execute(
        select(NoteSnippet.trigger, NoteSnippet.body, NoteSnippet.owner_id)
        .where(or_(NoteSnippet.owner_id.is_(None), NoteSnippet.owner_id == user_id))
        .order_by(NoteSnippet.owner_id.is_not(None))
    ).all()
    expansions: dict[str, str] = {}
    for trigger, body, _owner in rows:
        expansions[trigger] = body  # own snippets come last and win
    return expansions


def list_snippets(user_id: int) -> tuple[list[NoteSnippet], list[NoteSnippet]]:
    """(the user's own snippets, the clinic-wide ones), each by trigger."""
    rows = list(
        db.session.scalars(
            select(NoteSnippet)
            .where(or_(NoteSnippet.owner_id.is_(None), NoteSnippet.owner_id == user_id))
            .order_by(NoteSnippet.trigger)
        )
    )
    return [s for s in rows if s.owner_id is not None], [s for s in rows if s.owner_id is None]


def get_snippet_for(actor, snippet_id: int) -> NoteSnippet:
    """A snippet the actor may change: their own, or a clinic-wide one with chart.manage.
    Anyone else's is answered as unknown (404)."""
    snippet = db.session.get(NoteSnippet, snippet_id)
    if snippet is None:
        raise NotFound()
    if snippet.owner_id is None and not actor.has_permission("chart.manage"):
        raise NotFound()
    if snippet.owner_id is not None and snippet.owner_id != actor.id:
        raise NotFound()
    return snippet


def save_snippet(
    actor, snippet_id: int | None, *, trigger: str, body: str, clinic_wide: bool = False
) -> NoteSnippet:
    """Add a snippet (own, or clinic-wide with chart.manage) or change one the actor may."""
    trigger = (trigger or "").strip()
    body = body or ""
    if not SNIPPET_TRIGGER.fullmatch(trigger):
        raise Refused(
            "A trigger is a dot followed by up to 31 letters or digits, e.g. .ros", "trigger"
        )
    if not body.strip():
        raise Refused("Write the text the trigger expands to.", "body")
    if len(body) > SNIPPET_MAX_CHARS:
        raise Refused(f"A snippet may hold at most {SNIPPET_MAX_CHARS:,} characters.", "body")
    with use_case(conflict=Refused(TRIGGER_TAKEN, "trigger")):
        if snippet_id:
            snippet = get_snippet_for(actor, snippet_id)
        else:
            if clinic_wide and not actor.has_permission("chart.manage"):
                raise NotAllowed("Only an administrator adds clinic-wide snippets.")
            if not clinic_wide and not actor.has_permission("chart.write"):
                raise NotAllowed("Only clinicians keep snippets of their own.")
            snippet = NoteSnippet(owner_id=None if clinic_wide else actor.id)
        snippet.trigger = trigger
        snippet.body = body
        db.session.add(snippet)
        db.session.flush()
        if snippet.owner_id is None:
            # SQLite and PostgreSQL let NULL owners repeat a trigger: check clinic-wide ones
            # here.
            clash = db.session.scalar(
                select(NoteSnippet.id).where(
                    NoteSnippet.owner_id.is_(None),
                    NoteSnippet.trigger == trigger,
                    NoteSnippet.id != snippet.id,
                )
            )
            if clash is not None:
                raise Refused(TRIGGER_TAKEN, "trigger")
        audit.record(
            actor,
            "note_snippet.save",
            obj=snippet,
            category=CATEGORY,
            detail="clinic-wide" if snippet.owner_id is None else "own",
        )
    return snippet


def delete_snippet(actor, snippet_id: int) -> None:
    """Delete a snippet the actor may change (their own, or a clinic-wide one as admin)."""
    with use_case():
        snippet = get_snippet_for(actor, snippet_id)
        audit.record(
            actor,
            "note_snippet.delete",
            obj=snippet,
            category=CATEGORY,
            detail="clinic-wide" if snippet.owner_id is None else "own",
        )
        db.session.delete(snippet)
