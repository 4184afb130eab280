"""/staff/setup/<location>/types/: a location's types of visit, adding one, and one type's page:
its details and the resources one visit needs, with a picture of that visit's timeline.

A treatment may not be saved without approval, nor made bookable without a protocol; the needs
are checked as the database would (inside the visit, one need per pool); and a change that
takes resources from a booked visit is refused, then saved when confirmed with the visit on the
"needs a new time" list and the times the new needs do not allow no longer offered."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import time
from typing import Any

import pytest
import time_machine
from django.test import Client

from booking.access.roles import Role
from booking.calendar import PALETTE
from booking.defaults import protocols_install_defaults
from booking.desk.setup.types import visit_timeline
from booking.models import Appointment, AuditAction, Protocol
from booking.selectors import available_slots
from scheduling.models import (
    AppointmentKind,
    AppointmentType,
    Location,
    Resource,
    ResourceKind,
    ResourceRequirement,
    StaffRole,
)
from tests.booking.desk.setup.booked import DAY, NOW, at, board_needs_new_time, setup_audits
from tests.conftest import approve
from tests.staff_helpers import client_for, staff_user


@pytest.fixture(autouse=True)
def clock() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def admin(clinic: Location) -> Client:
    return client_for(staff_user(Role.ADMIN, clinic, username="admin"))


def types_url(location: Location, rest: str = "") -> str:
    return f"/staff/setup/{location.pk}/types/{rest}"


def type_url(appointment_type: AppointmentType, rest: str = "") -> str:
    return types_url(appointment_type.location, f"{appointment_type.pk}/{rest}")


def the_type(location: Location, slug: str) -> AppointmentType:
    return AppointmentType.objects.select_related("location").get(location=location, slug=slug)


_FIELDS = [
    *("public_name", "name", "slug", "public_slug", "colour", "kind", "duration_minutes"),
    *("grid_minutes", "min_notice_minutes", "horizon_days", "is_active", "bookable_online"),
    *("needs_approval", "min_age_years", "fasting_solids_hours", "fasting_clear_liquids_hours"),
    *("escort_required", "no_driving_hours", "observation_minutes", "observation_from"),
]


def details(appointment_type: AppointmentType | None = None, /, **changes: Any) -> dict[str, str]:
    """The details form as the page would post it: the type's values, with ``changes``
    (a checkbox is left out when false, an empty number is "")."""
    values = {name: getattr(appointment_type, name) for name in _FIELDS} if appointment_type else {}
    values.update(changes)
    data = {}
    for name, value in values.items():
        if value is True:
            data[name] = "on"
        elif value is False:
            continue
        else:
            data[name] = "" if value is None else str(value)
    return data


NEW_CONSULTATION: dict[str, Any] = {
    "public_name": "Follow-up appointment",
    "name": "Follow-up review",
    "slug": "follow-up",
    "kind": AppointmentKind.CONSULTATION,
    "duration_minutes": 30,
    "grid_minutes": 15,
    "min_notice_minutes": 720,
    "horizon_days": 90,
    "is_active": True,
    "bookable_online": True,
    "min_age_years": 18,
    "no_driving_hours": 0,
    "observation_minutes": 0,
    "observation_from": "recovering",
}


def needs(*rows: dict[str, Any], initial: int = 0) -> dict[str, str]:
    """The needs formset as posted: one row per dict (pool, offset, duration, before, after)."""
    data = {
        "needs-TOTAL_FORMS": str(len(rows)),
        "needs-INITIAL_FORMS": str(initial),
        "needs-MIN_NUM_FORMS": "0",
        "needs-MAX_NUM_FORMS": "1000",
    }
    for n, row in enumerate(rows):
        data[f"needs-{n}-pool"] = row.get("pool", "")
        data[f"needs-{n}-offset_minutes"] = str(row.get("offset", 0))
        data[f"needs-{n}-duration_minutes"] = str(row.get("duration", ""))
        data[f"needs-{n}-buffer_before_minutes"] = str(row.get("before", 0))
        data[f"needs-{n}-buffer_after_minutes"] = str(row.get("after", 0))
        if row.get("delete"):
            data[f"needs-{n}-DELETE"] = "on"
    return data


def pools(appointment_type: AppointmentType) -> list[tuple[Any, ...]]:
    return list(
        ResourceRequirement.objects.filter(appointment_type=appointment_type)
        .order_by("id")
        .values_list(
            "resource_kind",
            "role",
            "resource__name",
            "offset_minutes",
            "duration_minutes",
            "buffer_before_minutes",
            "buffer_after_minutes",
        )
    )


# --- The list and adding -----------------------------------------------------------------------


def test_the_list_shows_the_locations_types_with_the_calendars_colours(
    admin: Client, clinic: Location, make_location
) -> None:
    elsewhere = make_location(name="Uptown")
    AppointmentType.objects.create(
        location=elsewhere,
        slug="theirs",
        name="Their own visit",
        public_name="Visit",
        kind=AppointmentKind.CONSULTATION,
        duration_minutes=30,
        needs_approval=False,
    )

    response = admin.get(types_url(clinic))

    assert response.status_code == 200
    page = response.content.decode()
    for t in AppointmentType.objects.filter(location=clinic):
        assert t.name in page
        assert t.public_name in page
    assert "Their own visit" not in page
    # By id among the location's types, as the calendar colours them.
    first = AppointmentType.objects.filter(location=clinic).order_by("id")[0]
    assert f'fill="{PALETTE[0]}"' in page
    assert page.index(PALETTE[0]) < page.index(first.name)
    # The treatments have no protocol yet: the list says so.
    assert "no protocol yet" in page


def test_adding_a_consultation_and_its_audit(admin: Client, clinic: Location) -> None:
    assert admin.get(types_url(clinic, "new/")).status_code == 200

    response = admin.post(types_url(clinic, "new/"), details(**NEW_CONSULTATION))

    added = the_type(clinic, "follow-up")
    assert response.status_code == 302
    assert response["Location"] == type_url(added)
    assert (added.public_name, added.duration_minutes, added.bookable_online) == (
        "Follow-up appointment",
        30,
        True,
    )
    assert not added.needs_approval
    [row] = setup_audits(AuditAction.CREATE, "appointmenttype")
    assert row.object_id == str(added.pk)
    assert row.location_id == clinic.pk
    assert "public_name" in row.detail["changed"]


def test_a_short_name_already_used_here_is_refused_naming_the_field(
    admin: Client, clinic: Location
) -> None:
    response = admin.post(
        types_url(clinic, "new/"), details(**{**NEW_CONSULTATION, "slug": "consultation"})
    )

    assert response.status_code == 400
    assert "Internal short name (slug): Another type at this location has this short name." in (
        response.content.decode()
    )


def test_a_treatment_without_approval_is_refused_naming_the_field(
    admin: Client, clinic: Location, infusion: AppointmentType
) -> None:
    new = {**NEW_CONSULTATION, "kind": AppointmentKind.INFUSION, "is_active": False}
    new["bookable_online"] = False

    response = admin.post(types_url(clinic, "new/"), details(**new, needs_approval=False))
    edited = admin.post(type_url(infusion), details(infusion, needs_approval=False))

    for refused in (response, edited):
        assert refused.status_code == 400
        assert (
            "Needs a prescriber&#x27;s approval: Only a consultation may be booked without a "
            "prescriber&#x27;s approval" in refused.content.decode()
        )
    assert not AppointmentType.objects.filter(slug="follow-up").exists()
    assert the_type(clinic, "iv-mood").needs_approval


def test_a_treatment_is_made_bookable_only_once_it_has_a_protocol(
    admin: Client, clinic: Location
) -> None:
    treatment = {
        **NEW_CONSULTATION,
        "kind": AppointmentKind.INFUSION,
        "needs_approval": True,
    }

    refused = admin.post(types_url(clinic, "new/"), details(**treatment))

    assert refused.status_code == 400
    page = refused.content.decode()
    assert "Bookable (at the desk): A treatment can only be booked once it has a protocol" in page
    assert "Bookable online by patients: A treatment can only be booked once it has a" in page
    assert not AppointmentType.objects.filter(slug="follow-up").exists()

    added = admin.post(
        types_url(clinic, "new/"),
        details(**{**treatment, "is_active": False, "bookable_online": False}),
    )
    assert added.status_code == 302
    created = the_type(clinic, "follow-up")
    assert not created.is_active

    Protocol.objects.create(
        appointment_type=created, slug="weekly", name="Weekly", sessions=4, window_days=28
    )
    made_bookable = admin.post(type_url(created), details(created, is_active=True))
    assert made_bookable.status_code == 302
    assert the_type(clinic, "follow-up").is_active


def test_an_active_treatment_without_a_protocol_cannot_be_saved_bookable(
    admin: Client, infusion: AppointmentType
) -> None:
    response = admin.post(type_url(infusion), details(infusion, public_name="Session"))

    assert response.status_code == 400
    assert "Bookable (at the desk): A treatment can only be booked" in response.content.decode()
    assert the_type(infusion.location, "iv-mood").public_name == "Treatment session"


# --- A type's page: details ----------------------------------------------------------------------


def test_the_page_shows_the_type_and_saves_its_details_with_an_audit(
    admin: Client, clinic: Location, infusion: AppointmentType
) -> None:
    protocols_install_defaults(location=clinic)
    page = admin.get(type_url(infusion))
    assert page.status_code == 200
    assert "IV ketamine infusion (mood)" in page.content.decode()
    assert "style=" not in page.content.decode()

    response = admin.post(
        type_url(infusion),
        details(infusion, public_name="Wellness session", fasting_solids_hours=8, slug="changed"),
    )

    assert response.status_code == 302
    saved = the_type(clinic, "iv-mood")  # the short name stays
    assert (saved.public_name, saved.fasting_solids_hours) == ("Wellness session", 8)
    [row] = setup_audits(AuditAction.UPDATE, "appointmenttype")
    assert sorted(row.detail["changed"]) == ["fasting_solids_hours", "public_name"]


def test_a_public_name_naming_the_treatment_is_refused_naming_the_field(
    admin: Client, clinic: Location, infusion: AppointmentType
) -> None:
    protocols_install_defaults(location=clinic)

    response = admin.post(type_url(infusion), details(infusion, public_name="Ketamine infusion"))

    assert response.status_code == 400
    assert "ketamine, infusion" in response.context["form"].errors["public_name"][0]
    assert the_type(clinic, "iv-mood").public_name == infusion.public_name


def test_a_colour_of_its_own_is_the_one_the_calendar_draws(
    admin: Client, clinic: Location, infusion: AppointmentType
) -> None:
    protocols_install_defaults(location=clinic)

    too_light = admin.post(type_url(infusion), details(infusion, colour="#ffee88"))
    saved = admin.post(type_url(infusion), details(infusion, colour="#4b2e83"))

    assert too_light.status_code == 400
    assert "too light" in too_light.context["form"].errors["colour"][0]
    assert saved.status_code == 302
    calendar = admin.get(
        "/api/v1/calendar/",
        {"location": clinic.slug, "start": DAY.isoformat(), "end": DAY.isoformat()},
    )
    assert calendar.status_code == 200
    assert '"#4b2e83"' in calendar.content.decode()
    assert 'fill="#4b2e83"' in admin.get(types_url(clinic)).content.decode()


def test_clear_liquids_may_not_stop_before_food(admin: Client, consultation) -> None:
    response = admin.post(
        type_url(consultation),
        details(consultation, fasting_solids_hours=2, fasting_clear_liquids_hours=6),
    )

    assert response.status_code == 400
    assert "Clear liquids until (hours before): Clear liquids stop nearer the visit" in (
        response.content.decode()
    )


def test_a_duration_that_would_end_before_a_need_starts_is_refused(
    admin: Client, clinic: Location, infusion: AppointmentType
) -> None:
    protocols_install_defaults(location=clinic)
    ResourceRequirement.objects.filter(appointment_type=infusion, role=StaffRole.PRESCRIBER).update(
        offset_minutes=60
    )

    response = admin.post(type_url(infusion), details(infusion, duration_minutes=45))

    assert response.status_code == 400
    assert "Duration (minutes): A need starts 60 minutes into the visit" in (
        response.content.decode()
    )


def test_a_longer_visit_that_would_run_past_closing_is_refused_then_confirmed(
    admin: Client, clinic: Location, consultation: AppointmentType, make_patient
) -> None:
    # 16:30-17:30, the room turned over until 17:35; the prescriber and room close at 18:00.
    visit = book_visit(consultation, make_patient(), at(16, 30))
    longer = details(consultation, duration_minutes=90)

    refused = admin.post(type_url(consultation), longer)

    assert refused.status_code == 409
    assert visit.reference in refused.content.decode()
    assert the_type(clinic, "consultation").duration_minutes == 60
    confirmed = admin.post(type_url(consultation), {**longer, "confirm_orphans": "1"})
    assert confirmed.status_code == 302
    assert the_type(clinic, "consultation").duration_minutes == 90
    visit.refresh_from_db()
    assert visit.needs_new_time_since is not None


def book_visit(appointment_type: AppointmentType, patient, start) -> Appointment:
    from booking.services import appointment_book

    return appointment_book(appointment_type=appointment_type, patient=patient, start=start)


# --- A type's page: needs and the timeline -------------------------------------------------------


def test_the_timeline_shows_each_resources_span_with_its_buffers(
    admin: Client, infusion: AppointmentType
) -> None:
    response = admin.get(type_url(infusion))

    page = response.content.decode()
    svg = page.split("<svg viewBox", 1)[1].split("</svg>", 1)[0]
    desc = re.search(r'<desc id="timeline-desc">(.*?)</desc>', svg, re.S)
    assert desc is not None
    assert desc.group(1) == (
        "A 90-minute visit. "
        "Any chair: needed from minute 0 to 90 (10 min buffer after; held from minute 0 to 100). "
        "Any nurse: needed from minute 0 to 90. "
        "Any prescriber: needed from minute 0 to 15."
    )
    # Drawn: a held bar per resource and the chair's turnover as a buffer, with its minutes.
    assert svg.count('class="held"') == 3
    assert svg.count('class="buffer"') == 1
    assert "Any chair: buffer, minutes 90 to 100" in svg
    # And said in a table: each resource's span.
    table = page.split('class="grid timeline-table"', 1)[1].split("</table>", 1)[0]
    assert re.search(
        "Any chair</th><td>0\u201390</td><td>0 min</td><td>10 min</td><td>0\u2013100", table
    )
    assert re.search("Any prescriber</th><td>0\u201315</td>", table)
    assert "style=" not in page


def test_the_timeline_geometry_scales_minutes_to_the_bar() -> None:
    before = ResourceRequirement(
        resource_kind=ResourceKind.ROOM, buffer_before_minutes=20, duration_minutes=40
    )
    after = ResourceRequirement(resource_kind=ResourceKind.CHAIR, buffer_after_minutes=20)

    timeline = visit_timeline(60, [before, after])

    # From minute -20 to 80: 100 minutes over the bar's 480 units, after the 170 of labels.
    room, chair = timeline.rows
    assert [(s.kind, s.start, s.end, s.x, s.width) for s in room.segments] == [
        ("buffer", -20, 0, 170.0, 96.0),
        ("held", 0, 40, 266.0, 192.0),
    ]
    assert [(s.kind, s.start, s.end) for s in chair.segments] == [
        ("held", 0, 60),
        ("buffer", 60, 80),
    ]
    assert (timeline.visit_x, timeline.visit_end_x) == (266.0, 554.0)


def test_saving_the_needs_replaces_them_with_an_audit(
    admin: Client, clinic: Location, consultation: AppointmentType
) -> None:
    room = Resource.objects.get(location=clinic, kind=ResourceKind.ROOM)

    response = admin.post(
        type_url(consultation, "needs/"),
        needs(
            {"pool": "kind:staff:prescriber", "duration": 45},
            {"pool": f"resource:{room.pk}", "before": 5, "after": 10},
            {},  # a blank row is skipped
        ),
    )

    assert response.status_code == 302
    assert pools(consultation) == [
        ("staff", "prescriber", None, 0, 45, 0, 0),
        ("room", "", "Room 1", 0, None, 5, 10),
    ]
    [row] = setup_audits(AuditAction.UPDATE, "appointmenttype")
    assert row.detail["changed"] == ["requirements"]
    assert row.detail["needs_after"] == [
        "Any prescriber +0/45 (-0/+0)",
        "Room 1 +0/end (-5/+10)",
    ]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            [{"pool": "kind:staff:prescriber", "offset": 60}],
            "Need 1, From minute: Must fall inside the visit: it lasts 60 minutes",
        ),
        (
            [{"pool": "kind:staff:prescriber"}, {"pool": "kind:room:"}, {"pool": "named-room"}],
            "Need 3, Needs: Room 1 and Any room draw on the same pool (Any room)",
        ),
        (
            [{"pool": "kind:staff:prescriber", "delete": True}, {}],
            "A visit needs at least one staff member, chair or room.",
        ),
        (
            [{"pool": "kind:room:", "duration": 0}],
            "Need 1, For (minutes): Ensure this value is greater than or equal to 1.",
        ),
        (
            [{"pool": "kind:room:", "after": 500}],
            "Need 1, Buffer after: Ensure this value is less than or equal to 240.",
        ),
        ([{"pool": "", "offset": 5}], "Need 1, Needs: This field is required."),
    ],
    ids=["outside-the-visit", "one-pool-twice", "none", "zero-minutes", "long-buffer", "no-pool"],
)
def test_needs_that_the_database_would_refuse_are_refused_naming_the_row_and_field(
    admin: Client,
    clinic: Location,
    consultation: AppointmentType,
    rows: list[dict[str, Any]],
    message: str,
) -> None:
    room = Resource.objects.get(location=clinic, kind=ResourceKind.ROOM)
    for row in rows:
        if row.get("pool") == "named-room":
            row["pool"] = f"resource:{room.pk}"
    before = pools(consultation)

    response = admin.post(type_url(consultation, "needs/"), needs(*rows))

    assert response.status_code == 400
    assert message in response.content.decode()
    assert pools(consultation) == before


def test_a_resource_of_another_location_is_not_a_choice(
    admin: Client, consultation: AppointmentType, make_location
) -> None:
    theirs = Resource.objects.create(
        location=make_location(), kind=ResourceKind.ROOM, name="Their room"
    )

    response = admin.post(
        type_url(consultation, "needs/"), needs({"pool": f"resource:{theirs.pk}"})
    )

    assert response.status_code == 400
    assert "Their room" not in response.content.decode()


# --- Needs that orphan a booked infusion ---------------------------------------------------------


@pytest.fixture
def chair_clinic(make_location, make_resource, make_type) -> AppointmentType:
    """A treatment needing one chair (08:00-18:00), and a room open only in the morning."""
    location = make_location()
    make_resource(location, ResourceKind.CHAIR, name="The chair")
    make_resource(location, ResourceKind.ROOM, name="Morning room", hours=((time(8), time(12)),))
    treatment = make_type(
        location,
        duration=60,
        needs=[{"resource_kind": ResourceKind.CHAIR}],
        kind=AppointmentKind.INFUSION,
    )
    Protocol.objects.create(
        appointment_type=treatment, slug="weekly", name="Weekly", sessions=4, window_days=28
    )
    return treatment


def starts(appointment_type: AppointmentType) -> list[str]:
    local = appointment_type.location.zone
    return [
        f"{start.astimezone(local):%H:%M}"
        for start, _ in available_slots(
            appointment_type=AppointmentType.objects.get(pk=appointment_type.pk),
            first_day=DAY,
            last_day=DAY,
            now=NOW,
        )
    ]


def test_needs_that_orphan_a_booked_infusion_are_refused_then_confirmed_and_flagged(
    chair_clinic: AppointmentType, make_patient: Callable[..., Any]
) -> None:
    location = chair_clinic.location
    admin = client_for(staff_user(Role.ADMIN, location))
    desk = client_for(staff_user(Role.FRONT_DESK, location))
    visit = book_visit(chair_clinic, approve(make_patient(), chair_clinic), at(14))
    assert {"10:00", "13:00", "16:00"} <= set(starts(chair_clinic))
    with_a_room = needs({"pool": "kind:chair:"}, {"pool": "kind:room:"}, initial=1)

    refused = admin.post(type_url(chair_clinic, "needs/"), with_a_room)

    assert refused.status_code == 409
    page = refused.content.decode()
    assert "This change affects 1 booked visit" in page
    assert visit.reference in page
    assert 'name="confirm_orphans"' in page
    assert pools(chair_clinic) == [("chair", "", None, 0, None, 0, 0)]
    visit.refresh_from_db()
    assert visit.needs_new_time_since is None

    confirmed = admin.post(
        type_url(chair_clinic, "needs/"), {**with_a_room, "confirm_orphans": "1"}
    )

    assert confirmed.status_code == 302
    assert [p[0] for p in pools(chair_clinic)] == ["chair", "room"]
    visit.refresh_from_db()
    assert visit.needs_new_time_since is not None
    assert visit.reference in board_needs_new_time(desk)
    # The room is open in the morning only: the afternoon is no longer offered.
    offered = starts(chair_clinic)
    assert "10:00" in offered
    assert not [s for s in offered if s >= "12:00"]
    [row] = setup_audits(AuditAction.UPDATE, "appointmenttype")
    assert row.detail["changed"] == ["requirements"]


# --- Who may ------------------------------------------------------------------------------------


def test_another_locations_type_is_404_here(admin: Client, clinic: Location, make_location) -> None:
    elsewhere = make_location()
    theirs = AppointmentType.objects.create(
        location=elsewhere,
        slug="theirs",
        name="Theirs",
        public_name="Visit",
        kind=AppointmentKind.CONSULTATION,
        duration_minutes=30,
        needs_approval=False,
    )
    wrong = f"/staff/setup/{clinic.pk}/types/{theirs.pk}/"

    assert admin.get(wrong).status_code == 404
    assert admin.post(wrong, details(theirs, name="Mine now")).status_code == 404
    assert admin.post(f"{wrong}needs/", needs({"pool": "kind:room:"})).status_code == 404
    assert AppointmentType.objects.get(pk=theirs.pk).name == "Theirs"


def test_an_admin_of_another_location_gets_404(
    clinic: Location, infusion: AppointmentType, make_location
) -> None:
    outsider = client_for(staff_user(Role.ADMIN, make_location()))

    for url in (types_url(clinic), types_url(clinic, "new/"), type_url(infusion)):
        assert outsider.get(url).status_code == 404
    assert outsider.post(type_url(infusion, "needs/"), needs()).status_code == 404


def test_the_front_desk_may_not_open_setup(clinic: Location, infusion: AppointmentType) -> None:
    desk = client_for(staff_user(Role.FRONT_DESK, clinic))

    for url in (types_url(clinic), types_url(clinic, "new/"), type_url(infusion)):
        assert desk.get(url).status_code == 403
    assert desk.post(type_url(infusion, "needs/"), needs()).status_code == 403
