"""``GET /metrics`` (config.metrics): scraped and parsed as Prometheus would, refused to strangers,
and read the same from every process; the Grafana dashboard asks only for what it exposes."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings as django_settings
from django.db import connection
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from time_machine import TimeMachineFixture

from booking.models import Appointment, Patient
from booking.services import appointment_book
from config import metrics as metrics_module
from config.celery import app as celery_app
from notifications.models import Channel, MessageKind, MessageStatus, OutboundMessage
from notifications.tasks import send_messages
from scheduling.models import AppointmentType
from tests.notifications.conftest import celery_broker

TOKEN = "metrics-token-" + "x" * 24
NOW = datetime.fromisoformat("2026-10-05T08:00:00-04:00")
START = datetime.fromisoformat("2026-10-08T10:00:00-04:00")
DASHBOARD = Path(django_settings.BASE_DIR) / "docs" / "grafana" / "chairside.json"
REDIS = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/7"


@pytest.fixture
def token(settings: Any, db: None) -> str:
    settings.METRICS_TOKEN = TOKEN
    return TOKEN


def scrape(client: Client, token: str = TOKEN) -> dict[str, list[Sample]]:
    """The families of one scrape, parsed with prometheus_client's own parser."""
    response = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return {
        family.name: family.samples
        for family in text_string_to_metric_families(response.content.decode())
    }


def value(families: dict[str, list[Sample]], name: str, **labels: str) -> float:
    """The sample ``name`` with exactly these labels (0 when the counter has not started)."""
    family = re.sub(r"_(total|count|sum|bucket)$", "", name)
    found = [
        sample.value
        for sample in families.get(family, [])
        if sample.name == name and sample.labels == labels
    ]
    assert len(found) <= 1
    return found[0] if found else 0.0


# --- Who may read it ---------------------------------------------------------------------------


def test_a_scrape_without_the_token_or_with_a_wrong_one_is_not_found(
    client: Client, token: str
) -> None:
    assert client.get("/metrics").status_code == 404
    wrong = client.get("/metrics", headers={"Authorization": "Bearer " + "y" * len(TOKEN)})
    assert wrong.status_code == 404
    # The token in another scheme, or as a prefix, is not the token.
    assert client.get("/metrics", headers={"Authorization": f"Token {TOKEN}"}).status_code == 404
    assert client.get("/metrics", headers={"Authorization": "Bearer metrics"}).status_code == 404
    # Not even the methods it takes are told to a stranger.
    assert client.post("/metrics").status_code == 404


def test_with_the_token_it_answers_uncached_and_only_to_get(client: Client, token: str) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    response = client.get("/metrics", headers=headers)

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    assert client.post("/metrics", headers=headers).status_code == 405


def test_without_a_token_only_this_machine_reads_it(
    client: Client, settings: Any, db: None
) -> None:
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="::1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.0.0.7").status_code == 404
    # A reverse proxy on this host connects from the loopback on behalf of anybody.
    relayed = client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert relayed.status_code == 404


# --- What it tells -----------------------------------------------------------------------------


@pytest.fixture
def visit(
    consultation: AppointmentType,
    make_patient: Callable[..., Patient],
    time_machine: TimeMachineFixture,
    django_capture_on_commit_callbacks: Any,
) -> Appointment:
    """A visit booked by the desk three days ahead, its messages planned as in production."""
    time_machine.move_to(NOW, tick=False)
    with django_capture_on_commit_callbacks(execute=True):
        return appointment_book(
            appointment_type=consultation, patient=make_patient(), start=START, now=NOW
        )


def test_the_outbox_is_counted_by_kind_and_channel_as_its_rows_are(
    client: Client, token: str, visit: Appointment, time_machine: TimeMachineFixture
) -> None:
    rows = Counter(
        OutboundMessage.objects.filter(status=MessageStatus.PENDING).values_list("kind", "channel")
    )
    # The confirmation and the reminders, on more than one kind: a real plan, not one row.
    assert len({kind for kind, _channel in rows}) > 1

    families = scrape(client)

    for kind in MessageKind.values:
        for channel in Channel.values:
            labels = {"kind": kind, "channel": channel}
            assert value(families, "chairside_outbox_pending", **labels) == rows[(kind, channel)]
            assert value(families, "chairside_outbox_failed_24h", **labels) == 0
    # The confirmation is due at once; ten minutes on it is late, the reminders are not yet due.
    confirmation = {"kind": MessageKind.CONFIRMATION, "channel": Channel.EMAIL}
    assert value(families, "chairside_outbox_due", **confirmation) == 1
    time_machine.move_to(NOW + timedelta(minutes=10), tick=False)
    later = scrape(client)
    assert value(later, "chairside_outbox_late", **confirmation) == 1
    assert value(later, "chairside_outbox_late", kind=MessageKind.PREP, channel=Channel.EMAIL) == 0
    assert value(later, "chairside_outbox_oldest_due_seconds") == 600
    assert value(later, "chairside_metrics_source_up", source="outbox") == 1


def test_failed_messages_of_the_last_day_are_counted(
    client: Client, token: str, visit: Appointment
) -> None:
    OutboundMessage.objects.filter(kind=MessageKind.CONFIRMATION).update(
        status=MessageStatus.FAILED
    )
    failed = Counter(
        OutboundMessage.objects.filter(status=MessageStatus.FAILED).values_list(
            "channel", flat=True
        )
    )

    families = scrape(client)

    for channel in Channel.values:
        labels = {"kind": MessageKind.CONFIRMATION, "channel": channel}
        assert value(families, "chairside_outbox_failed_24h", **labels) == failed[channel]
        assert value(families, "chairside_outbox_pending", **labels) == 0


def test_a_committed_booking_is_counted_by_source_and_outcome(
    client: Client,
    token: str,
    consultation: AppointmentType,
    make_patient: Callable[..., Patient],
    django_capture_on_commit_callbacks: Any,
) -> None:
    labels = {"source": "online", "outcome": "booked"}
    before = value(scrape(client), "chairside_bookings_total", **labels)
    with django_capture_on_commit_callbacks(execute=True):
        appointment_book(
            appointment_type=consultation,
            patient=make_patient(),
            start=START,
            source="online",
            now=NOW,
        )

    assert value(scrape(client), "chairside_bookings_total", **labels) == before + 1


def test_a_request_is_timed_under_its_route_name(client: Client, token: str) -> None:
    labels = {"route": "healthz", "method": "GET"}
    before = scrape(client)

    assert client.get("/healthz").status_code in (200, 503)
    after = scrape(client)

    count = "chairside_http_request_duration_seconds_count"
    assert value(after, count, **labels) == value(before, count, **labels) + 1
    total = "chairside_http_requests_total"
    answered = sum(
        value(after, total, **labels, status=code) - value(before, total, **labels, status=code)
        for code in ("200", "503")
    )
    assert answered == 1
    # The biggest bucket holds every request, as Prometheus' histogram_quantile expects.
    assert value(after, "chairside_http_request_duration_seconds_bucket", **labels, le="+Inf") == (
        value(after, count, **labels)
    )


def test_paths_never_become_labels(client: Client, token: str, visit: Appointment) -> None:
    client.get("/a/" + secrets.token_urlsafe(32) + "/")
    client.post("/webhooks/sms/" + "made-up-provider" + "/", data={})

    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    text = response.content.decode()

    assert "/a/" not in text
    assert "made-up-provider" not in text
    assert visit.reference not in text
    assert visit.patient.last_name not in text
    families = scrape(client)
    assert value(families, "chairside_sms_webhook_requests_total", provider="other", status="404")


def test_the_celery_queue_depth_is_read_from_redis(client: Client, token: str) -> None:
    queue = f"test-metrics-{secrets.token_hex(4)}"
    saved = celery_app.conf.task_default_queue
    celery_app.conf.task_default_queue = queue
    broker = redis.Redis.from_url(REDIS, socket_connect_timeout=1)
    try:
        with celery_broker(REDIS):
            for batch in ([1, 2], [3]):
                send_messages.apply_async((batch,), queue=queue)
            families = scrape(client)
    finally:
        celery_app.conf.task_default_queue = saved
        broker.delete(queue)
        broker.close()

    assert value(families, "chairside_celery_queue_depth", queue=queue) == 2
    assert value(families, "chairside_metrics_source_up", source="celery") == 1


def test_an_unreachable_broker_leaves_the_rest_of_the_scrape(
    client: Client, token: str, visit: Appointment
) -> None:
    with celery_broker("redis://127.0.0.1:1/0"):
        families = scrape(client)

    assert value(families, "chairside_metrics_source_up", source="celery") == 0
    assert "chairside_celery_queue_depth" not in families
    assert value(families, "chairside_metrics_source_up", source="outbox") == 1


@pytest.mark.postgres
def test_postgresql_connections_are_counted_by_state(client: Client, token: str) -> None:
    families = scrape(client)

    # This test's own connection is running the scrape's query.
    assert value(families, "chairside_db_connections", state="active") >= 1
    assert value(families, "chairside_db_max_connections") > 0
    assert value(families, "chairside_metrics_source_up", source="database") == 1


# --- Several gunicorn workers --------------------------------------------------------------------


@pytest.fixture
def multiprocess_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(metrics_module, "_MULTIPROC_DIR", str(tmp_path))
    return tmp_path


def a_worker_answers(directory: Path, route: str, times: int) -> None:
    """A separate process, as a gunicorn worker is, counting ``times`` answers of ``route``."""
    code = (
        "import django; django.setup()\n"
        "from config.metrics import REQUESTS\n"
        f"for _ in range({times}): REQUESTS.labels({route!r}, 'GET', '200').inc()\n"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)  # noqa: S603


def test_every_workers_counters_are_summed(
    client: Client, token: str, multiprocess_dir: Path, db: None
) -> None:
    a_worker_answers(multiprocess_dir, "staff-day", 2)
    a_worker_answers(multiprocess_dir, "staff-day", 3)

    families = scrape(client)

    labels = {"route": "staff-day", "method": "GET", "status": "200"}
    assert value(families, "chairside_http_requests_total", **labels) == 5
    # The state read at the scrape comes with it.
    assert value(families, "chairside_metrics_source_up", source="outbox") == 1


# --- The dashboard ------------------------------------------------------------------------------


def test_the_dashboard_loads_and_asks_only_for_exposed_metrics(client: Client, token: str) -> None:
    with DASHBOARD.open() as file:
        dashboard = json.load(file)

    expressions = [
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    ]
    asked = {name for expr in expressions for name in re.findall(r"chairside_[a-z0-9_]+", expr)}
    with celery_broker(REDIS):
        exposed = set(scrape(client))
    if connection.vendor != "postgresql":
        # SQLite is a file: PostgreSQL's connections are exposed only there.
        exposed |= {"chairside_db_connections", "chairside_db_max_connections"}

    assert dashboard["title"]
    assert dashboard["panels"]
    assert asked, "the dashboard queries no Chairside metric"
    families = {re.sub(r"_(total|count|sum|bucket)$", "", name) for name in asked}
    assert families <= exposed
    # Every family the endpoint exposes has a panel, except the probe of the probe itself.
    assert exposed - families <= {"chairside_metrics_source_up", "chairside_db_max_connections"}
