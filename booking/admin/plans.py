"""Admin for protocols, eligibility decisions and treatment plans.

Decisions and plans change only through ``booking.eligibility``: a decision is recorded through
``eligibility_decide`` (so its plan, its supersessions and who decided come with it) and is a
record from then on; a plan is revoked, never edited.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from booking.access.roles import PRESCRIBE
from booking.access.scoping import appointments_for, patients_for, plans_for
from booking.admin.base import ReadOnlyAdmin, ScopedAdmin
from booking.eligibility import (
    CONTRAINDICATIONS,
    decision_validate,
    eligibility_decide,
    plan_revoke,
)
from booking.errors import BookingError
from booking.models import EligibilityDecision, Protocol, TreatmentPlan


@admin.register(Protocol)
class ProtocolAdmin(admin.ModelAdmin[Protocol]):
    list_display = [
        "name",
        "appointment_type",
        "sessions",
        "min_gap_days",
        "max_gap_days",
        "window_days",
        "review_after_session",
        "min_days_since_last",
        "is_active",
    ]
    list_filter = ["appointment_type__location", "is_active"]
    list_select_related = ["appointment_type__location"]
    search_fields = ["name", "slug"]


class DecisionForm(forms.ModelForm[EligibilityDecision]):
    protocol = forms.ModelChoiceField(
        queryset=Protocol.objects.filter(is_active=True).select_related(
            "appointment_type__location"
        ),
        required=False,
        help_text="Required for an approval.",
    )
    sessions_authorised = forms.IntegerField(min_value=1, required=False)
    valid_until = forms.DateField(required=False, help_text="Inclusive, in the clinic's calendar.")

    class Meta:
        model = EligibilityDecision
        fields = ["patient", "consultation", "outcome", *CONTRAINDICATIONS, "conditions"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        try:
            decision_validate(
                patient=data["patient"],
                consultation=data.get("consultation"),
                outcome=data["outcome"],
                contraindications={name: bool(data.get(name)) for name in CONTRAINDICATIONS},
                conditions=data.get("conditions", ""),
                protocol=data.get("protocol"),
                sessions_authorised=data.get("sessions_authorised"),
                valid_until=data.get("valid_until"),
                now=timezone.now(),
            )
        except BookingError as exc:
            self.add_error(exc.field if exc.field in self.fields else None, exc.message)
        return data


def _decisions_for(user: Any) -> QuerySet[EligibilityDecision]:
    return EligibilityDecision.objects.filter(patient__in=patients_for(user))


@admin.register(EligibilityDecision)
class EligibilityDecisionAdmin(ScopedAdmin[EligibilityDecision]):
    """Recorded once, by a prescriber, and read-only from then on."""

    scope = staticmethod(_decisions_for)

    form = DecisionForm
    list_display = ["patient", "outcome", "decided_by", "decided_at"]
    list_filter = ["outcome"]
    list_select_related = ["patient", "decided_by"]
    search_fields = ["patient__last_name", "patient__first_name"]
    date_hierarchy = "decided_at"
    raw_id_fields = ["patient", "consultation"]

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        # A decision only for a patient (and a consultation) at the prescriber's locations.
        if db_field.name == "patient":
            kwargs["queryset"] = patients_for(request.user)
        elif db_field.name == "consultation":
            kwargs["queryset"] = appointments_for(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_fields(self, request: HttpRequest, obj: EligibilityDecision | None = None) -> Any:
        if obj is None:
            return super().get_fields(request, obj)
        return [
            "patient",
            "consultation",
            "outcome",
            *CONTRAINDICATIONS,
            "conditions",
            "decided_by",
            "decided_at",
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.get_fields(request, obj) if obj is not None else ()

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(
        self, request: HttpRequest, obj: EligibilityDecision, form: Any, change: bool
    ) -> None:
        if change:
            return
        data = form.cleaned_data
        decision = eligibility_decide(
            patient=data["patient"],
            consultation=data.get("consultation"),
            outcome=data["outcome"],
            contraindications={name: bool(data.get(name)) for name in CONTRAINDICATIONS},
            conditions=data.get("conditions", ""),
            protocol=data.get("protocol"),
            sessions_authorised=data.get("sessions_authorised"),
            valid_until=data.get("valid_until"),
            decided_by=request.user,
        )
        # The admin goes on to log and redirect to ``obj``: make it the decision just recorded.
        obj.pk = decision.pk
        obj.decided_by = decision.decided_by
        obj.decided_at = decision.decided_at
        obj._state.adding = False


@admin.register(TreatmentPlan)
class TreatmentPlanAdmin(ReadOnlyAdmin[TreatmentPlan]):
    """Plans come from approvals; the only change is revoking one."""

    scope = staticmethod(plans_for)

    list_display = [
        "patient",
        "protocol",
        "sessions_authorised",
        "valid_until",
        "status",
        "revoked_at",
    ]
    list_filter = ["protocol__appointment_type__location", "protocol"]
    list_select_related = ["patient", "protocol__appointment_type__location"]
    search_fields = ["patient__last_name", "patient__first_name"]
    fields = readonly_fields = (
        "patient",
        "decision",
        "protocol",
        "sessions_authorised",
        "valid_until",
        "conditions",
        "revoked_at",
        "created_at",
    )
    actions = ["revoke"]

    @admin.display(description="Status")
    def status(self, plan: TreatmentPlan) -> str:
        return plan.status(now=timezone.now()).replace("_", " ")

    @admin.action(description="Revoke the selected plans", permissions=["prescribe"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[TreatmentPlan]) -> None:
        now = timezone.now()
        for plan in queryset:
            plan_revoke(plan=plan, revoked_by=request.user, now=now)
        self.message_user(request, f"Revoked {len(queryset)} plan(s).", messages.SUCCESS)

    def has_prescribe_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(PRESCRIBE)
