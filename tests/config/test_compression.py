"""What goes over the wire, with the settings a deployment runs: the calendar's JSON and the
static files compressed (gzip or Brotli, as the client asks), a hashed static file kept a year,
and an HTML page (a CSRF token beside whatever was typed) never compressed (BREACH)."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import brotli
import pytest
import time_machine
from django.contrib.staticfiles.storage import staticfiles_storage
from django.core.management import call_command
from django.http import HttpResponse
from django.test import Client, RequestFactory, override_settings

from booking.access.roles import Role
from booking.services import appointment_book
from config import settings as production
from config.compression import CompressedDataMiddleware
from scheduling.models import AppointmentType, Location
from tests.staff_helpers import client_for, staff_user

NOW = datetime(2026, 10, 20, 12, 0, tzinfo=UTC)
MONDAY = date(2026, 10, 26)
SCRIPT = "vendor/event-calendar/event-calendar.min.js"
SOURCE = Path(__file__).resolve().parents[2] / "booking" / "static" / SCRIPT
ONE_YEAR = "max-age=31536000"
# The other apps' files (the admin's, the API docs' megabytes) do not change what is tested
# here and would make collecting take half a minute.
OTHER_APPS = ["admin", "rest_framework", "drf_spectacular_sidecar", "otp_totp", "django_otp"]


@pytest.fixture(scope="module")
def collected(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The booking app's static files as collectstatic writes them in production."""
    root = tmp_path_factory.mktemp("static")
    with override_settings(
        STATIC_ROOT=root, STORAGES=production.STORAGES, WHITENOISE_USE_FINDERS=False
    ):
        call_command("collectstatic", interactive=False, verbosity=0, ignore_patterns=OTHER_APPS)
    return root


@pytest.fixture
def deployed(collected: Path, settings) -> None:
    """The production settings, as config/settings.py has them without DEBUG (the tests
    otherwise serve the apps' folders as they are: tests/conftest.py)."""
    assert production.DEBUG is False
    settings.STATIC_ROOT = collected
    settings.STORAGES = production.STORAGES
    settings.WHITENOISE_USE_FINDERS = production.WHITENOISE_USE_FINDERS
    settings.WHITENOISE_AUTOREFRESH = production.WHITENOISE_AUTOREFRESH
    settings.MIDDLEWARE = production.MIDDLEWARE


@pytest.fixture
def busy_week(consultation: AppointmentType, make_patient) -> Location:
    """A week of consultations at the clinic, enough data for compressing to matter."""
    zone = ZoneInfo(consultation.location.timezone)
    with time_machine.travel(NOW, tick=False):
        for day in range(5):
            for hour in (9, 11, 14, 16):
                appointment_book(
                    appointment_type=consultation,
                    patient=make_patient(),
                    start=datetime.combine(date(2026, 10, 26 + day), time(hour), tzinfo=zone),
                    now=NOW,
                )
    return consultation.location


def calendar_url(location: Location) -> str:
    return f"/api/v1/calendar/?location={location.slug}&start={MONDAY}&end=2026-11-01"


@pytest.mark.parametrize(
    ("accept", "encoding", "decompress"),
    [
        ("gzip, deflate", "gzip", gzip.decompress),
        ("gzip, deflate, br, zstd", "br", brotli.decompress),
    ],
)
@time_machine.travel(NOW, tick=False)
def test_the_calendar_data_goes_out_compressed_as_the_client_asks(
    deployed, busy_week, accept, encoding, decompress
) -> None:
    desk = client_for(staff_user(Role.FRONT_DESK, busy_week))
    plain = desk.get(calendar_url(busy_week))

    response = desk.get(calendar_url(busy_week), headers={"accept-encoding": accept})

    assert response.status_code == 200
    assert response["Content-Encoding"] == encoding
    assert "Accept-Encoding" in response["Vary"]
    assert int(response["Content-Length"]) == len(response.content) < len(plain.content) / 4
    assert json.loads(decompress(response.content)) == plain.json()
    assert len(plain.json()["events"]) >= 20
    # Staff data is still never stored on the way (config.caching).
    assert "no-store" in response["Cache-Control"]


@time_machine.travel(NOW, tick=False)
def test_a_client_that_asks_for_no_encoding_gets_the_json_as_it_is(deployed, busy_week) -> None:
    desk = client_for(staff_user(Role.FRONT_DESK, busy_week))

    response = desk.get(calendar_url(busy_week), headers={"accept-encoding": "identity"})

    assert not response.has_header("Content-Encoding")
    assert "Accept-Encoding" in response["Vary"]
    assert response.json()["events"]


@pytest.mark.parametrize(
    ("accept", "encoding", "decompress"),
    [("gzip", "gzip", gzip.decompress), ("gzip, deflate, br", "br", brotli.decompress)],
)
def test_the_calendar_script_is_served_compressed_under_its_hashed_name_for_a_year(
    deployed, accept, encoding, decompress
) -> None:
    url = staticfiles_storage.url(SCRIPT)
    assert url.startswith("/static/vendor/event-calendar/event-calendar.min.")
    assert url != f"/static/{SCRIPT}"  # the manifest's hashed name

    response: Any = Client().get(url, headers={"accept-encoding": accept})

    assert response.status_code == 200
    assert response["Content-Encoding"] == encoding
    assert response["Cache-Control"] == f"{ONE_YEAR}, public, immutable"
    assert "Accept-Encoding" in response["Vary"]
    body = b"".join(response.streaming_content)
    assert len(body) < SOURCE.stat().st_size / 3
    assert decompress(body) == SOURCE.read_bytes()


def test_the_unhashed_name_is_cached_briefly_and_the_apps_folders_are_not_served(
    deployed, db
) -> None:
    unhashed: Any = Client().get(f"/static/{SCRIPT}")
    not_collected = Client().get("/static/admin/css/base.css")

    assert unhashed.status_code == 200
    assert b"".join(unhashed.streaming_content) == SOURCE.read_bytes()
    assert unhashed["Cache-Control"] == "max-age=60, public"
    # Only what collectstatic wrote is served (this test collected the booking app's only).
    assert not_collected.status_code == 404


def test_a_page_with_a_csrf_token_is_not_compressed(deployed) -> None:
    response = Client().get("/staff/login/", headers={"accept-encoding": "gzip, deflate, br"})

    assert response.status_code == 200
    assert b"csrfmiddlewaretoken" in response.content
    assert len(response.content) > 1024  # large enough that only its type keeps it plain
    assert not response.has_header("Content-Encoding")
    # Its stylesheet is linked by the hashed name, which is what makes a year's caching safe.
    assert b"/static/chairside/" in response.content
    assert b".css" in response.content


@pytest.mark.parametrize(
    ("content_type", "size", "compressed"),
    [
        ("text/calendar; charset=utf-8", 4000, True),
        ("application/json", 4000, True),
        ("application/json", 1000, False),  # a packet's worth: nothing to gain
        ("text/html; charset=utf-8", 4000, False),
        ("text/csv; charset=utf-8", 4000, False),
    ],
)
def test_only_json_and_calendar_files_of_some_size_are_compressed(
    content_type, size, compressed
) -> None:
    body = ("BEGIN:VEVENT\r\nSUMMARY:Appointment\r\nEND:VEVENT\r\n" * 100)[:size]
    request = RequestFactory().get("/", headers={"accept-encoding": "gzip"})
    middleware = CompressedDataMiddleware(lambda request: HttpResponse(body, content_type))

    response = middleware(request)

    assert isinstance(response, HttpResponse)
    assert response.has_header("Content-Encoding") is compressed
    if compressed:
        assert gzip.decompress(response.content).decode() == body
