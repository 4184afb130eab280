"""The last answers: an unhandled error is a bare JSON 500; a database that is away (a restart, a
failover) is a 503 the client may retry, on pages and API alike, and neither says more."""

from __future__ import annotations

import pytest
from django.db import OperationalError
from django.test import Client

from config.api import RETRY_AFTER_SECONDS


@pytest.fixture
def client_seeing_errors() -> Client:
    # The test client re-raises a view's exception by default; a real server answers instead.
    return Client(raise_request_exception=False)


def down(*args: object, **kwargs: object) -> None:
    raise OperationalError("connection to server at 127.0.0.1, port 5432 failed: refused")


def broken(*args: object, **kwargs: object) -> None:
    raise RuntimeError("SELECT secret FROM booking_patient")


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ("/api/v1/locations/", "booking.api.public.LocationList.get_queryset"),
        ("/book/", "booking.portal.book._locations"),
    ],
)
def test_a_database_that_is_away_is_a_503_to_retry(
    db, client_seeing_errors, monkeypatch, path, target
) -> None:
    monkeypatch.setattr(target, down)

    response = client_seeing_errors.get(path)

    assert response.status_code == 503
    assert response["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert response.json() == {
        "error": {
            "code": "unavailable",
            "message": "The service is briefly unavailable. Please try again.",
            "fields": {},
        }
    }


def test_any_other_unhandled_error_is_a_bare_500(db, client_seeing_errors, monkeypatch) -> None:
    monkeypatch.setattr("booking.api.public.LocationList.get_queryset", broken)

    response = client_seeing_errors.get("/api/v1/locations/")

    assert response.status_code == 500
    assert "Retry-After" not in response
    assert response.json()["error"]["code"] == "server_error"
    assert "booking_patient" not in response.content.decode()
