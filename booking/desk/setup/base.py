"""What every setup page shares: who may open it, the location it is about, the audit of each
change, and the "this change affects booked visits" confirmation."""

from __future__ import annotations

from collections.abc import Callable, Collection
from functools import wraps
from typing import Any, TypeVar

from django.db.models import Model
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import render

from booking.access.audit import audit
from booking.access.decorators import staff_required
from booking.access.roles import SETUP
from booking.access.scoping import locations_for
from booking.impact import ChangeOrphansVisits, setup_change
from booking.models import Appointment, AuditAction
from scheduling.models import Location

T = TypeVar("T")

# The setup pages of one location, in the order of its sub-navigation: (url name, label). Each
# url takes the location's id as its one argument.
SECTIONS: list[tuple[str, str]] = [
    ("setup-location", "Location"),
    ("setup-people", "People and places"),
    ("setup-closures", "Closures"),
    ("setup-types", "Types of visit"),
    ("setup-protocols", "Protocols"),
    ("setup-reminders", "Reminders"),
    ("setup-webhooks", "Webhooks"),
    ("setup-intake", "Intake questions"),
    ("setup-accounts", "Staff accounts"),
]


def setup_required(
    view: Callable[..., HttpResponseBase],
) -> Callable[..., HttpResponseBase]:
    """A setup page: staff with the setup permission. A ``location_id`` argument is replaced by
    the :class:`Location`, found among the user's own locations only (404 otherwise)."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if "location_id" in kwargs:
            kwargs["location"] = setup_location(request, kwargs.pop("location_id"))
        return view(request, *args, **kwargs)

    return staff_required(SETUP)(wrapped)


def setup_location(request: HttpRequest, location_id: int) -> Location:
    location = locations_for(request.user).filter(pk=location_id).first()
    if location is None:
        raise Http404("No such location.")
    return location


def render_setup(
    request: HttpRequest,
    template: str,
    location: Location | None,
    *,
    section: str = "",
    status: int = 200,
    **context: Any,
) -> HttpResponse:
    """Render a setup page inside the setup frame (the location's sub-navigation)."""
    return render(
        request,
        template,
        {
            "nav": "setup",
            "location": location,
            "sections": SECTIONS,
            "section": section,
            "setup_locations": locations_for(request.user),
            **context,
        },
        status=status,
    )


def audit_setup(
    request: HttpRequest,
    action: str,
    obj: Model,
    *,
    location: Location | None,
    changed: Collection[str] = (),
    **detail: Any,
) -> None:
    """One audit row for one setup change: who changed what, at which location, which fields."""
    audit(
        request,
        AuditAction(action),
        obj,
        location_id=location.pk if location is not None else None,
        setup=True,
        changed=sorted(changed),
        **detail,
    )


def guarded(
    request: HttpRequest,
    apply: Callable[[], T],
    *,
    location: Location,
    resource_ids: Collection[int] = (),
    reason: str,
) -> tuple[T | None, list[Appointment] | None]:
    """Run a setup change through :func:`booking.impact.setup_change`, confirmed when the form
    carries ``confirm_orphans``.

    Returns ``(result, flagged visits)``, or ``(None, visits)`` when the change was refused
    because it would leave those visits without resources: the page shows them (see
    ``staff/setup/_orphans.html``) and offers to save anyway."""
    try:
        result, flagged = setup_change(
            apply,
            location_ids={location.pk},
            resource_ids=resource_ids,
            confirm=request.POST.get("confirm_orphans") == "1",
            reason=reason,
        )
    except ChangeOrphansVisits as refused:
        return None, refused.visits
    for visit in flagged:
        audit(request, AuditAction.UPDATE, visit, needs_new_time=reason)
    return result, flagged
