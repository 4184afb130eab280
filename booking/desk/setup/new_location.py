"""A new location, from the staff pages: the first one on a fresh install, and any further one.

Both pages are a superuser's (an Admin sets up the locations they were given; adding a location
is the clinic owner's step) and call :func:`booking.clinic.clinic_create`, so a location made
here starts with exactly the defaults the ``clinic_create`` command installs. While no location
exists, a superuser who opens the staff pages is sent to the first-run page: there is nothing
else to do yet.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache, wraps
from typing import Any
from zoneinfo import available_timezones

from django import forms
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect
from django.views.decorators.http import require_http_methods

from booking.access.decorators import staff_required
from booking.clinic import ClinicInvalid, clinic_create
from booking.desk.forms import DeskForm
from booking.desk.setup.base import audit_setup, render_setup, setup_required
from booking.models import AuditAction
from scheduling.models import Location


def superuser_required(
    view: Callable[..., HttpResponseBase],
) -> Callable[..., HttpResponseBase]:
    """A setup page only a superuser may open (403 for anybody else with setup rights)."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not request.user.is_superuser:
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return setup_required(wrapped)


def needs_first_location(user: Any) -> bool:
    """A fresh install: a superuser and no location yet, so the first-run page is the start."""
    return bool(user.is_superuser) and not Location.objects.exists()


@staff_required()
def staff_start(request: HttpRequest) -> HttpResponseBase:
    """/staff/: the day board, or the first-run page on a fresh install."""
    if needs_first_location(request.user):
        return redirect("setup-first-run")
    return redirect("staff-board")


class LocationNewForm(DeskForm):
    """A new location's identity; the rest (quiet hours, cutoffs, texts) starts at the defaults
    and is changed on the location's own setup page."""

    name = forms.CharField(
        label="Internal name",
        max_length=120,
        help_text="Seen by staff only, e.g. Riverside Ketamine Clinic (NYC).",
    )
    public_name = forms.CharField(
        label="Public name",
        max_length=120,
        help_text="Shown to patients and in every message: a neutral name that does not reveal "
        "the treatment, e.g. Riverside Health.",
    )
    timezone = forms.ChoiceField(
        label="Time zone",
        help_text="Opening hours, reminders and fasting times are in this zone.",
    )
    slug = forms.SlugField(
        label="Address name",
        max_length=50,
        required=False,
        help_text="Its part of the booking address, /book/<address name>/. Leave empty to make "
        "one from the internal name.",
    )
    address = forms.CharField(label="Street address", max_length=255, required=False)
    phone = forms.CharField(
        label="Phone",
        max_length=32,
        required=False,
        help_text="The number patients may call, e.g. +1 212 555 0100.",
        widget=forms.TextInput(attrs={"type": "tel"}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["timezone"]
        field.choices = [("", "Choose a time zone"), *zone_choices()]  # type: ignore[attr-defined]


@cache
def zone_choices() -> list[tuple[str, str]]:
    """The IANA zones a clinic may be in, by name (``Area/City``; not the legacy aliases)."""
    return [
        (zone, zone)
        for zone in sorted(available_timezones())
        if "/" in zone and not zone.startswith(("Etc/", "SystemV/"))
    ]


def _create(request: HttpRequest, form: LocationNewForm) -> Location | None:
    """The location the valid ``form`` describes, created and audited; None (with the error on
    its field) when the service refuses it."""
    try:
        location = clinic_create(**form.cleaned_data, by=request.user)
    except ClinicInvalid as refused:
        form.add_error(refused.field if refused.field in form.fields else None, refused.reason)
        return None
    audit_setup(
        request,
        AuditAction.CREATE,
        location,
        location=location,
        changed=[name for name, value in form.cleaned_data.items() if value],
    )
    return location


@require_http_methods(["GET", "POST"])
@superuser_required
def first_run(request: HttpRequest) -> HttpResponseBase:
    """/staff/setup/first-run/: the first location of a fresh install."""
    if Location.objects.exists():
        return redirect("setup-home")
    form = LocationNewForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        location = _create(request, form)
        if location is not None:
            return redirect("setup-location", location.pk)
    return _page(request, "staff/setup/first_run.html", form)


@require_http_methods(["GET", "POST"])
@superuser_required
def location_new(request: HttpRequest) -> HttpResponseBase:
    """/staff/setup/locations/new/: another location, with the same defaults as the first."""
    form = LocationNewForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        location = _create(request, form)
        if location is not None:
            return redirect("setup-location", location.pk)
    return _page(request, "staff/setup/new_location.html", form)


def _page(request: HttpRequest, template: str, form: LocationNewForm) -> HttpResponse:
    return render_setup(request, template, None, form=form, status=400 if form.is_bound else 200)
