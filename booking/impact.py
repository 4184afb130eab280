"""What a setup change does to visits already booked: a change never orphans one silently.

Reducing someone's hours, adding time off or a closure, or changing what a type of visit needs
can leave booked visits without a resource they hold. :func:`setup_change` makes the change
inside a transaction, asks the availability engine, with the new setup, whether every future
visit it could touch still has each of its resources open for the span it holds, and either
undoes the change (:class:`ChangeOrphansVisits`, listing the visits) or, when the admin has
confirmed, keeps it and puts those visits on the day board's "needs a new time" list. Patients
are not messaged: the desk calls them and moves or cancels the visit.

The check is the engine's own (working time less time off and closures, per resource, per
location), so what the setup no longer allows is neither offered nor silently kept.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection
from datetime import datetime
from typing import TypeVar

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from booking.errors import BookingError
from booking.models import CHANGEABLE_STATUSES, Allocation, Appointment
from scheduling.availability import open_time, to_minutes
from scheduling.selectors import schedule_load

T = TypeVar("T")


class ChangeOrphansVisits(BookingError):
    """The change would leave booked visits without a resource; nothing was saved."""

    status = 409
    code = "orphans_visits"

    def __init__(self, visits: list[Appointment]) -> None:
        super().__init__(
            f"This change would leave {len(visits)} booked "
            f"visit{'s' if len(visits) != 1 else ''} without the staff, chair or room "
            "it holds. Nothing was saved."
        )
        self.visits = visits


def _touched(
    location_ids: Collection[int], resource_ids: Collection[int], now: datetime
) -> list[Appointment]:
    """Future visits the desk could still move that a change at ``location_ids`` or of
    ``resource_ids`` could leave without a resource."""
    holding = Allocation.objects.filter(active=True, resource_id__in=list(resource_ids)).values(
        "appointment_id"
    )
    return list(
        Appointment.objects.filter(end__gt=now, status__in=sorted(CHANGEABLE_STATUSES))
        .filter(Q(location_id__in=list(location_ids)) | Q(pk__in=holding))
        .select_related("appointment_type__location")
        .prefetch_related("allocations")
        .order_by("start")
    )


def orphaned_visits(
    *,
    location_ids: Collection[int] = (),
    resource_ids: Collection[int] = (),
    now: datetime | None = None,
) -> list[Appointment]:
    """The future visits (at ``location_ids``, or holding one of ``resource_ids``) that the setup
    as it now stands leaves without a resource: for some need of the visit's type, no resource
    it holds is in that need's pool and open (working, not off, not closed) for the need's span.

    One schedule read per type of visit concerned, whatever the number of visits."""
    now = now or timezone.now()
    by_type: dict[int, list[Appointment]] = defaultdict(list)
    for visit in _touched(location_ids, resource_ids, now):
        by_type[visit.appointment_type_id].append(visit)
    orphans: list[Appointment] = []
    for visits in by_type.values():
        appointment_type = visits[0].appointment_type
        zone = appointment_type.location.zone
        days = sorted({visit.start.astimezone(zone).date() for visit in visits})
        problem = schedule_load(
            appointment_type=appointment_type, days=days, now=now, enforce_notice=False
        )
        opened = {rid: open_time(calendar) for rid, calendar in problem.calendars.items()}
        for visit in visits:
            start = to_minutes(visit.start)
            # A lane above a lowered capacity is no longer the resource's to give.
            held = [
                a.resource_id
                for a in visit.allocations.all()
                if a.active
                and a.resource_id in problem.calendars
                and a.lane < problem.calendars[a.resource_id].capacity
            ]
            for need in problem.needs:
                lo, hi = start + need.lead, start + need.tail
                if not any(
                    rid in need.candidates
                    and any(s <= lo and hi <= e for s, e in opened.get(rid, []))
                    for rid in held
                ):
                    orphans.append(visit)
                    break
    return sorted(orphans, key=lambda visit: visit.start)


def setup_change(
    apply: Callable[[], T],
    *,
    location_ids: Collection[int],
    resource_ids: Collection[int] = (),
    confirm: bool,
    reason: str,
    now: datetime | None = None,
) -> tuple[T, list[Appointment]]:
    """Make a setup change (``apply``) unless it orphans booked visits.

    Returns what ``apply`` returned and the visits put on the "needs a new time" list (empty
    when none was affected). Without ``confirm``, a change that would orphan a visit is undone
    and :class:`ChangeOrphansVisits` lists those visits; with it, the change stands and they
    are flagged with ``reason``. Visits already flagged, or already without a resource before
    the change, are not the change's doing and are not counted."""
    now = now or timezone.now()
    with transaction.atomic():
        before = {
            visit.pk
            for visit in orphaned_visits(
                location_ids=location_ids, resource_ids=resource_ids, now=now
            )
        }
        result = apply()
        after = orphaned_visits(location_ids=location_ids, resource_ids=resource_ids, now=now)
        new = [v for v in after if v.pk not in before and v.needs_new_time_since is None]
        if new and not confirm:
            raise ChangeOrphansVisits(new)
        if new:
            Appointment.objects.filter(pk__in=[v.pk for v in new]).update(
                needs_new_time_since=now, needs_new_time_reason=reason[:300]
            )
    return result, new
