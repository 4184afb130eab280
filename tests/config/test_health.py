import pytest

from config import health
from tests.notifications.conftest import celery_broker


class Down(Exception):
    pass


def test_it_reports_every_check_ok(db, client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "cache": "ok", "broker": "ok"},
    }
    assert "no-cache" in response["Cache-Control"]


def test_it_answers_503_when_the_database_fails(db, client, monkeypatch):
    def fail() -> None:
        raise Down("connection refused")

    monkeypatch.setitem(health.CHECKS, "database", fail)

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json() == {
        "status": "error",
        "checks": {"database": "error", "cache": "ok", "broker": "ok"},
    }


@pytest.mark.parametrize("name", ["cache", "broker"])
def test_any_failing_check_makes_it_unhealthy(db, client, monkeypatch, name):
    def fail() -> None:
        raise Down(name)

    monkeypatch.setitem(health.CHECKS, name, fail)

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["checks"][name] == "error"


def test_it_only_answers_get(db, client):
    assert client.post("/healthz").status_code == 405


def test_an_unreachable_broker_answers_503_for_real(db, client):
    # Not a stand-in check: Celery really tries a broker nobody listens on.
    with celery_broker("redis://127.0.0.1:1/0"):
        response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["checks"]["broker"] == "error"
    assert response.json()["checks"]["database"] == "ok"
