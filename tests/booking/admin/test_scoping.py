"""The admin is no back door: an Admin-role account sees the rows of its own locations only,
and staff profiles (where each person works) are edited with the user."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from booking.access.audit import audit
from booking.access.roles import Role
from booking.models import AuditAction
from booking.services import appointment_book
from scheduling.models import ResourceKind
from tests.conftest import CHAIR_ONLY, new_patient
from tests.staff_helpers import client_for, staff_user

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def two_sites(one_chair, make_location, make_resource, make_type):
    """A visit at the clinic (``one_chair``'s location) and one at a second site."""
    here = appointment_book(
        appointment_type=one_chair,
        patient=new_patient(last_name="Here"),
        start=NOW + timedelta(days=1),
    )
    site = make_location()
    make_resource(site, ResourceKind.CHAIR)
    there_type = make_type(site, duration=60, needs=CHAIR_ONLY)
    there = appointment_book(
        appointment_type=there_type,
        patient=new_patient(last_name="There"),
        start=NOW + timedelta(days=1),
    )
    return here, there


def admin_of(location):
    user = staff_user(Role.ADMIN, location)
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    return client_for(user), user


def test_an_admin_lists_and_opens_only_their_locations_patients_and_visits(two_sites):
    here, there = two_sites
    client, _ = admin_of(here.location)

    patients = client.get("/admin/booking/patient/")
    assert patients.status_code == 200
    assert "Here" in patients.text
    assert "There" not in patients.text
    assert client.get(f"/admin/booking/patient/{here.patient_id}/change/").status_code == 200
    # Out of scope reads as missing: the admin redirects to its index with "doesn't exist".
    assert client.get(f"/admin/booking/patient/{there.patient_id}/change/").status_code == 302

    visits = client.get("/admin/booking/appointment/")
    assert here.reference in visits.text
    assert there.reference not in visits.text
    assert client.get(f"/admin/booking/appointment/{there.pk}/change/").status_code == 302


def test_an_admin_reads_only_their_locations_audit_events(two_sites, rf):
    here, there = two_sites
    client, user = admin_of(here.location)
    audit(rf.get("/"), AuditAction.VIEW, here, user=user)
    elsewhere = audit(rf.get("/"), AuditAction.VIEW, there, user=user)

    page = client.get("/admin/booking/auditevent/")

    assert page.status_code == 200
    assert f">{here.pk}<" in page.text
    assert client.get(f"/admin/booking/auditevent/{elsewhere.pk}/change/").status_code == 302


def test_a_superuser_edits_where_a_staff_member_works_with_the_user(admin_client, two_sites):
    here, _ = two_sites
    nurse = staff_user(Role.NURSE, here.location)

    page = admin_client.get(f"/admin/auth/user/{nurse.pk}/change/")

    assert page.status_code == 200
    assert "staff_profile-0-locations" in page.text
