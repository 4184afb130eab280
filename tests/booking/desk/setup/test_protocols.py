"""/staff/setup/<location>/protocols/: a location's protocols (sessions, spacing, boosters),
adding one for a treatment that has none, and editing one, with errors naming the field."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import time_machine
from django.test import Client

from booking.access.roles import Role
from booking.defaults import protocols_install_defaults
from booking.models import AuditAction, Protocol
from scheduling.models import AppointmentKind, AppointmentType, Location
from tests.booking.desk.setup.booked import NOW, setup_audits
from tests.staff_helpers import client_for, staff_user


@pytest.fixture(autouse=True)
def clock() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def admin(clinic: Location) -> Client:
    return client_for(staff_user(Role.ADMIN, clinic, username="admin"))


@pytest.fixture
def installed(clinic: Location) -> list[Protocol]:
    return protocols_install_defaults(location=clinic)


def protocols_url(location: Location, rest: str = "") -> str:
    return f"/staff/setup/{location.pk}/protocols/{rest}"


def protocol_url(protocol: Protocol) -> str:
    return protocols_url(protocol.appointment_type.location, f"{protocol.pk}/")


def the_type(location: Location, slug: str) -> AppointmentType:
    return AppointmentType.objects.get(location=location, slug=slug)


def form(protocol: Protocol | None = None, **changes: Any) -> dict[str, Any]:
    """The protocol form as the page posts it: ``protocol``'s values with ``changes``."""
    values: dict[str, Any] = {
        "name": "",
        "slug": "",
        "sessions": 6,
        "min_gap_days": 2,
        "max_gap_days": 7,
        "window_days": 21,
        "allowed_weekdays": "012345",
        "same_time_preference": True,
        "review_after_session": None,
        "min_days_since_last": 0,
        "is_active": True,
    }
    if protocol is not None:
        values.update({k: getattr(protocol, k) for k in values})
        values["appointment_type"] = protocol.appointment_type_id
    values.update(changes)
    data: dict[str, Any] = {}
    for name, value in values.items():
        if name == "allowed_weekdays":
            data[name] = list(value)
        elif value is True:
            data[name] = "on"
        elif value is False:
            continue
        else:
            data[name] = "" if value is None else str(value)
    return data


def test_the_list_shows_the_locations_protocols_and_the_treatments_without_one(
    admin: Client, clinic: Location, installed: list[Protocol], make_location
) -> None:
    Protocol.objects.filter(slug="pain-series").delete()
    elsewhere = make_location()
    theirs = AppointmentType.objects.create(
        location=elsewhere,
        slug="theirs",
        name="Their treatment",
        public_name="Session",
        kind=AppointmentKind.INFUSION,
        duration_minutes=60,
    )
    Protocol.objects.create(
        appointment_type=theirs, slug="their-series", name="Their series", sessions=3,
        window_days=9,
    )  # fmt: skip

    response = admin.get(protocols_url(clinic))

    assert response.status_code == 200
    page = response.content.decode()
    for name in ("Mood induction series", "Spravato induction", "Booster"):
        assert name in page
    assert "Their series" not in page
    assert "Pain series" not in page
    notice = page.split('class="notice"', 1)[1].split("</div>", 1)[0]
    assert "IV ketamine infusion (pain)" in notice
    assert "IV ketamine infusion (mood)" not in notice
    # The add form offers the treatment without one first, and no consultation.
    choices = page.split('name="appointment_type"', 1)[1].split("</select>", 1)[0]
    assert choices.index("IV ketamine infusion (pain)") < choices.index("(mood)")
    assert "Comprehensive evaluation" not in choices
    assert "style=" not in page


def test_adding_a_protocol_for_a_treatment_without_one(
    admin: Client, clinic: Location, installed: list[Protocol]
) -> None:
    Protocol.objects.filter(slug="pain-series").delete()
    pain = the_type(clinic, "iv-pain")

    response = admin.post(
        protocols_url(clinic),
        form(
            appointment_type=pain.pk,
            name="Short pain series",
            slug="short-pain",
            sessions=3,
            min_gap_days=1,
            max_gap_days=1,
            window_days=3,
            allowed_weekdays="0123456",
        ),
    )

    added = Protocol.objects.get(slug="short-pain")
    assert response.status_code == 302
    assert response["Location"] == protocol_url(added)
    assert (added.appointment_type, added.sessions, added.window_days) == (pain, 3, 3)
    assert added.allowed_weekdays == "0123456"
    [row] = setup_audits(AuditAction.CREATE, "protocol")
    assert row.location_id == clinic.pk
    assert "sessions" in row.detail["changed"]


def test_a_consultation_or_another_locations_type_cannot_get_a_protocol(
    admin: Client, clinic: Location, make_location
) -> None:
    theirs = AppointmentType.objects.create(
        location=make_location(),
        slug="theirs",
        name="Theirs",
        public_name="Session",
        kind=AppointmentKind.INFUSION,
        duration_minutes=60,
    )
    for appointment_type in (the_type(clinic, "consultation"), theirs):
        response = admin.post(
            protocols_url(clinic),
            form(appointment_type=appointment_type.pk, name="X", slug="x"),
        )
        assert response.status_code == 400
        assert "Type of visit: Select a valid choice." in response.content.decode()
    assert not Protocol.objects.exists()


def test_editing_a_protocol_with_an_audit(
    admin: Client, clinic: Location, installed: list[Protocol]
) -> None:
    mood = Protocol.objects.get(slug="mood-induction")
    assert admin.get(protocol_url(mood)).status_code == 200

    response = admin.post(
        protocol_url(mood),
        form(mood, sessions=8, window_days=28, review_after_session=3, slug="renamed"),
    )

    assert response.status_code == 302
    mood.refresh_from_db()
    assert (mood.slug, mood.sessions, mood.window_days, mood.review_after_session) == (
        "mood-induction",
        8,
        28,
        3,
    )
    [row] = setup_audits(AuditAction.UPDATE, "protocol")
    assert sorted(row.detail["changed"]) == ["review_after_session", "sessions", "window_days"]


def test_the_page_shows_the_types_observation_time(
    admin: Client, installed: list[Protocol]
) -> None:
    spravato = Protocol.objects.get(slug="spravato-induction")

    page = admin.get(protocol_url(spravato)).content.decode()

    assert "Observation before discharge: 120 min, from dosing (the patient seated)" in page


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"min_gap_days": 5, "max_gap_days": 3}, "At most (days between starts): Must be at least"),
        ({"sessions": 6, "window_days": 10}, "6 sessions at least 2 days apart take at least 11"),
        ({"sessions": 0}, "Sessions: Ensure this value is greater than or equal to 1."),
        ({"min_gap_days": 0}, "At least (days between starts): Ensure this value is greater than"),
        ({"review_after_session": 6}, "Prescriber review after session: Must come before the last"),
        ({"allowed_weekdays": ""}, "Days sessions may fall on: This field is required."),
        ({"slug": "booster", "appointment_type": "same"}, "Short name (slug): This type already"),
    ],
    ids=["gaps", "window", "no-sessions", "same-day", "review", "no-days", "slug"],
)  # fmt: skip
def test_a_protocol_that_does_not_hold_together_is_refused_naming_the_field(
    admin: Client,
    clinic: Location,
    installed: list[Protocol],
    changes: dict[str, Any],
    message: str,
) -> None:
    booster = Protocol.objects.get(slug="booster")
    if changes.get("appointment_type") == "same":
        changes["appointment_type"] = booster.appointment_type_id
    data = form(appointment_type=the_type(clinic, "iv-mood").pk, name="Another", slug="another")
    for name, value in changes.items():
        data[name] = list(value) if name == "allowed_weekdays" else str(value)
    before = Protocol.objects.count()

    response = admin.post(protocols_url(clinic), data)

    assert response.status_code == 400
    assert message in response.content.decode()
    assert Protocol.objects.count() == before


def test_the_last_protocol_of_a_bookable_treatment_may_not_be_retired(
    admin: Client, clinic: Location, installed: list[Protocol]
) -> None:
    booster = Protocol.objects.get(slug="booster")

    refused = admin.post(protocol_url(booster), form(booster, is_active=False))

    assert refused.status_code == 400
    assert "In use (prescribers may approve with it): IV ketamine booster is bookable" in (
        refused.content.decode()
    )
    booster.refresh_from_db()
    assert booster.is_active

    AppointmentType.objects.filter(pk=booster.appointment_type_id).update(is_active=False)
    retired = admin.post(protocol_url(booster), form(booster, is_active=False))
    assert retired.status_code == 302
    booster.refresh_from_db()
    assert not booster.is_active


# --- Who may ------------------------------------------------------------------------------------


def test_another_locations_protocol_is_404_here(
    admin: Client, clinic: Location, make_location
) -> None:
    elsewhere = make_location()
    protocols_install_defaults(location=elsewhere)
    theirs_type = AppointmentType.objects.create(
        location=elsewhere,
        slug="theirs",
        name="Theirs",
        public_name="Session",
        kind=AppointmentKind.INFUSION,
        duration_minutes=60,
    )
    theirs = Protocol.objects.create(
        appointment_type=theirs_type, slug="s", name="Theirs", sessions=2, window_days=5
    )
    wrong = protocols_url(clinic, f"{theirs.pk}/")

    assert admin.get(wrong).status_code == 404
    assert admin.post(wrong, form(theirs, name="Mine")).status_code == 404
    theirs.refresh_from_db()
    assert theirs.name == "Theirs"


def test_an_admin_of_another_location_gets_404(
    clinic: Location, installed: list[Protocol], make_location
) -> None:
    outsider = client_for(staff_user(Role.ADMIN, make_location()))
    mood = Protocol.objects.get(slug="mood-induction")

    assert outsider.get(protocols_url(clinic)).status_code == 404
    assert outsider.get(protocol_url(mood)).status_code == 404
    assert outsider.post(protocol_url(mood), form(mood, sessions=2)).status_code == 404


def test_the_front_desk_may_not_open_protocols(clinic: Location, installed: list[Protocol]) -> None:
    desk = client_for(staff_user(Role.FRONT_DESK, clinic))
    mood = Protocol.objects.get(slug="mood-induction")

    assert desk.get(protocols_url(clinic)).status_code == 403
    assert desk.post(protocol_url(mood), form(mood, sessions=2)).status_code == 403
    mood.refresh_from_db()
    assert mood.sessions == 6
