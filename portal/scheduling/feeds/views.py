"""Calendar feeds: the admins' page of every provider's feeds, a provider's own feed, and
the feed itself (public: the token in its address is the credential).

Thin views: load -> authorize (@require, or @public for the feed) -> call a service of
portal.scheduling.feeds.services -> render.
"""

from __future__ import annotations

from flask import Response, flash, redirect, request, url_for

from portal.auth.permissions import public, require
from portal.scheduling import bp
from portal.scheduling.feeds import services
from portal.scheduling.feeds.forms import CalendarFeedForm
from portal.scheduling.services import PROVIDER_ROLE, providers
from portal.transaction import Refused
from portal.web import current_actor as _actor
from portal.web import render


def _feed_form(formdata=True) -> CalendarFeedForm:
    form = CalendarFeedForm() if formdata else CalendarFeedForm(formdata=None)
    form.provider_id.choices = [(0, "Choose…")] + [(p.id, p.full_name) for p in providers()]
    return form


def _feeds_page(form: CalendarFeedForm, *, new_url: str | None = None, status: int = 200):
    return render(
        "scheduling/feeds/feeds.html",
        form=form,
        feeds=services.list_calendar_feeds(),
        provider_names={p.id: p.full_name for p in providers()},
        new_url=new_url,
        show_names=services.feeds_show_names(),
        status=status,
    )


def _feed_url(token: str) -> str:
    return url_for("scheduling.calendar_feed", token=token, _external=True)


@bp.get("/feeds")
@require("schedule.manage")
def calendar_feeds():
    """Providers' calendar feeds: create one (its URL is shown once) or revoke one."""
    return _feeds_page(_feed_form(formdata=False))


@bp.post("/feeds")
@require("schedule.manage")
def create_calendar_feed():
    """Create a feed; the page shows its secret URL this once."""
    form = _feed_form()
    if not form.validate():
        return _feeds_page(form, status=422)
    try:
        _, token = services.create_calendar_feed(_actor(), form.provider_id.data)
    except Refused as error:
        form.provider_id.errors.append(error.message)
        return _feeds_page(form, status=error.status)
    return _feeds_page(_feed_form(formdata=False), new_url=_feed_url(token))


@bp.post("/feeds/<int:feed_id>/revoke")
@require("schedule.manage")
def revoke_calendar_feed(feed_id: int):
    """Revoke a feed: its URL stops working at once."""
    services.revoke_calendar_feed(_actor(), feed_id)
    flash("Feed revoked: its address no longer works.", "success")
    return redirect(url_for("scheduling.calendar_feeds"), 303)


@bp.get("/feeds/<token>.ics")
@public
def calendar_feed(token: str):
    """A provider's schedule as iCalendar, for the token's holder; 404 for unknown/revoked."""
    body = services.calendar_feed_ics(token, request.remote_addr)
    return Response(body, mimetype="text/calendar", headers={"Content-Disposition": "inline"})


# A provider's own feed (self-service): the same feeds, limited to the signed-in provider.


def _my_feed_page(*, new_url: str | None = None, message: str | None = None, status=200):
    actor = _actor()
    return render(
        "scheduling/feeds/my_feed.html",
        is_provider=PROVIDER_ROLE in actor.roles,
        feeds=services.list_calendar_feeds(actor.id),
        show_names=services.feeds_show_names(),
        new_url=new_url,
        message=message,
        status=status,
    )


@bp.get("/my-feed")
@require("schedule.read")
def my_calendar_feed():
    """The signed-in provider's calendar feeds: subscribe, or revoke a leaked address."""
    return _my_feed_page()


@bp.post("/my-feed")
@require("schedule.write")
def create_my_calendar_feed():
    """Create a feed for the signed-in provider; its address is shown this once."""
    try:
        _, token = services.create_calendar_feed(_actor(), _actor().id)
    except Refused:
        return _my_feed_page(message="Only providers have a calendar feed.", status=422)
    return _my_feed_page(new_url=_feed_url(token))


@bp.post("/my-feed/<int:feed_id>/revoke")
@require("schedule.write")
def revoke_my_calendar_feed(feed_id: int):
    """Revoke one of the signed-in provider's own feeds."""
    services.revoke_calendar_feed(_actor(), feed_id, own_only=True)
    flash("Feed revoked: its address no longer works.", "success")
    return redirect(url_for("scheduling.my_calendar_feed"), 303)
