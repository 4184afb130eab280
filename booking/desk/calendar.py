"""The staff calendar page, ``/staff/calendar/``.

The page is a shell: the vendored EventCalendar (``static/vendor/event-calendar``) draws the
columns and ``chairside/calendar.js`` fills them from the data endpoint (``booking.api.calendar``),
then moves, cancels and books through the staff appointments API, so those operations exist
once, in the services.
"""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from booking.access.decorators import staff_required
from booking.access.roles import BOOK, CHANGE, VIEW, is_prescriber
from booking.access.scoping import locations_for
from booking.calendar import COLUMN_KINDS
from booking.validators import EARLIEST_DATE, LATEST_DATE


def _bad_request(request: HttpRequest, message: str) -> HttpResponse:
    return render(request, "staff/calendar.html", {"nav": "calendar", "error": message}, status=400)


@staff_required(VIEW)
def calendar_page(request: HttpRequest) -> HttpResponse:
    """Day or week, by staff or by chair, at one of the user's locations. The query string
    (``location``, ``date``, ``view``, ``by``) only chooses what is shown first; a ``date`` that
    is not a day from EARLIEST_DATE to LATEST_DATE is a 400, as on the board."""
    locations = list(
        locations_for(request.user)
        .filter(is_active=True)
        .order_by("name")
        .values("slug", "name", "timezone")
    )
    slugs = [location["slug"] for location in locations]
    chosen = request.GET.get("location", "")
    if chosen not in slugs:
        chosen = slugs[0] if slugs else ""
    by = request.GET.get("by", "staff")
    if by not in COLUMN_KINDS:
        by = "staff"
    view = request.GET.get("view", "week")
    if view not in ("day", "week"):
        view = "week"
    zone_name = next((loc["timezone"] for loc in locations if loc["slug"] == chosen), "UTC")
    raw_date = request.GET.get("date", "")
    if not raw_date:
        # "Today" is the clinic's today, not the server's.
        shown = timezone.now().astimezone(ZoneInfo(zone_name)).date()
    else:
        try:
            shown = date.fromisoformat(raw_date)
        except ValueError:
            return _bad_request(request, "The date must look like 2026-12-01.")
        if not EARLIEST_DATE <= shown <= LATEST_DATE:
            return _bad_request(
                request,
                f"The date must be between {EARLIEST_DATE.isoformat()} and "
                f"{LATEST_DATE.isoformat()}.",
            )
    config = {
        "location": chosen,
        "by": by,
        "view": view,
        "date": shown.isoformat(),
        "dataUrl": reverse("api-calendar"),
        # The staff appointments API: the page adds "<reference>/reschedule/" and the like.
        "appointmentsUrl": reverse("api-appointments"),
        "patientsUrl": reverse("api-patients"),
        "detailUrl": reverse("staff-appointment", args=["REFERENCE"]),
        "canChange": request.user.has_perm(CHANGE),
        "canBook": request.user.has_perm(BOOK),
        # A prescriber may set the age and spacing rules aside, with a reason.
        "canOverride": is_prescriber(request.user),
    }
    return render(
        request,
        "staff/calendar.html",
        {"nav": "calendar", "locations": locations, "chosen": chosen, "config": config},
    )
