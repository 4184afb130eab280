"""Staff API for eligibility decisions and treatment plans, under ``/api/v1/``."""

from django.urls import path

from booking import plan_api

urlpatterns = [
    path("plans/", plan_api.PlanList.as_view(), name="api-plans"),
    path("plans/decisions/", plan_api.DecisionCreate.as_view(), name="api-plan-decisions"),
    path("plans/<int:pk>/revoke/", plan_api.PlanRevoke.as_view(), name="api-plan-revoke"),
]
