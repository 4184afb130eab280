"""``manage.py staff_merge``: the rows a clinic made for one person at each site become one.

Refused, with nothing changed, while the rows' visits overlap (a double booking the front desk
must move first) or when the rows are not one role of staff; otherwise everything of the
duplicate moves to the kept row and the person is one calendar across sites.
"""

from __future__ import annotations

import io
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.management import CommandError, call_command

from booking.access.roles import Role
from booking.errors import SlotTaken
from booking.models import Allocation, AuditEvent, StaffProfile
from booking.selectors import available_slots
from booking.services import appointment_book
from scheduling.models import (
    AppointmentKind,
    DateOverride,
    Resource,
    ResourceKind,
    ResourceRequirement,
    StaffRole,
    TimeOff,
    WorkingHours,
)
from tests.staff_helpers import staff_user

NEW_YORK = ZoneInfo("America/New_York")
DAY = date(2026, 6, 8)  # a Monday
NOW = datetime(2026, 6, 1, 12, tzinfo=ZoneInfo("UTC"))
MORNINGS = ((time(8), time(12)),)
PRESCRIBER = ({"resource_kind": ResourceKind.STAFF, "role": StaffRole.PRESCRIBER},)

pytestmark = pytest.mark.usefixtures("frozen")


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


def at(hour: int, minute: int = 0) -> datetime:
    return datetime.combine(DAY, time(hour, minute), tzinfo=NEW_YORK)


@pytest.fixture
def twice(make_location, make_resource, make_type):
    """Dr. Lee entered once at each site, mornings at both, with a consultation at each."""
    uptown, downtown = make_location(slug="uptown"), make_location(slug="downtown")
    keep = make_resource(
        uptown, ResourceKind.STAFF, role=StaffRole.PRESCRIBER, name="Dr. Lee", hours=MORNINGS
    )
    duplicate = make_resource(
        downtown, ResourceKind.STAFF, role=StaffRole.PRESCRIBER, name="Dr. Lee", hours=MORNINGS
    )
    types = {
        "uptown": make_type(uptown, duration=60, needs=PRESCRIBER),
        "downtown": make_type(downtown, duration=60, needs=PRESCRIBER),
    }
    return uptown, downtown, keep, duplicate, types


def merge(*ids: int) -> str:
    out = io.StringIO()
    call_command("staff_merge", *map(str, ids), stdout=out)
    return out.getvalue()


def starts(appointment_type) -> list[str]:
    return [
        f"{start.astimezone(NEW_YORK):%H:%M}"
        for start, _ in available_slots(
            appointment_type=appointment_type, first_day=DAY, last_day=DAY, now=NOW
        )
    ]


def test_it_refuses_while_the_rows_visits_overlap_and_changes_nothing(twice, make_patient):
    _, _, keep, duplicate, types = twice
    up = appointment_book(
        appointment_type=types["uptown"], patient=make_patient(), start=at(9), now=NOW
    )
    down = appointment_book(
        appointment_type=types["downtown"], patient=make_patient(), start=at(9, 30), now=NOW
    )

    with pytest.raises(CommandError, match="overlap") as refused:
        merge(keep.pk, duplicate.pk)

    assert up.reference in str(refused.value)
    assert down.reference in str(refused.value)
    assert Resource.objects.filter(pk=duplicate.pk, is_active=True).exists()
    assert Allocation.objects.get(appointment=down).resource_id == duplicate.pk
    assert WorkingHours.objects.filter(resource=duplicate).count() == 7
    assert not keep.sites.exists()
    assert not AuditEvent.objects.exists()


@pytest.mark.parametrize(
    ("kind", "role"),
    [(ResourceKind.STAFF, StaffRole.NURSE), (ResourceKind.CHAIR, "")],
    ids=["another-role", "not-staff"],
)
def test_it_refuses_rows_that_are_not_one_role_of_staff(twice, make_resource, kind, role):
    uptown, _, keep, _, _ = twice
    other = make_resource(uptown, kind, role=role, name="Dr. Lee?")

    with pytest.raises(CommandError, match=r"role|staff"):
        merge(keep.pk, other.pk)

    assert Resource.objects.filter(pk=other.pk).exists()
    assert WorkingHours.objects.filter(resource=other).count() == 7


def test_it_refuses_two_staff_accounts_on_the_rows(twice):
    uptown, downtown, keep, duplicate, _ = twice
    for resource, site in ((keep, uptown), (duplicate, downtown)):
        profile = StaffProfile.objects.get(user=staff_user(Role.PRESCRIBER, site))
        profile.resource = resource
        profile.save()

    with pytest.raises(CommandError, match="unlink"):
        merge(keep.pk, duplicate.pk)

    assert Resource.objects.filter(pk=duplicate.pk).exists()


def test_a_merge_makes_one_person_busy_across_both_sites(twice, make_patient, make_type):
    _, downtown, keep, duplicate, types = twice
    account = staff_user(Role.PRESCRIBER, downtown)
    StaffProfile.objects.filter(user=account).update(resource=duplicate)
    named = make_type(
        downtown,
        duration=30,
        needs=[{"resource_kind": ResourceKind.STAFF, "resource": duplicate}],
        kind=AppointmentKind.CONSULTATION,
    )
    TimeOff.objects.create(resource=duplicate, start=at(11), end=at(12), reason="training")
    DateOverride.objects.create(
        resource=duplicate, location=downtown, date=date(2026, 6, 9), start=time(13), end=time(15)
    )
    up = appointment_book(
        appointment_type=types["uptown"], patient=make_patient(), start=at(9), now=NOW
    )
    down = appointment_book(
        appointment_type=types["downtown"], patient=make_patient(), start=at(10), now=NOW
    )

    said = merge(keep.pk, duplicate.pk)

    assert "Merged" in said
    assert not Resource.objects.filter(pk=duplicate.pk).exists()
    keep.refresh_from_db()
    assert list(keep.sites.all()) == [downtown]
    assert keep.is_active
    # Everything of the duplicate is the kept row's, the hours still at their own sites.
    assert Allocation.objects.get(appointment=down).resource_id == keep.pk
    assert Allocation.objects.get(appointment=up).resource_id == keep.pk
    hours = WorkingHours.objects.filter(resource=keep)
    assert set(hours.values_list("location__slug", flat=True)) == {"downtown", "uptown"}
    assert hours.count() == 14
    assert DateOverride.objects.get().resource_id == keep.pk
    assert TimeOff.objects.get().resource_id == keep.pk
    assert ResourceRequirement.objects.get(appointment_type=named).resource_id == keep.pk
    assert StaffProfile.objects.get(user=account).resource_id == keep.pk
    event = AuditEvent.objects.get()
    assert (event.action, event.object_id) == ("update", str(keep.pk))

    # One person: the uptown visit at 09:00 takes downtown's 09:00 too, and downtown's visit
    # at 10:00 and the time off at 11:00 take uptown's mornings after it.
    assert starts(types["downtown"]) == ["08:00"]
    assert starts(types["uptown"]) == ["08:00"]
    with pytest.raises(SlotTaken):
        appointment_book(
            appointment_type=types["downtown"], patient=make_patient(), start=at(9), now=NOW
        )
