"""Staff API for eligibility decisions and treatment plans (DESIGN §4, ``/api/v1/plans/``).

Staff sign in (session); each endpoint needs a model permission: recording a decision or
revoking a plan is the prescriber's (``booking.add_eligibilitydecision``), reading plans needs
``booking.view_treatmentplan``. Every read and write is recorded in the audit log: a decision
records psychosis history and pregnancy. Errors take the shape set in ``config.api``.
"""

from __future__ import annotations

from typing import Any, cast

from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from booking.access.audit import audit
from booking.access.scoping import appointments_for, patients_for, plans_for, protocols_for
from booking.api.permissions import ModelPermissions, Prescribes
from booking.api.toolkit import (
    ERROR,
    ScopedPrimaryKey,
    ScopedSlug,
    StrictBoolean,
    StrictSerializer,
    Text,
)
from booking.eligibility import (
    MAX_SESSIONS_AUTHORISED,
    contraindications_unanswered,
    eligibility_decide,
    plan_revoke,
    plans_with_usage,
)
from booking.models import (
    Appointment,
    AuditAction,
    DecisionOutcome,
    EligibilityDecision,
    Patient,
    PlanStatus,
    Protocol,
    TreatmentPlan,
)


class ProtocolSummarySerializer(serializers.Serializer[Protocol]):
    id = serializers.IntegerField()
    slug = serializers.SlugField()
    name = serializers.CharField()
    appointment_type = serializers.SlugField(source="appointment_type.slug")
    location = serializers.SlugField(source="appointment_type.location.slug")
    sessions = serializers.IntegerField(help_text="Sessions in one series of this protocol.")


class PlanSerializer(serializers.Serializer[TreatmentPlan]):
    id = serializers.IntegerField()
    patient = serializers.IntegerField(source="patient_id")
    decision = serializers.IntegerField(source="decision_id")
    protocol = ProtocolSummarySerializer()
    sessions_authorised = serializers.IntegerField()
    sessions_used = serializers.IntegerField(
        help_text="Booked, under way, given or on hold; cancelled and missed ones do not count."
    )
    sessions_remaining = serializers.SerializerMethodField()
    valid_until = serializers.DateField(help_text="Inclusive, in the clinic's calendar.")
    conditions = serializers.CharField()
    status = serializers.SerializerMethodField()
    revoked_at = serializers.DateTimeField(allow_null=True)
    decided_by = serializers.CharField(source="decision.decided_by.get_username")
    decided_at = serializers.DateTimeField(source="decision.decided_at")

    def get_sessions_remaining(self, plan: TreatmentPlan) -> int:
        used: int = getattr(plan, "sessions_used", 0)
        return max(0, plan.sessions_authorised - used)

    @extend_schema_field(serializers.ChoiceField(choices=PlanStatus.choices))
    def get_status(self, plan: TreatmentPlan) -> str:
        return plan.status(now=self.context["now"])


class DecisionSerializer(serializers.Serializer[EligibilityDecision]):
    id = serializers.IntegerField()
    patient = serializers.IntegerField(source="patient_id")
    consultation = serializers.CharField(
        source="consultation.reference", allow_null=True, default=None
    )
    outcome = serializers.ChoiceField(choices=DecisionOutcome.choices)
    conditions = serializers.CharField()
    contraindications = serializers.SerializerMethodField(
        help_text="Each contraindication reviewed, by the clinic's slug: true when present."
    )
    decided_by = serializers.CharField(source="decided_by.get_username")
    decided_at = serializers.DateTimeField()
    plan = serializers.SerializerMethodField(
        help_text="The plan an approval created; null when declined."
    )

    @extend_schema_field(serializers.DictField(child=serializers.BooleanField()))
    def get_contraindications(self, decision: EligibilityDecision) -> dict[str, bool]:
        answers = decision.answers.select_related("contraindication")
        return {a.contraindication.slug: a.present for a in answers}

    @extend_schema_field(PlanSerializer(allow_null=True))
    def get_plan(self, decision: EligibilityDecision) -> dict[str, Any] | None:
        plan = self.context.get("plan")
        return None if plan is None else PlanSerializer(plan, context=self.context).data


# --- Input -------------------------------------------------------------------------------------


class ContraindicationAnswers(serializers.DictField):
    """Every contraindication the clinic asks about, by its slug (``GET`` the list from the
    admin or a decision's answers): true when present. All are required: an unanswered one is
    not a no."""

    child = StrictBoolean()

    def to_internal_value(self, data: Any) -> dict[str, bool]:
        if not isinstance(data, dict):
            self.fail("not_a_dict", input_type=type(data).__name__)
        problems = contraindications_unanswered(data)
        if problems:
            raise serializers.ValidationError(problems)
        return dict(data)


class NewDecision(StrictSerializer):
    """A prescriber's decision. An approval also needs `protocol`, `sessions_authorised` and
    `valid_until`; a decline must leave them out."""

    patient = ScopedPrimaryKey(queryset=Patient.objects.all(), scope=patients_for)
    consultation = ScopedSlug(
        slug_field="reference",
        queryset=Appointment.objects.all(),
        scope=appointments_for,
        related=("appointment_type",),
        required=False,
        allow_null=True,
        help_text="The consultation's reference, when the decision follows one.",
    )
    outcome = serializers.ChoiceField(choices=DecisionOutcome.choices)
    contraindications = ContraindicationAnswers()
    conditions = Text(
        max_length=2000,
        multiline=True,
        allow_blank=True,
        required=False,
        default="",
        help_text="Required for an approval with conditions.",
    )
    protocol = ScopedPrimaryKey(
        queryset=Protocol.objects.all(),
        scope=protocols_for,
        related=("appointment_type__location",),
        required=False,
        allow_null=True,
    )
    sessions_authorised = serializers.IntegerField(
        min_value=1, max_value=MAX_SESSIONS_AUTHORISED, required=False, allow_null=True
    )
    valid_until = serializers.DateField(
        input_formats=["%Y-%m-%d"],
        required=False,
        allow_null=True,
        help_text="YYYY-MM-DD, inclusive, in the clinic's calendar.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # Every missing or misplaced term at once; the service checks them again, one by one.
        terms = ("protocol", "sessions_authorised", "valid_until")
        if attrs["outcome"] == DecisionOutcome.DECLINED:
            errors = {
                name: "A declined decision authorises no plan: leave this out."
                for name in terms
                if attrs.get(name) is not None
            }
        else:
            errors = {name: "An approval needs this." for name in terms if attrs.get(name) is None}
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class PlanQuery(serializers.Serializer[Any]):
    patient = serializers.IntegerField(min_value=1, help_text="The patient's id.")

    def validate_patient(self, value: int) -> Patient:
        patient = patients_for(self.context["request"].user).filter(pk=value).first()
        if patient is None:
            raise serializers.ValidationError("Unknown patient.")
        return patient


# --- Views -------------------------------------------------------------------------------------


def _plan_with_usage(pk: int) -> TreatmentPlan:
    return plans_with_usage(TreatmentPlan.objects.filter(pk=pk)).get()


def _audit(request: Request, action: str, obj: Any = None, **kwargs: Any) -> None:
    # DRF's Request wraps Django's HttpRequest and proxies the attributes audit() reads.
    audit(cast(HttpRequest, request), action, obj, **kwargs)


class DecisionCreate(APIView):
    """Record an eligibility decision (prescribers only). An approval creates the treatment plan
    and replaces the patient's plans in force for the same appointment type; a decline revokes
    every plan in force. Who decided and when are recorded."""

    permission_classes = [IsAuthenticated, ModelPermissions]
    queryset = EligibilityDecision.objects.all()

    @extend_schema(
        operation_id="plans_decisions_create",
        request=NewDecision,
        responses={
            201: OpenApiResponse(
                DecisionSerializer, "Recorded; `plan` is the plan an approval created."
            ),
            400: OpenApiResponse(ERROR, "Bad input; `error.fields` names each field."),
            403: OpenApiResponse(ERROR, "Not signed in, or not a prescriber."),
        },
    )
    def post(self, request: Request) -> Response:
        now = timezone.now()
        incoming = NewDecision(data=request.data, context={"request": request})
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        decision = eligibility_decide(
            patient=data["patient"],
            consultation=data.get("consultation"),
            outcome=data["outcome"],
            contraindications=dict(data["contraindications"]),
            conditions=data["conditions"],
            protocol=data.get("protocol"),
            sessions_authorised=data.get("sessions_authorised"),
            valid_until=data.get("valid_until"),
            decided_by=request.user,
            now=now,
        )
        plan = _plan_with_usage(decision.plan.pk) if hasattr(decision, "plan") else None
        consultation, protocol = data.get("consultation"), data.get("protocol")
        if consultation is not None:
            location_id = consultation.location_id
        elif protocol is not None:
            location_id = protocol.appointment_type.location_id
        else:
            location_id = None  # a decline with no consultation: made at no one location
        _audit(
            request,
            AuditAction.CREATE,
            decision,
            location_id=location_id,
            outcome=decision.outcome,
            consultation=consultation.reference if consultation is not None else None,
        )
        body = DecisionSerializer(decision, context={"now": now, "plan": plan}).data
        return Response(body, status=status.HTTP_201_CREATED)


class PlanList(APIView):
    """A patient's treatment plans, newest first, each in force, expired or revoked."""

    permission_classes = [IsAuthenticated, ModelPermissions]
    queryset = TreatmentPlan.objects.all()

    @extend_schema(
        operation_id="plans_list",
        parameters=[PlanQuery],
        responses={
            200: PlanSerializer(many=True),
            400: OpenApiResponse(ERROR, "`patient` missing or unknown."),
            403: OpenApiResponse(ERROR, "Not signed in, or may not read plans."),
        },
    )
    def get(self, request: Request) -> Response:
        query = PlanQuery(data=request.query_params, context={"request": request})
        query.is_valid(raise_exception=True)
        patient = query.validated_data["patient"]
        plans = list(
            plans_with_usage(plans_for(request.user).filter(patient=patient)).order_by(
                "-decision__decided_at", "-pk"
            )
        )
        _audit(
            request,
            AuditAction.VIEW,
            object_type="plan_list",
            patient=patient,
            plans=[plan.pk for plan in plans],
        )
        listing = serializers.ListSerializer(
            plans, child=PlanSerializer(), context={"now": timezone.now()}
        )
        return Response(listing.data)


class PlanRevoke(APIView):
    """Withdraw a plan (prescribers only): nothing more can be booked under it. Sessions
    already booked stay. Revoking twice is harmless."""

    permission_classes = [IsAuthenticated, Prescribes]

    @extend_schema(
        operation_id="plans_revoke",
        request=None,
        responses={
            200: PlanSerializer,
            403: OpenApiResponse(ERROR, "Not signed in, or not a prescriber."),
            404: OpenApiResponse(ERROR, "No such plan."),
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        now = timezone.now()
        plan = get_object_or_404(plans_for(request.user), pk=pk)
        plan_revoke(plan=plan, revoked_by=request.user, now=now)
        plan = _plan_with_usage(plan.pk)
        _audit(
            request,
            AuditAction.UPDATE,
            plan,
            location_id=plan.protocol.appointment_type.location_id,
            step="revoke",
        )
        return Response(PlanSerializer(plan, context={"now": now}).data)
