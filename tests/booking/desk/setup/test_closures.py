"""/staff/setup/<location>/closures/: a location's closures, and a closure over booked visits:
refused with the visits listed, then saved once confirmed, the visits on the day board's "needs
a new time" list, nobody messaged, and the closed day no longer offered."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.test import Client

from booking.access.roles import Role
from booking.models import Appointment, AuditAction, AuditEvent
from scheduling.models import AppointmentType, Closure, Location
from tests.booking.desk.setup.booked import (
    DAY,
    NOW,
    at,
    board_needs_new_time,
    book,
    messages_state,
    offered_starts,
    setup_audits,
)
from tests.staff_helpers import client_for, staff_user


@pytest.fixture(autouse=True)
def clock() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def admin(clinic: Location) -> Client:
    return client_for(staff_user(Role.ADMIN, clinic))


def url(location: Location) -> str:
    return f"/staff/setup/{location.pk}/closures/"


def closing(day=DAY, **extra: str) -> dict[str, str]:
    return {
        "start": f"{day.isoformat()}T00:00",
        "end": f"{(day + timedelta(days=1)).isoformat()}T00:00",
        "reason": "Staff training",
        **extra,
    }


def test_the_page_lists_the_closures_to_come_only(admin: Client, clinic: Location) -> None:
    Closure.objects.create(location=clinic, start=at(0), end=at(23), reason="Training day")
    Closure.objects.create(
        location=clinic,
        start=at(0) - timedelta(days=30),
        end=at(1) - timedelta(days=30),
        reason="Long gone",
    )

    response = admin.get(url(clinic))

    assert response.status_code == 200
    page = response.content.decode()
    assert "Training day" in page
    assert "Long gone" not in page
    assert 'aria-current="page">Closures' in page


def test_a_closure_over_no_visit_is_saved_in_local_time_and_audited(
    admin: Client, clinic: Location
) -> None:
    response = admin.post(url(clinic), closing())

    assert response.status_code == 302
    closure = Closure.objects.get(location=clinic)
    # Local midnight in New York (EST) is 05:00 UTC.
    assert closure.start == datetime(2026, 12, 15, 5, 0, tzinfo=UTC)
    assert closure.end == datetime(2026, 12, 16, 5, 0, tzinfo=UTC)
    [event] = setup_audits(AuditAction.CREATE, "closure")
    assert event.location_id == clinic.pk
    assert event.detail["changed"] == ["end", "reason", "start"]


def test_a_closure_over_booked_visits_is_refused_then_saved_when_confirmed(
    admin: Client, clinic: Location, consultation: AppointmentType, make_patient
) -> None:
    first = book(consultation, make_patient(), 10)
    second = book(consultation, make_patient(), 14)
    elsewhere = book(consultation, make_patient(), 10, day=DAY + timedelta(days=1))
    before = messages_state()
    assert "2026-12-15T12:00:00-05:00" in offered_starts(admin)

    refused = admin.post(url(clinic), closing())

    assert refused.status_code == 409
    page = refused.content.decode()
    assert first.reference in page
    assert second.reference in page
    assert elsewhere.reference not in page
    assert 'name="confirm_orphans"' in page
    assert 'value="Staff training"' in page  # the form keeps what was typed
    assert not Closure.objects.exists()
    assert not Appointment.objects.filter(needs_new_time_since__isnull=False).exists()

    confirmed = admin.post(url(clinic), closing(confirm_orphans="1"))

    assert confirmed.status_code == 302
    assert Closure.objects.filter(location=clinic).count() == 1
    flagged = Appointment.objects.filter(needs_new_time_since__isnull=False)
    assert set(flagged) == {first, second}
    listed = board_needs_new_time(admin)
    assert first.reference in listed
    assert second.reference in listed
    assert elsewhere.reference not in listed
    assert messages_state() == before  # no e-mail, no text, no outbox row touched
    assert offered_starts(admin) == []
    assert offered_starts(admin, DAY + timedelta(days=2))  # other days are still offered
    # Each flagged visit's change is on record, and so is the closure.
    assert AuditEvent.objects.filter(
        object_type="appointment", action=AuditAction.UPDATE, object_id=str(first.pk)
    ).exists()
    assert len(setup_audits(AuditAction.CREATE, "closure")) == 1


def test_a_closure_that_ends_before_it_starts_is_refused_naming_the_field(
    admin: Client, clinic: Location
) -> None:
    response = admin.post(
        url(clinic), {"start": "2026-12-15T12:00", "end": "2026-12-15T09:00", "reason": ""}
    )

    assert response.status_code == 400
    assert "Ends: The end must come after the start." in response.content.decode()
    assert not Closure.objects.exists()


def test_a_local_time_skipped_by_the_clocks_is_refused_naming_the_field(
    admin: Client, clinic: Location
) -> None:
    # 14 March 2027: New York's clocks jump from 02:00 to 03:00.
    response = admin.post(
        url(clinic), {"start": "2027-03-14T02:30", "end": "2027-03-14T09:00", "reason": ""}
    )

    assert response.status_code == 400
    assert "Starts: 02:30 does not exist on 2027-03-14" in response.content.decode()
    assert not Closure.objects.exists()


def test_a_repeated_local_time_means_its_first_occurrence(admin: Client, clinic: Location) -> None:
    # 7 November 2027: 01:30 happens twice in New York; the first is 01:30 EDT (05:30 UTC).
    response = admin.post(
        url(clinic), {"start": "2027-11-07T01:30", "end": "2027-11-07T09:00", "reason": ""}
    )

    assert response.status_code == 302
    assert Closure.objects.get().start == datetime(2027, 11, 7, 5, 30, tzinfo=UTC)


def test_a_closure_is_removed_and_the_removal_audited(admin: Client, clinic: Location) -> None:
    closure = Closure.objects.create(location=clinic, start=at(0), end=at(23))

    response = admin.post(f"{url(clinic)}{closure.pk}/remove/")

    assert response.status_code == 302
    assert not Closure.objects.exists()
    assert len(setup_audits(AuditAction.DELETE, "closure")) == 1


def test_another_locations_closure_is_not_found(
    admin: Client, clinic: Location, make_location
) -> None:
    theirs = make_location()
    closure = Closure.objects.create(location=theirs, start=at(0), end=at(23))

    response = admin.post(f"{url(clinic)}{closure.pk}/remove/")

    assert response.status_code == 404
    assert Closure.objects.filter(pk=closure.pk).exists()


def test_an_admin_of_another_location_gets_a_404(clinic: Location, make_location) -> None:
    other = client_for(staff_user(Role.ADMIN, make_location()))

    assert other.get(url(clinic)).status_code == 404
    assert other.post(url(clinic), closing()).status_code == 404
    assert not Closure.objects.exists()


def test_the_front_desk_may_not_set_up_closures(clinic: Location) -> None:
    desk = client_for(staff_user(Role.FRONT_DESK, clinic))

    assert desk.get(url(clinic)).status_code == 403
    assert desk.post(url(clinic), closing()).status_code == 403
    assert not Closure.objects.exists()
