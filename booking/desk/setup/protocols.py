"""/staff/setup/<location>/protocols/: the location's protocols (a treatment's series template:
how many sessions, how far apart, within how long; a booster's interval) and one protocol's page.

A prescriber approves a patient for a protocol, so a treatment is bookable only with one in
use (``booking.desk.setup.type_forms``); the list shows the treatments still without one, and
the add form offers them first. A protocol's change does not move a booked visit or take a
resource from one: series already booked keep their dates, and the next proposal follows it.
Observation time belongs to the type of visit (its page edits it); a protocol's page shows it.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from booking.desk.setup.base import audit_setup, render_setup, setup_required
from booking.desk.setup.type_forms import ProtocolForm
from booking.models import AuditAction, Protocol
from scheduling.models import AppointmentKind, AppointmentType, Location

SECTION = "setup-protocols"


def _treatments(location: Location) -> list[AppointmentType]:
    """The location's treatment types: those without a protocol in use first."""
    types = list(
        AppointmentType.objects.filter(location=location)
        .exclude(kind=AppointmentKind.CONSULTATION)
        .order_by("name")
    )
    covered = set(
        Protocol.objects.filter(appointment_type__in=types, is_active=True).values_list(
            "appointment_type_id", flat=True
        )
    )
    return sorted(types, key=lambda t: (t.pk in covered, t.name))


@never_cache
@require_http_methods(["GET", "POST"])
@setup_required
def protocols_list(request: HttpRequest, location: Location) -> HttpResponse:
    """The location's protocols, the treatments without one, and a form to add one."""
    treatments = _treatments(location)
    bound = request.method == "POST"
    form = ProtocolForm(request.POST if bound else None, types=treatments, instance=Protocol())
    if bound and form.is_valid():
        protocol = form.save()
        audit_setup(
            request, AuditAction.CREATE, protocol, location=location, changed=form.changed_data
        )
        messages.success(request, f"{protocol.name} added.")
        return redirect("setup-protocol", location.pk, protocol.pk)
    protocols = list(
        Protocol.objects.filter(appointment_type__location=location)
        .select_related("appointment_type")
        .order_by("appointment_type__name", "name")
    )
    covered = {p.appointment_type_id for p in protocols if p.is_active}
    return _page(
        request,
        location,
        "staff/setup/protocols.html",
        status=400 if bound else 200,
        form=form,
        protocols=protocols,
        uncovered=[t for t in treatments if t.pk not in covered],
    )


def _page(
    request: HttpRequest, location: Location, template: str, *, status: int, **context: Any
) -> HttpResponse:
    return render_setup(request, template, location, section=SECTION, status=status, **context)


@never_cache
@require_http_methods(["GET", "POST"])
@setup_required
def protocol_edit(request: HttpRequest, location: Location, protocol_id: int) -> HttpResponse:
    # Another location's protocol is not found here: 404, never a hint that it exists.
    protocol = get_object_or_404(
        Protocol.objects.select_related("appointment_type"),
        pk=protocol_id,
        appointment_type__location=location,
    )
    shown = get_object_or_404(Protocol.objects.select_related("appointment_type"), pk=protocol.pk)
    bound = request.method == "POST"
    form = ProtocolForm(request.POST if bound else None, instance=protocol)
    if bound and form.is_valid():
        changed = form.changed_data
        if not changed:
            messages.info(request, "Nothing to save: no detail was changed.")
        else:
            form.save()
            audit_setup(request, AuditAction.UPDATE, protocol, location=location, changed=changed)
            messages.success(request, f"{protocol.name} saved.")
        return redirect("setup-protocol", location.pk, protocol.pk)
    return _page(
        request,
        location,
        "staff/setup/protocol.html",
        status=400 if bound else 200,
        form=form,
        protocol=shown,  # as saved: the form changes its instance as it validates
        appointment_type=shown.appointment_type,
    )
