"""Who may sign controlled-substance prescriptions: EPCS logical access control
(21 CFR 1311.125) on top of the two-person rule of account changes (``_TwoPersonAct``).

- A prescriber's DEA number is recorded on their account by an administrator (not their
  own: another administrator records it), checked for form and check digit
  (``portal/auth/dea.py``); who set it and when is kept.
- An administrator proposes a grant (or a revoke) of the permission, confirming with a
  fresh code of their own; a second, different person approves it with two factors at that
  moment (password and a fresh code). The regulation asks that second person to be a DEA
  registrant, so the approver is an enabled prescriber with a DEA number on file and
  two-step sign-in, not the proposer, not the prescriber concerned, whose prescriber role
  and DEA number are a day old and were not given by the proposer (one administrator
  cannot make a "registrant" account and approve with it). The approver also confirms
  having verified that the registration and the State authorisation are current
  (1311.125(b)). Proposals lapse after a day, as the other two-person acts do.
- A revoke suspends the permission from the moment it is proposed (``may_sign_controlled``
  says no while one waits) and ends it when approved; a withdrawn or lapsed revoke lifts
  the suspension. Stopping a prescriber quickly is the safe direction; the second person
  still decides whether it is final.
- A grant ends at once, without a second person, when what it was granted for goes away:
  the DEA number is changed or removed, the account is disabled or loses the prescriber
  role. A fresh grant then takes two people again.

Every step is audited (``epcs.*`` and the two-person rule's events). ``may_sign_controlled``
is what the prescription signing step asks; ``portal/auth/signing.py`` confirms the factors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import exists, select, update

from portal.audit import services as audit
from portal.auth.dea import InvalidDeaNumber, check_dea_number, masked
from portal.auth.factors import confirm_factors
from portal.auth.models import AccountApproval, EpcsPermission, User, UserRole
from portal.auth.services import (
    ACCESS_DISABLED,
    APPROVAL_VALID_HOURS,
    NEW_ADMIN_HOURS,
    _approve,
    _propose,
    _refuse_a_dependent_approver,
    _TwoPersonAct,
    _withdraw,
    pending_approval,
    when_access_withdrawn,
)
from portal.extensions import db
from portal.timeutil import utcnow
from portal.transaction import Refused, use_case

EPCS_GRANT = "epcs_grant"  # AccountApproval.action
EPCS_REVOKE = "epcs_revoke"
KINDS = {"grant": EPCS_GRANT, "revoke": EPCS_REVOKE}

_GRANT_ACT = _TwoPersonAct(
    EPCS_GRANT, "epcs.grant", "grant of EPCS signing", "prescriber", "person"
)
_REVOKE_ACT = _TwoPersonAct(
    EPCS_REVOKE, "epcs.revoke", "revoke of EPCS signing", "prescriber", "person"
)
_ACTS = {EPCS_GRANT: _GRANT_ACT, EPCS_REVOKE: _REVOKE_ACT}


# --- the question the signing step asks ------------------------------------------------------


def _revoke_waiting(user_id: int):
    """SQL: an unlapsed revoke proposal waits for this account (it suspends the grant)."""
    return exists().where(
        AccountApproval.user_id == user_id,
        AccountApproval.action == EPCS_REVOKE,
        AccountApproval.decided_at.is_(None),
        AccountApproval.proposed_at >= utcnow() - timedelta(hours=APPROVAL_VALID_HOURS),
    )


def may_sign_controlled(user_id: int) -> bool:
    """Whether this account may sign a controlled-substance prescription now: enabled,
    a prescriber, two-step sign-in on, a DEA number on file, a current grant made for that
    very number, and no revoke waiting. One query."""
    return bool(
        db.session.scalar(
            select(User.id)
            .join(EpcsPermission, EpcsPermission.user_id == User.id)
            .where(
                User.id == user_id,
                User.is_enabled.is_(True),
                User.mfa_enabled.is_(True),
                User.dea_number.is_not(None),
                EpcsPermission.revoked_at.is_(None),
                EpcsPermission.dea_number == User.dea_number,
                exists().where(UserRole.user_id == User.id, UserRole.role == "prescriber"),
                ~_revoke_waiting(user_id),
            )
        )
    )


# --- what the pages show ---------------------------------------------------------------------


@dataclass
class EpcsStatus:
    """An account's EPCS state as the admin's page shows it."""

    current: EpcsPermission | None
    waiting: AccountApproval | None  # a grant or a revoke proposal, not lapsed
    past: list[EpcsPermission] = field(default_factory=list)
    allowed: bool = False

    @property
    def waiting_kind(self) -> str | None:
        if self.waiting is None:
            return None
        return "grant" if self.waiting.action == EPCS_GRANT else "revoke"


def current_permission(user_id: int) -> EpcsPermission | None:
    return db.session.scalar(
        select(EpcsPermission).where(
            EpcsPermission.user_id == user_id, EpcsPermission.revoked_at.is_(None)
        )
    )


def status_of(user_id: int) -> EpcsStatus:
    """The current grant, the proposal waiting (if any) and the grants that ended."""
    waiting = pending_approval(user_id, EPCS_GRANT) or pending_approval(user_id, EPCS_REVOKE)
    past = list(
        db.session.scalars(
            select(EpcsPermission)
            .where(EpcsPermission.user_id == user_id, EpcsPermission.revoked_at.is_not(None))
            .order_by(EpcsPermission.revoked_at.desc())
            .limit(10)
        )
    )
    return EpcsStatus(
        current=current_permission(user_id),
        waiting=waiting,
        past=past,
        allowed=may_sign_controlled(user_id),
    )


@dataclass
class WaitingProposal:
    """A proposal on the registrants' page, with whether the viewer may approve it."""

    approval: AccountApproval
    user: User
    kind: str  # "grant" / "revoke"
    proposer_name: str
    may_approve: bool
    why_not: str | None


def waiting_proposals(viewer_id: int) -> list[WaitingProposal]:
    """Every EPCS proposal waiting for a second person, oldest first, each saying whether
    ``viewer_id`` may approve it (and why not)."""
    approvals = list(
        db.session.scalars(
            select(AccountApproval)
            .where(
                AccountApproval.action.in_((EPCS_GRANT, EPCS_REVOKE)),
                AccountApproval.decided_at.is_(None),
                AccountApproval.proposed_at >= utcnow() - timedelta(hours=APPROVAL_VALID_HOURS),
            )
            .order_by(AccountApproval.proposed_at)
        )
    )
    viewer = db.session.get(User, viewer_id)
    not_registrant = _why_not_a_registrant(viewer)
    proposals = []
    for approval in approvals:
        user = db.session.get(User, approval.user_id)
        proposer = (
            db.session.get(User, approval.proposed_by_id) if approval.proposed_by_id else None
        )
        why = not_registrant
        if why is None and viewer_id == approval.proposed_by_id:
            why = "You proposed it."
        elif why is None and viewer_id == approval.user_id:
            why = "It is about your own account."
        elif why is None and viewer.dea_number_set_by_id == approval.proposed_by_id:
            why = "The proposer recorded your DEA number."
        proposals.append(
            WaitingProposal(
                approval=approval,
                user=user,
                kind="grant" if approval.action == EPCS_GRANT else "revoke",
                proposer_name=proposer.full_name if proposer else "—",
                may_approve=why is None,
                why_not=why,
            )
        )
    return proposals


# --- the DEA number ---------------------------------------------------------------------------


def _end_grant(actor, user: User, reason: str, approval_id: int | None = None) -> bool:
    """End the account's current grant now (a work function); whether there was one."""
    ended = db.session.execute(
        update(EpcsPermission)
        .where(EpcsPermission.user_id == user.id, EpcsPermission.revoked_at.is_(None))
        .values(
            revoked_at=utcnow(),
            revoked_by_id=actor.id,
            revoke_approval_id=approval_id,
            revoke_reason=reason,
        )
        .execution_options(synchronize_session=False)
    )
    if ended.rowcount:
        audit.record(actor, "epcs.revoked", obj=user, category="user accounts", detail=reason)
    return bool(ended.rowcount)


def _close_waiting(actor, user: User, why: str) -> None:
    """Withdraw any EPCS proposal waiting on the account (what it was about has changed)."""
    for action, act in _ACTS.items():
        approval = pending_approval(user.id, action)
        if approval is None:
            continue
        approval.decided_at = utcnow()
        approval.decided_by_id = actor.id
        approval.outcome = "withdrawn"
        audit.record(
            actor,
            f"{act.event}_withdrawn",
            obj=user,
            category="user accounts",
            detail=f"approval={approval.id} proposed_by={approval.proposed_by_id}; {why}",
        )


def set_dea_number(*, actor, user: User, number: str | None) -> tuple[str, ...]:
    """Record, change or remove (empty) the account's DEA number; the warnings to show.

    A change or a removal ends the current EPCS grant and withdraws a waiting proposal:
    the grant was approved for a registration someone verified, not for whatever number
    the account holds later. Refused for one's own account (like one's own roles).
    """
    number = (number or "").strip()
    if actor.id == user.id:
        raise Refused("Another administrator records your own DEA number.", field="dea_number")
    checked = None
    if number:
        try:
            checked = check_dea_number(number, user.full_name)
        except InvalidDeaNumber as error:
            raise Refused(str(error), field="dea_number") from error
    new = checked.number if checked else None
    with use_case():
        db.session.refresh(user, with_for_update=True)
        if new == user.dea_number:
            return checked.warnings if checked else ()
        before = user.dea_number
        user.dea_number = new
        user.dea_number_set_by_id = actor.id
        user.dea_number_set_at = utcnow()
        what = "removed" if new is None else ("recorded" if before is None else "changed")
        audit.record(
            actor,
            "user.dea_number_set",
            obj=user,
            category="user accounts",
            detail=f"{what}" + (f" {masked(new)}" if new else ""),
        )
        if before is not None:
            _end_grant(actor, user, f"DEA number {what}")
            _close_waiting(actor, user, f"DEA number {what}")
    return checked.warnings if checked else ()


# --- proposing, approving, withdrawing ----------------------------------------------------------


def _refuse_unless_may_be_granted(user: User) -> None:
    if not user.is_enabled:
        raise Refused("The account is disabled.")
    if "prescriber" not in user.roles:
        raise Refused("Only a prescriber signs controlled-substance prescriptions.")
    if not user.dea_number:
        raise Refused("Record their DEA number first.")
    if not user.mfa_enabled:
        raise Refused(
            "They must set up two-step sign-in first: signing a controlled prescription "
            "asks for a code from it."
        )


def propose(*, actor, user: User, kind: str, totp_code: str | None):
    """An administrator proposes a grant (``kind`` "grant") or a revoke ("revoke") of the
    account's permission to sign controlled prescriptions, confirming with a fresh code;
    a revoke suspends the permission at once (see the module)."""
    action = KINDS.get(kind)
    if action is None:
        raise Refused("Choose to grant or to revoke.")
    if not actor.has_permission("users.manage"):
        raise Refused("Only an administrator proposes a change of EPCS permission.")
    if actor.id == user.id and kind == "grant":
        raise Refused("Another administrator proposes a grant for your own account.")

    def check() -> None:
        has_grant = current_permission(user.id) is not None
        if kind == "grant":
            _refuse_unless_may_be_granted(user)
            if has_grant:
                raise Refused("They may already sign controlled prescriptions.")
        elif not has_grant:
            raise Refused("They have no permission to sign controlled prescriptions.")
        other = EPCS_REVOKE if kind == "grant" else EPCS_GRANT
        if pending_approval(user.id, other) is not None:
            raise Refused("Another EPCS proposal is waiting for this account: decide it first.")

    # A quick look before the code is spent: a proposal that cannot be made should not use
    # the proposer's code (the use case checks again on a fresh read).
    check()
    db.session.rollback()
    confirm_factors(
        actor.id, totp_code=totp_code, purpose=f"EPCS {kind} proposal", source=actor.source
    )
    return _propose(actor, user, _ACTS[action], check)


def _why_not_a_registrant(approver: User | None) -> str | None:
    """Why this account is not a DEA registrant who may approve (None when it is)."""
    if approver is None or not approver.is_enabled:
        return "Your account is not enabled."
    if "prescriber" not in approver.roles or not approver.dea_number:
        return "Only a prescriber with a DEA number on file (a DEA registrant) approves."
    if not approver.mfa_enabled:
        return "Set up two-step sign-in first."
    try:
        check_dea_number(approver.dea_number)
    except InvalidDeaNumber:
        return "Your DEA number on file is not valid: have an administrator correct it."
    return None


def _refuse_unless_registrant(actor, approval: AccountApproval) -> None:
    approver = db.session.get(User, actor.id)
    why = _why_not_a_registrant(approver)
    if why is not None:
        raise Refused(why)
    set_at: datetime | None = approver.dea_number_set_at
    if (
        approval.proposed_by_id is not None
        and approver.dea_number_set_by_id == approval.proposed_by_id
    ) or (set_at is not None and set_at > utcnow() - timedelta(hours=NEW_ADMIN_HOURS)):
        raise Refused(
            "Your DEA number was recorded less than a day ago or by the administrator who "
            "proposed this: another registrant must approve it."
        )


def approve(
    *,
    actor,
    user: User,
    kind: str,
    totp_code: str | None,
    password: str | None,
    verified: bool = False,
) -> None:
    """A DEA registrant approves a waiting grant or revoke with two factors (password and a
    fresh code); the change happens in the same transaction as the approval."""
    action = KINDS.get(kind)
    if action is None:
        raise Refused("Choose to grant or to revoke.")
    act = _ACTS[action]
    if kind == "grant" and not verified:
        raise Refused(
            "Confirm that you verified their DEA registration and State authorisation.",
            field="verified",
        )
    # Refusals that need no factors come first, so they do not spend the approver's code.
    approval = pending_approval(user.id, action)
    if approval is None:
        raise Refused(f"No {act.what} is waiting for approval (or it lapsed).")
    if actor.id == approval.proposed_by_id:
        raise Refused(f"A different person must approve the {act.what} you proposed.")
    if actor.id == user.id:
        raise Refused(f"Another person must approve a {act.what} of your own account.")
    _refuse_unless_registrant(actor, approval)
    _refuse_a_dependent_approver(approval, actor, act.approver_role)
    db.session.rollback()
    confirm_factors(
        actor.id,
        totp_code=totp_code,
        password=password,
        ask_password=True,
        purpose=f"EPCS {kind} approval",
        source=actor.source,
    )
    with use_case(conflict=Refused("That proposal was already decided: reload the page.")):
        waiting = pending_approval(user.id, action)
        if waiting is not None:
            _refuse_unless_registrant(actor, waiting)
        approved = _approve(actor, user, act)
        if kind == "grant":
            _refuse_unless_may_be_granted(user)
            db.session.add(
                EpcsPermission(
                    user_id=user.id,
                    dea_number=user.dea_number,
                    proposed_by_id=approved.proposed_by_id,
                    approved_by_id=actor.id,
                    grant_approval_id=approved.id,
                )
            )
            db.session.flush()  # two approvals racing meet the unique index here
            audit.record(
                actor,
                "epcs.granted",
                obj=user,
                category="user accounts",
                detail=f"approval={approved.id} proposed_by={approved.proposed_by_id} "
                f"dea={masked(user.dea_number)}; registration verified",
            )
        else:
            _end_grant(actor, user, "revoked", approval_id=approved.id)


def withdraw(*, actor, user: User, kind: str, totp_code: str | None) -> None:
    """Withdraw (the proposer) or decline (another administrator, a registrant) a waiting
    proposal, confirming with a fresh code: withdrawing a revoke gives the permission back."""
    action = KINDS.get(kind)
    if action is None:
        raise Refused("Choose to grant or to revoke.")
    if pending_approval(user.id, action) is None:
        raise Refused(f"No {_ACTS[action].what} is waiting for approval (or it lapsed).")
    db.session.rollback()
    confirm_factors(
        actor.id, totp_code=totp_code, purpose=f"EPCS {kind} withdrawal", source=actor.source
    )
    _withdraw(actor, user, _ACTS[action])


@when_access_withdrawn
def _end_grant_with_access(actor, user: User, reason: str, roles: frozenset[str]) -> None:
    """A disabled account, or one no longer a prescriber, keeps no grant: enabling it again
    or giving the role back must not quietly give back controlled-substance signing."""
    if reason != ACCESS_DISABLED and "prescriber" not in roles:
        return
    why = "account disabled" if reason == ACCESS_DISABLED else "prescriber role removed"
    _end_grant(actor, user, why)
    _close_waiting(actor, user, why)
