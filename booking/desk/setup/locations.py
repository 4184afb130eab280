"""/staff/setup/<location>/: a location's own settings (names, zone, contact, quiet hours, the
patient-facing rules, the desk's calendar feed of every visit), and its closures
(/staff/setup/<location>/closures/). Creating a location is the setup home's (a superuser's) job.

A new time zone moves every local rule with it, the weekly hours included: hours that were
09:00-17:00 in New York are other instants in Chicago. Changing the zone therefore goes through
the "this change affects booked visits" check like any change of hours.
"""

from __future__ import annotations

from django.contrib import messages
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from booking.desk.setup.base import audit_setup, guarded, render_setup, setup_required
from booking.desk.setup.forms import LocalPeriodForm, LocationForm
from booking.desk.setup.people import (
    FEED,
    FeedForm,
    feed_card,
    feed_issue_from,
    feed_revoke_from,
)
from booking.models import Appointment, AuditAction
from scheduling.models import Closure, Location

TEMPLATE = "staff/setup/location.html"


def _page(
    request: HttpRequest,
    location: Location,
    form: LocationForm,
    *,
    orphans: list[Appointment] | None = None,
    status: int = 200,
    feed_form: FeedForm | None = None,
    feed_url: str = "",
) -> HttpResponse:
    return render_setup(
        request,
        TEMPLATE,
        location,
        section="setup-location",
        status=status,
        form=form,
        orphans=orphans,
        **feed_card(
            location,
            None,
            form=feed_form or FeedForm(prefix=FEED),
            issue_url=reverse("setup-location-feed", args=[location.pk]),
            revoke_url=reverse("setup-location-feed-revoke", args=[location.pk]),
            subject=f"every visit at {location.name}, for the desk",
            feed_url=feed_url,
        ),
    )


@require_http_methods(["GET", "POST"])
@never_cache
@setup_required
def location_edit(request: HttpRequest, location: Location) -> HttpResponse:
    if request.method == "GET":
        return _page(request, location, LocationForm(instance=location))
    # The form edits a copy: a refused change must not leave the page showing unsaved values
    # as the location's own (its name in the sub-navigation, its zone).
    form = LocationForm(request.POST, instance=Location.objects.get(pk=location.pk))
    if not form.is_valid():
        return _page(request, location, form, status=400)
    changed = form.changed_data
    if not changed:
        messages.info(request, "Nothing to save: no setting was changed.")
        return redirect("setup-location", location.pk)
    if "timezone" in changed:
        saved, orphans = guarded(
            request,
            form.save,
            location=location,
            reason=f"The location's time zone changed to {form.cleaned_data['timezone']}.",
        )
        if saved is None:
            return _page(request, location, form, orphans=orphans, status=409)
    else:
        form.save()
    audit_setup(request, AuditAction.UPDATE, form.instance, location=location, changed=changed)
    messages.success(request, f"{form.instance.name}: settings saved.")
    return redirect("setup-location", location.pk)


@require_POST
@setup_required
def location_feed(request: HttpRequest, location: Location) -> HttpResponse:
    """Issue the desk's feed of every visit here; its address is on this answer only."""
    feed_form, url = feed_issue_from(request, location, None)
    return _page(
        request,
        location,
        LocationForm(instance=location),
        feed_form=feed_form,
        feed_url=url,
        status=200 if url else 400,
    )


@require_POST
@setup_required
def location_feed_revoke(request: HttpRequest, location: Location) -> HttpResponse:
    feed_revoke_from(request, location, None)
    return redirect(reverse("setup-location", args=[location.pk]) + "#feed-title")


# --- Closures ---------------------------------------------------------------------------------


def _closures_page(
    request: HttpRequest,
    location: Location,
    form: LocalPeriodForm,
    *,
    orphans: list[Appointment] | None = None,
    status: int = 200,
) -> HttpResponse:
    return render_setup(
        request,
        "staff/setup/closures.html",
        location,
        section="setup-closures",
        status=status,
        form=form,
        orphans=orphans,
        periods=[
            (closure, reverse("setup-closure-remove", args=[location.pk, closure.pk]))
            for closure in Closure.objects.filter(
                location=location, end__gt=timezone.now()
            ).order_by("start")
        ],
    )


@require_http_methods(["GET", "POST"])
@never_cache
@setup_required
def closures(request: HttpRequest, location: Location) -> HttpResponse:
    """The location's closures to come, and a new one: a closure over booked visits is refused
    with the visits listed, or saved once confirmed and the visits listed as needing a new
    time (nobody is messaged: the desk calls them)."""
    now = timezone.now()
    if request.method == "GET":
        return _closures_page(request, location, LocalPeriodForm(zone=location.zone, now=now))
    form = LocalPeriodForm(request.POST, zone=location.zone, now=now)
    if not form.is_valid():
        return _closures_page(request, location, form, status=400)
    data = form.cleaned_data
    closure, orphans = guarded(
        request,
        lambda: Closure.objects.create(
            location=location, start=data["start"], end=data["end"], reason=data["reason"]
        ),
        location=location,
        reason=f"{location.name} is closed{': ' + data['reason'] if data['reason'] else ''}.",
    )
    if closure is None:
        return _closures_page(request, location, form, orphans=orphans, status=409)
    audit_setup(
        request, AuditAction.CREATE, closure, location=location, changed=["start", "end", "reason"]
    )
    if orphans:
        messages.warning(
            request,
            f"Closure saved. {len(orphans)} booked visit{'s' if len(orphans) != 1 else ''} "
            "now need a new time: they are on the day board's list.",
        )
    else:
        messages.success(request, "Closure saved.")
    return redirect("setup-closures", location.pk)


@require_POST
@setup_required
def closure_drop(request: HttpRequest, location: Location, closure_id: int) -> HttpResponse:
    closure = Closure.objects.filter(location=location, pk=closure_id).first()
    if closure is None:
        raise Http404("No such closure.")
    # Opening again takes no time away: no visit can lose its resources by it.
    with transaction.atomic():
        audit_setup(request, AuditAction.DELETE, closure, location=location, changed=["closure"])
        closure.delete()
    messages.success(request, "Closure removed.")
    return redirect("setup-closures", location.pk)
