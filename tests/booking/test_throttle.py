"""Whom the rate limits count (booking.throttle.client_key): the client's address as
booking.access.client reads it, an IPv6 one by its /64, on every limited path — online booking
(the API and the page share one count), link requests and waitlist offer pages. (Concurrent
bookings against the limit: tests/booking/test_rate_limits.py.)"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client, RequestFactory

from booking import throttle
from booking.portal import waitlist as offer_pages
from booking.portal.link import LINK_REQUEST_LIMIT

PROXY = "172.18.0.1"
LOAD_BALANCER = "10.0.0.5"
_emails = itertools.count(1)


@pytest.fixture(autouse=True)
def fresh_rate_limits() -> Iterator[None]:
    # The windows live in the shared cache (Redis in CI), across tests and runs.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def behind_proxy(settings: Any) -> Any:
    settings.BEHIND_PROXY = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.PROXY_COUNT = 1
    settings.TRUSTED_PROXIES = []
    return settings


def ask_for_a_link(remote_addr: str, forwarded: str | None = None) -> int:
    extra: dict[str, Any] = {"REMOTE_ADDR": remote_addr}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    # A new e-mail address each time: link requests are limited per e-mail address too.
    email = f"someone{next(_emails)}@example.com"
    response = Client(**extra).post("/a/", {"email": email, "date_of_birth": "1985-03-02"})
    return response.status_code


def book_through_the_api(forwarded: str) -> int:
    # An empty body is refused (400) after the throttle has counted it.
    response = Client().post(
        "/api/v1/bookings/",
        "{}",
        content_type="application/json",
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_FOR=forwarded,
    )
    return response.status_code


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2::", "2001:db8:1:2::/64"),
        ("::1", "::/64"),
    ],
)
def test_a_client_is_counted_by_its_ipv4_address_or_its_ipv6_64(address, key):
    assert throttle.client_key(RequestFactory().get("/", REMOTE_ADDR=address)) == key


# --- IPv6 -----------------------------------------------------------------------------------------


def test_ipv6_addresses_in_one_64_share_a_bucket(db):
    # Each request from a fresh address of the same /64, as any IPv6 host can.
    answers = [ask_for_a_link(f"2001:db8:1:2::{n + 1:x}") for n in range(LINK_REQUEST_LIMIT)]

    assert answers == [303] * LINK_REQUEST_LIMIT
    assert ask_for_a_link("2001:db8:1:2:ffff:ffff:ffff:ffff") == 429
    assert ask_for_a_link("2001:db8:1:3::1") == 303  # the next /64 is somebody else


def test_the_waitlist_offer_pages_count_an_ipv6_64_once(db, monkeypatch):
    monkeypatch.setattr(offer_pages, "OFFER_PAGE_LIMIT", 2)

    answers = [
        Client(REMOTE_ADDR=f"2001:db8:7:7::{n}").get(f"/w/guess-{n}/").status_code
        for n in (1, 2, 3)
    ]

    assert answers == [404, 404, 429]
    assert Client(REMOTE_ADDR="2001:db8:7:8::1").get("/w/guess/").status_code == 404


# --- Behind the proxy -------------------------------------------------------------------------


def test_behind_two_proxies_each_client_gets_its_own_booking_limit(behind_proxy, db):
    behind_proxy.PROXY_COUNT = 2
    busy = "203.0.113.9"

    answers = [
        # A forged hop ahead of the real ones, new every time, changes nothing.
        book_through_the_api(f"198.51.100.{n}, {busy}, {LOAD_BALANCER}")
        for n in range(throttle.BOOKINGS_PER_HOUR + 1)
    ]

    assert answers == [400] * throttle.BOOKINGS_PER_HOUR + [429]
    assert book_through_the_api(f"203.0.113.10, {LOAD_BALANCER}") == 400


def test_behind_the_proxy_link_requests_count_per_client_and_per_ipv6_64(behind_proxy, db):
    answers = [
        ask_for_a_link(PROXY, f"2001:db8:5:5::{n + 1}, 2001:db8:9:9::{n + 1}")
        for n in range(LINK_REQUEST_LIMIT)
    ]

    assert answers == [303] * LINK_REQUEST_LIMIT
    assert ask_for_a_link(PROXY, "2001:db8:9:9::abcd") == 429
    assert ask_for_a_link(PROXY, "203.0.113.10") == 303


def test_a_client_that_goes_around_the_proxy_cannot_forge_its_way_past_the_limit(behind_proxy, db):
    behind_proxy.TRUSTED_PROXIES = ["172.16.0.0/12"]
    around = "198.51.100.66"

    answers = [ask_for_a_link(around, f"203.0.113.{n}") for n in range(LINK_REQUEST_LIMIT + 1)]

    assert answers == [303] * LINK_REQUEST_LIMIT + [429]
    # Through the proxy, the header is believed again.
    assert ask_for_a_link(PROXY, "203.0.113.200") == 303
