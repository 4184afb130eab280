"""The front desk keeps the waitlist at /staff/waitlist/ (booking.desk.waitlist)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
import time_machine
from django.test import Client
from django.urls import reverse

from booking.access.roles import Role
from booking.models import (
    Appointment,
    AppointmentStatus,
    AuditEvent,
    WaitlistEntry,
    WaitlistOffer,
    WaitlistStatus,
)
from booking.services import appointment_book
from scheduling.models import AppointmentType, Location
from tests.booking.test_waitlist import (  # noqa: F401 - quiet_delivery is a fixture
    NOW,
    TEN,
    quiet_delivery,
    wait_for,
)
from tests.staff_helpers import client_for, staff_user

URL = "/staff/waitlist/"


@pytest.fixture(autouse=True)
def clock() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def elsewhere(make_location, make_patient) -> tuple[Location, WaitlistEntry]:
    from scheduling.defaults import appointment_types_install_defaults

    site = make_location(slug="uptown")
    appointment_types_install_defaults(location=site)
    consult = AppointmentType.objects.select_related("location").get(
        location=site, slug="consultation"
    )
    patient = make_patient(first_name="Faraway")
    # A patient of that location: one visit there, written as a row (no lanes needed here).
    Appointment.objects.create(
        location=site,
        appointment_type=consult,
        patient=patient,
        start=TEN - timedelta(days=30),
        end=TEN - timedelta(days=30) + timedelta(hours=1),
        status=AppointmentStatus.DISCHARGED,
    )
    return site, wait_for(consult, patient)


def test_the_desk_sees_its_location_s_list_and_the_read_is_audited(
    consultation, make_patient, elsewhere
):
    wait_for(consultation, make_patient(first_name="Nearby"))
    desk = staff_user(Role.FRONT_DESK, consultation.location)

    page = client_for(desk).get(URL)

    assert page.status_code == 200
    text = page.content.decode()
    assert "Nearby" in text
    assert "Faraway" not in text
    assert 'aria-current="page">Waitlist' in text
    event = AuditEvent.objects.get(user=desk)
    assert (event.action, event.object_type, event.location_id) == (
        "view",
        "waitlist",
        consultation.location.pk,
    )


def test_another_location_s_list_is_not_found(consultation, elsewhere):
    site, _entry = elsewhere
    desk = staff_user(Role.FRONT_DESK, consultation.location)

    assert client_for(desk).get(URL, {"location": site.slug}).status_code == 404


def test_the_list_needs_a_staff_sign_in(db):
    page = Client().get(URL)

    assert page.status_code == 302
    assert page["Location"] == f"{reverse('staff-login')}?next=/staff/waitlist/"


def test_the_desk_adds_a_patient_and_it_is_audited(consultation, make_patient):
    patient = make_patient()
    appointment_book(appointment_type=consultation, patient=patient, start=TEN)
    desk = staff_user(Role.FRONT_DESK, consultation.location)

    answer = client_for(desk).post(
        f"{URL}?location={consultation.location.slug}",
        {
            "patient": patient.pk,
            "appointment_type": consultation.pk,
            "earliest_date": "2026-06-04",
            "latest_date": "2026-06-10",
            "earliest_time": "09:00",
            "latest_time": "12:00",
            "note": "mornings only",
        },
    )

    assert answer.status_code == 302
    entry = WaitlistEntry.objects.get()
    assert (entry.patient, entry.created_by, entry.status) == (
        patient,
        desk,
        WaitlistStatus.WAITING,
    )
    assert AuditEvent.objects.filter(
        user=desk, action="create", object_type="waitlistentry", patient=patient
    ).exists()


def test_a_refused_add_says_why(consultation, make_patient):
    patient = make_patient()
    appointment_book(appointment_type=consultation, patient=patient, start=TEN)
    desk = staff_user(Role.FRONT_DESK, consultation.location)

    answer = client_for(desk).post(
        URL,
        {
            "patient": patient.pk,
            "appointment_type": consultation.pk,
            "earliest_date": "2026-06-10",
            "latest_date": "2026-06-04",
        },
    )

    assert answer.status_code == 400
    assert "The first day must not be after the last day." in answer.content.decode()
    assert not WaitlistEntry.objects.exists()


def test_a_patient_of_another_location_cannot_be_added(consultation, elsewhere):
    _site, entry = elsewhere
    desk = staff_user(Role.FRONT_DESK, consultation.location)

    answer = client_for(desk).post(
        URL,
        {
            "patient": entry.patient_id,
            "appointment_type": consultation.pk,
            "earliest_date": "2026-06-04",
            "latest_date": "2026-06-10",
        },
    )

    assert answer.status_code == 404
    assert WaitlistEntry.objects.count() == 1


def test_a_nurse_reads_the_list_but_cannot_change_it(consultation, make_patient):
    entry = wait_for(consultation, make_patient())
    nurse = staff_user(Role.NURSE, consultation.location)
    client = client_for(nurse)

    page = client.get(URL)
    added = client.post(URL, {"patient": entry.patient_id})
    removed = client.post(reverse("staff-waitlist-remove", args=[entry.pk]))

    assert page.status_code == 200
    assert "Add a patient" not in page.content.decode()
    assert (added.status_code, removed.status_code) == (403, 403)
    entry.refresh_from_db()
    assert entry.status == WaitlistStatus.WAITING


def test_the_desk_removes_an_entry_and_it_is_audited(consultation, make_patient):
    entry = wait_for(consultation, make_patient())
    desk = staff_user(Role.FRONT_DESK, consultation.location)

    answer = client_for(desk).post(reverse("staff-waitlist-remove", args=[entry.pk]))

    assert answer.status_code == 302
    entry.refresh_from_db()
    assert entry.status == WaitlistStatus.REMOVED
    assert AuditEvent.objects.filter(
        user=desk, action="update", object_id=str(entry.pk), patient=entry.patient
    ).exists()


def test_another_location_s_entry_cannot_be_removed(consultation, elsewhere):
    _site, entry = elsewhere
    desk = staff_user(Role.FRONT_DESK, consultation.location)

    answer = client_for(desk).post(reverse("staff-waitlist-remove", args=[entry.pk]))

    assert answer.status_code == 404
    entry.refresh_from_db()
    assert entry.status == WaitlistStatus.WAITING


def test_the_desk_sees_how_an_offer_went_out(consultation, offered):
    offer, _link = offered
    WaitlistOffer.objects.filter(pk=offer.pk).update(emailed_at=NOW)  # quiet hours: no text
    desk = staff_user(Role.FRONT_DESK, consultation.location)

    page = client_for(desk).get(URL).content.decode()

    assert "Offered" in page
    assert "e-mailed, not texted" in page


def test_the_desk_finds_the_patient_to_add_by_name(consultation, make_patient):
    lin = make_patient(first_name="Lin", last_name="Okafor")
    make_patient(first_name="Lindsay", last_name="Okafor")
    desk = staff_user(Role.FRONT_DESK, consultation.location)
    client = client_for(desk)

    page = client.get(URL, {"find": "okafor"}).content.decode()

    assert f'value="{lin.pk}"' in page
    assert f"Okafor, Lin · born 1980-01-01 · #{lin.pk}" in page
    assert "Okafor, Lindsay" in page
    assert AuditEvent.objects.filter(
        user=desk, object_type="patient_search", detail__query="okafor", detail__count=2
    ).exists()
    answer = client.post(
        URL,
        {
            "patient": lin.pk,
            "appointment_type": consultation.pk,
            "earliest_date": "2026-06-04",
            "latest_date": "2026-06-10",
        },
    )
    assert answer.status_code == 302
    assert WaitlistEntry.objects.get().patient == lin


def test_a_search_that_finds_nobody_says_so(consultation, make_patient):
    make_patient(first_name="Lin", last_name="Okafor")
    desk = staff_user(Role.FRONT_DESK, consultation.location)

    page = client_for(desk).get(URL, {"find": "nobody-here"}).content.decode()

    assert "No patient of yours matches" in page
    assert 'type="radio"' not in page


@pytest.mark.parametrize("find", ["okafor\x00", "\x00", "lin\x1bokafor", "%_\\"])
def test_a_search_with_odd_characters_is_no_error(consultation, make_patient, find):
    make_patient(first_name="Lin", last_name="Okafor")
    desk = staff_user(Role.FRONT_DESK, consultation.location)

    page = client_for(desk).get(URL, {"find": find})

    assert page.status_code == 200
    found = 'type="radio"' in page.content.decode()
    # An unprintable character separates words; "%_\\" matches nobody, and nothing is no search.
    assert found == (find in ("okafor\x00", "lin\x1bokafor"))
