from django.contrib import admin

from scheduling.models import (
    AppointmentType,
    Closure,
    DateOverride,
    Location,
    Resource,
    ResourceRequirement,
    TimeOff,
    WorkingHours,
)


@admin.register(Location)
class LocationAdmin(admin.ModelAdmin[Location]):
    list_display = ["name", "public_name", "slug", "timezone", "is_active"]
    prepopulated_fields = {"slug": ["name"]}


class WorkingHoursInline(admin.TabularInline[WorkingHours, Resource]):
    """Weekly shifts, each at one of the person's sites; a change from a future date is a new
    row valid from that date and the old one valid until it."""

    model = WorkingHours
    fields = ["location", "weekday", "start", "end", "valid_from", "valid_until"]
    extra = 0


class DateOverrideInline(admin.TabularInline[DateOverride, Resource]):
    """One day's hours at a site, replacing the weekly ones; empty times: not working there."""

    model = DateOverride
    fields = ["location", "date", "start", "end", "reason"]
    extra = 0


class TimeOffInline(admin.TabularInline[TimeOff, Resource]):
    model = TimeOff
    extra = 0


@admin.register(Resource)
class ResourceAdmin(admin.ModelAdmin[Resource]):
    list_display = ["name", "location", "kind", "role", "capacity", "is_active"]
    list_filter = ["location", "kind", "role", "is_active"]
    search_fields = ["name"]
    filter_horizontal = ["sites"]
    inlines = [WorkingHoursInline, DateOverrideInline, TimeOffInline]


@admin.register(Closure)
class ClosureAdmin(admin.ModelAdmin[Closure]):
    list_display = ["location", "start", "end", "reason"]
    list_filter = ["location"]


class ResourceRequirementInline(admin.TabularInline[ResourceRequirement, AppointmentType]):
    model = ResourceRequirement
    extra = 0


@admin.register(AppointmentType)
class AppointmentTypeAdmin(admin.ModelAdmin[AppointmentType]):
    list_display = [
        "name",
        "public_name",
        "location",
        "duration_minutes",
        "bookable_online",
        "needs_approval",
        "is_active",
    ]
    list_filter = ["location", "kind", "bookable_online", "is_active"]
    inlines = [ResourceRequirementInline]
