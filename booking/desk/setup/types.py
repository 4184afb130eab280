"""/staff/setup/<location>/types/: the types of visit a location offers, and one type's page:
its details and the resources one visit of it needs, with a picture of that visit's timeline.

A type's details and its needs are two forms on one page, each saved on its own. Either can
take resources away from visits already booked (a longer visit, a need one no longer holds, a
need at other minutes), so both go through :func:`booking.desk.setup.base.guarded`: the change
is refused with the visits listed (409) until the admin confirms, and those visits then go on
the day board's "needs a new time" list.

Colour: a type's own, or the calendar's palette by its place among the location's types
(``booking.calendar.type_colours``); the pages show the one the calendar draws.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from booking.calendar import PALETTE, type_colours
from booking.desk.setup.base import audit_setup, guarded, render_setup, setup_required
from booking.desk.setup.type_forms import (
    AppointmentTypeForm,
    BaseNeedFormSet,
    NeedFormSet,
    need_initial,
    pool_label,
)
from booking.models import AuditAction, Protocol
from scheduling.models import AppointmentType, Location, Resource, ResourceRequirement

SECTION = "setup-types"
NEEDS_PREFIX = "needs"


def _type_at(location: Location, type_id: int) -> AppointmentType:
    # Another location's type is not found here: 404, never a hint that it exists.
    return get_object_or_404(
        AppointmentType.objects.select_related("location"), pk=type_id, location=location
    )


def _resources(location: Location) -> list[Resource]:
    return list(Resource.objects.at(location).order_by("kind", "name", "id"))


# --- The timeline picture ------------------------------------------------------------------

LABEL_WIDTH = 170
BAR_WIDTH = 480
ROW_HEIGHT = 30
BAR_HEIGHT = 18
TOP = 24


@dataclass(frozen=True)
class Segment:
    """One drawn bar: minutes from the visit start, and its SVG x and width."""

    kind: str  # "held" or "buffer"
    start: int
    end: int
    x: float
    width: float


@dataclass(frozen=True)
class TimelineRow:
    label: str
    held_from: int
    held_until: int
    buffer_before: int
    buffer_after: int
    segments: list[Segment]
    y: float
    text_y: float

    @property
    def held_start(self) -> int:
        return self.held_from - self.buffer_before

    @property
    def held_end(self) -> int:
        return self.held_until + self.buffer_after

    @property
    def span(self) -> str:
        """The minutes needed and held, in words (the picture's text alternative)."""
        words = f"needed from minute {self.held_from} to {self.held_until}"
        extras = []
        if self.buffer_before:
            extras.append(f"{self.buffer_before} min buffer before")
        if self.buffer_after:
            extras.append(f"{self.buffer_after} min buffer after")
        if not extras:
            return words
        held = f"held from minute {self.held_start} to {self.held_end}"
        return f"{words} ({', '.join(extras)}; {held})"


@dataclass(frozen=True)
class Timeline:
    """One visit of a type, per resource need: when each is needed and held, as SVG geometry
    computed here (the pages' CSP allows no style attribute) and as words."""

    duration: int
    rows: list[TimelineRow]
    width: int
    height: int
    visit_x: float
    visit_end_x: float
    axis_y: float

    @property
    def description(self) -> str:
        lines = [f"A {self.duration}-minute visit."]
        lines += [f"{row.label}: {row.span}." for row in self.rows]
        return " ".join(lines)


def visit_timeline(duration: int, needs: Sequence[ResourceRequirement]) -> Timeline:
    """The picture of one visit of ``duration`` minutes with ``needs``."""
    spans = []
    for need in needs:
        lead, tail = need.held_span(duration)
        start = need.offset_minutes
        end = tail - need.buffer_after_minutes
        label = pool_label(need.resource_kind, need.role, need.resource)
        spans.append((label, lead, start, end, tail, need))
    low = min([0, *(lead for _, lead, *_ in spans)])
    high = max([duration, *(tail for *_, tail, _ in spans)])
    scale = BAR_WIDTH / max(high - low, 1)

    def x(minute: int) -> float:
        return round(LABEL_WIDTH + (minute - low) * scale, 1)

    rows = []
    for n, (label, lead, start, end, tail, need) in enumerate(spans):
        y = TOP + n * ROW_HEIGHT
        parts = [("buffer", lead, start), ("held", start, end), ("buffer", end, tail)]
        segments = [
            Segment(kind, a, b, x(a), round(x(b) - x(a), 1)) for kind, a, b in parts if b > a
        ]
        rows.append(
            TimelineRow(
                label=label,
                held_from=start,
                held_until=end,
                buffer_before=need.buffer_before_minutes,
                buffer_after=need.buffer_after_minutes,
                segments=segments,
                y=y,
                text_y=y + BAR_HEIGHT - 4,
            )
        )
    axis_y = TOP + len(rows) * ROW_HEIGHT + 4
    return Timeline(
        duration=duration,
        rows=rows,
        width=LABEL_WIDTH + BAR_WIDTH + 20,
        height=int(axis_y + 20),
        visit_x=x(0),
        visit_end_x=x(duration),
        axis_y=axis_y,
    )


# --- Pages ---------------------------------------------------------------------------------


@require_GET
@setup_required
def types_list(request: HttpRequest, location: Location) -> HttpResponse:
    """The location's types of visit, with what makes each bookable."""
    types = list(AppointmentType.objects.filter(location=location).order_by("name"))
    with_protocol = set(
        Protocol.objects.filter(appointment_type__in=types, is_active=True).values_list(
            "appointment_type_id", flat=True
        )
    )
    colours = type_colours(location)
    rows = [(t, colours[t.pk], t.pk in with_protocol) for t in types]
    return render_setup(request, "staff/setup/types.html", location, section=SECTION, rows=rows)


@never_cache
@require_http_methods(["GET", "POST"])
@setup_required
def type_new(request: HttpRequest, location: Location) -> HttpResponse:
    """Add a type of visit. Its resource needs are set on its own page, next."""
    form = AppointmentTypeForm(
        request.POST if request.method == "POST" else None,
        instance=AppointmentType(location=location),
    )
    if request.method == "GET" or not form.is_valid():
        return render_setup(
            request,
            "staff/setup/type_new.html",
            location,
            section=SECTION,
            form=form,
            status=200 if request.method == "GET" else 400,
        )
    appointment_type = form.save()
    audit_setup(
        request, AuditAction.CREATE, appointment_type, location=location, changed=form.changed_data
    )
    messages.success(
        request, f"{appointment_type.name} added. Now say which resources one visit needs."
    )
    return redirect("setup-type", location.pk, appointment_type.pk)


def _type_page(
    request: HttpRequest,
    location: Location,
    appointment_type: AppointmentType,
    *,
    status: int = 200,
    **context: Any,
) -> HttpResponse:
    needs = list(appointment_type.requirements.select_related("resource"))
    context.setdefault("form", AppointmentTypeForm(instance=appointment_type))
    if "needs_formset" not in context:
        context["needs_formset"] = NeedFormSet(
            prefix=NEEDS_PREFIX,
            initial=[need_initial(n) for n in needs],
            form_kwargs={
                "resources": _resources(location),
                "visit_minutes": appointment_type.duration_minutes,
            },
        )
    protocols = list(Protocol.objects.filter(appointment_type=appointment_type).order_by("name"))
    return render_setup(
        request,
        "staff/setup/type.html",
        location,
        section=SECTION,
        status=status,
        appointment_type=appointment_type,
        colour=type_colours(location).get(appointment_type.pk, PALETTE[0]),
        timeline=visit_timeline(appointment_type.duration_minutes, needs),
        protocols=protocols,
        **context,
    )


def _guarded_save(
    request: HttpRequest,
    location: Location,
    appointment_type: AppointmentType,
    apply: Callable[[], object],
    *,
    reason: str,
    refused: str,
    context: dict[str, Any],
    changed: list[str],
    done: str,
    **detail: Any,
) -> HttpResponse:
    """Save a change that can take resources from booked visits, or show those visits (409,
    the form as typed) until the admin confirms; then audit it."""
    result, orphans = guarded(request, apply, location=location, reason=reason)
    if result is None:
        return _type_page(
            request,
            location,
            _type_at(location, appointment_type.pk),  # as saved: the change was undone
            status=409,
            refused=refused,
            orphans=orphans,
            **context,
        )
    audit_setup(
        request, AuditAction.UPDATE, appointment_type, location=location, changed=changed, **detail
    )
    if orphans:
        messages.warning(
            request,
            f"{done} {len(orphans)} booked visit{'s' if len(orphans) != 1 else ''} now need a "
            "new time: they are on the day board's list.",
        )
    else:
        messages.success(request, done)
    return redirect("setup-type", location.pk, appointment_type.pk)


@never_cache
@require_http_methods(["GET", "POST"])
@setup_required
def type_edit(request: HttpRequest, location: Location, type_id: int) -> HttpResponse:
    """One type's page; a POST saves its details."""
    appointment_type = _type_at(location, type_id)
    if request.method == "GET":
        return _type_page(request, location, appointment_type)
    # The form changes its instance as it validates: the page shows the type as saved.
    form = AppointmentTypeForm(request.POST, instance=_type_at(location, type_id))
    if not form.is_valid():
        return _type_page(request, location, appointment_type, status=400, form=form)
    changed = form.changed_data
    if not changed:
        messages.info(request, "Nothing to save: no detail was changed.")
        return redirect("setup-type", location.pk, appointment_type.pk)
    return _guarded_save(
        request,
        location,
        appointment_type,
        lambda: form.save(),
        reason=f"{appointment_type.name}: details changed ({', '.join(changed)}).",
        refused="details",
        context={"form": form},
        changed=changed,
        done=f"{appointment_type.name}: details saved.",
    )


def _needs_replace(
    appointment_type: AppointmentType, needs: list[ResourceRequirement]
) -> list[ResourceRequirement]:
    with transaction.atomic():
        appointment_type.requirements.all().delete()
        for need in needs:
            need.appointment_type = appointment_type
        return ResourceRequirement.objects.bulk_create(needs)


def _summary(needs: Sequence[ResourceRequirement]) -> list[str]:
    """Each need in a few words, for the audit row: pool and minutes, no patient data."""
    return [
        f"{pool_label(n.resource_kind, n.role, n.resource)} +{n.offset_minutes}"
        f"/{n.duration_minutes or 'end'} (-{n.buffer_before_minutes}/+{n.buffer_after_minutes})"
        for n in needs
    ]


@require_POST
@setup_required
def type_needs(request: HttpRequest, location: Location, type_id: int) -> HttpResponse:
    """Save a type's resource needs: all of them at once, as the formset lists them."""
    appointment_type = _type_at(location, type_id)
    formset = NeedFormSet(
        request.POST,
        prefix=NEEDS_PREFIX,
        form_kwargs={
            "resources": _resources(location),
            "visit_minutes": appointment_type.duration_minutes,
        },
    )
    if not formset.is_valid():
        return _type_page(request, location, appointment_type, status=400, needs_formset=formset)
    assert isinstance(formset, BaseNeedFormSet)  # noqa: S101 - narrows the type
    before = _summary(list(appointment_type.requirements.select_related("resource")))
    needs = formset.requirements()
    after = _summary(needs)
    if before == after:
        messages.info(request, "Nothing to save: the needs are as they were.")
        return redirect("setup-type", location.pk, appointment_type.pk)
    return _guarded_save(
        request,
        location,
        appointment_type,
        lambda: _needs_replace(appointment_type, needs),
        reason=f"{appointment_type.name}: the resources a visit needs changed.",
        refused="needs",
        context={"needs_formset": formset},
        changed=["requirements"],
        done=f"{appointment_type.name}: resource needs saved.",
        needs_before=before,
        needs_after=after,
    )
