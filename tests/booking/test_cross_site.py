"""One person, one calendar across sites (issue #16).

A prescriber who works at two locations is one resource: their home location and, in
``sites``, the other, with weekly hours at each. Both sites offer them by their own hours, and a
visit at one site takes their time at the other: the slot list there stops offering it, the
booking check refuses it (409), and on PostgreSQL the allocations' exclusion constraint (per
resource, whatever the location) holds even against parallel bookings at both sites.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from booking.access.roles import Role
from booking.calendar import calendar_load
from booking.errors import SlotTaken
from booking.models import Allocation, Appointment
from booking.selectors import available_slots
from booking.services import appointment_book
from scheduling.models import (
    AppointmentKind,
    AppointmentType,
    Closure,
    Location,
    Resource,
    ResourceKind,
    StaffRole,
    TimeOff,
    WorkingHours,
)
from tests.booking.test_concurrency import BOOKED, together
from tests.staff_helpers import client_for, staff_user

NEW_YORK = ZoneInfo("America/New_York")
DAY = date(2026, 6, 8)  # a Monday
NOW = datetime(2026, 6, 1, 12, tzinfo=ZoneInfo("UTC"))
PRESCRIBER = ({"resource_kind": ResourceKind.STAFF, "role": StaffRole.PRESCRIBER},)


def at(hour: int, minute: int = 0) -> datetime:
    return datetime.combine(DAY, time(hour, minute), tzinfo=NEW_YORK)


class Sites:
    """Uptown (the prescriber's home) and Downtown (where they also work), both in New York,
    each with an hour's consultation that needs a prescriber."""

    def __init__(self, make_location, make_resource, make_type) -> None:
        self.uptown: Location = make_location(slug="uptown")
        self.downtown: Location = make_location(slug="downtown")
        self.doctor: Resource = make_resource(
            self.uptown, ResourceKind.STAFF, role=StaffRole.PRESCRIBER, name="Dr. Both", hours=()
        )
        self.doctor.sites.add(self.downtown)
        # The same hours of the day at both sites: only one calendar keeps them apart.
        for location in (self.uptown, self.downtown):
            WorkingHours.objects.bulk_create(
                WorkingHours(
                    resource=self.doctor,
                    location=location,
                    weekday=weekday,
                    start=time(8),
                    end=time(12),
                )
                for weekday in range(7)
            )
        self.at_uptown: AppointmentType = make_type(
            self.uptown, duration=60, needs=PRESCRIBER, kind=AppointmentKind.CONSULTATION
        )
        self.at_downtown: AppointmentType = make_type(
            self.downtown, duration=60, needs=PRESCRIBER, kind=AppointmentKind.CONSULTATION
        )


@pytest.fixture
def sites(make_location, make_resource, make_type) -> Sites:
    return Sites(make_location, make_resource, make_type)


def starts(appointment_type: AppointmentType) -> list[str]:
    return [
        f"{start.astimezone(NEW_YORK):%H:%M}"
        for start, _ in available_slots(
            appointment_type=appointment_type, first_day=DAY, last_day=DAY, now=NOW
        )
    ]


def quarters(first: str, last: str) -> list[str]:
    hour, minute = map(int, first.split(":"))
    out = []
    while f"{hour:02d}:{minute:02d}" <= last:
        out.append(f"{hour:02d}:{minute:02d}")
        hour, minute = divmod(hour * 60 + minute + 15, 60)
    return out


@pytest.mark.django_db
class TestOneCalendar:
    @pytest.fixture(autouse=True)
    def frozen(self):
        with time_machine.travel(NOW, tick=False):
            yield

    def test_both_sites_offer_the_person_by_their_hours_there(self, sites):
        assert starts(sites.at_uptown) == quarters("08:00", "11:00")
        assert starts(sites.at_downtown) == quarters("08:00", "11:00")

    def test_a_visit_at_one_site_takes_its_minutes_at_the_other(self, sites, make_patient):
        appointment_book(
            appointment_type=sites.at_uptown, patient=make_patient(), start=at(9), now=NOW
        )

        # Nothing that would overlap 09:00-10:00 is offered downtown any more.
        assert starts(sites.at_downtown) == ["08:00", *quarters("10:00", "11:00")]
        with pytest.raises(SlotTaken):
            appointment_book(
                appointment_type=sites.at_downtown,
                patient=make_patient(),
                start=at(9, 30),
                now=NOW,
            )
        assert Appointment.objects.filter(location=sites.downtown).count() == 0

    def test_the_desk_at_the_other_site_gets_a_409(self, sites, make_patient):
        appointment_book(
            appointment_type=sites.at_uptown, patient=make_patient(), start=at(10), now=NOW
        )
        desk = client_for(staff_user(Role.FRONT_DESK, sites.downtown))

        response = desk.post(
            "/api/v1/appointments/",
            data=json.dumps(
                {
                    "location": "downtown",
                    "appointment_type": sites.at_downtown.slug,
                    "patient": make_patient().pk,
                    "start": at(10, 15).isoformat(),
                }
            ),
            content_type="application/json",
        )

        assert response.status_code == 409, response.content
        assert response.json()["error"]["code"] == "slot_taken"

    def test_time_off_is_the_persons_at_every_site(self, sites):
        TimeOff.objects.create(resource=sites.doctor, start=at(8), end=at(10), reason="dentist")

        assert starts(sites.at_downtown) == quarters("10:00", "11:00")
        assert starts(sites.at_uptown) == quarters("10:00", "11:00")

    def test_a_closure_is_its_locations_only(self, sites):
        Closure.objects.create(location=sites.uptown, start=at(8), end=at(12), reason="flood")

        assert starts(sites.at_uptown) == []
        assert starts(sites.at_downtown) == quarters("08:00", "11:00")

    def test_the_person_is_a_column_in_both_sites_calendars(self, sites, make_patient):
        visit = appointment_book(
            appointment_type=sites.at_uptown, patient=make_patient(), start=at(9), now=NOW
        )

        columns = {}
        events = {}
        for location in (sites.uptown, sites.downtown):
            body = calendar_load(location=location, first_day=DAY, last_day=DAY, by="staff")
            columns[location.slug] = [r["title"] for r in body["resources"]]
            events[location.slug] = body["events"]

        assert columns == {"uptown": ["Dr. Both"], "downtown": ["Dr. Both"]}
        # Each site shows its own visits only: the patient seen uptown is not downtown's, who
        # see only that the person is away.
        assert [e["visit"] for e in events["uptown"] if e["kind"] == "visit"] == [visit.reference]
        assert [e["kind"] for e in events["downtown"]] == ["elsewhere"]

    def test_a_visit_at_the_other_site_shows_as_time_away_and_nothing_more(
        self, sites, make_patient, make_type
    ):
        with_turnover = make_type(
            sites.downtown,
            duration=60,
            needs=({**PRESCRIBER[0], "buffer_after_minutes": 15},),
            kind=AppointmentKind.CONSULTATION,
        )
        patient = make_patient()
        visit = appointment_book(
            appointment_type=with_turnover, patient=patient, start=at(9), now=NOW
        )
        held = Allocation.objects.get(appointment=visit)

        body = calendar_load(location=sites.uptown, first_day=DAY, last_day=DAY, by="staff")

        assert body["events"] == [
            {
                "id": f"elsewhere/{held.pk}",
                "kind": "elsewhere",
                "resourceIds": [sites.doctor.pk],
                # The allocation's whole held time, turnover included.
                "start": "2026-06-08T09:00:00",
                "end": "2026-06-08T10:15:00",
                "title": f"At {sites.downtown.public_name}",
            }
        ]
        text = json.dumps(body["events"])
        for private in (
            patient.first_name,
            patient.last_name,
            visit.reference,
            with_turnover.slug,
            with_turnover.name,
            sites.downtown.name,
        ):
            assert private not in text

    def test_no_time_away_for_someone_working_at_one_site(
        self, sites, make_patient, make_resource, make_type
    ):
        home_only = make_resource(
            sites.downtown, ResourceKind.STAFF, role=StaffRole.NURSE, name="Nurse Home"
        )
        nursing = make_type(
            sites.downtown,
            duration=60,
            needs=({"resource_kind": ResourceKind.STAFF, "role": StaffRole.NURSE},),
        )
        appointment_book(appointment_type=nursing, patient=make_patient(), start=at(9), now=NOW)
        appointment_book(
            appointment_type=sites.at_downtown, patient=make_patient(), start=at(11), now=NOW
        )

        # Downtown, where both work: their own visits, nothing away.
        downtown = calendar_load(location=sites.downtown, first_day=DAY, last_day=DAY, by="staff")
        assert {e["kind"] for e in downtown["events"]} == {"visit"}
        assert {e["resourceIds"][0] for e in downtown["events"]} == {
            home_only.pk,
            sites.doctor.pk,
        }
        # Uptown: the travelling doctor is away at 11; the nurse is not uptown's at all.
        uptown = calendar_load(location=sites.uptown, first_day=DAY, last_day=DAY, by="all")
        assert [(e["kind"], e["resourceIds"], e["start"]) for e in uptown["events"]] == [
            ("elsewhere", [sites.doctor.pk], "2026-06-08T11:00:00")
        ]

    def test_time_away_costs_one_query_whatever_the_number_of_visits(
        self, sites, make_patient, make_resource
    ):
        home_only = make_resource(
            sites.uptown, ResourceKind.STAFF, role=StaffRole.PRESCRIBER, name="Dr. Home", hours=()
        )

        def queries(resource: Resource) -> tuple[int, int]:
            with CaptureQueriesContext(connection) as captured:
                body = calendar_load(
                    location=sites.uptown,
                    first_day=DAY,
                    last_day=DAY,
                    resource_id=resource.pk,
                )
            away = [e for e in body["events"] if e["kind"] == "elsewhere"]
            return len(captured.captured_queries), len(away)

        appointment_book(
            appointment_type=sites.at_downtown, patient=make_patient(), start=at(8), now=NOW
        )
        one = queries(sites.doctor)
        for hour in (9, 10, 11):
            appointment_book(
                appointment_type=sites.at_downtown,
                patient=make_patient(),
                start=at(hour),
                now=NOW,
            )
        four = queries(sites.doctor)
        alone = queries(home_only)

        assert (one[1], four[1], alone[1]) == (1, 4, 0)
        assert one[0] == four[0]
        # Only a column working at several sites costs the extra query.
        assert alone[0] == one[0] - 1

    def test_the_appointment_list_filters_by_a_visiting_person(self, sites, make_patient):
        desk = client_for(staff_user(Role.FRONT_DESK, sites.downtown))
        booked = appointment_book(
            appointment_type=sites.at_downtown, patient=make_patient(), start=at(11), now=NOW
        )

        response = desk.get(
            "/api/v1/appointments/",
            {
                "location": "downtown",
                "start": DAY.isoformat(),
                "end": DAY.isoformat(),
                "resource": sites.doctor.pk,
            },
        )

        assert response.status_code == 200, response.content
        assert [v["reference"] for v in response.json()] == [booked.reference]


# --- The database's guard, under real concurrency ------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@time_machine.travel(NOW, tick=False)
def test_twenty_desks_at_two_sites_booking_one_person_at_once_get_one_visit(
    sites, make_patient, count_overlaps
):
    patients = [make_patient() for _ in range(20)]
    types = [sites.at_uptown, sites.at_downtown]

    def attempt(worker: int, round_no: int) -> object:
        return appointment_book(
            appointment_type=types[worker % 2], patient=patients[worker], start=at(9), now=NOW
        )

    rounds = together(20, 1, attempt)

    assert rounds == [Counter({BOOKED: 1, "SlotTaken": 19})]
    assert Appointment.objects.count() == 1
    assert Allocation.objects.filter(active=True, resource=sites.doctor).count() == 1
    assert count_overlaps() == 0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@time_machine.travel(NOW, tick=False)
def test_the_exclusion_constraint_refuses_one_person_at_two_sites_at_once(
    sites, make_patient, count_overlaps
):
    """Past the service's check: an allocation written straight to the table at the other site
    for overlapping minutes is refused by PostgreSQL itself."""
    uptown_visit = appointment_book(
        appointment_type=sites.at_uptown, patient=make_patient(), start=at(9), now=NOW
    )
    downtown_visit = appointment_book(
        appointment_type=sites.at_downtown, patient=make_patient(), start=at(11), now=NOW
    )

    with pytest.raises(IntegrityError), transaction.atomic():
        Allocation.objects.filter(appointment=downtown_visit).update(
            start=at(9, 30), end=at(10, 30)
        )

    held = Allocation.objects.get(appointment=uptown_visit)
    assert (held.resource_id, held.start) == (sites.doctor.pk, at(9))
    assert count_overlaps() == 0
