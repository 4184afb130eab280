"""No staff answer is stored by a browser or a proxy (security issue #15): every address of the
staff API and the staff pages answers ``Cache-Control: no-store``, whoever asks and whatever the
answer; the public catalogue may still be cached."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from knox.models import AuthToken

from booking.access.roles import Role
from booking.api.urls import urlpatterns as api_patterns
from config.caching import PUBLIC_CACHEABLE
from scheduling.models import Location
from tests.staff_helpers import client_for, staff_user

SAMPLE_ARGUMENTS = {"int": 1, "string": "NOSUCHREF", "slug": "no-such-step"}


def address(pattern: URLPattern) -> str:
    kwargs = {
        name: SAMPLE_ARGUMENTS[type(converter).__name__.removesuffix("Converter").lower()]
        for name, converter in pattern.pattern.converters.items()
    }
    return reverse(str(pattern.name), kwargs=kwargs)


def staff_pages(patterns: list[Any], prefix: str = "") -> list[URLPattern]:
    """Every page under /staff/, the setup pages included (some are routed by config/urls.py)."""
    found = []
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            found += staff_pages(pattern.url_patterns, route)
        elif route.startswith("staff/"):
            found.append(pattern)
    return found


STAFF_API = sorted(address(p) for p in api_patterns if p.name not in PUBLIC_CACHEABLE)
STAFF_PAGES = sorted({address(p) for p in staff_pages(get_resolver().url_patterns)})


def no_store(response: Any) -> bool:
    parts = {part.strip() for part in response.get("Cache-Control", "").split(",")}
    return "no-store" in parts


@pytest.fixture
def callers(clinic: Location) -> dict[str, Client]:
    admin = staff_user(Role.ADMIN, clinic)
    _, token = AuthToken.objects.create(user=admin)
    return {
        "anonymous": Client(),
        "token": Client(HTTP_AUTHORIZATION=f"Token {token}"),
        "session": client_for(admin),
    }


def test_the_lists_cover_the_staff_api_and_pages():
    assert len(STAFF_API) >= 25
    assert "/api/v1/appointments/" in STAFF_API
    assert "/api/v1/calendar/" in STAFF_API
    assert "/staff/board/" in STAFF_PAGES
    assert "/staff/messages/" in STAFF_PAGES
    assert "/staff/setup/1/people/" in STAFF_PAGES
    assert "/staff/setup/1/reminders/" in STAFF_PAGES


@pytest.mark.parametrize("path", STAFF_API)
def test_every_staff_api_answer_is_no_store(callers, path):
    for who, client in callers.items():
        for response in (
            client.get(path),
            client.post(path, data="{}", content_type="application/json"),
        ):
            method = response.request["REQUEST_METHOD"]
            assert no_store(response), (who, method, path, response.status_code)


def test_a_staff_list_with_patient_data_is_no_store(callers, clinic):
    query = {"location": clinic.slug, "start": "2026-06-08", "end": "2026-06-08"}
    for path in ("/api/v1/appointments/", "/api/v1/calendar/"):
        for who in ("token", "session"):
            response = callers[who].get(path, query)
            assert response.status_code == 200, (who, path, response.content)
            assert no_store(response), (who, path)


@pytest.mark.parametrize("path", STAFF_PAGES)
def test_every_staff_page_is_no_store(callers, path):
    for who in ("anonymous", "session"):
        response = callers[who].get(path)
        assert no_store(response), (who, path, response.status_code)


def test_the_public_catalogue_may_still_be_cached(consultation):
    location = consultation.location.slug
    answers = [
        Client().get("/api/v1/locations/"),
        Client().get("/api/v1/appointment-types/", {"location": location}),
        Client().get(
            "/api/v1/availability/",
            {
                "location": location,
                "appointment_type": consultation.slug,
                "start": "2026-06-08",
                "end": "2026-06-09",
            },
        ),
    ]

    assert [response.status_code for response in answers] == [200, 200, 200]
    assert not any(no_store(response) for response in answers)
