"""The public booking pages through Django's test client: the whole path without JavaScript."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import time_machine
from django.core import mail
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

import config.celery
from booking.defaults import intake_options_install_defaults
from booking.models import (
    SMS_CONSENT_VERSION,
    SMS_CONSENT_WORDINGS,
    Appointment,
    Intake,
    IntakeOption,
    IntakeOptionKind,
    Patient,
)
from booking.services import appointment_book
from scheduling.models import AppointmentType, Location

# Tuesday 1 December 2026, 09:00 in New York: consultations need 12 hours' notice, so the first
# free times are on Wednesday the 2nd.
NOW = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
FIRST_FREE = datetime(2026, 12, 2, 13, 0, tzinfo=UTC)  # 08:00 EST
NINE_AM = datetime(2026, 12, 2, 14, 0, tzinfo=UTC)  # 09:00 EST


@pytest.fixture
def location(location: Location) -> Location:
    """A clinic that books online bookings at once: these tests are about that booking.
    The default, held until the patient confirms by e-mail, is tested with booking.online."""
    Location.objects.filter(pk=location.pk).update(verify_online_bookings=False)
    location.verify_online_bookings = False
    return location


@pytest.fixture(autouse=True)
def _pinned_clock() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


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
    return clinic


def urls(appointment_type: AppointmentType) -> dict[str, str]:
    args = [appointment_type.location.slug, appointment_type.slug]
    return {
        name: reverse(f"book-{name}", args=args)
        for name in ("slots", "details", "times", "review", "confirm")
    }


def answers(location: Location, start: datetime, **changes: Any) -> dict[str, Any]:
    """A complete, valid details form for ``start``."""
    options = IntakeOption.objects.filter(location=location)
    data: dict[str, Any] = {
        "start": start.isoformat(),
        "first_name": "Ada",
        "last_name": "Lovelace",
        "date_of_birth": "1985-12-10",
        "email": "ada@example.com",
        "phone": "(212) 555-0199",
        "conditions": [
            str(o.pk) for o in options.filter(kind=IntakeOptionKind.CONDITION).order_by("pk")[:2]
        ],
        "medications": "Sertraline 50 mg",
        "prior_treatments": "Talking therapy",
        "sms_consent": "on",
        "website": "",
    }
    for option in options.filter(kind=IntakeOptionKind.SCREENING):
        data[f"screening_{option.pk}"] = "no"
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


class _Inputs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hidden: list[tuple[str, str]] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "input" and found.get("type") == "hidden":
            self.hidden.append((found.get("name") or "", found.get("value") or ""))
        if tag == "a" and found.get("data-start"):
            self.links.append(found.get("href") or "")


def parse(html: str) -> _Inputs:
    parser = _Inputs()
    parser.feed(html)
    return parser


def as_post(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    data: dict[str, list[str]] = {}
    for name, value in pairs:
        if name != "csrfmiddlewaretoken":
            data.setdefault(name, []).append(value)
    return data


def counts() -> tuple[int, int, int]:
    return Patient.objects.count(), Appointment.objects.count(), Intake.objects.count()


# --- Each step ----------------------------------------------------------------------------------


def test_it_skips_the_place_step_when_only_one_location_is_open(client: Client, clinic: Location):
    response = client.get(reverse("book-start"))

    assert response.status_code == 302
    assert response["Location"] == reverse("book-types", args=[clinic.slug])


def test_it_asks_for_the_place_when_there_are_several(client: Client, clinic, make_location):
    other = make_location(public_name="Uptown Health")

    response = client.get(reverse("book-start"))

    assert response.status_code == 200
    assert "Midtown Health" in response.text
    assert reverse("book-types", args=[other.slug]) in response.text


def test_it_offers_only_types_bookable_online_under_their_public_names(
    client: Client, clinic: Location
):
    response = client.get(reverse("book-types", args=[clinic.slug]))

    assert response.status_code == 200
    assert "New patient consultation" in response.text
    assert "Comprehensive evaluation" not in response.text  # the internal name
    assert "Treatment session" not in response.text  # needs approval: not bookable online
    assert "iv-mood" not in response.text


def test_it_opens_on_the_first_day_with_free_times_in_clinic_time(
    client: Client, consultation: AppointmentType
):
    response = client.get(urls(consultation)["slots"])

    assert response.status_code == 200
    html = response.text
    assert re.search(r'aria-current="date"><span class="dow">Wed</span> 2 Dec', html)
    assert "Wednesday 2 December 2026" in html
    assert "8:00 AM EST" in html
    assert "Times are shown in the clinic's time zone (America/New_York)" in html
    first = parse(html).links[0]
    assert parse_qs(urlsplit(first).query)["start"] == ["2026-12-02T08:00:00-05:00"]
    assert 'data-zone="America/New_York"' in html


def test_it_steps_through_weeks_counted_from_today(client: Client, consultation):
    slots = urls(consultation)["slots"]

    response = client.get(slots, {"date": "2026-12-10"})

    html = response.text
    assert re.search(r'aria-current="date"><span class="dow">Thu</span> 10 Dec', html)
    assert f'href="{slots}?date=2026-12-01" rel="prev"' in html
    assert f'href="{slots}?date=2026-12-15" rel="next"' in html
    assert "Tue</span> 8 Dec" in html
    assert "Mon</span> 14 Dec" in html


@pytest.mark.parametrize("value", ["garbage", "1999-01-01", "2026-02-30", "9999-12-31", "x" * 500])
def test_it_reads_any_date_it_cannot_use_as_the_nearest_it_can(
    client: Client, consultation, value: str
):
    response = client.get(urls(consultation)["slots"], {"date": value})

    assert response.status_code == 200


def test_it_answers_an_unknown_place_or_type_with_a_page_not_found(client: Client, clinic):
    assert client.get(reverse("book-types", args=["nowhere"])).status_code == 404
    response = client.get(reverse("book-slots", args=[clinic.slug, "iv-mood"]))
    assert response.status_code == 404
    assert "Page not found" in response.text


def test_the_details_form_labels_every_field_and_shows_the_exact_consent_wording(
    client: Client, consultation, intake
):
    response = client.get(urls(consultation)["details"], {"start": NINE_AM.isoformat()})

    assert response.status_code == 200
    html = response.text
    for field_id, label in [
        ("id_first_name", "First name"),
        ("id_last_name", "Last name"),
        ("id_date_of_birth", "Date of birth"),
        ("id_email", "Email"),
        ("id_phone", "Mobile phone"),
        ("id_medications", "Current medications"),
    ]:
        assert f'<label for="{field_id}">{label}' in html
    assert "<legend>What would you like help with?</legend>" in html
    assert "Chronic pain" in html
    question = IntakeOption.objects.filter(kind=IntakeOptionKind.SCREENING).first()
    assert question is not None
    assert f"<legend>{question.text}</legend>" in html
    assert f'name="screening_{question.pk}" value="yes"' in html
    assert SMS_CONSENT_WORDINGS[SMS_CONSENT_VERSION] in html
    assert '<div class="hp" aria-hidden="true">' in html
    assert "Wednesday 2 December 2026 at 9:00 AM EST" in html
    assert 'name="csrfmiddlewaretoken"' in html


def test_it_sends_a_patient_back_to_the_list_when_their_time_has_gone(
    client: Client, consultation, make_patient
):
    # The clinic's one consult room is taken at 09:00: the time is no longer offered.
    appointment_book(appointment_type=consultation, patient=make_patient(), start=NINE_AM)

    response = client.get(
        urls(consultation)["details"], {"start": NINE_AM.isoformat()}, follow=True
    )

    assert response.redirect_chain[-1][0].endswith("?date=2026-12-02")
    assert "That time is no longer available" in response.text


def test_it_refuses_a_time_without_an_offset(client: Client, consultation):
    response = client.get(urls(consultation)["details"], {"start": "2026-12-02T09:00:00"})

    assert response.status_code == 302
    assert response["Location"].startswith(urls(consultation)["slots"])


# --- The whole path, plain HTML forms -------------------------------------------------------


def test_a_patient_books_without_javascript_from_the_list_to_the_confirmation(
    client: Client, consultation, intake, django_capture_on_commit_callbacks
):
    page = urls(consultation)
    first_slot = parse(client.get(page["slots"]).text).links[0]
    details = client.get(first_slot)
    assert details.status_code == 200
    start = parse(details.text).hidden
    assert ("start", "2026-12-02T08:00:00-05:00") in start

    review = client.post(page["review"], answers(intake, FIRST_FREE))

    assert review.status_code == 200
    html = review.text
    assert "Check your answers" in html
    assert "Wednesday 2 December 2026 at 8:00 AM EST" in html
    assert "Ada Lovelace" in html
    assert "10 December 1985" in html
    assert "+12125550199" in html
    assert "Depression, Anxiety" in html
    assert "Sertraline 50 mg" in html
    assert Appointment.objects.count() == 0  # reviewing books nothing

    with django_capture_on_commit_callbacks(execute=True):
        confirmed = client.post(page["confirm"], as_post(parse(html).hidden))

    assert confirmed.status_code == 303
    assert confirmed["Location"] == reverse("book-done")
    appointment = Appointment.objects.select_related("patient", "intake").get()
    assert appointment.start == FIRST_FREE
    assert appointment.source == "online"
    assert appointment.patient.phone == "+12125550199"
    assert appointment.patient.sms_consent_version == SMS_CONSENT_VERSION
    assert appointment.intake.conditions == ["Depression", "Anxiety"]
    assert appointment.intake.medications == "Sertraline 50 mg"
    assert {item["answer"] for item in appointment.intake.screening} == {False}
    assert len(appointment.intake.screening) == 5
    confirmations = [m for m in mail.outbox if appointment.reference in m.body]
    assert [m.to for m in confirmations] == [["ada@example.com"]]

    done = client.get(reverse("book-done"))

    assert done.status_code == 200
    assert "Wednesday 2 December 2026 at 8:00 AM EST" in done.text
    assert "We've e-mailed you a link" in done.text
    assert appointment.reference in done.text


def test_it_names_each_field_it_refuses_and_links_to_it(client: Client, consultation, intake):
    question = IntakeOption.objects.filter(kind=IntakeOptionKind.SCREENING).first()
    assert question is not None
    data = answers(
        intake,
        NINE_AM,
        phone="12345",
        date_of_birth="2030-01-01",
        email="not-an-email",
        first_name="",
        conditions=None,
        **{f"screening_{question.pk}": None},
    )

    response = client.post(urls(consultation)["review"], data)

    assert response.status_code == 200
    html = response.text
    assert "<title>Error: Your details" in html
    assert '<a href="#id_phone">Mobile phone: Enter a valid phone number' in html
    assert '<a href="#id_date_of_birth">Date of birth: The date of birth must be in the past.' in (
        html
    )
    assert '<a href="#id_email">Email: Enter a valid email address.' in html
    assert '<a href="#id_first_name">First name: This field is required.' in html
    assert '<a href="#id_conditions_0">What would you like help with? Choose at least one.' in (
        html
    )
    assert f'<a href="#id_screening_{question.pk}_0">{question.text} Answer yes or no.' in html
    assert 'aria-invalid="true"' in html
    assert 'aria-describedby="id_phone_helptext id_phone_error"' in html
    assert 'value="Lovelace"' in html  # what was right is kept


def test_change_on_the_review_page_brings_back_the_filled_form(
    client: Client, consultation, intake
):
    review = client.post(urls(consultation)["review"], answers(intake, NINE_AM))
    carried = as_post(parse(review.text).hidden)

    response = client.post(urls(consultation)["details"], carried)

    assert response.status_code == 200
    html = response.text
    assert 'value="Ada"' in html
    assert 'value="1985-12-10"' in html
    assert "error-summary" not in html
    assert re.search(r'name="sms_consent"[^>]*checked', html)
    assert Appointment.objects.count() == 0


def test_choosing_another_time_keeps_the_answers(client: Client, consultation, intake):
    review = client.post(urls(consultation)["review"], answers(intake, NINE_AM))

    response = client.post(urls(consultation)["times"], as_post(parse(review.text).hidden))

    assert response.status_code == 200
    carried = dict(parse(response.text).hidden)
    assert carried["first_name"] == "Ada"
    assert "start" not in carried
    assert 'name="start" value="2026-12-02T11:00:00-05:00"' in response.text


# --- Refusals -------------------------------------------------------------------------------


def test_a_filled_honeypot_pretends_success_and_books_nothing(client: Client, consultation, intake):
    data = answers(intake, NINE_AM, website="http://spam.example")

    response = client.post(urls(consultation)["confirm"], data, follow=True)

    assert response.status_code == 200
    assert "You're booked" in response.text
    assert "9:00 AM EST" in response.text
    assert counts() == (0, 0, 0)
    assert mail.outbox == []


def test_a_slot_taken_meanwhile_shows_the_message_and_other_times(
    client: Client, consultation, intake, make_patient
):
    appointment_book(appointment_type=consultation, patient=make_patient(), start=NINE_AM)

    response = client.post(urls(consultation)["confirm"], answers(intake, NINE_AM))

    assert response.status_code == 409
    html = response.text
    assert "Please choose another time" in html
    assert "not available" in html or "taken" in html
    assert 'name="start" value="2026-12-02T09:00:00-05:00"' not in html
    assert 'name="start" value="2026-12-02T11:00:00-05:00"' in html
    assert dict(parse(html).hidden)["email"] == "ada@example.com"
    assert Appointment.objects.count() == 1


def test_a_time_inside_the_notice_period_is_explained_on_the_review_page(
    client: Client, consultation, intake
):
    too_soon = datetime(2026, 12, 1, 22, 0, tzinfo=UTC)  # 17:00 EST today, 8 hours away

    response = client.post(urls(consultation)["confirm"], answers(intake, too_soon))

    assert response.status_code == 422
    assert "notice" in response.text
    assert "Check your answers" in response.text
    assert counts() == (0, 0, 0)


def test_it_answers_429_with_retry_after_past_ten_confirmations_an_hour(
    client: Client, consultation
):
    confirm = urls(consultation)["confirm"]
    for _ in range(10):
        assert client.post(confirm, {}).status_code != 429

    response = client.post(confirm, {})

    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= 3600
    assert "Please wait a moment" in response.text
    assert "+12125550100" in response.text


def test_confirming_needs_the_csrf_token(consultation, intake):
    client = Client(enforce_csrf_checks=True)

    response = client.post(urls(consultation)["confirm"], answers(intake, NINE_AM))

    assert response.status_code == 403
    assert counts() == (0, 0, 0)


def test_no_get_request_creates_anything(client: Client, consultation, intake):
    page = urls(consultation)
    query = {"start": NINE_AM.isoformat(), **answers(intake, NINE_AM)}
    for url in [
        reverse("book-start"),
        reverse("book-types", args=[intake.slug]),
        page["slots"],
        page["details"],
        page["times"],
        page["review"],
        page["confirm"],
        reverse("book-done"),
    ]:
        response = client.get(url, query)
        assert response.status_code in (200, 302, 404), url

    assert counts() == (0, 0, 0)


def test_the_confirmation_is_shown_only_to_the_browser_that_booked(
    client: Client, consultation, intake
):
    client.post(urls(consultation)["confirm"], answers(intake, NINE_AM))
    reference = Appointment.objects.get().reference
    assert reference in client.get(reverse("book-done")).text

    stranger = Client()
    response = stranger.get(reverse("book-done"))

    assert response.status_code == 404
    assert reference not in response.text
    assert "Ada" not in response.text
    assert "9:00 AM" not in response.text


def test_a_returning_patient_past_the_pending_cap_is_told_on_the_review_page(
    client: Client, consultation, intake
):
    page = urls(consultation)
    for hour in (0, 2):
        start = NINE_AM + timedelta(hours=hour)
        assert client.post(page["confirm"], answers(intake, start)).status_code == 303

    response = client.post(page["confirm"], answers(intake, NINE_AM + timedelta(hours=4)))

    assert response.status_code == 422
    assert "You already have upcoming appointments" in response.text
    assert Appointment.objects.count() == 2


def test_confirming_the_same_booking_again_shows_its_confirmation(
    client: Client, consultation, intake
):
    data = answers(intake, NINE_AM)
    assert client.post(urls(consultation)["confirm"], data).status_code == 303

    again = client.post(urls(consultation)["confirm"], data)

    assert again.status_code == 303
    assert again["Location"] == reverse("book-done")
    assert Appointment.objects.count() == 1
