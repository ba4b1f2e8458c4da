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
from portal.scheduling.feeds.forms import MyCalendarFeedForm
from portal.scheduling.services import PROVIDER_ROLE
from portal.transaction import Refused
from portal.web import attach_error, render
from portal.web import current_actor as _actor


def _feeds_page():
    feeds = services.list_calendar_feeds()
    return render(
        "scheduling/feeds/feeds.html",
        feeds=feeds,
        provider_names=services.feed_owner_names(feeds),
        show_names=services.feeds_show_names(),
    )


def _feed_url(token: str) -> str:
    return url_for("scheduling.calendar_feed", token=token, _external=True)


@bp.get("/feeds")
@require("schedule.manage")
def calendar_feeds():
    """Providers' calendar feeds, to revoke one. Creating a feed is the provider's own act
    (My calendar feed): an administrator never holds a feed's address."""
    return _feeds_page()


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


def _my_feed_page(form: MyCalendarFeedForm, *, new_url: str | None = None, status=200):
    actor = _actor()
    return render(
        "scheduling/feeds/my_feed.html",
        form=form,
        is_provider=PROVIDER_ROLE in actor.roles,
        feeds=services.list_calendar_feeds(actor.id),
        show_names=services.feeds_show_names(),
        new_url=new_url,
        status=status,
    )


@bp.get("/my-feed")
@require("schedule.read")
def my_calendar_feed():
    """The signed-in provider's calendar feeds: subscribe, or revoke a leaked address."""
    return _my_feed_page(MyCalendarFeedForm(formdata=None))


@bp.post("/my-feed")
@require("schedule.write")
def create_my_calendar_feed():
    """Create a feed of the signed-in provider's own schedule (with patients' names only if
    they ask and the clinic allows); its address is shown this once."""
    form = MyCalendarFeedForm()
    if not form.validate():
        return _my_feed_page(form, status=400)
    try:
        _, token = services.create_calendar_feed(_actor(), shows_names=form.shows_names.data)
    except Refused as error:
        attach_error(form, error)
        return _my_feed_page(form, status=error.status)
    return _my_feed_page(MyCalendarFeedForm(formdata=None), new_url=_feed_url(token))


@bp.post("/my-feed/<int:feed_id>/revoke")
@require("schedule.write")
def revoke_my_calendar_feed(feed_id: int):
    """Revoke one of the signed-in provider's own feeds."""
    services.revoke_calendar_feed(_actor(), feed_id, own_only=True)
    flash("Feed revoked: its address no longer works.", "success")
    return redirect(url_for("scheduling.my_calendar_feed"), 303)
