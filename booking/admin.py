from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from booking.models import Allocation, Appointment, Patient


@admin.register(Patient)
class PatientAdmin(admin.ModelAdmin[Patient]):
    list_display = ["last_name", "first_name", "date_of_birth", "email", "needs_review"]
    list_filter = ["needs_review"]
    search_fields = ["last_name", "first_name", "email"]


class AllocationInline(admin.TabularInline[Allocation, Appointment]):
    model = Allocation
    extra = 0
    fields = ["resource", "lane", "start", "end", "active"]
    readonly_fields = ("resource", "lane", "start", "end", "active")
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Appointment)
class AppointmentAdmin(admin.ModelAdmin[Appointment]):
    """Read-only: appointments change only through the booking services, which keep their
    allocations, reminders and history consistent."""

    list_display = ["reference", "start", "appointment_type", "location", "status"]
    list_filter = ["location", "status", "appointment_type__kind"]
    search_fields = ["reference", "patient__last_name"]
    date_hierarchy = "start"
    list_select_related = ["appointment_type", "location"]
    inlines = [AllocationInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


import booking.admin_plans  # noqa: E402, F401 - registers the plan models
