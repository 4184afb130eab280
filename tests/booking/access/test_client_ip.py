"""Whose address a request is from (booking.access.client), and what keys on it: sign-in
lockouts and the audit log (the rate limits: tests/booking/test_throttle.py).

Behind the reverse proxy every connection comes from the proxy, and X-Forwarded-For says who
the client is, but only its right-hand end, which our proxies append: the rest, like the header
itself on a connection that did not come through them, is whatever the client sent.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client, RequestFactory

from booking.access.client import client_ip
from booking.access.roles import Role
from booking.models import AuditEvent
from scheduling.models import Location
from tests.staff_helpers import PASSWORD, client_for, staff_user

PROXY = "172.18.0.1"  # the reverse proxy as the app sees it: Compose's bridge gateway
CLIENT = "203.0.113.9"
LOGIN = "/staff/login/"


@pytest.fixture
def behind_proxy(settings: Any) -> Any:
    """BEHIND_PROXY=true as docs/operations.md sets it: one proxy, no list of its addresses."""
    settings.BEHIND_PROXY = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.PROXY_COUNT = 1
    settings.TRUSTED_PROXIES = []
    return settings


def request(remote_addr: str, forwarded: str | None = None, **headers: str):
    meta: dict[str, Any] = {"REMOTE_ADDR": remote_addr, **headers}
    if forwarded is not None:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory(**meta).get("/")


# --- The address ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "forged",
    [{"forwarded": "198.51.100.1"}, {"forwarded": f"198.51.100.1, {PROXY}"}, {}],
)
def test_without_a_proxy_only_the_connection_counts(settings, forged):
    settings.BEHIND_PROXY = False
    forged_headers = {"HTTP_X_REAL_IP": "198.51.100.2", "HTTP_CLIENT_IP": "198.51.100.3"}

    assert client_ip(request(CLIENT, **forged, **forged_headers)) == CLIENT


def test_behind_the_proxy_the_client_is_the_address_it_appended(behind_proxy):
    assert client_ip(request(PROXY, CLIENT)) == CLIENT


@pytest.mark.parametrize(
    "sent_by_the_client",
    ["198.51.100.1", "198.51.100.1, 10.0.0.7", "not-an-address", "unknown, ::1", "2001:db8::1"],
)
def test_what_the_client_wrote_ahead_of_the_proxy_s_entry_is_ignored(
    behind_proxy, sent_by_the_client
):
    assert client_ip(request(PROXY, f"{sent_by_the_client}, {CLIENT}")) == CLIENT


def test_other_client_headers_are_ignored_behind_the_proxy_too(behind_proxy):
    forged = request(PROXY, CLIENT, HTTP_X_REAL_IP="198.51.100.2", HTTP_FORWARDED="for=1.2.3.4")

    assert client_ip(forged) == CLIENT


def test_behind_two_proxies_the_client_is_the_second_address_from_the_right(behind_proxy):
    behind_proxy.PROXY_COUNT = 2
    load_balancer = "10.0.0.5"

    assert client_ip(request(PROXY, f"198.51.100.1, {CLIENT}, {load_balancer}")) == CLIENT
    assert client_ip(request(PROXY, f"{CLIENT}, {load_balancer}")) == CLIENT


def test_a_request_that_did_not_pass_every_proxy_is_the_connection_s(behind_proxy):
    assert client_ip(request(PROXY)) == PROXY  # the proxy's own health probe
    behind_proxy.PROXY_COUNT = 2
    assert client_ip(request(PROXY, CLIENT)) == PROXY


def test_with_trusted_proxies_a_connection_from_elsewhere_cannot_forge_the_header(behind_proxy):
    behind_proxy.TRUSTED_PROXIES = ["172.16.0.0/12", "::1/128"]

    assert client_ip(request(PROXY, CLIENT)) == CLIENT
    assert client_ip(request("::1", CLIENT)) == CLIENT
    # Straight to the app's port, around the proxy: its own address, whatever it claims.
    assert client_ip(request("198.51.100.66", CLIENT)) == "198.51.100.66"
    assert client_ip(request("2001:db8::66", CLIENT)) == "2001:db8::66"


@pytest.mark.parametrize("proxied", [False, True])
def test_addresses_come_out_in_one_spelling(settings, proxied):
    settings.BEHIND_PROXY = proxied
    settings.PROXY_COUNT = 1
    settings.TRUSTED_PROXIES = []
    mapped = "::ffff:203.0.113.9"
    made = request(PROXY, mapped) if proxied else request(mapped)

    assert client_ip(made) == CLIENT
    assert client_ip(request("2001:DB8:0:0::1")) == "2001:db8::1"


def test_a_connection_without_an_address_has_none(settings):
    settings.BEHIND_PROXY = False

    assert client_ip(request("")) is None


def test_axes_asks_the_same_function():
    assert settings.AXES_CLIENT_IP_CALLABLE == "booking.access.client.client_ip"


# --- Lockouts ------------------------------------------------------------------------------------


@pytest.fixture
def robin(location: Location) -> User:
    return staff_user(Role.FRONT_DESK, location, username="robin")


def sign_in(client: Client, username: str, password: str, forwarded: str):
    return client.post(
        LOGIN, {"username": username, "password": password}, HTTP_X_FORWARDED_FOR=forwarded
    )


@time_machine.travel(datetime(2026, 6, 8, 13, 0, tzinfo=UTC), tick=False)
def test_behind_the_proxy_a_guesser_locks_out_itself_not_every_colleague(behind_proxy, robin):
    through_proxy = Client(REMOTE_ADDR=PROXY)
    guesser = "198.51.100.66"
    for n in range(settings.AXES_FAILURE_LIMIT):
        # A new name each time (no account locks) and a new forged hop ahead of the real one.
        sign_in(through_proxy, f"guess{n}", "wrong", forwarded=f"10.9.9.{n}, {guesser}")

    refused = sign_in(through_proxy, "robin", PASSWORD, forwarded=f"10.9.9.99, {guesser}")
    colleague = sign_in(Client(REMOTE_ADDR=PROXY), "robin", PASSWORD, forwarded=CLIENT)

    assert b"Too many failed sign-ins" in refused.content
    assert colleague.status_code == 302
    assert colleague["Location"] == "/staff/"


# --- The audit log -------------------------------------------------------------------------------


def test_behind_the_proxy_audit_rows_record_the_client_not_the_proxy(behind_proxy, location):
    desk = client_for(staff_user(Role.FRONT_DESK, location))

    response = desk.get(
        "/api/v1/patients/?q=Ada", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=f"10.0.0.1, {CLIENT}"
    )

    assert response.status_code == 200
    assert AuditEvent.objects.get().ip == CLIENT


def test_with_trusted_proxies_audit_rows_of_a_bypassing_request_record_its_own_address(
    behind_proxy, location
):
    behind_proxy.TRUSTED_PROXIES = ["172.16.0.0/12"]
    desk = client_for(staff_user(Role.FRONT_DESK, location))

    desk.get("/api/v1/patients/?q=Ada", REMOTE_ADDR="198.51.100.66", HTTP_X_FORWARDED_FOR=CLIENT)

    assert AuditEvent.objects.get().ip == "198.51.100.66"
