"""Every staff read of patient data leaves an audit event (README, DESIGN §5; issue #15).

The test walks every URL pattern of ``config/urls.py`` under ``/staff/``, ``/api/v1/`` and
``/admin/``, makes a concrete URL of each from one clinic's data (a patient approved for
treatment with a consultation and its intake, a booked series, a waitlist entry, texts both ways,
an audit event), and asks for it as a superuser (authorised everywhere). A page answering 200 must
have written an ``AuditEvent`` for that request, unless it is one of the few listed below as
holding no patient data, and those must indeed show none of the patient's details. A new page or
endpoint is therefore audited, or listed here with its reason, or this test fails.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.contrib import admin
from django.contrib.auth.models import User
from django.contrib.contenttypes.models import ContentType
from django.db.models import Model
from django.http import HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.test import RequestFactory
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from booking.access.audit import audit
from booking.models import (
    Appointment,
    AuditAction,
    AuditEvent,
    Intake,
    Patient,
    Series,
    TreatmentPlan,
    WaitlistEntry,
)
from booking.series.services import series_book
from booking.services import appointment_book
from booking.waitlist import waitlist_add
from notifications.models import InboundMessage, InboundStatus, OutboundMessage
from scheduling.models import AppointmentType, Location
from tests.staff_helpers import client_for

NEW_YORK = ZoneInfo("America/New_York")
NOW = datetime(2026, 12, 9, 14, 0, tzinfo=UTC)  # Wednesday 9 December 2026, 09:00 in New York
CONSULTED_ON = date(2026, 12, 10)
# Monday, Wednesday and Friday at 10:00 for two weeks: the mood induction series.
SESSION_DAYS = [date(2026, 12, 14) + timedelta(days=n) for n in (0, 2, 4, 7, 9, 11)]

PREFIXES = ("staff/", "api/v1/", "admin/")

# Answering 200 without an audit event is right for these, by URL name: they show no patient's
# data (each is also checked for the patient's details below).
NO_PATIENT_DATA = {
    "api-locations": "the public list of locations",
    "api-appointment-types": "the public list of visit types",
    "api-availability": "free slots, nobody's visits",
    "api-pow-challenge": "a fresh proof-of-work puzzle, nobody's data",
    "staff-calendar": "a shell: its data comes from api-calendar, audited",
    "staff-patient-new": "a blank registration form",
    "admin:index": "the list of models",
    "admin:app_list": "the list of an app's models",
    "admin:password_change": "the staff member's own password form",
    "admin:password_change_done": "a confirmation",
    "admin:auth_user_password_change": "a staff account's password form",
    "admin:jsi18n": "the admin's translations",
    "staff-welcome": "an invited account's set-password form (here: an invalid link)",
    "two-factor": "the staff member's own second factor: on or off, recovery codes left",
}
# Anything but 200 is expected of these, by URL name.
OBJECT_REDIRECT = "admin:<object_id>"
NOT_A_PAGE = {
    OBJECT_REDIRECT: 302,  # to the object's change page
    "staff-home": 302,  # to the board
    "staff-login": 302,  # signed in already: on to the board
    "admin:login": 302,  # signed in already: on to the index
    "admin:view_on_site": 404,  # no patient-data model has a public page
    "admin:autocomplete": 403,  # no admin offers autocompletion
    "two-factor-enrol": 302,  # enrolled already: on to managing it
    "two-factor-verify": 302,  # verified already: on to the board
    # A calendar app's fetch, by its secret address alone (here an unknown one): not a staff
    # session, so its audit event names the feed, not a user or path (tests/booking/test_feeds.py).
    "api-calendar-feed": 404,
}


@dataclass(frozen=True)
class Route:
    name: str
    route: str
    kwargs: tuple[str, ...]
    model_admin: admin.ModelAdmin[Any] | None


def routes(
    patterns: Iterable[URLPattern | URLResolver], prefix: str = "", namespace: str = ""
) -> Iterator[Route]:
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            inner = ":".join(n for n in (namespace, pattern.namespace or "") if n)
            yield from routes(pattern.url_patterns, route, inner)
            continue
        yield Route(
            name=":".join(n for n in (namespace, pattern.name or "") if n) if pattern.name else "",
            route=route,
            kwargs=tuple(pattern.pattern.regex.groupindex),
            model_admin=getattr(pattern.callback, "model_admin", None),
        )


def staff_routes() -> list[Route]:
    # The setup pages hold the clinic's configuration, no patient's data: the walk of every one
    # of them, and the check that none shows a patient, is tests/booking/desk/setup/
    # test_every_page.py (the accounts pages audit themselves all the same).
    found = [
        r
        for r in routes(get_resolver().url_patterns)
        if r.route.lstrip("^").startswith(PREFIXES)
        and not r.route.lstrip("^").startswith("staff/setup/")
    ]
    named = [r for r in found if r.name]
    # The admin's catch-all: any other address under /admin/, a redirect or a 404.
    catch_all = [r for r in found if r.kwargs == ("url",)]
    # An object's bare address in the admin, which redirects to its change page.
    bare = [r for r in found if not r.name and r.model_admin is not None]
    assert len(catch_all) == 1
    assert len(named) + len(catch_all) + len(bare) == len(found), found
    return named + [
        Route(OBJECT_REDIRECT, r.route, r.kwargs, r.model_admin)
        for r in bare
        if r.route.endswith("<path:object_id>/")
    ]


def holds_patient_data(model: type[Model], depth: int = 3) -> bool:
    """A patient, or a row pointing at one (through up to ``depth`` foreign keys)."""
    if model is Patient:
        return True
    if depth == 0:
        return False
    return any(
        holds_patient_data(field.related_model, depth - 1)
        for field in model._meta.concrete_fields
        if field.is_relation and isinstance(field.related_model, type)
    )


@pytest.fixture(autouse=True)
def clock() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@dataclass
class Clinic:
    location: Location
    patient: Patient
    consultation: Appointment
    plan: TreatmentPlan
    series: Series
    entry: WaitlistEntry


@pytest.fixture
def world(
    clinic: Location,
    consultation: AppointmentType,
    infusion: AppointmentType,
    make_approved_patient: Any,
) -> Clinic:
    patient = make_approved_patient(
        first_name="Zebulon",
        last_name="Quixotic",
        email="zebulon.quixotic@example.com",
        phone="+12125559876",
    )
    visit = appointment_book(
        appointment_type=consultation,
        patient=patient,
        start=datetime.combine(CONSULTED_ON, time(10), tzinfo=NEW_YORK),
        now=NOW,
    )
    Intake.objects.create(
        appointment=visit, conditions=["Depression"], medications="Sertraline 50 mg"
    )
    plan = TreatmentPlan.objects.get(
        patient=patient, protocol__slug="mood-induction", revoked_at__isnull=True
    )
    series = series_book(
        plan=plan,
        starts=[datetime.combine(day, time(10), tzinfo=NEW_YORK) for day in SESSION_DAYS],
        now=NOW,
    )
    entry = waitlist_add(
        patient=patient,
        location=clinic,
        appointment_type=infusion,
        earliest_date=date(2026, 12, 11),
        latest_date=date(2026, 12, 31),
        now=NOW,
    )
    InboundMessage.objects.create(
        provider="console",
        provider_message_id="SM1",
        from_phone=patient.phone,
        body="C",
        received_at=NOW,
        patient=patient,
        status=InboundStatus.NEEDS_ATTENTION,
    )
    audit(None, AuditAction.VIEW, visit, user=User.objects.get(username__startswith="pres"))
    assert OutboundMessage.objects.filter(appointment=visit).exists()
    return Clinic(clinic, patient, visit, plan, series, entry)


def concrete(route: Route, world: Clinic) -> str | None:
    """The URL of ``route`` for ``world``'s patient, with the query a read of it needs (None
    for an admin's object page when the model has no row: not one that holds patient data)."""
    session = world.series.sessions.order_by("series_index").first()
    assert session is not None
    values: dict[str, Any] = {
        "reference": world.consultation.reference,
        "patient_id": world.patient.pk,
        "plan_id": world.plan.pk,
        "series_id": world.series.pk,
        "entry_id": world.entry.pk,
        "step": "hold",
        "app_label": "booking",
        "content_type_id": ContentType.objects.get_for_model(Patient).pk,
        "object_id": world.patient.pk,
        "id": User.objects.order_by("pk").values_list("pk", flat=True).first(),  # a password
        "uidb64": "MQ",
        "token": "not-a-token",
    }
    if route.name.startswith("api-series"):
        values["pk"] = world.series.pk
        values["reference"] = session.reference
    elif route.name.startswith("api-plan"):
        values["pk"] = world.plan.pk
    if route.model_admin is not None:
        model = route.model_admin.model
        row = model._default_manager.order_by("pk").first()
        if row is None and "object_id" in route.kwargs:
            assert not holds_patient_data(model), f"no {model.__name__} to show"
            return None
        values["object_id"] = values["id"] = row.pk if row is not None else 0
    if route.name == OBJECT_REDIRECT:
        url = "/" + route.route.replace("<path:object_id>", str(values["object_id"]))
    else:
        url = reverse(route.name, kwargs={name: values[name] for name in route.kwargs})
    slug = world.location.slug
    day = world.consultation.start.astimezone(NEW_YORK).date().isoformat()
    week = {"location": slug, "start": day, "end": (CONSULTED_ON + timedelta(days=6)).isoformat()}
    queries: dict[str, dict[str, Any]] = {
        "staff-board": {"location": slug, "date": day},
        "staff-waitlist": {"location": slug},
        "api-calendar": week,
        "api-appointments": week,
        "api-patients": {"q": "Quixotic"},
        "api-plans": {"patient": world.patient.pk},
        "api-appointment-types": {"location": slug},
        "api-availability": {**week, "appointment_type": "consultation"},
    }
    query = queries.get(route.name, {})
    return f"{url}?{urlencode(query)}" if query else url


def body(response: HttpResponseBase) -> str:
    if isinstance(response, StreamingHttpResponse):
        return b"".join(response.streaming_content).decode()  # type: ignore[arg-type]
    assert isinstance(response, HttpResponse)
    return response.content.decode()


def shows_the_patient(content: str, patient: Patient) -> list[str]:
    details = (patient.last_name, patient.email, patient.phone, patient.phone.removeprefix("+1"))
    return [detail for detail in details if detail in content]


def exempt(route: Route) -> bool:
    """Shows nobody's data: listed above, an admin's blank add form, or the admin of a model
    that holds no patient data."""
    if route.name in NO_PATIENT_DATA or route.name.endswith("_add"):
        return True
    return route.model_admin is not None and not holds_patient_data(route.model_admin.model)


@pytest.fixture
def superuser(db: None) -> User:
    return User.objects.create_superuser("auditor", "auditor@example.com", "unused-password")


def expected_status(route: Route, superuser: User) -> int:
    if route.model_admin is not None:
        # What the admin lets nobody do through it (read-only records) it refuses, to anybody.
        request = RequestFactory().get("/")
        request.user = superuser
        if route.name.endswith("_add") and not route.model_admin.has_add_permission(request):
            return 403
        if route.name.endswith("_delete") and not route.model_admin.has_delete_permission(request):
            return 403
    return NOT_A_PAGE.get(route.name, 200)


def test_every_staff_read_of_patient_data_is_audited(world: Clinic, superuser: User) -> None:
    client = client_for(superuser)
    unaudited: list[str] = []
    wrong_status: list[str] = []
    leaks: list[str] = []
    read: list[str] = []
    for route in staff_routes():
        url = concrete(route, world)
        if url is None:
            continue
        last = AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        response = client.get(url)
        if response.status_code == 405:
            continue  # a write (POST only): audited by its own tests
        expected = expected_status(route, superuser)
        if response.status_code != expected:
            wrong_status.append(f"{url} ({route.name}): {response.status_code}")
            continue
        if expected != 200:
            continue
        read.append(url)
        if exempt(route):
            leaks.extend(f"{url}: {d}" for d in shows_the_patient(body(response), world.patient))
            continue
        audited = AuditEvent.objects.filter(pk__gt=last, user=superuser, method="GET")
        if not audited.filter(path=url).exists():
            unaudited.append(url)

    assert not wrong_status, "fixture or route drifted:\n" + "\n".join(wrong_status)
    assert not leaks, "patient data on a page listed as holding none:\n" + "\n".join(leaks)
    assert not unaudited, "patient data read without an audit event:\n" + "\n".join(unaudited)
    # The walk did reach the reads: every staff page, endpoint and admin page that answers GET.
    assert {
        f"/api/v1/plans/?patient={world.patient.pk}",
        f"/api/v1/series/{world.series.pk}/",
        "/admin/booking/patient/",
        f"/admin/booking/patient/{world.patient.pk}/change/",
        "/admin/booking/eligibilitydecision/",
        "/admin/notifications/outboundmessage/",
        "/staff/prescriber/",
    } <= set(read)
    assert len(read) >= 60, len(read)


def test_the_admin_records_whose_record_was_opened(world: Clinic, superuser: User) -> None:
    client = client_for(superuser)
    plan = world.plan

    client.get(f"/admin/booking/treatmentplan/{plan.pk}/change/")
    client.get("/admin/booking/patient/", {"q": "Quixotic"})

    opened, listed = AuditEvent.objects.filter(user=superuser).order_by("pk")
    assert (opened.action, opened.object_type, opened.object_id, opened.patient_id) == (
        "view",
        "treatmentplan",
        str(plan.pk),
        world.patient.pk,
    )
    assert opened.detail == {"page": "admin"}
    assert (listed.object_type, listed.detail["ids"]) == ("patient_list", [str(world.patient.pk)])
    assert listed.path == "/admin/booking/patient/?q=Quixotic"


def test_a_change_made_in_the_admin_is_audited(world: Clinic, superuser: User) -> None:
    client = client_for(superuser)
    patient = world.patient
    url = f"/admin/booking/patient/{patient.pk}/change/"
    form = {
        field: getattr(patient, field)
        for field in ("first_name", "last_name", "email", "phone", "date_of_birth")
    }

    response = client.post(url, {**form, "first_name": "Zeb"})

    assert response.status_code == 302
    changed = AuditEvent.objects.get(user=superuser, action="update")
    assert (changed.object_type, changed.patient_id, changed.method) == (
        "patient",
        patient.pk,
        "POST",
    )
    assert "First name" in changed.detail["change"][0]["changed"]["fields"]


def test_revoking_plans_from_the_admin_is_audited(world: Clinic, superuser: User) -> None:
    client = client_for(superuser)

    client.post(
        "/admin/booking/treatmentplan/",
        {"action": "revoke", "_selected_action": [world.plan.pk]},
    )

    revoked = AuditEvent.objects.get(user=superuser, action="update")
    assert (revoked.object_id, revoked.patient_id, revoked.location_id) == (
        str(world.plan.pk),
        world.patient.pk,
        world.location.pk,
    )
    assert revoked.detail == {"page": "admin", "step": "revoke"}


def test_deleting_from_the_admin_is_audited_from_the_confirmation_on(
    world: Clinic, superuser: User
) -> None:
    client = client_for(superuser)
    text = InboundMessage.objects.get()
    chosen = {"action": "delete_selected", "_selected_action": [text.pk]}

    confirm = client.post("/admin/notifications/inboundmessage/", chosen)
    done = client.post("/admin/notifications/inboundmessage/", {**chosen, "post": "yes"})

    assert (confirm.status_code, done.status_code) == (200, 302)
    assert not InboundMessage.objects.exists()
    shown, deleted = AuditEvent.objects.filter(user=superuser).order_by("pk")
    assert (shown.action, shown.object_type, shown.detail["ids"]) == (
        "view",
        "inboundmessage_list",
        [str(text.pk)],
    )
    assert (deleted.action, deleted.object_id, deleted.patient_id) == (
        "delete",
        str(text.pk),
        world.patient.pk,
    )
