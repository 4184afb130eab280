"""Admin for patients, appointments, the audit log and staff accounts with their locations."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User
from django.http import HttpRequest

from booking.access.scoping import appointments_for, audit_events_for, patients_for
from booking.admin.base import ReadOnlyAdmin, ScopedAdmin
from booking.models import Allocation, Appointment, AuditEvent, Patient, StaffProfile


@admin.register(Patient)
class PatientAdmin(ScopedAdmin[Patient]):
    scope = staticmethod(patients_for)
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
class AppointmentAdmin(ReadOnlyAdmin[Appointment]):
    """Read-only: appointments change only through the booking services, which keep their
    allocations, reminders and history consistent."""

    scope = staticmethod(appointments_for)

    list_display = ["reference", "start", "appointment_type", "location", "status"]
    list_filter = ["location", "status", "appointment_type__kind"]
    search_fields = ["reference", "patient__last_name"]
    date_hierarchy = "start"
    list_select_related = ["appointment_type", "location"]
    inlines = [AllocationInline]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin[AuditEvent]):
    """Read-only: the audit log is append-only (a PostgreSQL trigger refuses UPDATE/DELETE)."""

    scope = staticmethod(audit_events_for)

    list_display = ["at", "username", "action", "object_type", "object_id", "location", "ip"]
    list_filter = ["action", "object_type"]
    search_fields = ["username", "object_id"]
    date_hierarchy = "at"
    list_select_related = ["location"]


class StaffProfileInline(admin.StackedInline[StaffProfile, User]):
    """Where a staff member works: the locations whose patients and calendars they may see.
    Their role is their group (Front desk, Nurse, Prescriber, Admin)."""

    model = StaffProfile
    can_delete = False
    filter_horizontal = ["locations"]


class StaffUserAdmin(UserAdmin):
    inlines = [StaffProfileInline]


admin.site.unregister(User)
admin.site.register(User, StaffUserAdmin)
