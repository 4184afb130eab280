"""``/api/v1/feeds/<token>.ics``: a staff calendar feed (``booking.feeds``) as a calendar app
fetches it, with no session or header, only the secret URL.

An unknown, revoked or malformed token is the same 404 as any missing page. Fetches are counted
per client before the token is looked up, so guessing tokens is as slow as the limit makes it.
Like every answer under ``/api/v1/`` it is never stored by a cache on the way
(``config.caching``): a subscriber sees a change at its next fetch.
"""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_safe

from booking.access.audit import audit
from booking.feeds import FEED_FETCHES_PER_MINUTE, feed_ics, feed_resolve
from booking.models import AuditAction
from booking.throttle import client_key, rate_limit_hit


@require_safe
def calendar_feed(request: HttpRequest, token: str) -> HttpResponse:
    wait = rate_limit_hit(
        f"calendar-feed:{client_key(request)}", limit=FEED_FETCHES_PER_MINUTE, window=60
    )
    if wait is not None:
        response = HttpResponse(
            "Too many requests: try again later.", status=429, content_type="text/plain"
        )
        response["Retry-After"] = str(wait)
        return response
    feed = feed_resolve(token)
    if feed is None:
        raise Http404("No such feed.")
    body = feed_ics(feed)
    # Without the request: its path is the secret URL, which the audit log must not keep.
    audit(None, AuditAction.VIEW, feed, location_id=feed.location_id, feed=True)
    response = HttpResponse(body, content_type="text/calendar; charset=utf-8")
    response["Content-Disposition"] = 'inline; filename="calendar.ics"'
    response["X-Robots-Tag"] = "noindex"
    return response
