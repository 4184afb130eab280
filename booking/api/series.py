"""Staff API for infusion series (DESIGN §4, ``/api/v1/series/``): propose a schedule from a
treatment plan, book it all or nothing, read it, and change it (move one session, cancel the
rest, hold, resume, the prescriber's review).

Staff sign in (session). Proposing, booking and changing a series need ``booking.add_series``,
reading one ``booking.view_series``; the review, and allowing a session outside its protocol's
spacing, are the prescriber's. Every read and write is recorded in the audit log. Every time is
ISO 8601 with the clinic's offset. Errors take the shape set in ``config.api``: a refused
session of a booking is named by its position in ``starts`` (``"starts.3"`` is session 4).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, cast
from zoneinfo import ZoneInfo

from django.db.models import Prefetch, QuerySet
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from booking.access.audit import audit
from booking.access.scoping import appointments_for, plans_for, series_for
from booking.api.permissions import ModelPermissions, Prescribes
from booking.api.toolkit import (
    ERROR,
    AwareDateTime,
    ScopedPrimaryKey,
    StrictBoolean,
    StrictSerializer,
    Text,
)
from booking.eligibility import MAX_SESSIONS_AUTHORISED
from booking.models import (
    Appointment,
    AppointmentStatus,
    AuditAction,
    Series,
    SeriesStatus,
    TreatmentPlan,
)
from booking.series.changes import (
    series_cancel_rest,
    series_hold,
    series_resume,
    series_review_confirm,
    series_session_reschedule,
)
from booking.series.services import Proposal, SeriesPreferences, series_book, series_propose
from booking.validators import EARLIEST_DATE, LATEST_DATE


class SessionSlotSerializer(serializers.Serializer[Any]):
    index = serializers.IntegerField(help_text="Session number, from 1.")
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()


class ProposalSerializer(serializers.Serializer[Any]):
    sessions = SessionSlotSerializer(many=True, help_text="The sessions placed, in order.")
    missing = serializers.ListField(
        child=serializers.IntegerField(), help_text="Sessions that could not be placed."
    )
    alternatives = serializers.DictField(
        child=serializers.ListField(child=serializers.DateTimeField()),
        help_text="For each missing session (by number), other starts, best first.",
    )
    later_first_day = serializers.DateField(
        allow_null=True,
        help_text="When sessions are missing: the first later day from which the whole series "
        "fits; null otherwise.",
    )
    later_sessions = SessionSlotSerializer(
        many=True, help_text="The schedule from `later_first_day`."
    )
    time_of_day = serializers.CharField(
        allow_null=True, help_text="HH:MM, the local time the schedule keeps to, if one."
    )


class SessionSerializer(serializers.Serializer[Any]):
    reference = serializers.CharField()
    index = serializers.IntegerField(help_text="Session number, from 1.")
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    # The codes alone: the public booking answer lists the same statuses with their labels, and
    # one choice set in two components leaves the schema guessing a name for its enum.
    status = serializers.ChoiceField(choices=AppointmentStatus.values)
    tentative = serializers.BooleanField(
        help_text="Waits for the prescriber's review after the protocol's review session."
    )


class SeriesSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    plan = serializers.IntegerField()
    patient = serializers.IntegerField()
    protocol = serializers.SlugField()
    status = serializers.ChoiceField(choices=SeriesStatus.choices)
    hold_reason = serializers.CharField()
    held_at = serializers.DateTimeField(allow_null=True)
    timezone = serializers.CharField(help_text="The clinic's IANA zone.")
    sessions = SessionSerializer(many=True, help_text="Every session, cancelled ones included.")


def _slot(index: int, start: datetime, end: datetime, zone: ZoneInfo) -> dict[str, Any]:
    return {
        "index": index,
        "start": start.astimezone(zone).isoformat(),
        "end": end.astimezone(zone).isoformat(),
    }


def proposal_body(proposal: Proposal, zone: ZoneInfo) -> dict[str, Any]:
    return {
        "sessions": [_slot(n, start, end, zone) for n, start, end in proposal.sessions],
        "missing": proposal.missing,
        "alternatives": {
            str(n): [start.astimezone(zone).isoformat() for start in starts]
            for n, starts in proposal.alternatives.items()
        },
        "later_first_day": None
        if proposal.later_first_day is None
        else proposal.later_first_day.isoformat(),
        "later_sessions": [_slot(n, start, end, zone) for n, start, end in proposal.later_sessions],
        "time_of_day": None
        if proposal.time_of_day is None
        else proposal.time_of_day.strftime("%H:%M"),
    }


def _series_queryset(user: Any) -> QuerySet[Series]:
    # Two queries whatever the number of sessions: the series with its place, then its sessions.
    return (
        series_for(user)
        .select_related("plan", "protocol__appointment_type__location")
        .prefetch_related(
            Prefetch("sessions", queryset=Appointment.objects.order_by("series_index", "start"))
        )
    )


def series_body(series: Series) -> dict[str, Any]:
    location = series.protocol.appointment_type.location
    zone = location.zone
    return {
        "id": series.pk,
        "plan": series.plan_id,
        "patient": series.plan.patient_id,
        "protocol": series.protocol.slug,
        "status": series.status,
        "hold_reason": series.hold_reason,
        "held_at": None if series.held_at is None else series.held_at.astimezone(zone).isoformat(),
        "timezone": location.timezone,
        "sessions": [
            {
                "reference": session.reference,
                **_slot(session.series_index or 0, session.start, session.end, zone),
                "status": session.status,
                "tentative": session.tentative,
            }
            for session in series.sessions.all()
        ],
    }


def _audit(request: Request, action: str, obj: Series | TreatmentPlan, **detail: Any) -> None:
    """One audit event for a series (or the plan a proposal reads), at its protocol's location.
    DRF's Request wraps Django's HttpRequest and proxies the attributes audit() reads."""
    location_id = obj.protocol.appointment_type.location_id
    audit(cast(HttpRequest, request), action, obj, location_id=location_id, **detail)


def _series_response(
    request: Request, pk: int, code: int = status.HTTP_200_OK, **change: Any
) -> Response:
    """The series as it now stands, after the change ``change`` describes (audited)."""
    series = _series_queryset(request.user).get(pk=pk)
    action = AuditAction.CREATE if code == status.HTTP_201_CREATED else AuditAction.UPDATE
    _audit(request, action, series, **change)
    return Response(series_body(series), status=code)


# --- Input ---------------------------------------------------------------------------------------


def _plan_field() -> ScopedPrimaryKey:
    return ScopedPrimaryKey(
        queryset=TreatmentPlan.objects.all(),
        scope=plans_for,
        related=("patient", "protocol__appointment_type__location"),
        help_text="The treatment plan's id; it must be the patient's plan in force.",
    )


class NewProposal(StrictSerializer):
    plan = _plan_field()
    first_day = serializers.DateField(
        input_formats=["%Y-%m-%d"], help_text="YYYY-MM-DD, the clinic's calendar."
    )
    weekdays = serializers.ListField(
        child=serializers.IntegerField(min_value=0, max_value=6),
        allow_empty=False,
        max_length=7,
        required=False,
        help_text="Days of the week the patient can come, Monday=0. Default: every day the "
        "protocol allows.",
    )
    time_of_day = serializers.TimeField(
        input_formats=["%H:%M"],
        required=False,
        help_text="HH:MM local. Default: the time most sessions can keep.",
    )

    def validate_first_day(self, value: date) -> date:
        if not EARLIEST_DATE <= value <= LATEST_DATE:
            raise serializers.ValidationError(
                f"Must be between {EARLIEST_DATE.isoformat()} and {LATEST_DATE.isoformat()}."
            )
        return value


class NewSeries(StrictSerializer):
    plan = _plan_field()
    starts = serializers.ListField(
        child=AwareDateTime(),
        allow_empty=False,
        max_length=MAX_SESSIONS_AUTHORISED,
        help_text="Every session's start, in order, e.g. a proposal's `sessions[].start`.",
    )


class HoldInput(StrictSerializer):
    reason = Text(max_length=500)


class CancelRestInput(StrictSerializer):
    from_index = serializers.IntegerField(
        min_value=1, help_text="The first session to cancel; later ones go too."
    )
    reason = Text(max_length=500)


class ResumeInput(StrictSerializer):
    override_reason = Text(
        max_length=500,
        required=False,
        default="",
        help_text="A prescriber's reason to set aside the age or spacing rules for a session.",
    )


class RescheduleInput(StrictSerializer):
    start = AwareDateTime()
    shift_later = StrictBoolean(
        required=False,
        default=False,
        help_text="Move the later sessions by the same number of days, at their own times.",
    )
    override_reason = Text(
        max_length=500,
        required=False,
        default="",
        help_text="A prescriber's reason to allow a time outside the protocol's spacing.",
    )


# --- Views ---------------------------------------------------------------------------------------


_FORBIDDEN = OpenApiResponse(ERROR, "Not signed in, or not allowed.")
_NOT_FOUND = OpenApiResponse(ERROR, "No such series.")


class ProposalCreate(APIView):
    """Propose a whole schedule for a plan's series from a first day. When a session cannot be
    placed, `missing` names it, with `alternatives` and the first later day that fits all."""

    permission_classes = [IsAuthenticated, ModelPermissions]
    queryset = Series.objects.all()

    @extend_schema(
        operation_id="series_proposals_create",
        request=NewProposal,
        responses={
            200: ProposalSerializer,
            400: OpenApiResponse(ERROR, "Bad input; `error.fields` names each field."),
            403: _FORBIDDEN,
            422: OpenApiResponse(
                ERROR,
                "`not_eligible` (field `patient`: no approval in force; `plan`: replaced) or "
                "`policy_violation` (no schedule keeps the spacing).",
            ),
        },
    )
    def post(self, request: Request) -> Response:
        incoming = NewProposal(data=request.data, context={"request": request})
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        plan = data["plan"]
        weekdays = data.get("weekdays")
        proposal = series_propose(
            plan=plan,
            first_day=data["first_day"],
            preferences=SeriesPreferences(
                weekdays=None if weekdays is None else frozenset(weekdays),
                time_of_day=data.get("time_of_day"),
            ),
            source="staff",
            now=timezone.now(),
        )
        _audit(request, AuditAction.VIEW, plan, step="series_proposal")
        return Response(proposal_body(proposal, plan.protocol.appointment_type.location.zone))


class SeriesCreate(APIView):
    """Book every session of a plan's series, all or nothing."""

    permission_classes = [IsAuthenticated, ModelPermissions]
    queryset = Series.objects.all()

    @extend_schema(
        operation_id="series_create",
        request=NewSeries,
        responses={
            201: SeriesSerializer,
            400: OpenApiResponse(ERROR, "Bad input, e.g. a time without its offset."),
            403: _FORBIDDEN,
            409: OpenApiResponse(
                ERROR, "`slot_taken` or `patient_busy`; `error.fields` names `starts.<n>`."
            ),
            422: OpenApiResponse(
                ERROR,
                "`not_eligible` (field `patient`: no approval in force) or `policy_violation` "
                "(spacing, number of sessions).",
            ),
        },
    )
    def post(self, request: Request) -> Response:
        incoming = NewSeries(data=request.data, context={"request": request})
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        series = series_book(
            plan=data["plan"], starts=data["starts"], source="staff", now=timezone.now()
        )
        return _series_response(request, series.pk, status.HTTP_201_CREATED, step="book")


class SeriesDetail(APIView):
    """A series with every session."""

    permission_classes = [IsAuthenticated, ModelPermissions]
    queryset = Series.objects.all()

    @extend_schema(
        operation_id="series_retrieve",
        responses={200: SeriesSerializer, 403: _FORBIDDEN, 404: _NOT_FOUND},
    )
    def get(self, request: Request, pk: int) -> Response:
        series = get_object_or_404(_series_queryset(request.user), pk=pk)
        _audit(request, AuditAction.VIEW, series)
        return Response(series_body(series))


class SeriesHold(APIView):
    """Put the sessions still to come on hold: kept, reminders stopped, chairs released unless
    the clinic keeps them. Holding a held series again changes nothing."""

    permission_classes = [IsAuthenticated, ModelPermissions]
    queryset = Series.objects.all()

    @extend_schema(
        operation_id="series_hold",
        request=HoldInput,
        responses={
            200: SeriesSerializer,
            400: OpenApiResponse(ERROR, "No reason given."),
            403: _FORBIDDEN,
            404: _NOT_FOUND,
            409: OpenApiResponse(ERROR, "`invalid_transition`: cancelled or completed."),
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        series = get_object_or_404(series_for(request.user), pk=pk)
        incoming = HoldInput(data=request.data)
        incoming.is_valid(raise_exception=True)
        series_hold(series=series, reason=incoming.validated_data["reason"], now=timezone.now())
        return _series_response(request, series.pk, step="hold")


class SeriesResume(APIView):
    """Bring every held session back at its time, or none: a session whose time was taken or
    has passed is named (409), to be given a new time first; one the clinical rules refuse
    (no plan in force, age, spacing) is named with the rule (422). A prescriber may set the age
    and spacing rules aside with `override_reason` (recorded)."""

    permission_classes = [IsAuthenticated, ModelPermissions]
    queryset = Series.objects.all()

    @extend_schema(
        operation_id="series_resume",
        request=ResumeInput,
        responses={
            200: SeriesSerializer,
            400: OpenApiResponse(ERROR, "Bad input: a body that is not JSON, a reason too long."),
            403: _FORBIDDEN,
            404: _NOT_FOUND,
            409: OpenApiResponse(
                ERROR,
                "`slot_taken` naming the sessions that cannot come back, or "
                "`invalid_transition` when the series is not on hold.",
            ),
            422: OpenApiResponse(ERROR, "`not_eligible` naming the session and the rule."),
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        series = get_object_or_404(series_for(request.user), pk=pk)
        incoming = ResumeInput(data=request.data)
        incoming.is_valid(raise_exception=True)
        series_resume(
            series=series,
            by=request.user,
            override_reason=incoming.validated_data["override_reason"],
            now=timezone.now(),
        )
        return _series_response(request, series.pk, step="resume")


class SeriesCancelRest(APIView):
    """Cancel every session from `from_index` on that is still to come. Cancelling twice is
    harmless; with nothing left to come the series is cancelled."""

    permission_classes = [IsAuthenticated, ModelPermissions]
    queryset = Series.objects.all()

    @extend_schema(
        operation_id="series_cancel_rest",
        request=CancelRestInput,
        responses={200: SeriesSerializer, 400: ERROR, 403: _FORBIDDEN, 404: _NOT_FOUND},
    )
    def post(self, request: Request, pk: int) -> Response:
        series = get_object_or_404(series_for(request.user), pk=pk)
        incoming = CancelRestInput(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        series_cancel_rest(
            series=series, from_index=data["from_index"], reason=data["reason"], now=timezone.now()
        )
        return _series_response(
            request, series.pk, step="cancel_rest", from_index=data["from_index"]
        )


class SeriesReview(APIView):
    """The prescriber's review after the protocol's review session (prescribers only): the
    later sessions stop being tentative."""

    permission_classes = [IsAuthenticated, Prescribes]

    @extend_schema(
        operation_id="series_review",
        request=None,
        responses={
            200: SeriesSerializer,
            403: OpenApiResponse(ERROR, "Not signed in, or not a prescriber."),
            404: _NOT_FOUND,
            409: OpenApiResponse(ERROR, "`invalid_transition`: cancelled or completed."),
            422: OpenApiResponse(ERROR, "`policy_violation`: the review session is to come."),
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        series = get_object_or_404(series_for(request.user), pk=pk)
        series_review_confirm(series=series, by=request.user, now=timezone.now())
        return _series_response(request, series.pk, step="review")


class SessionReschedule(APIView):
    """Move one session of a series. A time that breaks the protocol's spacing is refused (422,
    saying when shifting the later sessions as well would keep it) unless `shift_later` is set,
    or a prescriber allows it with `override_reason` (recorded)."""

    permission_classes = [IsAuthenticated, ModelPermissions]
    queryset = Series.objects.all()

    @extend_schema(
        operation_id="series_sessions_reschedule",
        request=RescheduleInput,
        responses={
            200: OpenApiResponse(SeriesSerializer, "The whole series, as it now stands."),
            400: OpenApiResponse(ERROR, "Bad input, e.g. a time without its offset."),
            403: _FORBIDDEN,
            404: OpenApiResponse(ERROR, "No session of a series by that reference."),
            409: OpenApiResponse(
                ERROR, "`slot_taken`, `patient_busy`, or `invalid_transition` (not movable)."
            ),
            422: OpenApiResponse(
                ERROR,
                "`policy_violation`: outside the spacing (field `start`), or an override by "
                "someone who is not a prescriber (field `override_reason`); `not_eligible` "
                "past the approval.",
            ),
        },
    )
    def post(self, request: Request, reference: str) -> Response:
        session = get_object_or_404(
            appointments_for(request.user).filter(series__isnull=False), reference=reference
        )
        incoming = RescheduleInput(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        series_session_reschedule(
            appointment=session,
            start=data["start"],
            by=request.user,
            override_reason=data["override_reason"],
            shift_later=data["shift_later"],
            now=timezone.now(),
        )
        return _series_response(
            request,
            cast(int, session.series_id),  # filtered on a series above
            step="session_reschedule",
            session=session.reference,
        )
