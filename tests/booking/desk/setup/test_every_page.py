"""Every setup page, walked from the URL configuration: an admin reaches it for their own
location only (404 elsewhere, as if it did not exist), the front desk never (403), nobody signed
out (to the sign-in page). A new setup page is walked by this test as soon as it is routed; one
whose address names something this test cannot make fails it until a value is added below."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from booking.access.roles import Role
from booking.defaults import protocols_install_defaults
from booking.models import Contraindication, IntakeOption, Protocol
from booking.services import appointment_book
from notifications.models import ReplanJob, WebhookSubscription
from notifications.webhooks_outbox import webhook_secret_new
from scheduling.models import (
    AppointmentType,
    Closure,
    Location,
    Resource,
    ResourceKind,
    StaffRole,
    TimeOff,
)
from tests.staff_helpers import client_for, staff_user

NOW = datetime(2026, 12, 9, 14, 0, tzinfo=UTC)
SOON = date(2026, 12, 21)


@dataclass(frozen=True)
class Route:
    name: str
    kwargs: tuple[str, ...]


def _walk(patterns: list[Any], prefix: str = "") -> Iterator[tuple[str, URLPattern]]:
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, route)
        else:
            yield route, pattern


def setup_routes() -> list[Route]:
    found = [
        Route(pattern.name or "", tuple(pattern.pattern.regex.groupindex))
        for route, pattern in _walk(get_resolver().url_patterns)
        if route.startswith("staff/setup/")
    ]
    assert all(r.name for r in found), "every setup page is named"
    return found


@pytest.fixture(autouse=True)
def clock() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


@dataclass
class World:
    here: Location
    values: dict[str, Any]
    admin: User
    elsewhere_admin: User
    desk: User


@pytest.fixture
def world(clinic: Location, make_location: Any) -> World:
    here = clinic
    nurse = Resource.objects.get(location=here, kind=ResourceKind.STAFF, role=StaffRole.NURSE)
    closure = Closure.objects.create(
        location=here,
        start=datetime(2026, 12, 24, 13, tzinfo=UTC),
        end=datetime(2026, 12, 25, 5, tzinfo=UTC),
        reason="Holiday",
    )
    time_off = TimeOff.objects.create(
        resource=nurse,
        start=datetime(2026, 12, 28, 13, tzinfo=UTC),
        end=datetime(2026, 12, 29, 13, tzinfo=UTC),
    )
    option = IntakeOption.objects.create(location=here, kind="screening", text="Any allergies?")
    contraindication = Contraindication.objects.create(slug="test-item", label="Test item")
    infusion = AppointmentType.objects.get(location=here, slug="iv-mood")
    admin = staff_user(Role.ADMIN, here)
    colleague = staff_user(Role.NURSE, here)
    job = ReplanJob.objects.create(appointment_type=infusion, requested_by=admin, created_at=NOW)
    protocols_install_defaults(location=here)
    protocol = Protocol.objects.filter(appointment_type__location=here).first()
    assert protocol is not None
    values = {
        "location_id": here.pk,
        "resource_id": nurse.pk,
        "closure_id": closure.pk,
        "time_off_id": time_off.pk,
        "day": (SOON + timedelta(days=1)).isoformat(),
        "option_id": option.pk,
        "contraindication_id": contraindication.pk,
        "type_id": infusion.pk,
        "protocol_id": protocol.pk,
        "account_id": colleague.pk,
        "job_id": job.pk,
        "subscription_id": WebhookSubscription.objects.create(
            location=here,
            url="https://hooks.example.com/",
            events=["visit.booked"],
            secret=webhook_secret_new(),
            created_at=NOW,
        ).pk,
    }
    elsewhere = make_location()
    return World(
        here=here,
        values=values,
        admin=admin,
        elsewhere_admin=staff_user(Role.ADMIN, elsewhere),
        desk=staff_user(Role.FRONT_DESK, here),
    )


# Pages that read their subject from the query string.
QUERIES = {"setup-reminders-preview": "?kind=prep"}


def url_of(route: Route, world: World) -> str:
    missing = [name for name in route.kwargs if name not in world.values]
    assert not missing, f"{route.name}: give this test a value for {missing}"
    url = reverse(route.name, kwargs={name: world.values[name] for name in route.kwargs})
    return url + QUERIES.get(route.name, "")


def answers(client: Client, url: str) -> dict[str, int]:
    """The status of a GET and of an empty POST, leaving out the method the page does not take
    (405, answered before anything is looked up)."""
    statuses = {"GET": client.get(url).status_code, "POST": client.post(url).status_code}
    taken = {method: status for method, status in statuses.items() if status != 405}
    assert taken, url
    return taken


def test_the_walk_reaches_every_kind_of_setup_page() -> None:
    names = {route.name for route in setup_routes()}
    assert {
        "setup-home",
        "setup-location",
        "setup-people",
        "setup-person",
        "setup-closures",
        "setup-types",
        "setup-type",
        "setup-protocols",
        "setup-reminders",
        "setup-reminders-type",
        "setup-intake",
        "setup-contraindications",
        "setup-accounts",
        "setup-first-run",
        "setup-location-new",
    } <= names


def test_an_admin_opens_every_page_of_their_own_location_and_sees_no_patient(
    world: World, make_approved_patient: Any
) -> None:
    """The setup pages hold the clinic's configuration: a booked patient is on none of them
    (which is why they are left out of the audit-coverage walk)."""
    patient = make_approved_patient(
        first_name="Zebulon", last_name="Quixotic", email="zq@example.com", phone="+12125559876"
    )
    appointment_book(
        appointment_type=AppointmentType.objects.get(location=world.here, slug="consultation"),
        patient=patient,
        start=datetime(2026, 12, 15, 15, tzinfo=UTC),
    )
    client = client_for(world.admin)
    broken, leaks = [], []
    for route in setup_routes():
        if route.name in {"setup-first-run", "setup-location-new"}:
            continue  # a superuser's: below
        response = client.get(url_of(route, world))
        # 405: a POST-only step (a removal, a re-send), walked by its page's own tests.
        if response.status_code not in (200, 302, 405):
            broken.append(f"{route.name}: {response.status_code}")
        content = response.content.decode()
        leaks += [f"{route.name}: {d}" for d in ("Quixotic", "zq@example.com") if d in content]
    assert not broken
    assert not leaks


def test_another_locations_admin_finds_nothing_there(world: World) -> None:
    client = client_for(world.elsewhere_admin)
    leaked = []
    for route in setup_routes():
        if "location_id" not in route.kwargs:
            continue
        for method, status in answers(client, url_of(route, world)).items():
            if status != 404:
                leaked.append(f"{method} {route.name}: {status}")
    assert not leaked


def test_the_front_desk_may_not_set_anything_up(world: World) -> None:
    client = client_for(world.desk)
    allowed = []
    for route in setup_routes():
        for method, status in answers(client, url_of(route, world)).items():
            if status != 403:
                allowed.append(f"{method} {route.name}: {status}")
    assert not allowed


def test_signed_out_every_setup_page_asks_to_sign_in(world: World) -> None:
    client = Client()
    login = reverse("staff-login")
    strays = []
    for route in setup_routes():
        url = url_of(route, world)
        for method, status in answers(client, url).items():
            call = client.get if method == "GET" else client.post
            if status != 302 or not call(url)["Location"].startswith(login):
                strays.append(f"{method} {route.name}: {status}")
    assert not strays


def test_only_a_superuser_adds_a_location(world: World) -> None:
    admin = client_for(world.admin)
    assert admin.get(reverse("setup-location-new")).status_code == 403
    root = User.objects.create_superuser("root-setup", "root@example.com", "unused-password")
    assert client_for(root).get(reverse("setup-location-new")).status_code == 200
