"""The public booking page where the location verifies online bookings (the default), and the
page its e-mailed link opens: /book/confirm/<token>/ (security issue #15)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.core import mail
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

import config.celery
from booking.defaults import intake_options_install_defaults
from booking.models import Appointment, AppointmentStatus, Intake, Patient
from booking.online import tentative_holds_expire
from booking.services import appointment_book
from notifications.delivery import message_deliver_due, message_send
from scheduling.models import AppointmentType, Location, Resource, ResourceKind, StaffRole
from tests.booking.portal.test_book import answers, as_post, parse, urls
from tests.conftest import open_every_day

# Tuesday 1 December 2026, 09:00 in New York; the first free times are on Wednesday the 2nd.
NOW = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
NINE_AM = datetime(2026, 12, 2, 14, 0, tzinfo=UTC)  # 09:00 EST


@pytest.fixture(autouse=True)
def clock() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _eager_celery() -> Iterator[None]:
    conf = config.celery.app.conf
    before = conf.task_always_eager
    conf.task_always_eager = True
    yield
    conf.task_always_eager = before


@pytest.fixture
def intake(clinic: Location) -> Location:
    intake_options_install_defaults(location=clinic)
    # Three rooms and prescribers: three visits at one time, so that two requests for the time
    # of a patient's own visit can be compared.
    for name in ("R2", "R3"):
        open_every_day(Resource.objects.create(location=clinic, kind=ResourceKind.ROOM, name=name))
    open_every_day(
        Resource.objects.create(
            location=clinic, kind=ResourceKind.STAFF, role=StaffRole.PRESCRIBER, name="Dr. 3"
        )
    )
    return clinic


def deliver() -> None:
    message_deliver_due(enqueue=lambda ids: [message_send(message_id=i) for i in ids])


def confirm_path(to: str = "ada@example.com") -> str:
    for message in reversed(mail.outbox):
        if to in message.to:
            found = re.findall(r"https?://[^/\s]+(/book/confirm/[\w-]+/)", str(message.body))
            if found:
                return str(found[0])
    raise AssertionError(f"no confirmation link was e-mailed to {to}")


def book(client: Client, consultation: AppointmentType, location: Location, **changes: Any):
    """The patient's last step, "Confirm booking" on the review page; then the page it leads to."""
    page = urls(consultation)
    review = client.post(page["review"], answers(location, NINE_AM, **changes))
    confirmed = client.post(page["confirm"], as_post(parse(review.text).hidden))
    return confirmed, client.get(reverse("book-done"))


def the_register() -> list[dict[str, Any]]:
    rows = [
        *Patient.objects.on_file().order_by("pk").values(),
        *Appointment.objects.exclude(status=AppointmentStatus.TENTATIVE).order_by("pk").values(),
        *Intake.objects.filter(appointment__patient__provisional=False).order_by("pk").values(),
    ]
    return [dict(row) for row in rows]


# --- The booking page -----------------------------------------------------------------------------


def test_the_last_step_asks_the_patient_to_check_their_email_and_holds_the_time(
    consultation, intake
):
    confirmed, done = book(Client(), consultation, intake)

    assert confirmed.status_code == 303
    assert done.status_code == 200
    assert "Check your e-mail to confirm" in done.text
    assert "ada@example.com" in done.text
    assert "Wednesday 2 December 2026 at 9:00 AM EST" in done.text
    assert "until <strong>9:15 AM EST</strong>" in done.text
    appointment = Appointment.objects.get()
    assert appointment.status == AppointmentStatus.TENTATIVE
    assert appointment.reference not in done.text


def test_the_page_answers_a_returning_patient_exactly_as_a_stranger_and_changes_nothing(
    consultation, intake, make_patient
):
    known = make_patient(
        first_name="Ada", email="ada@example.com", date_of_birth=date(1985, 12, 10)
    )
    for start in (NINE_AM, NINE_AM + timedelta(days=1)):  # a clash, and the pending cap
        appointment_book(appointment_type=consultation, patient=known, start=start, now=NOW)
    before = the_register()

    as_known = book(Client(), consultation, intake)
    as_stranger = book(Client(), consultation, intake, date_of_birth="1990-01-01")

    assert [r.status_code for r in as_known] == [r.status_code for r in as_stranger]
    assert as_known[0]["Location"] == as_stranger[0]["Location"]
    assert as_known[1].content == as_stranger[1].content
    assert the_register() == before


def test_a_second_click_of_confirm_shows_the_same_page_and_holds_one_time(
    client: Client, consultation, intake
):
    page = urls(consultation)
    review = client.post(page["review"], answers(intake, NINE_AM))
    carried = as_post(parse(review.text).hidden)

    first = client.post(page["confirm"], carried)
    second = client.post(page["confirm"], carried)

    assert first.status_code == second.status_code == 303
    assert Appointment.objects.count() == 1


def test_a_network_with_several_unconfirmed_bookings_is_asked_to_wait(
    client: Client, consultation, intake
):
    for n in range(3):
        confirmed, _ = book(Client(), consultation, intake, email=f"p{n}@example.com")
        assert confirmed.status_code == 303

    refused, _ = book(Client(), consultation, intake, email="p4@example.com")

    assert refused.status_code == 429
    assert int(refused["Retry-After"]) <= 15 * 60
    assert "Please wait a moment" in refused.text
    assert Appointment.objects.count() == 3


def test_a_honeypot_robot_sees_the_same_page_and_holds_nothing(consultation, intake):
    _, robot = book(Client(), consultation, intake, website="https://spam.example")
    Appointment.objects.all().delete()
    _, patient = book(Client(), consultation, intake)

    assert robot.content == patient.content


def test_the_slot_list_shows_a_held_time_as_held(client: Client, consultation, intake):
    book(Client(), consultation, intake)
    book(Client(), consultation, intake, email="grace@example.com")
    book(Client(), consultation, intake, email="alan@example.com")  # every room at 09:00

    page = client.get(urls(consultation)["slots"], {"date": "2026-12-02"})

    assert not [link for link in parse(page.text).links if "T09:00:00" in link]
    held = page.text[page.text.index('class="slots held"') :]
    assert "9:00 AM EST" in held
    assert "held until 9:15 AM EST" in held


def test_a_mobile_of_another_country_is_refused_on_the_form_naming_the_field(
    client: Client, consultation, intake
):
    response = client.post(
        urls(consultation)["review"], answers(intake, NINE_AM, phone="+44 7400 123456")
    )

    assert response.status_code == 200
    assert "Mobile phone: We can only take mobile numbers of these countries: United States" in (
        response.text
    )
    assert "Check your answers" not in response.text


# --- The link -------------------------------------------------------------------------------------


def test_the_link_shows_the_visit_and_books_it_only_when_confirmed(consultation, intake):
    book(Client(), consultation, intake)
    deliver()
    (message,) = mail.outbox
    assert "Please confirm your appointment" in message.subject
    path = confirm_path()
    browser = Client(enforce_csrf_checks=True)

    page = browser.get(path)

    assert page.status_code == 200
    assert page["Cache-Control"].count("no-store") == 1
    assert page["Referrer-Policy"] == "same-origin"
    assert "Wednesday 2 December 2026 at 9:00 AM EST" in page.text
    assert Appointment.objects.get().status == AppointmentStatus.TENTATIVE
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert csrf is not None

    confirmed = browser.post(path + "confirm/", {"csrfmiddlewaretoken": csrf.group(1)})

    assert confirmed.status_code == 303
    appointment = Appointment.objects.get()
    assert appointment.status == AppointmentStatus.BOOKED
    after = browser.get(path)
    assert "You're booked" in after.text
    assert appointment.reference in after.text
    deliver()
    assert [m.to for m in mail.outbox if appointment.reference in str(m.body)] == [
        ["ada@example.com"]
    ]


def test_the_link_tells_a_returning_patient_their_record_rules_the_time_out(
    consultation, intake, make_patient
):
    known = make_patient(email="ada@example.com", date_of_birth=date(1985, 12, 10))
    for days in (1, 2):
        appointment_book(
            appointment_type=consultation,
            patient=known,
            start=NINE_AM + timedelta(days=days),
            now=NOW,
        )
    book(Client(), consultation, intake)
    deliver()

    response = Client().post(confirm_path() + "confirm/")

    assert response.status_code == 409
    assert "You already have upcoming appointments" in response.text
    assert "has been released" in response.text
    assert not Appointment.objects.filter(status=AppointmentStatus.TENTATIVE).exists()


def test_the_link_lets_someone_who_did_not_ask_release_the_time(
    client: Client, consultation, intake
):
    book(Client(), consultation, intake)
    deliver()
    path = confirm_path()

    response = client.post(path + "release/")

    assert response.status_code == 200
    assert "The time has been released" in response.text
    assert not Appointment.objects.exists()
    assert client.get(path).status_code == 404


def test_a_lapsed_link_says_the_time_is_no_longer_held(client: Client, consultation, intake, clock):
    book(Client(), consultation, intake)
    deliver()
    path = confirm_path()
    clock.move_to(NOW + timedelta(minutes=16))

    lapsed = client.get(path)
    refused = client.post(path + "confirm/")
    tentative_holds_expire()
    swept = client.get(path)

    assert "This time is no longer held" in lapsed.text
    assert "Confirm</button>" not in lapsed.text
    assert refused.status_code == 409
    assert swept.status_code == 404
    assert "This link is not valid" in swept.text


def test_an_unknown_link_is_not_found(client: Client, db):
    response = client.get(reverse("book-verify", args=["x" * 43]))

    assert response.status_code == 404
    assert client.post(reverse("book-verify-confirm", args=["x" * 43])).status_code == 404
