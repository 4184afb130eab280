"""The staff calendar's data, ``/api/v1/calendar/``: the columns and visits of one location for
up to 14 days, written as JSON by ``booking.calendar`` in a fixed number of queries.
"""

from __future__ import annotations

from datetime import date

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.views import APIView

from booking.access.audit import audit
from booking.access.scoping import get_scoped, locations_for
from booking.api.permissions import MaySeeCalendar
from booking.api.toolkit import ERROR, DateRangeQuery
from booking.calendar import COLUMN_KINDS, MAX_CALENDAR_DAYS, calendar_json
from booking.models import AuditAction
from scheduling.models import Location


class CalendarQuery(DateRangeQuery):
    max_days = MAX_CALENDAR_DAYS
    location = serializers.SlugField(max_length=50, help_text="The location's slug.")
    by = serializers.ChoiceField(
        choices=sorted(COLUMN_KINDS), default="staff", help_text="A column per staff or chair."
    )


_RESOURCES = inline_serializer(
    "CalendarResource",
    {"id": serializers.IntegerField(), "title": serializers.CharField()},
    many=True,
)
_EVENTS = inline_serializer(
    "CalendarEvent",
    {
        "id": serializers.CharField(help_text="The appointment's reference."),
        "resourceIds": serializers.ListField(child=serializers.IntegerField()),
        "start": serializers.CharField(help_text="Local wall-clock time, no offset."),
        "end": serializers.CharField(help_text="Local wall-clock time, no offset."),
        "title": serializers.CharField(help_text="Patient, type and session, for the grid."),
        "status": serializers.CharField(help_text="Its label is in `statuses`."),
        "type": serializers.SlugField(help_text="Its name is in `types`."),
        "series": serializers.CharField(allow_null=True, help_text='"Session k of n".'),
        "tentative": serializers.BooleanField(),
        "color": serializers.CharField(),
    },
    many=True,
)


class CalendarData(APIView):
    """One location's calendar for up to 14 local dates: a column per active staff member or
    chair, and every visit not cancelled on those columns.

    Times are the clinic's wall-clock time without an offset; ``offsets`` gives the UTC offset
    in force from each instant (``from``, UTC; null for the start of the window), so a
    wall-clock time can be turned back into an instant on a day the clocks change.
    """

    permission_classes = [MaySeeCalendar]

    @extend_schema(
        parameters=[CalendarQuery],
        responses={
            200: inline_serializer(
                "Calendar",
                {
                    "timezone": serializers.CharField(help_text="The clinic's IANA zone."),
                    "offsets": serializers.ListField(child=serializers.DictField()),
                    "types": serializers.ListField(child=serializers.DictField()),
                    "statuses": serializers.DictField(
                        child=serializers.CharField(), help_text="Status code to its label."
                    ),
                    "resources": _RESOURCES,
                    "events": _EVENTS,
                },
            ),
            400: ERROR,
            404: OpenApiResponse(ERROR, description="No such location, or not yours."),
        },
    )
    def get(self, request: Request) -> HttpResponse:
        query = CalendarQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        location: Location = get_scoped(
            locations_for(request.user), slug=data["location"], is_active=True
        )
        body = self.render_body(
            location=location, first_day=data["start"], last_day=data["end"], by=data["by"]
        )
        audit(
            request,
            AuditAction.VIEW,
            object_type="calendar",
            object_id=location.slug,
            location_id=location.pk,
            start=data["start"].isoformat(),
            end=data["end"].isoformat(),
            by=data["by"],
        )
        # Already JSON: a busy week is thousands of events, and building them as text where
        # the data is saves most of the time (bench/calendar.py).
        return HttpResponse(body, content_type="application/json")

    def render_body(self, *, location: Location, first_day: date, last_day: date, by: str) -> str:
        return calendar_json(location=location, first_day=first_day, last_day=last_day, by=by)
