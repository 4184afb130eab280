"""``GET /metrics``: Prometheus' text format, for the monitoring a clinic already runs.

What it tells (names in docs/operations.md, "Metrics: wire it to Prometheus/Grafana"):

- per request, counted by the :class:`RequestMetricsMiddleware`: latency by route *name*
  (``staff-day``, never the path, which can hold a secure link's token) and method, answers by
  status, and the inbound SMS webhook's requests by provider and status (Chairside sends no
  webhooks of its own yet: these are the deliveries it receives);
- per booking change, counted when its transaction commits: ``chairside_bookings_total`` by
  source (``staff``, ``online``, ``link``, ``waitlist``…) and outcome (the change announced by
  ``booking.signals``: ``booked``, ``tentative``, ``cancelled``…);
- read from the database and the broker at each scrape (:class:`StateCollector`), so every
  process answers the same: the outbox's pending, due, late, sending and failed messages by
  kind and channel, the Celery queue's depth, and PostgreSQL's connections by state.

Labels are route names, kinds, channels, sources and statuses: never a patient, a reference or
a path. ``manage.py outbox_status`` stays for cron.

Under gunicorn each worker is a process with counters of its own: with
``PROMETHEUS_MULTIPROC_DIR`` set (docker-compose.yml sets it for web, on a tmpfs emptied at each
start) they write to files there and a scrape sums them all; without it a scrape shows only the
worker that answered it (fine for ``runserver``). Only counters and histograms are kept per
process, so a worker's exit needs no clean-up hook.

Who may read it: with ``METRICS_TOKEN`` set, whoever sends ``Authorization: Bearer <token>``;
without it, only a request from this machine's loopback that came through no proxy. Anybody
else gets the same 404 as for an address that does not exist.
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta
from typing import Any

import redis
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Min, Q
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.http.response import HttpResponseBase
from django.utils import timezone
from django.views.decorators.cache import never_cache

_MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
if _MULTIPROC_DIR:
    # prometheus_client opens its files there at the first increment: the folder must exist.
    os.makedirs(_MULTIPROC_DIR, exist_ok=True)

from prometheus_client import (  # noqa: E402 (after the folder exists)
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily  # noqa: E402
from prometheus_client.registry import Collector  # noqa: E402

from booking.access.client import client_ip  # noqa: E402
from booking.signals import appointment_changed  # noqa: E402
from config.celery import app as celery_app  # noqa: E402
from notifications.models import Channel, MessageKind, MessageStatus, OutboundMessage  # noqa: E402
from notifications.webhooks_outbox import webhook_deliveries_by_status  # noqa: E402

logger = logging.getLogger(__name__)
# No "_created" series beside each counter: multiprocess mode has none, and a scrape should
# read the same whichever mode the server runs in.
disable_created_metrics()

# A due message still unsent this long after it was due is late (outbox_status's default too).
LATE_AFTER = timedelta(minutes=5)
# The providers the SMS webhook knows; anything else posted there counts as "other", so a
# stranger cannot invent label values.
SMS_PROVIDERS = frozenset({"twilio", "generic"})
LOOPBACK = frozenset({"127.0.0.1", "::1"})
# Headers a reverse proxy adds: a request carrying one came from elsewhere through the proxy,
# whatever its connection's address says.
_PROXY_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP")

# Not in prometheus_client's global registry: each scrape builds its own (see :func:`registry`).
REQUEST_LATENCY = Histogram(
    "chairside_http_request_duration_seconds",
    "Time to answer a request, by route name and method.",
    ["route", "method"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=None,
)
REQUESTS = Counter(
    "chairside_http_requests",
    "Requests answered, by route name, method and status code.",
    ["route", "method", "status"],
    registry=None,
)
SMS_WEBHOOK_REQUESTS = Counter(
    "chairside_sms_webhook_requests",
    "Inbound SMS webhook requests (deliveries from the SMS provider), by provider and status.",
    ["provider", "status"],
    registry=None,
)
BOOKINGS = Counter(
    "chairside_bookings",
    "Booking changes committed by this web service, by source and outcome.",
    ["source", "outcome"],
    registry=None,
)
PROCESS_METRICS = (REQUEST_LATENCY, REQUESTS, SMS_WEBHOOK_REQUESTS, BOOKINGS)


def route_of(request: HttpRequest) -> str:
    """The route's name (``namespace:name``), its pattern when unnamed; ``static`` for files
    WhiteNoise served before any routing, ``unmatched`` for an address no route knows."""
    match = getattr(request, "resolver_match", None)
    if match is not None:
        return match.view_name or match.route or "unnamed"
    if request.path_info.startswith("/" + settings.STATIC_URL.lstrip("/")):
        return "static"
    return "unmatched"


class RequestMetricsMiddleware:
    """Times every answer (first in ``MIDDLEWARE``, so the others' time counts too)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        started = time.perf_counter()
        response = self.get_response(request)
        try:
            route = route_of(request)
            # Only methods Django's views answer: anything else is one label, not many.
            method = request.method if request.method in _METHODS else "other"
            REQUEST_LATENCY.labels(route, method).observe(time.perf_counter() - started)
            REQUESTS.labels(route, method, str(response.status_code)).inc()
            if route == "sms-webhook":
                provider = (request.resolver_match.kwargs if request.resolver_match else {}).get(
                    "provider", ""
                )
                SMS_WEBHOOK_REQUESTS.labels(
                    provider if provider in SMS_PROVIDERS else "other", str(response.status_code)
                ).inc()
        except Exception:  # counting must never cost the patient their answer
            logger.exception("could not count a request for the metrics")
        return response


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _count_booking(sender: Any, appointment: Any, change: str, **kwargs: Any) -> None:
    source = str(appointment.source or "unknown")[:16]
    # After the commit: a change rolled back was never made.
    transaction.on_commit(lambda: BOOKINGS.labels(source, change).inc())


appointment_changed.connect(_count_booking, dispatch_uid="config.metrics.count_booking")


class StateCollector(Collector):
    """What the database and the broker hold now, read at each scrape. A part that cannot be
    read (the broker down) is left out and ``chairside_metrics_source_up`` says which."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily(
            "chairside_metrics_source_up",
            "1 when this part of the metrics could be read at this scrape, else 0.",
            labels=["source"],
        )
        for name, part in (
            ("outbox", _outbox),
            ("webhooks", _webhooks),
            ("celery", _celery),
            ("database", _database),
        ):
            try:
                families = list(part())
            except Exception:  # a reading, not a crash: the rest of the scrape still answers
                logger.exception("metrics: could not read %s", name)
                up.add_metric([name], 0)
                continue
            up.add_metric([name], 1)
            yield from families
        yield up


def _outbox() -> Iterable[GaugeMetricFamily]:
    now = timezone.now()
    due = Q(due_at__lte=now)
    late = Q(due_at__lte=now - LATE_AFTER)
    pending = Q(status=MessageStatus.PENDING)
    # Pending and sending rows only, as outbox_status: the partial indexes keep it cheap.
    open_rows = {
        (row["kind"], row["channel"]): row
        for row in OutboundMessage.objects.filter(
            status__in=[MessageStatus.PENDING, MessageStatus.SENDING]
        )
        .values("kind", "channel")
        .annotate(
            pending=Count("id", filter=pending),
            due=Count("id", filter=pending & due),
            # Claimed but not sent is not delivered either.
            late=Count("id", filter=late),
            sending=Count("id", filter=Q(status=MessageStatus.SENDING)),
            oldest_due=Min("due_at", filter=due),
        )
        .order_by()
    }
    failed = {
        (row["kind"], row["channel"]): row["n"]
        for row in OutboundMessage.objects.filter(
            status=MessageStatus.FAILED, updated_at__gte=now - timedelta(hours=24)
        )
        .values("kind", "channel")
        .annotate(n=Count("id"))
        .order_by()
    }
    families = {
        "pending": GaugeMetricFamily(
            "chairside_outbox_pending",
            "Messages waiting to be sent (due or not), by kind and channel.",
            labels=["kind", "channel"],
        ),
        "due": GaugeMetricFamily(
            "chairside_outbox_due",
            "Pending messages whose time has come, not yet claimed by a worker.",
            labels=["kind", "channel"],
        ),
        "late": GaugeMetricFamily(
            "chairside_outbox_late",
            "Messages due more than 5 minutes ago and still not sent (pending or sending).",
            labels=["kind", "channel"],
        ),
        "sending": GaugeMetricFamily(
            "chairside_outbox_sending",
            "Messages a worker has claimed and not finished.",
            labels=["kind", "channel"],
        ),
    }
    failed_family = GaugeMetricFamily(
        "chairside_outbox_failed_24h",
        "Messages that failed for good in the last 24 hours.",
        labels=["kind", "channel"],
    )
    oldest: float = 0.0
    # Every kind and channel, zeros included: a dashboard or an alert sees 0, not "no data".
    for kind in MessageKind.values:
        for channel in Channel.values:
            row = open_rows.get((kind, channel), {})
            for key, family in families.items():
                family.add_metric([kind, channel], row.get(key, 0))
            failed_family.add_metric([kind, channel], failed.get((kind, channel), 0))
            if row.get("oldest_due"):
                oldest = max(oldest, (now - row["oldest_due"]).total_seconds())
    lateness = GaugeMetricFamily(
        "chairside_outbox_oldest_due_seconds",
        "How long the oldest due, unsent message has waited (0 when none): alert on it.",
    )
    lateness.add_metric([], oldest)
    return [*families.values(), failed_family, lateness]


def _webhooks() -> Iterable[GaugeMetricFamily]:
    family = GaugeMetricFamily(
        "chairside_webhook_deliveries",
        "Webhook deliveries waiting (pending), being sent (sending), and failed for good in the "
        "last 24 hours (failed_24h).",
        labels=["status"],
    )
    for status, count in webhook_deliveries_by_status(now=timezone.now()).items():
        family.add_metric([status], count)
    return [family]


def _celery() -> Iterable[GaugeMetricFamily]:
    url = str(celery_app.conf.broker_url or "")
    if not url.startswith(("redis://", "rediss://", "unix://")):
        # The embedded default's filesystem broker: one machine, nothing to watch.
        return []
    queue = celery_app.conf.task_default_queue
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        # Tasks are published without a priority: they all wait in the queue's own list.
        depth = int(client.llen(queue))
    finally:
        client.close()
    family = GaugeMetricFamily(
        "chairside_celery_queue_depth",
        "Tasks waiting in the broker for a worker.",
        labels=["queue"],
    )
    family.add_metric([queue], depth)
    return [family]


def _database() -> Iterable[GaugeMetricFamily]:
    if connection.vendor != "postgresql":
        # SQLite is a file: no server, no connections to count.
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(state, 'unknown'), count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND backend_type = 'client backend' "
            "GROUP BY 1"
        )
        by_state = cursor.fetchall()
        cursor.execute("SELECT current_setting('max_connections')::int")
        (maximum,) = cursor.fetchone() or (0,)
    connections = GaugeMetricFamily(
        "chairside_db_connections",
        "Connections to this database by state (active, idle, idle in transaction…): every "
        "web and worker process keeps its own for CONN_MAX_AGE seconds.",
        labels=["state"],
    )
    for state, count in by_state:
        connections.add_metric([state], count)
    limit = GaugeMetricFamily(
        "chairside_db_max_connections", "The server's max_connections, for the pool's headroom."
    )
    limit.add_metric([], maximum)
    return [connections, limit]


def registry() -> CollectorRegistry:
    """A registry for one scrape: the processes' counters (all workers' files in multiprocess
    mode, else this process's own) and the state read now."""
    scrape = CollectorRegistry(auto_describe=False)
    if _MULTIPROC_DIR:
        multiprocess.MultiProcessCollector(scrape, path=_MULTIPROC_DIR)
    else:
        for metric in PROCESS_METRICS:
            scrape.register(metric)
    scrape.register(StateCollector())
    return scrape


def allowed(request: HttpRequest) -> bool:
    token: str = settings.METRICS_TOKEN
    if token:
        scheme, _space, given = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), token.encode()
        )
    # No token: this machine only, and not relayed by a proxy (a proxy on this host connects
    # from the loopback on behalf of anybody).
    if any(header in request.META for header in _PROXY_HEADERS):
        return False
    return client_ip(request) in LOOPBACK


@never_cache
def metrics(request: HttpRequest) -> HttpResponseBase:
    # Who may not read it learns nothing, not even which methods the address takes.
    if not allowed(request):
        raise Http404
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    return HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)
