"""/staff/setup/<location>/people/: the staff, chairs and rooms serving a location, and one
person's or place's page: details, weekly hours here, hours that change from a date, date
overrides, time off.

The list is ``Resource.objects.at(location)``: the location's own resources and the people who
also work here. A person is one resource wherever they work; their hours are per location (this
page edits the hours *here*), their time off is theirs everywhere. Details of a person whose home
is a location the admin does not manage are that location's to edit.

Every change that can take time away (fewer hours, a date override, time off, a lower capacity,
deactivating) goes through :func:`booking.desk.setup.base.guarded`: a change that would leave a
booked visit without this resource is refused with the visits listed, or saved once confirmed
with the visits put on the day board's "needs a new time" list.

A person's or place's page also issues and revokes their calendar feed (``booking.feeds``); the
location's page does the same for the desk's feed of every visit, with the form and the card
defined here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from django.contrib import messages
from django.db import transaction
from django.db.models import Model
from django.forms import BooleanField, Form
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from booking.access.scoping import locations_for
from booking.desk.setup.base import audit_setup, guarded, render_setup, setup_required
from booking.desk.setup.forms import (
    DateOverrideForm,
    HoursFromForm,
    LocalPeriodForm,
    ResourceForm,
    WeeklyHoursForm,
)
from booking.feeds import feed_issue, feed_revoke, live_feeds
from booking.models import Appointment, AuditAction, CalendarFeed, StaffProfile
from scheduling.hours import (
    date_override_set,
    hours_here,
    next_change,
    weekly_hours_change_drop,
    weekly_hours_from,
    weekly_hours_replace,
)
from scheduling.models import (
    DateOverride,
    Location,
    Resource,
    ResourceKind,
    TimeOff,
    Weekday,
    WorkingHours,
)

# The time-off form's prefix on the person's page (the override form has a start and end too).
TIME_OFF = "time-off"
FEED = "feed"


def _today(location: Location, now: datetime) -> date:
    return now.astimezone(location.zone).date()


def _resource(location: Location, resource_id: int) -> Resource:
    """A resource serving ``location`` (its own, or a person visiting); 404 otherwise."""
    resource = (
        Resource.objects.at(location).select_related("location").filter(pk=resource_id).first()
    )
    if resource is None:
        raise Http404("No such resource here.")
    return resource


def _other_sites(request: HttpRequest, resource: Resource | None, location: Location) -> Any:
    """The locations a person's "also works at" may name: the admin's own, but their home."""
    home = resource.location_id if resource is not None else location.pk
    return locations_for(request.user).exclude(pk=home).order_by("name")


def _may_edit_details(request: HttpRequest, resource: Resource) -> bool:
    return locations_for(request.user).filter(pk=resource.location_id).exists()


# --- The list ------------------------------------------------------------------------------------

KIND_HEADINGS = {
    ResourceKind.STAFF: "Staff",
    ResourceKind.CHAIR: "Chairs",
    ResourceKind.ROOM: "Rooms",
}


def _people_page(
    request: HttpRequest, location: Location, form: ResourceForm, *, status: int = 200
) -> HttpResponse:
    groups: dict[str, list[Resource]] = defaultdict(list)
    for resource in (
        Resource.objects.at(location)
        .select_related("location")
        .prefetch_related("sites")
        .order_by("name", "pk")
    ):
        groups[resource.kind].append(resource)
    return render_setup(
        request,
        "staff/setup/people.html",
        location,
        section="setup-people",
        status=status,
        groups=[(heading, groups.get(kind, [])) for kind, heading in KIND_HEADINGS.items()],
        form=form,
    )


@require_http_methods(["GET", "POST"])
@never_cache
@setup_required
def people_list(request: HttpRequest, location: Location) -> HttpResponse:
    sites = _other_sites(request, None, location)
    if request.method == "GET":
        return _people_page(request, location, ResourceForm(other_sites=sites))
    form = ResourceForm(request.POST, other_sites=sites)
    if not form.is_valid():
        return _people_page(request, location, form, status=400)
    data = form.cleaned_data
    with transaction.atomic():
        resource = Resource.objects.create(
            location=location,
            kind=data["kind"],
            role=data.get("role") or "",
            name=data["name"],
            capacity=data["capacity"],
            is_active=data["is_active"],
        )
        resource.sites.set(data["sites"])
        audit_setup(
            request,
            AuditAction.CREATE,
            resource,
            location=location,
            changed=[name for name in form.fields if name in data],
        )
    messages.success(request, f"{resource.name} added: now give them their hours here.")
    return redirect("setup-person", location.pk, resource.pk)


# --- One person or place -----------------------------------------------------------------------


def _person_page(
    request: HttpRequest,
    location: Location,
    resource: Resource,
    *,
    status: int = 200,
    refused: str = "",
    retry_url: str = "",
    orphans: list[Appointment] | None = None,
    **forms: Any,
) -> HttpResponse:
    now = timezone.now()
    today = _today(location, now)
    here = list(hours_here(resource, location).order_by("valid_from", "weekday", "start"))
    current = [h for h in here if _in_effect(h, today)]
    planned: dict[date, list[WorkingHours]] = defaultdict(list)
    for row in here:
        if row.valid_from is not None and row.valid_from > today:
            planned[row.valid_from].append(row)
    overrides: dict[date, list[DateOverride]] = defaultdict(list)
    for override in DateOverride.objects.filter(
        resource=resource, location=location, date__gte=today
    ).order_by("date", "start"):
        overrides[override.date].append(override)
    editable = _may_edit_details(request, resource)
    initial = WeeklyHoursForm.initial_from([(h.weekday, h.start, h.end) for h in current])
    context: dict[str, Any] = {
        "resource": resource,
        "visiting": resource.location_id != location.pk,
        "editable": editable,
        "details_form": forms.get("details_form")
        or (
            ResourceForm(other_sites=_other_sites(request, resource, location), resource=resource)
            if editable
            else None
        ),
        "hours_form": forms.get("hours_form") or WeeklyHoursForm(initial=initial),
        "hours_until": current[0].valid_until
        if current
        else next_change(resource, location, today),
        "from_form": forms.get("from_form") or HoursFromForm(initial=initial, today=today),
        "planned": [(day, _summary(rows)) for day, rows in sorted(planned.items())],
        "override_form": forms.get("override_form") or DateOverrideForm(today=today),
        "overrides": sorted(overrides.items()),
        "time_off_form": forms.get("time_off_form")
        or LocalPeriodForm(zone=location.zone, now=now, prefix=TIME_OFF),
        "periods": [
            (off, reverse("setup-person-time-off-remove", args=[location.pk, resource.pk, off.pk]))
            for off in TimeOff.objects.filter(resource=resource, end__gt=now).order_by("start")
        ],
        "account": StaffProfile.objects.filter(resource=resource).select_related("user").first(),
        **feed_card(
            location,
            resource,
            form=forms.get("feed_form") or FeedForm(prefix=FEED),
            issue_url=reverse("setup-person-feed", args=[location.pk, resource.pk]),
            revoke_url=reverse("setup-person-feed-revoke", args=[location.pk, resource.pk]),
            subject=f"{resource.name}'s visits at {location.name}, at the times they are needed",
            feed_url=forms.get("feed_url", ""),
        ),
        "refused": refused,
        "retry_url": retry_url,
        "orphans": orphans,
    }
    return render_setup(
        request,
        "staff/setup/person.html",
        location,
        section="setup-people",
        status=status,
        **context,
    )


def _in_effect(row: WorkingHours, day: date) -> bool:
    return (row.valid_from is None or row.valid_from <= day) and (
        row.valid_until is None or day < row.valid_until
    )


def _summary(rows: list[WorkingHours]) -> list[tuple[str, str]]:
    """(weekday, "09:00-13:00, 14:00-18:00") per working weekday, for the list of changes."""
    days: dict[int, list[str]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: (r.weekday, r.start)):
        days[row.weekday].append(f"{row.start:%H:%M}-{row.end:%H:%M}")
    return [(Weekday(day).label, ", ".join(spans)) for day, spans in sorted(days.items())]


def _guarded_change(
    request: HttpRequest,
    location: Location,
    resource: Resource,
    apply: Callable[[], object],
    *,
    reason: str,
    form_name: str,
    form: Any = None,
    retry_url: str = "",
    audit_as: str,
    changed: list[str],
    done: str,
) -> HttpResponse:
    """Make a change that can take this resource's time away, or show the visits it would
    orphan (409, the form as typed; for a removal, a form to confirm it at ``retry_url``)
    until the admin confirms. The audit row names what was made, else the resource."""
    result, orphans = guarded(
        request, apply, location=location, resource_ids=[resource.pk], reason=reason
    )
    if result is None:
        return _person_page(
            request,
            location,
            resource,
            status=409,
            refused=form_name,
            retry_url=retry_url,
            orphans=orphans,
            **({form_name: form} if form is not None else {}),
        )
    made = result if isinstance(result, Model) else resource
    audit_setup(request, audit_as, made, location=location, changed=changed)
    if orphans:
        messages.warning(
            request,
            f"{done} {len(orphans)} booked visit{'s' if len(orphans) != 1 else ''} now "
            "need a new time: they are on the day board's list.",
        )
    else:
        messages.success(request, done)
    return redirect("setup-person", location.pk, resource.pk)


@require_http_methods(["GET", "POST"])
@never_cache
@setup_required
def person(request: HttpRequest, location: Location, resource_id: int) -> HttpResponse:
    resource = _resource(location, resource_id)
    if request.method == "GET":
        return _person_page(request, location, resource)
    if not _may_edit_details(request, resource):
        raise Http404("Details of a person from another location.")
    sites = _other_sites(request, resource, location)
    form = ResourceForm(request.POST, other_sites=sites, resource=resource)
    if not form.is_valid():
        return _person_page(request, location, resource, status=400, details_form=form)
    data = form.cleaned_data
    changed = form.changed_data
    if not changed:
        messages.info(request, "Nothing to save: no detail was changed.")
        return redirect("setup-person", location.pk, resource.pk)

    def apply() -> Resource:
        resource.name = data["name"]
        resource.role = data.get("role") or ""
        resource.capacity = data["capacity"]
        resource.is_active = data["is_active"]
        resource.save(update_fields=["name", "role", "capacity", "is_active"])
        # Sites the admin does not manage stay as they were: they cannot see them.
        kept = resource.sites.exclude(pk__in=sites.values("pk"))
        resource.sites.set([*kept, *data["sites"]])
        return resource

    return _guarded_change(
        request,
        location,
        resource,
        apply,
        reason=f"{resource.name}'s details changed ({', '.join(changed)}).",
        form_name="details_form",
        form=form,
        audit_as=AuditAction.UPDATE,
        changed=changed,
        done=f"{data['name']}: details saved.",
    )


@require_POST
@setup_required
def person_hours(request: HttpRequest, location: Location, resource_id: int) -> HttpResponse:
    resource = _resource(location, resource_id)
    form = WeeklyHoursForm(request.POST)
    if not form.is_valid():
        return _person_page(request, location, resource, status=400, hours_form=form)
    today = _today(location, timezone.now())
    shifts = form.shifts()
    return _guarded_change(
        request,
        location,
        resource,
        lambda: weekly_hours_replace(
            resource=resource, location=location, shifts=shifts, today=today
        ),
        reason=f"{resource.name}'s weekly hours at {location.name} changed.",
        form_name="hours_form",
        form=form,
        audit_as=AuditAction.UPDATE,
        changed=["working_hours"],
        done=f"{resource.name}: weekly hours at {location.name} saved.",
    )


@require_POST
@setup_required
def person_hours_from(request: HttpRequest, location: Location, resource_id: int) -> HttpResponse:
    resource = _resource(location, resource_id)
    today = _today(location, timezone.now())
    form = HoursFromForm(request.POST, today=today)
    if not form.is_valid():
        return _person_page(request, location, resource, status=400, from_form=form)
    day: date = form.cleaned_data["valid_from"]
    shifts = form.shifts()
    return _guarded_change(
        request,
        location,
        resource,
        lambda: weekly_hours_from(resource=resource, location=location, shifts=shifts, day=day),
        reason=f"{resource.name}'s hours at {location.name} change from {day:%Y-%m-%d}.",
        form_name="from_form",
        form=form,
        audit_as=AuditAction.UPDATE,
        changed=["working_hours", f"valid_from={day.isoformat()}"],
        done=f"{resource.name}: new hours from {day:%Y-%m-%d} saved.",
    )


@require_POST
@setup_required
def person_change_drop(
    request: HttpRequest, location: Location, resource_id: int, day: str
) -> HttpResponse:
    resource = _resource(location, resource_id)
    when = _date_or_404(day)
    if not hours_here(resource, location).filter(valid_from=when).exists():
        raise Http404("No change planned from that day.")
    return _guarded_change(
        request,
        location,
        resource,
        lambda: weekly_hours_change_drop(resource=resource, location=location, day=when),
        reason=f"{resource.name}'s change of hours from {when:%Y-%m-%d} was dropped.",
        form_name="retry",
        retry_url=request.path,
        audit_as=AuditAction.DELETE,
        changed=["working_hours", f"valid_from={when.isoformat()}"],
        done=f"{resource.name}: the change from {when:%Y-%m-%d} is dropped.",
    )


@require_POST
@setup_required
def person_override(request: HttpRequest, location: Location, resource_id: int) -> HttpResponse:
    resource = _resource(location, resource_id)
    form = DateOverrideForm(request.POST, today=_today(location, timezone.now()))
    if not form.is_valid():
        return _person_page(request, location, resource, status=400, override_form=form)
    day: date = form.cleaned_data["date"]
    shifts = form.shifts()
    return _guarded_change(
        request,
        location,
        resource,
        lambda: date_override_set(
            resource=resource,
            location=location,
            day=day,
            shifts=shifts,
            reason=form.cleaned_data["reason"],
        ),
        reason=f"{resource.name}'s hours at {location.name} on {day:%Y-%m-%d} changed.",
        form_name="override_form",
        form=form,
        audit_as=AuditAction.UPDATE,
        changed=["date_overrides", f"date={day.isoformat()}"],
        done=f"{resource.name}: hours on {day:%Y-%m-%d} saved.",
    )


@require_POST
@setup_required
def person_override_drop(
    request: HttpRequest, location: Location, resource_id: int, day: str
) -> HttpResponse:
    resource = _resource(location, resource_id)
    when = _date_or_404(day)
    rows = DateOverride.objects.filter(resource=resource, location=location, date=when)
    if not rows.exists():
        raise Http404("No such date override.")
    return _guarded_change(
        request,
        location,
        resource,
        lambda: rows.delete()[0],
        reason=f"{resource.name}'s hours at {location.name} on {when:%Y-%m-%d} changed.",
        form_name="retry",
        retry_url=request.path,
        audit_as=AuditAction.DELETE,
        changed=["date_overrides", f"date={when.isoformat()}"],
        done=f"{resource.name}: {when:%Y-%m-%d} follows the weekly hours again.",
    )


@require_POST
@setup_required
def person_time_off(request: HttpRequest, location: Location, resource_id: int) -> HttpResponse:
    resource = _resource(location, resource_id)
    form = LocalPeriodForm(request.POST, zone=location.zone, now=timezone.now(), prefix=TIME_OFF)
    if not form.is_valid():
        return _person_page(request, location, resource, status=400, time_off_form=form)
    data = form.cleaned_data
    return _guarded_change(
        request,
        location,
        resource,
        lambda: TimeOff.objects.create(
            resource=resource, start=data["start"], end=data["end"], reason=data["reason"]
        ),
        reason=f"{resource.name} has time off.",
        form_name="time_off_form",
        form=form,
        audit_as=AuditAction.CREATE,
        changed=["time_off"],
        done=f"{resource.name}: time off saved.",
    )


@require_POST
@setup_required
def person_time_off_drop(
    request: HttpRequest, location: Location, resource_id: int, time_off_id: int
) -> HttpResponse:
    resource = _resource(location, resource_id)
    time_off = TimeOff.objects.filter(resource=resource, pk=time_off_id).first()
    if time_off is None:
        raise Http404("No such time off.")
    # Time given back takes nothing away: no visit can lose its resource by it.
    with transaction.atomic():
        audit_setup(request, AuditAction.DELETE, time_off, location=location, changed=["time_off"])
        time_off.delete()
    messages.success(request, f"{resource.name}: time off removed.")
    return redirect("setup-person", location.pk, resource.pk)


# --- Calendar feeds ------------------------------------------------------------------------------


class FeedForm(Form):
    show_patient_names = BooleanField(
        label="Name the patients in the events",
        required=False,
        help_text="Off: only the visit's public type and reference. Anyone holding the address "
        "reads what the feed shows.",
    )


def feed_card(
    location: Location,
    resource: Resource | None,
    *,
    form: FeedForm,
    issue_url: str,
    revoke_url: str,
    subject: str,
    feed_url: str = "",
) -> dict[str, Any]:
    """The context of ``staff/setup/_feed.html`` for the feed of ``resource`` (of the location
    without one)."""
    return {
        "feed": live_feeds(location).filter(resource=resource).first(),
        "feed_form": form,
        "feed_url": feed_url,
        "feed_issue_url": issue_url,
        "feed_revoke_url": revoke_url,
        "feed_subject": subject,
    }


def feed_issue_from(
    request: HttpRequest, location: Location, resource: Resource | None
) -> tuple[FeedForm, str]:
    """Issue a feed from the posted form: ``(form, the feed's address)``, the address empty when
    the form was refused. The address is shown once, on the page answering this request: only
    its hash is kept."""
    form = FeedForm(request.POST, prefix=FEED)
    if not form.is_valid():
        return form, ""
    names = form.cleaned_data["show_patient_names"]
    with transaction.atomic():
        feed, token = feed_issue(
            location=location, resource=resource, show_patient_names=names, by=request.user
        )
        audit_setup(
            request,
            AuditAction.CREATE,
            feed,
            location=location,
            changed=["calendar_feed", *(["show_patient_names"] if names else [])],
        )
    return FeedForm(prefix=FEED), request.build_absolute_uri(
        reverse("api-calendar-feed", args=[token])
    )


def feed_revoke_from(request: HttpRequest, location: Location, resource: Resource | None) -> None:
    """Revoke the live feed of ``resource`` (of the location without one); 404 when none is."""
    feed: CalendarFeed | None = live_feeds(location).filter(resource=resource).first()
    if feed is None:
        raise Http404("No feed is live.")
    with transaction.atomic():
        if feed_revoke(feed=feed):
            audit_setup(request, AuditAction.UPDATE, feed, location=location, changed=["revoked"])
    messages.success(request, "Calendar feed revoked: its address no longer works.")


@require_POST
@setup_required
def person_feed(request: HttpRequest, location: Location, resource_id: int) -> HttpResponse:
    resource = _resource(location, resource_id)
    form, url = feed_issue_from(request, location, resource)
    if not url:
        return _person_page(request, location, resource, status=400, feed_form=form)
    return _person_page(request, location, resource, feed_form=form, feed_url=url)


@require_POST
@setup_required
def person_feed_revoke(request: HttpRequest, location: Location, resource_id: int) -> HttpResponse:
    resource = _resource(location, resource_id)
    feed_revoke_from(request, location, resource)
    return redirect(reverse("setup-person", args=[location.pk, resource.pk]) + "#feed-title")


def _date_or_404(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise Http404("Not a date.") from None
