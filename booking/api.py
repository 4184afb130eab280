"""Public API v1: locations, appointment types and availability (DESIGN §4).

Views translate HTTP to one selector or service call; errors take the shape set in
``config.api``.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from django.utils import timezone
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import generics, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from booking.selectors import available_slots
from scheduling.models import AppointmentType, Location

MAX_RANGE_DAYS = 62
# Dates outside this span are refused rather than searched: nothing is bookable there, and
# the bound keeps date arithmetic far from datetime's limits.
EARLIEST_DATE = date(2000, 1, 1)
LATEST_DATE = date(2100, 12, 31)


class LocationSerializer(serializers.ModelSerializer[Location]):
    name = serializers.CharField(source="public_name")

    class Meta:
        model = Location
        fields = ["slug", "name", "timezone"]


class AppointmentTypeSerializer(serializers.ModelSerializer[AppointmentType]):
    name = serializers.CharField(source="public_name")

    class Meta:
        model = AppointmentType
        fields = ["slug", "name", "duration_minutes", "bookable_online", "needs_approval"]


class LocationList(generics.ListAPIView[Location]):
    """Active clinic locations."""

    serializer_class = LocationSerializer
    queryset = Location.objects.filter(is_active=True).order_by("slug")


class LocationQuery(serializers.Serializer[Any]):
    location = serializers.SlugField(max_length=50)

    def validate_location(self, value: str) -> Location:
        location = Location.objects.filter(slug=value, is_active=True).first()
        if location is None:
            raise serializers.ValidationError("Unknown location.")
        return location


class AppointmentTypeList(generics.ListAPIView[AppointmentType]):
    """Appointment types offered at one location, under their neutral public names."""

    serializer_class = AppointmentTypeSerializer

    @extend_schema(parameters=[LocationQuery])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        query = LocationQuery(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        return AppointmentType.objects.filter(
            location=query.validated_data["location"], is_active=True
        ).order_by("slug")


class AvailabilityQuery(LocationQuery):
    appointment_type = serializers.SlugField(max_length=50)
    start = serializers.DateField(input_formats=["%Y-%m-%d"], help_text="First local date.")
    end = serializers.DateField(input_formats=["%Y-%m-%d"], help_text="Last local date, inclusive.")

    def validate_start(self, value: date) -> date:
        return _bounded(value)

    def validate_end(self, value: date) -> date:
        return _bounded(value)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["end"] < attrs["start"]:
            raise serializers.ValidationError({"end": "Must not be before start."})
        if (attrs["end"] - attrs["start"]).days + 1 > MAX_RANGE_DAYS:
            raise serializers.ValidationError(
                {"end": f"A range covers at most {MAX_RANGE_DAYS} days."}
            )
        appointment_type = (
            AppointmentType.objects.select_related("location")
            .filter(
                location=attrs["location"],
                slug=attrs["appointment_type"],
                is_active=True,
                bookable_online=True,
            )
            .first()
        )
        if appointment_type is None:
            raise serializers.ValidationError(
                {"appointment_type": "No appointment type by that name is bookable online here."}
            )
        attrs["appointment_type"] = appointment_type
        return attrs


def _bounded(value: date) -> date:
    if not EARLIEST_DATE <= value <= LATEST_DATE:
        raise serializers.ValidationError(
            f"Must be between {EARLIEST_DATE.isoformat()} and {LATEST_DATE.isoformat()}."
        )
    return value


class SlotSerializer(serializers.Serializer[Any]):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()


class Availability(APIView):
    """Free visit times on the local dates ``start`` to ``end`` (inclusive, at most 62 days).

    Times carry the clinic's UTC offset; ``timezone`` is its IANA zone.
    """

    @extend_schema(
        parameters=[AvailabilityQuery],
        responses=inline_serializer(
            "AvailabilityResponse",
            {"timezone": serializers.CharField(), "slots": SlotSerializer(many=True)},
        ),
    )
    def get(self, request: Request) -> Response:
        query = AvailabilityQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        appointment_type: AppointmentType = query.validated_data["appointment_type"]
        zone = appointment_type.location.zone
        slots = available_slots(
            appointment_type=appointment_type,
            first_day=query.validated_data["start"],
            last_day=query.validated_data["end"],
            now=timezone.now(),
        )
        return Response(
            {
                "timezone": appointment_type.location.timezone,
                "slots": [
                    {
                        "start": start.astimezone(zone).isoformat(),
                        "end": end.astimezone(zone).isoformat(),
                    }
                    for start, end in slots
                ],
            }
        )
