"""The public read API, v1: shapes, errors, query counts, and the offline schema docs."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from urllib.parse import urlencode

import pytest
import time_machine
from django.test import Client

from booking.services import appointment_book
from scheduling.models import AppointmentType, Location

NOW = datetime.fromisoformat("2026-06-01T12:00:00+00:00")  # 08:00 in New York
# Words that must never reach a patient-facing name (DESIGN §2).
REVEALING = ("ketamine", "esketamine", "spravato", "infusion", "depression", "ptsd", "suicide")


def get(client: Client, path: str, params: dict[str, str] | list[tuple[str, str]] | None = None):
    return client.get(f"{path}?{urlencode(params)}" if params else path)


def assert_error(response, status: int, *fields: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "fields"}
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    for field in fields:
        assert field in body["error"]["fields"], body
    return body["error"]


# --- Locations ---------------------------------------------------------------------------------


def test_it_lists_active_locations_under_their_public_names(
    clinic, make_location, client, django_assert_num_queries
):
    make_location(slug="closed", public_name="Closed Health", is_active=False)
    make_location(slug="uptown", public_name="Uptown Health", timezone="Europe/Berlin")

    with django_assert_num_queries(1):
        response = client.get("/api/v1/locations/")

    assert response.status_code == 200
    assert response.json() == [
        {"slug": "midtown", "name": "Midtown Health", "timezone": "America/New_York"},
        {"slug": "uptown", "name": "Uptown Health", "timezone": "Europe/Berlin"},
    ]
    assert b"Ketamine" not in response.content


def test_listing_many_locations_takes_one_query(make_location, client, django_assert_num_queries):
    for _ in range(20):
        make_location()

    with django_assert_num_queries(1):
        response = client.get("/api/v1/locations/")

    assert len(response.json()) == 20


# --- Appointment types ---------------------------------------------------------------------------


def test_it_lists_only_the_types_bookable_online_by_their_neutral_names(
    clinic, client, django_assert_num_queries
):
    with django_assert_num_queries(2):
        response = get(client, "/api/v1/appointment-types/", {"location": "midtown"})

    assert response.status_code == 200
    assert response.json() == [
        {
            "slug": "consultation",
            "name": "New patient consultation",
            "duration_minutes": 60,
            "bookable_online": True,
            "needs_approval": False,
        }
    ]
    assert not any(word in response.content.decode().lower() for word in REVEALING)
    assert b"iv-mood" not in response.content


def test_a_treatment_bookable_online_is_listed_by_its_neutral_public_slug(
    clinic, client, django_assert_num_queries
):
    # Security issue #15: the staff's slugs name the treatment; patients see neutral ones.
    AppointmentType.objects.filter(location=clinic, slug__in=["spravato", "iv-mood"]).update(
        bookable_online=True
    )

    with django_assert_num_queries(2):
        response = get(client, "/api/v1/appointment-types/", {"location": "midtown"})

    listed = {t["slug"]: t["name"] for t in response.json()}
    assert listed == {
        "consultation": "New patient consultation",
        "observed-session": "Observed treatment session",
        "treatment-session": "Treatment session",
    }
    assert not any(word in response.content.decode().lower() for word in REVEALING)
    assert b"iv-mood" not in response.content
    internal = set(AppointmentType.objects.values_list("name", flat=True))
    assert not set(listed.values()) & internal
    slots = availability(client, appointment_type="treatment-session")
    assert slots.status_code == 200, slots.content
    assert_error(availability(client, appointment_type="spravato"), 400, "appointment_type")


def test_it_lists_types_of_that_location_only(
    clinic, make_location, make_type, client, django_assert_num_queries
):
    make_type(make_location(slug="elsewhere"), duration=30, needs=[], public_name="Elsewhere")
    AppointmentType.objects.filter(location=clinic).update(bookable_online=True)
    AppointmentType.objects.filter(location=clinic, slug="booster").update(is_active=False)

    with django_assert_num_queries(2):
        response = get(client, "/api/v1/appointment-types/", {"location": "midtown"})

    slugs = [t["slug"] for t in response.json()]
    assert slugs == ["consultation", "extended-session", "observed-session", "treatment-session"]


@pytest.mark.parametrize(
    "params",
    [{}, {"location": "nowhere"}, {"location": "x" * 5000}, {"location": "mid town"}],
    ids=["missing", "unknown", "long", "space"],
)
def test_it_refuses_types_of_an_unknown_location(clinic, client, params):
    assert_error(get(client, "/api/v1/appointment-types/", params), 400, "location")


def test_an_inactive_location_is_unknown(clinic, client):
    Location.objects.filter(pk=clinic.pk).update(is_active=False)

    assert_error(
        get(client, "/api/v1/appointment-types/", {"location": "midtown"}), 400, "location"
    )


# --- Availability ---------------------------------------------------------------------------------


def availability(client: Client, **params: str):
    query = {
        "location": "midtown",
        "appointment_type": "consultation",
        "start": "2026-06-03",
        "end": "2026-06-03",
    }
    query.update(params)
    return get(client, "/api/v1/availability/", query)


@time_machine.travel(NOW, tick=False)
def test_availability_lists_local_times_with_their_offset(clinic, client):
    response = availability(client)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"timezone", "slots"}
    assert body["timezone"] == "America/New_York"
    assert all(set(slot) == {"start", "end"} for slot in body["slots"])
    starts = [slot["start"] for slot in body["slots"]]
    # Open 08:00-18:00; the room's 5-minute turnover makes 16:45 the last hour-long visit.
    assert starts[0] == "2026-06-03T08:00:00-04:00"
    assert starts[-1] == "2026-06-03T16:45:00-04:00"
    assert len(starts) == 36
    for slot in body["slots"]:
        start, end = datetime.fromisoformat(slot["start"]), datetime.fromisoformat(slot["end"])
        assert start.utcoffset() == end.utcoffset() == timedelta(hours=-4)
        assert end - start == timedelta(minutes=60)


@time_machine.travel(NOW, tick=False)
def test_availability_leaves_out_booked_times(clinic, consultation, make_patient, client):
    appointment_book(
        appointment_type=consultation,
        patient=make_patient(),
        start=datetime.fromisoformat("2026-06-03T10:00-04:00"),
    )

    starts = [slot["start"] for slot in availability(client).json()["slots"]]

    # One consult room, held 10:00-11:05, and five minutes' turnover after any visit.
    assert "2026-06-03T08:45:00-04:00" in starts
    assert "2026-06-03T09:00:00-04:00" not in starts
    assert "2026-06-03T11:00:00-04:00" not in starts
    assert "2026-06-03T11:15:00-04:00" in starts


@time_machine.travel(NOW, tick=False)
def test_availability_honours_the_online_notice(clinic, client):
    # 12 hours from 08:00: nothing today (the clinic closes at 18:00).
    assert availability(client, start="2026-06-01", end="2026-06-01").json()["slots"] == []


@time_machine.travel(NOW, tick=False)
def test_availability_covers_at_most_62_days(clinic, client):
    assert availability(client, start="2026-06-03", end="2026-08-03").status_code == 200
    assert_error(availability(client, start="2026-06-03", end="2026-08-04"), 400, "end")


@time_machine.travel(NOW, tick=False)
@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start": "2026-13-01"}, "start"),
        ({"start": "2026-02-30"}, "start"),
        ({"start": "tomorrow"}, "start"),
        ({"start": "2026-06-03T10:00:00-04:00"}, "start"),
        ({"start": "03/06/2026"}, "start"),
        ({"start": "0001-01-01"}, "start"),
        ({"end": "9999-12-31"}, "end"),
        ({"start": "2026-06-04", "end": "2026-06-03"}, "end"),
        ({"end": "2030-01-01"}, "end"),
        ({"location": "nowhere"}, "location"),
        ({"location": "x" * 10_000}, "location"),
        ({"location": "mïdtöwn"}, "location"),
        ({"location": "🙂"}, "location"),
        ({"location": "midtown' OR '1'='1"}, "location"),
        ({"location": "midtown\x00"}, "location"),
        ({"appointment_type": "nothing"}, "appointment_type"),
        ({"appointment_type": "1; DROP TABLE booking_appointment; --"}, "appointment_type"),
        ({"appointment_type": "%"}, "appointment_type"),
        # Known here, but only the front desk books it.
        ({"appointment_type": "iv-mood"}, "appointment_type"),
    ],
)
def test_availability_names_the_field_it_refuses(clinic, client, params, field):
    assert_error(availability(client, **params), 400, field)


@time_machine.travel(NOW, tick=False)
def test_availability_names_every_missing_parameter(clinic, client):
    error = assert_error(
        client.get("/api/v1/availability/"), 400, "location", "appointment_type", "start", "end"
    )

    assert error["code"] == "invalid"


@time_machine.travel(NOW, tick=False)
@pytest.mark.parametrize(
    "query",
    [
        "location=midtown&appointment_type=consultation&start=a&start=b&end=2026-06-03",
        "location=midtown&location=x&appointment_type=consultation&start=2026-06-03&end=2026-06-03",
        "location[]=midtown&appointment_type=consultation&start=2026-06-03&end=2026-06-03",
        "location=midtown&appointment_type=consultation&start=&end=",
        "location=%FF%FE&appointment_type=consultation&start=2026-06-03&end=2026-06-03",
        "%00=%00&location=midtown",
    ],
)
def test_availability_answers_garbage_with_a_400(clinic, client, query):
    assert_error(client.get(f"/api/v1/availability/?{query}"), 400)


@time_machine.travel(NOW, tick=False)
def test_a_type_no_longer_offered_is_unknown(clinic, client):
    AppointmentType.objects.filter(slug="consultation").update(is_active=False)

    assert_error(availability(client), 400, "appointment_type")


@time_machine.travel(NOW, tick=False)
def test_a_type_of_another_location_is_unknown(clinic, make_location, make_type, client):
    make_type(make_location(slug="elsewhere"), duration=30, needs=[], slug="walk-in")

    assert_error(availability(client, appointment_type="walk-in"), 400, "appointment_type")


# --- Everything else under /api/ ---------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/api/", "/api/v1/", "/api/v1/nothing/", "/api/v2/locations/", "/api/v1/locations/x/"]
)
def test_an_unknown_api_path_is_a_json_404(db, client, path):
    error = assert_error(client.get(path), 404)

    assert error["code"] == "not_found"


@pytest.mark.parametrize(
    "path", ["/api/v1/locations/", "/api/v1/appointment-types/", "/api/v1/availability/"]
)
@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_the_read_api_refuses_writes(db, client, path, method):
    response = getattr(client, method)(path, data="{}", content_type="application/json")

    assert assert_error(response, 405)["code"] == "method_not_allowed"


def test_the_schema_describes_the_v1_paths(db, client):
    response = client.get("/api/schema/")

    assert response.status_code == 200
    schema = response.content.decode()
    assert schema.startswith("openapi: 3")
    for path in ("/api/v1/locations/", "/api/v1/appointment-types/", "/api/v1/availability/"):
        assert f"  {path}:" in schema


def test_the_docs_page_works_offline(db, client):
    response = client.get("/api/docs/")

    assert response.status_code == 200
    page = response.content.decode()
    referenced = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert referenced
    # Static assets, and the page's start-up script, served as a file for the CSP's sake.
    own = [url for url in referenced if url.startswith("/static/") or url == "/api/docs/?script="]
    assert own == referenced
    assert not re.search(r"https?://|//cdn|jsdelivr|unpkg", page)
    for url in referenced:
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert b"".join(asset.streaming_content) if asset.streaming else asset.content
