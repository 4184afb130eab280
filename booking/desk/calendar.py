"""The staff calendar page, ``/staff/calendar/``.

The page is a shell: the vendored EventCalendar (``static/vendor/event-calendar``) draws the
rows and ``chairside/calendar.js`` fills them from the data endpoint (``booking.api.calendar``),
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
from booking.calendar import COLUMN_KINDS, GROUPS
from booking.validators import EARLIEST_DATE, LATEST_DATE
from scheduling.models import Resource

# "day" and "week" are timelines (a row per resource), "columns" the week with a column per
# resource and day.
VIEWS = ("day", "week", "columns")
# The rows a timeline draws at once: the library's cost grows with the visits drawn, and a
# screen shows about this many rows anyway (bench/calendar_browser.py).
ROWS_PER_PAGE = 12


def _bad_request(request: HttpRequest, message: str) -> HttpResponse:
    return render(request, "staff/calendar.html", {"nav": "calendar", "error": message}, status=400)


def _choice(request: HttpRequest, name: str, allowed: object, default: str) -> str:
    value = request.GET.get(name, default)
    return value if value in allowed else default  # type: ignore[operator]


@staff_required(VIEW)
def calendar_page(request: HttpRequest) -> HttpResponse:
    """Day or week, by staff, chair or both, at one of the user's locations. The query string
    (``location``, ``date``, ``view``, ``by``, ``group``, ``resource``, ``page``) only chooses
    what is shown first, so a reload or a shared link shows the same; the page keeps it up to
    date as the user moves around. A ``date`` that is not a day from EARLIEST_DATE to
    LATEST_DATE, a ``group`` that is no group and a ``resource`` not serving the location are a
    400 naming the field."""
    locations = list(
        locations_for(request.user)
        .filter(is_active=True)
        .order_by("name")
        .values("id", "slug", "name", "timezone")
    )
    slugs = [location["slug"] for location in locations]
    chosen = request.GET.get("location", "")
    if chosen not in slugs:
        chosen = slugs[0] if slugs else ""
    by = _choice(request, "by", COLUMN_KINDS, "staff")
    view = _choice(request, "view", VIEWS, "week")
    here = next((loc for loc in locations if loc["slug"] == chosen), None)
    zone_name = here["timezone"] if here else "UTC"
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
    group = request.GET.get("group", "")
    if group and group not in GROUPS:
        return _bad_request(request, "The group must be one of: " + ", ".join(GROUPS) + ".")
    raw_resource = request.GET.get("resource", "")
    resource: int | None = None
    if raw_resource:
        if not raw_resource.isdigit() or here is None:
            return _bad_request(request, "The resource must be the number of a resource here.")
        resource = int(raw_resource)
        if not Resource.objects.at(here["id"]).filter(pk=resource).exists():
            return _bad_request(request, "The resource must be the number of a resource here.")
    raw_page = request.GET.get("page", "1")
    page = int(raw_page) if raw_page.isdigit() and int(raw_page) > 0 else 1
    config = {
        "location": chosen,
        "by": by,
        "view": view,
        "date": shown.isoformat(),
        "group": group,
        "resource": resource,
        "page": page,
        "rowsPerPage": ROWS_PER_PAGE,
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
        {
            "nav": "calendar",
            "locations": [{"slug": loc["slug"], "name": loc["name"]} for loc in locations],
            "chosen": chosen,
            "config": config,
            "groups": GROUPS,
        },
    )
