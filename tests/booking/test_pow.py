"""The proof of work asked of a client network after a threshold of booking attempts (booking.pow,
security issue #15): the challenge endpoint, the API and the booking page."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import altcha
import pytest
import time_machine
from django.core.cache import cache
from django.test import Client

from booking.models import Appointment
from booking.pow import ProofOfWorkRequired, challenge_new, proof_check
from scheduling.models import AppointmentType
from tests.booking.api.helpers import assert_error
from tests.booking.api.test_public_held import NOW, new_booking, post
from tests.booking.portal.test_book import answers, as_post, parse, urls
from tests.booking.portal.test_confirm import NINE_AM
from tests.booking.portal.test_confirm import NOW as PAGE_NOW

CHALLENGE_URL = "/api/v1/pow/challenge/"


@pytest.fixture(autouse=True)
def threshold(settings: Any) -> None:
    settings.POW_AFTER_ATTEMPTS = 1
    settings.POW_MAX_NUMBER = 200  # solved at once in the tests


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


def solved(client: Client | None = None) -> str:
    """A challenge from the endpoint, solved as the widget would; the payload it posts."""
    if client is None:
        body = challenge_new()
    else:
        response = client.get(CHALLENGE_URL)
        assert response.status_code == 200
        body = response.json()
    challenge = altcha.Challenge.from_dict(body)
    solution = altcha.solve_challenge(challenge)
    assert solution is not None
    return altcha.Payload(challenge, solution).to_base64()


def refused(response: Any) -> dict[str, Any]:
    error = assert_error(response, 400, "pow_required")
    assert set(error["fields"]) == {"altcha"}
    return error


# --- The core ------------------------------------------------------------------------------------


def test_a_solution_is_accepted_once() -> None:
    payload = solved()
    proof_check(payload)
    with pytest.raises(ProofOfWorkRequired, match="used already") as refused:
        proof_check(payload)
    assert refused.value.field == "altcha"


def test_an_expired_challenge_is_refused() -> None:
    with time_machine.travel(NOW, tick=False) as clock:
        payload = solved()
        clock.shift(timedelta(minutes=11))
        with pytest.raises(ProofOfWorkRequired, match="expired"):
            proof_check(payload)


def test_a_tampered_or_missing_solution_is_refused() -> None:
    payload = altcha.Payload.from_base64(solved())
    payload.challenge.parameters.key_prefix = "00"  # an easier puzzle than the one signed
    for bad in ["", None, "not base64", payload.to_base64(), "x" * 5000]:
        with pytest.raises(ProofOfWorkRequired):
            proof_check(bad)


def test_the_challenge_endpoint_is_public_and_not_cached(client: Client) -> None:
    response = client.get(CHALLENGE_URL)
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    body = response.json()
    assert body["parameters"]["algorithm"] == "SHA-256"
    assert body["signature"]
    assert client.get(CHALLENGE_URL).json() != body  # fresh each time


# --- The API -------------------------------------------------------------------------------------


@pytest.fixture
def api_clock() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def test_the_first_attempt_in_the_hour_needs_no_proof(consultation, client, api_clock) -> None:
    response = post(client, new_booking())
    assert response.status_code == 202, response.content


def test_past_the_threshold_a_booking_without_proof_is_refused_and_nothing_held(
    consultation, client, api_clock
) -> None:
    assert post(client, {}).status_code == 400  # an attempt all the same

    response = post(client, new_booking())

    refused(response)
    assert not Appointment.objects.exists()
    # Another network is not asked.
    assert post(client, new_booking(), address="198.51.100.7").status_code == 202


def test_past_the_threshold_a_solved_challenge_books_once(consultation, client, api_clock) -> None:
    post(client, {})
    payload = solved(client)

    response = post(client, {**new_booking(), "altcha": payload})
    assert response.status_code == 202, response.content
    assert Appointment.objects.count() == 1

    replayed = post(client, {**new_booking(email="grace@example.com"), "altcha": payload})
    refused(replayed)
    assert Appointment.objects.count() == 1


def test_an_expired_solution_is_refused(consultation, client, api_clock) -> None:
    post(client, {})
    payload = solved(client)
    api_clock.shift(timedelta(minutes=11))

    response = post(client, {**new_booking(), "altcha": payload})

    assert "expired" in refused(response)["message"]
    assert not Appointment.objects.exists()


def test_zero_asks_every_booking(consultation, client, api_clock, settings) -> None:
    settings.POW_AFTER_ATTEMPTS = 0
    refused(post(client, new_booking()))
    assert post(client, {**new_booking(), "altcha": solved(client)}).status_code == 202


# --- The booking page ----------------------------------------------------------------------------


@pytest.fixture
def page_clock() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(PAGE_NOW, tick=False) as traveller:
        yield traveller


def confirm(client: Client, consultation: AppointmentType, **changes: Any):
    page = urls(consultation)
    review = client.post(page["review"], answers(consultation.location, NINE_AM, **changes))
    assert review.status_code == 200
    return client.post(page["confirm"], as_post(parse(review.text).hidden))


def test_the_details_page_shows_the_check_only_past_the_threshold(
    consultation, client, page_clock
) -> None:
    details = urls(consultation)["details"]
    first = client.get(details, {"start": NINE_AM.isoformat()})
    assert first.status_code == 200
    assert "altcha-widget" not in first.text

    client.post(urls(consultation)["confirm"], {"start": NINE_AM.isoformat()})  # an attempt

    second = client.get(details, {"start": NINE_AM.isoformat()})
    assert "<altcha-widget" in second.text
    assert "/api/v1/pow/challenge/" in second.text
    assert "vendor/altcha/altcha.umd.min.js" in second.text


def test_the_page_refuses_a_booking_without_proof_past_the_threshold(
    consultation, client, page_clock
) -> None:
    client.post(urls(consultation)["confirm"], {"start": NINE_AM.isoformat()})

    response = confirm(client, consultation)

    assert response.status_code == 400
    assert "Check that you are not a robot" in response.text
    assert 'href="#id_altcha"' in response.text
    assert "<altcha-widget" in response.text
    assert not Appointment.objects.exists()


def test_the_page_books_with_a_solved_challenge_and_refuses_its_replay(
    consultation, client, page_clock
) -> None:
    client.post(urls(consultation)["confirm"], {"start": NINE_AM.isoformat()})
    payload = solved(client)

    response = confirm(client, consultation, altcha=payload)
    assert response.status_code == 303
    assert Appointment.objects.count() == 1

    replayed = confirm(Client(), consultation, altcha=payload, email="grace@example.com")
    # Another browser on the same network: past the threshold too, and the proof is spent.
    assert replayed.status_code == 400
    assert "used already" in replayed.text
    assert Appointment.objects.count() == 1
