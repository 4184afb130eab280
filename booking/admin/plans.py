"""Admin for protocols, eligibility decisions and treatment plans.

Decisions and plans change only through ``booking.eligibility``: a decision is recorded on the
prescriber's pages through ``eligibility_decide`` (so its plan, its supersessions and who decided
come with it) and is a record from then on; a plan is revoked, never edited.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from booking.access.audit import audit
from booking.access.roles import PRESCRIBE
from booking.access.scoping import patients_for, plans_for
from booking.admin.base import ReadOnlyAdmin
from booking.eligibility import plan_revoke
from booking.models import (
    AuditAction,
    Contraindication,
    ContraindicationAnswer,
    EligibilityDecision,
    Protocol,
    TreatmentPlan,
)


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


def _decisions_for(user: Any) -> QuerySet[EligibilityDecision]:
    return EligibilityDecision.objects.filter(patient__in=patients_for(user))


class AnswerInline(admin.TabularInline[ContraindicationAnswer, EligibilityDecision]):
    model = ContraindicationAnswer
    fields = readonly_fields = ("contraindication", "present", "recorded_by", "recorded_at")
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(EligibilityDecision)
class EligibilityDecisionAdmin(ReadOnlyAdmin[EligibilityDecision]):
    """A record: decided on the prescriber's pages (``booking.desk.prescriber``), with the
    contraindications answered shown beside it."""

    scope = staticmethod(_decisions_for)

    inlines = [AnswerInline]
    list_display = ["patient", "outcome", "decided_by", "decided_at"]
    list_filter = ["outcome"]
    list_select_related = ["patient", "decided_by"]
    search_fields = ["patient__last_name", "patient__first_name"]
    date_hierarchy = "decided_at"
    fields = readonly_fields = (
        "patient",
        "consultation",
        "outcome",
        "conditions",
        "decided_by",
        "decided_at",
    )


@admin.register(Contraindication)
class ContraindicationAdmin(admin.ModelAdmin[Contraindication]):
    """The clinic's list: retire an entry (``is_active``) rather than delete it."""

    list_display = ["label", "slug", "position", "is_active"]
    list_editable = ["position", "is_active"]
    prepopulated_fields = {"slug": ("label",)}

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


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
            audit(
                request,
                AuditAction.UPDATE,
                plan,
                location_id=plan.protocol.appointment_type.location_id,
                page="admin",
                step="revoke",
            )
        self.message_user(request, f"Revoked {len(queryset)} plan(s).", messages.SUCCESS)

    def has_prescribe_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(PRESCRIBE)
