from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, ProtectedError, RestrictedError

from booking.access.audit import audit
from booking.models import Allocation, AuditAction, StaffProfile
from scheduling.models import (
    DateOverride,
    Resource,
    ResourceKind,
    ResourceRequirement,
    TimeOff,
    WorkingHours,
)

# How many clashing visits a refusal names.
_SHOWN_CLASHES = 5


class Command(BaseCommand):
    """Make one person of the rows a clinic made for them at each site.

    Before a resource could work at several locations (``Resource.sites``), a prescriber seen at
    two sites was two rows, each with its own calendar: the same person could be booked at both
    sites at once. This moves everything of the duplicate rows to the kept one (their visits'
    lanes, weekly hours and date overrides, each still at its own location, time off, the staff
    account's link, and types that named them), adds the duplicates' locations to the kept row's
    sites, and deletes the duplicates. From then on a visit at one site takes the person's time
    at every site (the allocations' exclusion constraint is per resource).

    Refused, with nothing changed, when the rows are not all staff of one role, when more than
    one is linked to a staff account, or when visits of different rows overlap in time: those
    double bookings are for the front desk to move first, and the refusal names them.
    """

    help = "Merge duplicated staff rows (one per site) into one person working at every site."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("keep", type=int, help="The id of the resource row to keep.")
        parser.add_argument(
            "duplicates", type=int, nargs="+", help="The ids of the rows merged into it."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        keep_id: int = options["keep"]
        duplicate_ids: list[int] = options["duplicates"]
        if keep_id in duplicate_ids or len(set(duplicate_ids)) != len(duplicate_ids):
            raise CommandError("Name each row once, and not the kept row among the duplicates.")
        try:
            with transaction.atomic():
                moved = staff_merge(keep_id, duplicate_ids)
        except IntegrityError as clash:
            # PostgreSQL's exclusion constraint: a visit was booked on one of the rows between
            # the check and the move.
            raise CommandError(
                f"Nothing merged: the rows' visits overlap now ({clash}). Run it again."
            ) from clash
        self.stdout.write(
            f"Merged {', '.join(map(str, duplicate_ids))} into {keep_id}: "
            + ", ".join(f"{count} {what}" for what, count in moved.items())
            + "."
        )


def staff_merge(keep_id: int, duplicate_ids: list[int]) -> dict[str, int]:
    """Merge ``duplicate_ids`` into ``keep_id`` (inside the caller's transaction); what moved.

    Raises :class:`CommandError` before writing anything when the merge would be wrong.
    """
    ids = [keep_id, *duplicate_ids]
    # Locking the rows makes parallel merges of the same people queue; bookings are guarded by
    # the exclusion constraint (PostgreSQL) or the serialised writes (SQLite).
    rows = {r.pk: r for r in Resource.objects.select_for_update().filter(pk__in=ids)}
    missing = [str(pk) for pk in ids if pk not in rows]
    if missing:
        raise CommandError(f"No resource with id {', '.join(missing)}.")
    keep = rows[keep_id]
    duplicates = [rows[pk] for pk in duplicate_ids]
    not_staff = [r for r in rows.values() if r.kind != ResourceKind.STAFF]
    if not_staff:
        raise CommandError(
            "Only staff rows are merged; not staff: "
            + ", ".join(f"{r.pk} ({r.name}, {r.get_kind_display()})" for r in not_staff)
            + "."
        )
    roles = {r.role for r in rows.values()}
    if len(roles) > 1:
        raise CommandError(
            "The rows have different roles: "
            + ", ".join(f"{r.pk} {r.get_role_display()}" for r in rows.values())
            + "."
        )
    profiles = list(StaffProfile.objects.filter(resource_id__in=ids).select_related("user"))
    if len(profiles) > 1:
        raise CommandError(
            "More than one of the rows is a staff account's calendar column ("
            + ", ".join(f"{p.user.get_username()} on {p.resource_id}" for p in profiles)
            + "): unlink all but one first."
        )
    clashes = _overlapping(ids)
    if clashes:
        raise CommandError(
            "Visits of these rows overlap in time; move them first: "
            + "; ".join(clashes[:_SHOWN_CLASHES])
            + (
                f" (and {len(clashes) - _SHOWN_CLASHES} more)"
                if len(clashes) > _SHOWN_CLASHES
                else ""
            )
            + "."
        )
    lanes_over = Allocation.objects.filter(
        resource_id__in=duplicate_ids, active=True, lane__gte=keep.capacity
    ).count()
    if lanes_over:
        raise CommandError(
            f"{lanes_over} visit(s) of the duplicates use lanes beyond the kept row's capacity "
            f"({keep.capacity}): raise its capacity first."
        )

    moved = {
        "allocations": Allocation.objects.filter(resource_id__in=duplicate_ids).update(
            resource_id=keep_id
        ),
        "weekly hours": WorkingHours.objects.filter(resource_id__in=duplicate_ids).update(
            resource_id=keep_id
        ),
        "date overrides": DateOverride.objects.filter(resource_id__in=duplicate_ids).update(
            resource_id=keep_id
        ),
        "time off": TimeOff.objects.filter(resource_id__in=duplicate_ids).update(
            resource_id=keep_id
        ),
        "requirements": ResourceRequirement.objects.filter(resource_id__in=duplicate_ids).update(
            resource_id=keep_id
        ),
    }
    moved["staff accounts"] = StaffProfile.objects.filter(resource_id__in=duplicate_ids).update(
        resource_id=keep_id
    )
    sites = {d.location_id for d in duplicates}
    for duplicate in duplicates:
        sites.update(duplicate.sites.values_list("pk", flat=True))
    sites.discard(keep.location_id)
    keep.sites.add(*sites)

    deactivated = []
    for duplicate in duplicates:
        try:
            with transaction.atomic():
                duplicate.delete()
        except (ProtectedError, RestrictedError):
            duplicate.is_active = False
            duplicate.save(update_fields=["is_active"])
            deactivated.append(duplicate.pk)
    moved["rows deleted"] = len(duplicates) - len(deactivated)
    moved["rows deactivated"] = len(deactivated)
    audit(
        None,
        AuditAction.UPDATE,
        keep,
        location_id=keep.location_id,
        via="staff_merge",
        merged=duplicate_ids,
        deactivated=deactivated,
        sites=sorted(sites),
    )
    return moved


def _overlapping(ids: list[int]) -> list[str]:
    """The pairs of active visits held by different ``ids`` whose times overlap, as text."""
    others = Allocation.objects.filter(
        resource_id__in=ids, active=True, start__lt=OuterRef("end"), end__gt=OuterRef("start")
    ).exclude(resource_id=OuterRef("resource_id"))
    clashing = (
        Allocation.objects.filter(resource_id__in=ids, active=True)
        .filter(Exists(others))
        .select_related("appointment")
        .order_by("start", "pk")
    )
    return [
        f"visit {a.appointment.reference} on {a.resource_id} at {a.start:%Y-%m-%d %H:%M} UTC"
        for a in clashing
    ]
