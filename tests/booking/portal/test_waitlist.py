"""A patient answers a waitlist offer at /w/<token>/ (booking.portal.waitlist)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
import time_machine
from django.test import Client

from booking.models import Appointment, AppointmentStatus, OfferStatus
from booking.portal import waitlist as offer_pages
from tests.booking.test_waitlist import (  # noqa: F401 - quiet_delivery is a fixture
    NOW,
    quiet_delivery,
)


@pytest.fixture(autouse=True)
def clock() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


# --- The patient's offer page ------------------------------------------------------------------


def test_the_offer_page_shows_the_offer_and_changes_nothing(offered, consultation):
    offer, url = offered

    page = Client().get(url)

    assert page.status_code == 200
    text = page.content.decode()
    assert consultation.public_name in text
    assert consultation.name not in text  # the internal name is the staff's
    assert "Wednesday 3 June 2026 at 10:00 AM EDT" in text
    assert "Monday 1 June 2026 at 10:00 AM EDT" in text  # the hold's expiry
    assert f'action="{url}accept/"' in text
    assert f'action="{url}decline/"' in text
    assert "no-store" in page["Cache-Control"]
    assert page["X-Robots-Tag"] == "noindex, nofollow"
    offer.refresh_from_db()
    assert offer.status == OfferStatus.OPEN


def test_an_unknown_offer_is_not_found(db):
    page = Client().get("/w/not-a-token/")

    assert page.status_code == 404
    assert "not valid" in page.content.decode()


def test_accepting_books_and_the_page_says_so(offered):
    offer, url = offered

    answer = Client().post(f"{url}accept/")

    assert answer.status_code == 303
    assert answer["Location"] == url
    offer.refresh_from_db()
    assert offer.status == OfferStatus.ACCEPTED
    assert offer.appointment is not None
    assert offer.appointment.status == AppointmentStatus.BOOKED
    page = Client().get(url)
    assert "Booked." in page.content.decode()
    assert "<form" not in page.content.decode()


def test_declining_frees_the_offer_and_the_page_says_so(offered):
    offer, url = offered

    answer = Client().post(f"{url}decline/")

    assert answer.status_code == 303
    offer.refresh_from_db()
    assert offer.status == OfferStatus.DECLINED
    assert "You declined this time" in Client().get(url).content.decode()


def test_an_expired_offer_cannot_be_accepted_and_says_why(offered):
    offer, url = offered

    with time_machine.travel(offer.expires_at + timedelta(seconds=1), tick=False):
        page = Client().get(url)
        answer = Client().post(f"{url}accept/")

    assert "This offer has expired" in page.content.decode()
    assert "<form" not in page.content.decode()
    assert answer.status_code == 409
    assert "expired" in answer.content.decode()
    assert not Appointment.objects.filter(status=AppointmentStatus.BOOKED).exists()


def test_accepting_twice_says_it_was_already_accepted(offered):
    _offer, url = offered
    Client().post(f"{url}accept/")

    again = Client().post(f"{url}accept/")

    assert again.status_code == 409
    assert "already accepted" in again.content.decode()
    assert Appointment.objects.filter(status=AppointmentStatus.BOOKED).count() == 1


def test_answers_need_the_page_s_csrf_token(offered):
    _offer, url = offered
    client = Client(enforce_csrf_checks=True)

    refused = client.post(f"{url}accept/")
    page = client.get(url)
    token = page.context["csrf_token"]
    accepted = client.post(f"{url}accept/", {"csrfmiddlewaretoken": token})

    assert refused.status_code == 403
    assert accepted.status_code == 303


def test_a_get_of_the_answer_addresses_does_nothing(offered):
    offer, url = offered

    assert Client().get(f"{url}accept/").status_code == 405
    offer.refresh_from_db()
    assert offer.status == OfferStatus.OPEN


def test_the_offer_pages_are_rate_limited(offered, monkeypatch):
    _offer, url = offered
    monkeypatch.setattr(offer_pages, "OFFER_PAGE_LIMIT", 2)
    client = Client()

    answers = [client.get(url).status_code for _ in range(2)] + [
        client.get("/w/guess/").status_code
    ]

    assert answers == [200, 200, 429]


# --- The front desk's list ---------------------------------------------------------------------
