"""Fixtures the booking tests of more than one room share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from booking.models import WaitlistOffer
from booking.waitlist import offer_freed_slot
from tests.booking.test_waitlist import NOW, TEN, offer_tokens, wait_for


@pytest.fixture
def tokens() -> Iterator[dict[int, str]]:
    """The raw token of each waitlist offer made while the test runs, by offer id."""
    with offer_tokens() as heard:
        yield heard


@pytest.fixture
def offered(consultation, make_patient, tokens) -> tuple[WaitlistOffer, str]:
    """A freed consultation slot offered to a waiting patient: the offer and its page."""
    wait_for(consultation, make_patient(first_name="Robin"))
    offer = offer_freed_slot(appointment_type=consultation, start=TEN, now=NOW)
    assert offer is not None
    return offer, f"/w/{tokens[offer.pk]}/"
