"""The staff calendar's data, ``/api/v1/calendar/``: the columns of one location (staff, chairs,
rooms) for up to 14 days and, on each, what it holds of each visit, written as JSON by
``booking.calendar`` in a fixed number of queries.

A person who also works at other sites is busy here while a visit there holds them: their column
shows that time as an ``elsewhere`` piece naming the other site (its public name) and nothing of
the visit, so the desk here sees them taken without learning who is seen there.
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
from booking.calendar import COLUMN_KINDS, GROUPS, MAX_CALENDAR_DAYS, calendar_json
from booking.models import AuditAction
from scheduling.models import Location, Resource


class CalendarQuery(DateRangeQuery):
    max_days = MAX_CALENDAR_DAYS
    location = serializers.SlugField(max_length=50, help_text="The location's slug.")
    by = serializers.ChoiceField(
        choices=sorted(COLUMN_KINDS),
        default="staff",
        help_text="A column per staff member, per chair, or per resource of every kind (`all`).",
    )
    resource = serializers.IntegerField(
        required=False,
        min_value=1,
        help_text="Only this resource's column (whatever `by` and `group` say): a week for one "
        "resource. Not an active resource of the location: 404.",
    )
    group = serializers.ChoiceField(
        choices=list(GROUPS),
        required=False,
        help_text="Only the columns of this group (whatever `by` says); the keys are in `groups`.",
    )


_RESOURCES = inline_serializer(
    "CalendarResource",
    {
        "id": serializers.IntegerField(),
        "title": serializers.CharField(help_text="The full name."),
        "kind": serializers.ChoiceField(choices=["staff", "chair", "room"]),
        "role": serializers.CharField(help_text="The staff role; empty for places."),
        "group": serializers.CharField(help_text="Its group's key (see `groups`)."),
        "groupTitle": serializers.CharField(),
        "lanes": serializers.IntegerField(help_text="How many visits it serves at once."),
    },
    many=True,
)
_GROUPS = inline_serializer(
    "CalendarGroup",
    {"key": serializers.CharField(), "title": serializers.CharField()},
    many=True,
)
_OTHER = inline_serializer(
    "CalendarOtherResource",
    {"id": serializers.IntegerField(), "title": serializers.CharField()},
)
_EVENTS = inline_serializer(
    "CalendarEvent",
    {
        "id": serializers.CharField(
            help_text="`<reference>/<resourceId>` for a visit, `…/before` or `…/after` for its "
            "turnover, `watch/<resourceId>/<n>` for lanes in use, `elsewhere/<allocation id>` "
            "for a person's time held by a visit at another site."
        ),
        "kind": serializers.ChoiceField(
            choices=["visit", "turnover", "watch", "elsewhere"],
            help_text="`elsewhere`: the column's person is at another site (the allocation's "
            "whole held time, turnover included); it carries only `id`, `kind`, `resourceIds`, "
            "`start`, `end` and `title`, never the visit, patient, type or status.",
        ),
        "visit": serializers.CharField(
            required=False, help_text="The appointment's reference (visits and turnover)."
        ),
        "resourceIds": serializers.ListField(
            child=serializers.IntegerField(), help_text="The one column it is drawn in."
        ),
        "start": serializers.CharField(
            help_text="Local wall-clock time, no offset: when this resource is needed, "
            "without its turnover."
        ),
        "end": serializers.CharField(help_text="Local wall-clock time, no offset."),
        "visitStart": serializers.CharField(required=False, help_text="The whole visit's start."),
        "visitEnd": serializers.CharField(required=False, help_text="The whole visit's end."),
        "title": serializers.CharField(
            help_text="Patient, type and session for a visit; `Turnover`; `2 of 3 chairs watched`; "
            "`At <other site's public name>`."
        ),
        "status": serializers.CharField(required=False, help_text="Its label is in `statuses`."),
        "state": serializers.CharField(
            required=False,
            help_text="`held` (for a waitlist offer), `tentative` (an online booking awaiting "
            "its e-mail), `needs_new_time` (flagged by a setup change), `arrived` (checked in), "
            "else the status.",
        ),
        "type": serializers.SlugField(required=False, help_text="Its name is in `types`."),
        "color": serializers.CharField(required=False),
        "series": serializers.CharField(
            required=False, allow_null=True, help_text='"Session k of n".'
        ),
        "tentative": serializers.BooleanField(
            required=False, help_text="A series session waiting for its review."
        ),
        "others": serializers.ListField(
            child=_OTHER, required=False, help_text="The visit's other resources."
        ),
        "lane": serializers.IntegerField(
            required=False, help_text="The lane it takes, from 0 (visits)."
        ),
        "lanes": serializers.IntegerField(required=False, help_text="The column's lanes."),
        "used": serializers.IntegerField(required=False, help_text="Lanes in use (watch)."),
        "editable": serializers.BooleanField(
            required=False, help_text="Booked or confirmed: the desk may move or cancel it."
        ),
    },
    many=True,
)


class CalendarData(APIView):
    """One location's calendar for up to 14 local dates: a column per active resource shown, and
    on each the part of every visit not cancelled that it holds, its turnover, for a resource
    with several lanes how many are in use, and for a person who also works at other sites
    their time held there (``elsewhere``: where, never whom or what).

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
                    "groups": _GROUPS,
                    "resources": _RESOURCES,
                    "events": _EVENTS,
                },
            ),
            400: ERROR,
            404: OpenApiResponse(
                ERROR, description="No such location, or not yours; no such resource there."
            ),
        },
    )
    def get(self, request: Request) -> HttpResponse:
        query = CalendarQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        location: Location = get_scoped(
            locations_for(request.user), slug=data["location"], is_active=True
        )
        resource_id = data.get("resource")
        if resource_id is not None:
            get_scoped(Resource.objects.at(location).filter(is_active=True), pk=resource_id)
        group = data.get("group")
        body = self.render_body(
            location=location,
            first_day=data["start"],
            last_day=data["end"],
            by=data["by"],
            resource_id=resource_id,
            group=group,
        )
        filters = {
            name: value
            for name, value in (("resource", resource_id), ("group", group))
            if value is not None
        }
        audit(
            request,
            AuditAction.VIEW,
            object_type="calendar",
            object_id=location.slug,
            location_id=location.pk,
            start=data["start"].isoformat(),
            end=data["end"].isoformat(),
            by=data["by"],
            **filters,
        )
        # Already JSON: a busy week is thousands of events, and building them as text where
        # the data is saves most of the time (bench/calendar.py).
        return HttpResponse(body, content_type="application/json")

    def render_body(
        self,
        *,
        location: Location,
        first_day: date,
        last_day: date,
        by: str,
        resource_id: int | None = None,
        group: str | None = None,
    ) -> str:
        return calendar_json(
            location=location,
            first_day=first_day,
            last_day=last_day,
            by=by,
            resource_id=resource_id,
            group=group,
        )
