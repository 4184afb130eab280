"""Outbound webhooks: signed events about visits and plans, delivered from an outbox.

An event is written as one :class:`WebhookDelivery` row per subscription that asked for it, in
the transaction of the change it tells of (booking's signals, see ``notifications.receivers``),
so an event exists exactly when its change committed. The sweep (:func:`webhook_deliver_due`)
claims due rows (``SELECT … FOR UPDATE SKIP LOCKED`` then pending → sending) and hands each
subscription's rows, oldest first, to one send task. A send holds no lock on any visit and runs
outside any transaction: a slow or dead receiver costs a worker its timeout, never a booking.

Each request is signed as Standard Webhooks says: ``webhook-id`` (the event id, the same on
every try, so the receiver can drop a repeat), ``webhook-timestamp`` and ``webhook-signature``
(``v1,`` and the base64 HMAC-SHA256 of ``id.timestamp.body`` under the subscription's secret).
A 2xx answer delivers the event; anything else is tried again with exponential backoff, until
``WEBHOOK_MAX_ATTEMPTS`` tries have failed. A delivered event is sent again only when staff press
"Send again", with the same id.

The address is checked twice against server-side request forgery: when saved (https only, no
private, loopback or link-local address unless ``WEBHOOKS_ALLOW_PRIVATE_ADDRESSES``), and at
every send, where the name is resolved, every address checked, and the connection made to the
address checked, so a name that changes its answer in between cannot point a send inward.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import ipaddress
import json
import logging
import random
import secrets
import socket
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from celery import current_app
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Q
from django.dispatch import receiver
from django.utils import timezone

from booking.errors import BookingError, InvalidTransition
from booking.models import Appointment, EligibilityDecision, Patient, TreatmentPlan
from booking.signals import appointment_changed, plan_decided, visit_progressed
from notifications.models import (
    WEBHOOK_TEST_EVENT,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEventType,
    WebhookStatus,
    WebhookSubscription,
)
from scheduling.models import Location

logger = logging.getLogger(__name__)

# The tasks that sweep and send (``notifications.tasks``), looked up by name: the tasks module
# calls this one, not the other way round.
DELIVER_WEBHOOKS_TASK = "notifications.tasks.deliver_webhooks"
SEND_WEBHOOKS_TASK = "notifications.tasks.send_webhooks"

USER_AGENT = "Chairside-Webhooks/1"
# What is kept of an error, for the delivery log.
ERROR_LENGTH = 300


def max_attempts() -> int:
    return settings.WEBHOOK_MAX_ATTEMPTS


def _allow_private() -> bool:
    # A clinic's own integration engine may well sit on its private network; that is a choice
    # made in its settings, not by whoever can open the setup page.
    return settings.WEBHOOKS_ALLOW_PRIVATE_ADDRESSES


def _allow_http() -> bool:
    return settings.WEBHOOKS_ALLOW_HTTP


# --- Subscriptions ----------------------------------------------------------------------------


def webhook_secret_new() -> str:
    """A new signing secret in the Standard Webhooks form: ``whsec_`` and 32 random bytes in
    base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class AddressRefused(BookingError):
    """The receiver's address is not one we send to."""

    status = 400
    code = "address_refused"


def _address_allowed(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def _resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, each one checked: all must be public unless private
    addresses are allowed."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise AddressRefused(f"{host} could not be found ({exc}).", field="url") from exc
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not _allow_private():
        for address in addresses:
            if not _address_allowed(address):
                raise AddressRefused(
                    f"{host} points to a private, loopback or reserved address ({address}); "
                    "webhooks go to public addresses only.",
                    field="url",
                )
    return addresses


def webhook_url_check(url: str) -> tuple[str, int, bool]:
    """``(host, port, https)`` of a receiver's address, or :class:`AddressRefused` naming the
    ``url`` field: https only (http too in development), and no private address."""
    host, port, https = _url_parts(url)
    _resolve(host, port)
    return host, port, https


def _url_parts(url: str) -> tuple[str, int, bool]:
    parts = urlsplit(url)
    https = parts.scheme == "https"
    if not https and not (parts.scheme == "http" and _allow_http()):
        raise AddressRefused("The address must start with https://.", field="url")
    if not parts.hostname or parts.username or parts.password:
        raise AddressRefused("Give an address like https://example.com/hooks.", field="url")
    try:
        port = parts.port or (443 if https else 80)
    except ValueError as exc:
        raise AddressRefused("The address has a bad port.", field="url") from exc
    return parts.hostname, port, https


def _events_check(events: Iterable[str]) -> list[str]:
    chosen = sorted(set(events))
    unknown = [event for event in chosen if event not in WebhookEventType.values]
    if unknown:
        raise BookingError(f"Unknown events: {', '.join(unknown)}.", field="events")
    if not chosen:
        raise BookingError("Choose at least one event.", field="events")
    return chosen


def webhook_subscription_create(
    *,
    location: Location,
    url: str,
    events: Iterable[str],
    include_patient: bool = False,
    description: str = "",
    by: Any,
    now: datetime | None = None,
) -> WebhookSubscription:
    """Subscribe ``url`` to ``events`` at ``location``, with a new secret (shown once)."""
    webhook_url_check(url)
    return WebhookSubscription.objects.create(
        location=location,
        url=url,
        events=_events_check(events),
        include_patient=include_patient,
        description=description.strip(),
        secret=webhook_secret_new(),
        created_by=by,
        created_at=now or timezone.now(),
    )


def webhook_subscription_update(
    *,
    subscription: WebhookSubscription,
    url: str,
    events: Iterable[str],
    include_patient: bool,
    description: str,
    is_active: bool,
) -> list[str]:
    """Change a subscription; returns the names of the fields that changed. Events already
    waiting keep the payload they were written with."""
    if url != subscription.url:
        webhook_url_check(url)
    new = {
        "url": url,
        "events": _events_check(events),
        "include_patient": include_patient,
        "description": description.strip(),
        "is_active": is_active,
    }
    changed = [name for name, value in new.items() if getattr(subscription, name) != value]
    for name in changed:
        setattr(subscription, name, new[name])
    if changed:
        subscription.save(update_fields=changed)
    return changed


def webhook_secret_rotate(*, subscription: WebhookSubscription, now: datetime | None = None) -> str:
    """Give ``subscription`` a new secret at once and return it. Events still waiting are
    signed with the new one when they go."""
    subscription.secret = webhook_secret_new()
    subscription.secret_rotated_at = now or timezone.now()
    subscription.save(update_fields=["secret", "secret_rotated_at"])
    return subscription.secret


# --- Events, written in the change's transaction ---------------------------------------------


def _iso(value: datetime | date | None) -> str | None:
    return value.isoformat() if value is not None else None


def patient_data(patient: Patient) -> dict[str, Any]:
    """What a subscription that asked for patient details gets: who, and how to reach them."""
    return {
        "id": patient.pk,
        "first_name": patient.first_name,
        "last_name": patient.last_name,
        "date_of_birth": _iso(patient.date_of_birth),
        "email": patient.email,
        "phone": patient.phone,
    }


def visit_data(appointment: Appointment, **times: datetime | None) -> dict[str, Any]:
    """A visit by its ids and times: no name, no type of treatment beyond the type's id."""
    return {
        "id": appointment.pk,
        "reference": appointment.reference,
        "status": appointment.status,
        "location_id": appointment.location_id,
        "appointment_type_id": appointment.appointment_type_id,
        "patient_id": appointment.patient_id,
        "series_id": appointment.series_id,
        "start": _iso(appointment.start),
        "end": _iso(appointment.end),
        **{name: _iso(value) for name, value in times.items()},
    }


def _plan_data(plan: TreatmentPlan) -> dict[str, Any]:
    return {
        "id": plan.pk,
        "protocol_id": plan.protocol_id,
        "sessions_authorised": plan.sessions_authorised,
        "valid_until": _iso(plan.valid_until),
        "revoked_at": _iso(plan.revoked_at),
    }


def _event_id() -> str:
    # Random, not derived from the visit: ids reveal nothing and never repeat across events.
    return "msg_" + secrets.token_hex(16)


def webhook_event_record(
    *,
    location_id: int,
    event_type: str,
    data: dict[str, Any],
    patient: Callable[[], Patient] | None,
    now: datetime | None = None,
    subscriptions: Iterable[WebhookSubscription] | None = None,
) -> list[WebhookDelivery]:
    """Queue one event for every active subscription at ``location_id`` that asked for
    ``event_type`` (or for ``subscriptions``), under one event id. Call inside the change's
    transaction; once it commits a sweep is queued so the event goes out at once. ``patient``
    gives the patient, read only for a subscription that asked for patient details."""
    now = now or timezone.now()
    if subscriptions is None:
        subscriptions = [
            s
            for s in WebhookSubscription.objects.filter(location_id=location_id, is_active=True)
            if s.wants(event_type)
        ]
    event_id = _event_id()
    rows = []
    for subscription in subscriptions:
        body = dict(data)
        if subscription.include_patient and patient is not None:
            body["patient"] = patient_data(patient())
        payload = {"type": event_type, "timestamp": _iso(now), "data": body}
        rows.append(
            WebhookDelivery(
                subscription=subscription,
                event_id=event_id,
                event_type=event_type,
                # Stored as sent: JSON of the same values, whatever the database's JSON type does.
                payload=json.loads(json.dumps(payload, cls=DjangoJSONEncoder)),
                occurred_at=now,
                next_attempt_at=now,
                created_at=now,
            )
        )
    if rows:
        WebhookDelivery.objects.bulk_create(rows)
        transaction.on_commit(_sweep_soon)
    return rows


def _sweep_soon() -> None:
    try:
        current_app.tasks[DELIVER_WEBHOOKS_TASK].delay()
    except Exception:
        # The change is committed whatever happens here; the next beat sweep sends the event.
        logger.warning("could not queue a webhook sweep; the next beat will send the events")


# booking's change names → the events a subscription chooses from.
VISIT_CHANGES = {
    "booked": WebhookEventType.VISIT_BOOKED,
    "rescheduled": WebhookEventType.VISIT_MOVED,
    "cancelled": WebhookEventType.VISIT_CANCELLED,
}
VISIT_STEPS = {
    "checked_in": WebhookEventType.VISIT_CHECKED_IN,
    "discharged": WebhookEventType.VISIT_DISCHARGED,
    "no_show": WebhookEventType.VISIT_NO_SHOW,
}


def visit_event_record(
    *, appointment: Appointment, event_type: str, now: datetime | None = None, **times: Any
) -> None:
    """Queue a visit's event (see :data:`VISIT_CHANGES`, :data:`VISIT_STEPS`)."""
    webhook_event_record(
        location_id=appointment.location_id,
        event_type=event_type,
        data={"visit": visit_data(appointment, **times)},
        patient=lambda: appointment.patient,
        now=now,
    )


def plan_event_record(
    *,
    patient: Patient,
    decision: EligibilityDecision | None,
    plan: TreatmentPlan | None,
    change: str,
    now: datetime | None = None,
) -> None:
    """Queue ``plan.decided`` or ``plan.revoked`` at the location the plan's visits are at (a
    decline without a plan: the consultation's)."""
    if plan is not None:
        location_id = plan.protocol.appointment_type.location_id
    elif decision is not None and decision.consultation is not None:
        location_id = decision.consultation.location_id
    else:
        return  # a decline recorded without a consultation belongs to no location
    data: dict[str, Any] = {"patient_id": patient.pk}
    if decision is not None:
        data["decision"] = {
            "id": decision.pk,
            "outcome": decision.outcome,
            "decided_at": _iso(decision.decided_at),
            "consultation_id": decision.consultation_id,
        }
    data["plan"] = _plan_data(plan) if plan is not None else None
    event_type = (
        WebhookEventType.PLAN_REVOKED if change == "revoked" else WebhookEventType.PLAN_DECIDED
    )
    webhook_event_record(
        location_id=location_id,
        event_type=event_type,
        data=data,
        patient=lambda: patient,
        now=now,
    )


def webhook_test_send(
    *, subscription: WebhookSubscription, now: datetime | None = None
) -> WebhookDelivery:
    """Queue a ``webhook.test`` event for ``subscription`` alone, whatever events it chose."""
    now = now or timezone.now()
    with transaction.atomic():
        (row,) = webhook_event_record(
            location_id=subscription.location_id,
            event_type=WEBHOOK_TEST_EVENT,
            data={"location_id": subscription.location_id, "subscription_id": subscription.pk},
            patient=None,
            now=now,
            subscriptions=[subscription],
        )
        WebhookSubscription.objects.filter(pk=subscription.pk).update(retry_after=None)
    return row


def webhook_send_again(*, delivery: WebhookDelivery, now: datetime | None = None) -> None:
    """Send a delivered or failed event once more, with the same id (the receiver's dedupe
    key), and with a fresh round of tries should it fail. 409 while it is still waiting."""
    now = now or timezone.now()
    again = WebhookDelivery.objects.filter(
        pk=delivery.pk, status__in=[WebhookStatus.DELIVERED, WebhookStatus.FAILED]
    ).update(
        status=WebhookStatus.PENDING,
        attempts=0,
        next_attempt_at=now,
        resend_requested=True,
        updated_at=now,
    )
    if not again:
        raise InvalidTransition("This event is already waiting to be sent.", field="delivery")
    # Asked for now: not after the wait a receiver that did not answer was given.
    WebhookSubscription.objects.filter(pk=delivery.subscription_id).update(retry_after=None)
    transaction.on_commit(_sweep_soon)


# --- Signing and sending ----------------------------------------------------------------------


def webhook_signature(secret: str, event_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value for one request (Standard Webhooks, v1)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{event_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def webhook_request(delivery: WebhookDelivery, *, now: datetime) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one try at ``delivery``, signed for ``now``."""
    body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()
    timestamp = int(now.timestamp())
    return body, {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": delivery.event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": webhook_signature(
            delivery.subscription.secret, delivery.event_id, timestamp, body
        ),
    }


class Unreachable(Exception):
    """No answer at all: refused, timed out, or not found. The receiver's other events wait."""


@dataclass(frozen=True)
class Answer:
    # The status line only: a receiver's body may echo the event back, patient details and all,
    # and the delivery log is a setup page, which shows no patient.
    status: int
    reason: str


def http_post(url: str, body: bytes, headers: dict[str, str]) -> Answer:
    """POST to ``url`` once: no redirects followed, connected to an address checked just now.

    ``WEBHOOK_CONNECT_TIMEOUT`` (5 s) to connect, then ``WEBHOOK_TIMEOUT`` (10 s) in all for the
    request and the answer's head; the answer's body is not read."""
    host, port, https = _url_parts(url)
    addresses = _resolve(host, port)
    connect_timeout = settings.WEBHOOK_CONNECT_TIMEOUT
    deadline = time.monotonic() + settings.WEBHOOK_TIMEOUT

    def remaining() -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out")
        return left

    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    default_port = 443 if https else 80
    connection = http.client.HTTPConnection(host, port)
    try:
        sock = socket.create_connection((addresses[0], port), timeout=connect_timeout)
        if https:
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
        connection.sock = sock
        sock.settimeout(remaining())
        connection.request(
            "POST",
            path,
            body=body,
            headers={"Host": host if port == default_port else f"{host}:{port}", **headers},
        )
        sock.settimeout(remaining())
        response = connection.getresponse()
        return Answer(response.status, response.reason[:100])
    except (OSError, http.client.HTTPException) as exc:
        raise Unreachable(str(exc) or type(exc).__name__) from exc
    finally:
        connection.close()


def backoff(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min … doubling to at most 6 hours, with up to 20 % jitter so that events
    held back by one outage do not all come back at the same second."""
    base = min(30 * 2 ** (attempts - 1), 6 * 60 * 60)
    return timedelta(seconds=base * (1 + random.random() / 5))  # noqa: S311 - jitter, not secrecy


def webhook_send(*, delivery_id: int, now: datetime | None = None) -> str:
    """Try one claimed delivery once and record the outcome: ``delivered``, ``retry``,
    ``failed``, ``unreachable`` (a retry, nothing answered), or ``not claimed``."""
    now = now or timezone.now()
    delivery = (
        WebhookDelivery.objects.select_related("subscription")
        .filter(pk=delivery_id, status=WebhookStatus.SENDING)
        .first()
    )
    if delivery is None:
        return "not claimed"
    subscription = delivery.subscription
    manual = delivery.resend_requested
    if not subscription.is_active:
        _record(delivery, now=now, outcome="failed", error="the subscription is disabled")
        return "failed"
    body, headers = webhook_request(delivery, now=now)
    started = time.monotonic()
    code: int | None = None
    try:
        answer = http_post(subscription.url, body, headers)
    except Unreachable as exc:
        error, outcome = f"no answer: {exc}", "unreachable"
    except AddressRefused as exc:
        error, outcome = exc.message, "retry"
    else:
        code = answer.status
        if 200 <= answer.status < 300:
            error, outcome = "", "delivered"
        else:
            error, outcome = f"HTTP {answer.status} {answer.reason}".strip(), "retry"
    elapsed_ms = int((time.monotonic() - started) * 1000)
    if outcome != "delivered" and delivery.attempts + 1 >= max_attempts():
        outcome = "failed"
    _record(
        delivery,
        now=now,
        outcome=outcome,
        error=error,
        status_code=code,
        duration_ms=elapsed_ms,
        manual=manual,
    )
    return outcome


def _record(
    delivery: WebhookDelivery,
    *,
    now: datetime,
    outcome: str,
    error: str,
    status_code: int | None = None,
    duration_ms: int = 0,
    manual: bool = False,
) -> None:
    attempts = delivery.attempts + 1
    status = {
        "delivered": WebhookStatus.DELIVERED,
        "failed": WebhookStatus.FAILED,
    }.get(outcome, WebhookStatus.PENDING)
    retry_at = now + backoff(attempts)
    with transaction.atomic():
        # Only this claim's row: one given back meanwhile (a stale claim recovered) is the next
        # sweep's, and this try stays in the log.
        WebhookDelivery.objects.filter(
            pk=delivery.pk, status=WebhookStatus.SENDING, claimed_at=delivery.claimed_at
        ).update(
            status=status,
            attempts=attempts,
            claimed_at=None,
            next_attempt_at=retry_at
            if status == WebhookStatus.PENDING
            else delivery.next_attempt_at,
            delivered_at=now if status == WebhookStatus.DELIVERED else delivery.delivered_at,
            last_status_code=status_code,
            last_error=error[:ERROR_LENGTH],
            resend_requested=False,
            updated_at=now,
        )
        if outcome == "unreachable":
            WebhookSubscription.objects.filter(pk=delivery.subscription_id).update(
                retry_after=retry_at
            )
        elif outcome == "delivered" and delivery.subscription.retry_after is not None:
            WebhookSubscription.objects.filter(pk=delivery.subscription_id).update(retry_after=None)
        WebhookAttempt.objects.create(
            delivery=delivery,
            at=now,
            outcome=outcome,
            status_code=status_code,
            error=error[:ERROR_LENGTH],
            duration_ms=duration_ms,
            manual=manual,
        )


def webhook_send_batch(*, delivery_ids: list[int], now: datetime | None = None) -> list[str]:
    """Send one subscription's claimed deliveries, oldest first. When the receiver does not
    answer at all, the rest wait for the retry of the first instead of each costing a timeout."""
    outcomes = []
    for position, delivery_id in enumerate(delivery_ids):
        outcome = webhook_send(delivery_id=delivery_id, now=now)
        outcomes.append(outcome)
        if outcome == "unreachable":
            retry_at = (
                WebhookDelivery.objects.filter(pk=delivery_id)
                .values_list("next_attempt_at", flat=True)
                .first()
            )
            WebhookDelivery.objects.filter(
                pk__in=delivery_ids[position + 1 :], status=WebhookStatus.SENDING
            ).update(status=WebhookStatus.PENDING, claimed_at=None, next_attempt_at=retry_at)
            outcomes += ["held back"] * (len(delivery_ids) - position - 1)
            break
    return outcomes


# --- The sweep --------------------------------------------------------------------------------


def webhooks_recover_stale(*, now: datetime) -> int:
    """Give back deliveries claimed by a worker that died before recording them. A claim is
    stale long after any one send could have ended (a send never outlives its timeout)."""
    stale = now - timedelta(seconds=settings.WEBHOOK_STALE_CLAIM_SECONDS)
    with transaction.atomic():
        ids = list(
            WebhookDelivery.objects.select_for_update(skip_locked=True)
            .filter(status=WebhookStatus.SENDING, claimed_at__lt=stale)
            .values_list("id", flat=True)
        )
        return WebhookDelivery.objects.filter(id__in=ids, status=WebhookStatus.SENDING).update(
            status=WebhookStatus.PENDING, claimed_at=None
        )


def webhooks_claim(*, now: datetime, limit: int) -> dict[int, list[int]]:
    """Claim up to ``limit`` due deliveries, by subscription, oldest first; each is claimed by
    one caller only (rows another sweep holds are passed over).

    A receiver that did not answer is left alone until its ``retry_after``, and one that is
    being sent to already waits for that send: one worker at a time per receiver, so a receiver
    that hangs holds one worker for one timeout, however many events come in meanwhile."""
    busy = WebhookDelivery.objects.filter(
        subscription_id=OuterRef("subscription_id"), status=WebhookStatus.SENDING
    )
    with transaction.atomic():
        rows = list(
            WebhookDelivery.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(status=WebhookStatus.PENDING, next_attempt_at__lte=now)
            .filter(
                Q(subscription__retry_after__isnull=True) | Q(subscription__retry_after__lte=now)
            )
            .exclude(Exists(busy))
            .order_by("next_attempt_at", "id")
            .values_list("id", "subscription_id")[:limit]
        )
        WebhookDelivery.objects.filter(
            id__in=[row[0] for row in rows], status=WebhookStatus.PENDING
        ).update(status=WebhookStatus.SENDING, claimed_at=now)
    by_subscription: dict[int, list[int]] = {}
    for delivery_id, subscription_id in rows:
        by_subscription.setdefault(subscription_id, []).append(delivery_id)
    return by_subscription


def _publish(ids: list[int]) -> None:
    current_app.tasks[SEND_WEBHOOKS_TASK].delay(ids)


def webhook_deliver_due(
    *,
    now: datetime | None = None,
    batch_size: int | None = None,
    enqueue: Callable[[list[int]], Any] | None = None,
) -> int:
    """One sweep: recover stale claims, claim what is due and hand each subscription's rows to
    ``enqueue`` (default: the ``send_webhooks`` task), one receiver per task, so a receiver
    that hangs holds up its own events only. Returns how many were claimed."""
    now = now or timezone.now()
    batch_size = batch_size or settings.WEBHOOK_BATCH_SIZE
    enqueue = enqueue or _publish
    webhooks_recover_stale(now=now)
    total = 0
    while claimed := webhooks_claim(now=now, limit=batch_size):
        for ids in claimed.values():
            try:
                enqueue(ids)
            except Exception:
                # The broker is away: give the rows back at once rather than when they go stale.
                WebhookDelivery.objects.filter(id__in=ids, status=WebhookStatus.SENDING).update(
                    status=WebhookStatus.PENDING, claimed_at=None
                )
                raise
            total += len(ids)
    return total


def webhook_deliveries_by_status(*, now: datetime) -> dict[str, int]:
    """Waiting and sending deliveries, and those that failed for good in the last 24 hours (the
    partial indexes keep each count to the few rows it is about)."""
    counts = WebhookDelivery.objects.filter(
        status__in=[WebhookStatus.PENDING, WebhookStatus.SENDING]
    ).aggregate(
        pending=Count("id", filter=Q(status=WebhookStatus.PENDING)),
        sending=Count("id", filter=Q(status=WebhookStatus.SENDING)),
    )
    counts["failed_24h"] = WebhookDelivery.objects.filter(
        status=WebhookStatus.FAILED, updated_at__gte=now - timedelta(hours=24)
    ).count()
    return counts


# --- Booking's announcements ------------------------------------------------------------------
# Connected when the app starts (``NotificationsConfig.ready`` imports this module).


@receiver(appointment_changed, dispatch_uid="notifications.webhooks.appointment_changed")
def on_appointment_changed(
    sender: type, appointment: Appointment, change: str, **kwargs: Any
) -> None:
    event_type = VISIT_CHANGES.get(change)
    if event_type is None:
        return
    times = {"previous_start": kwargs.get("previous_start")} if change == "rescheduled" else {}
    visit_event_record(
        appointment=appointment, event_type=event_type, now=kwargs.get("now"), **times
    )


@receiver(visit_progressed, dispatch_uid="notifications.webhooks.visit_progressed")
def on_visit_progressed(sender: type, appointment: Appointment, step: str, **kwargs: Any) -> None:
    event_type = VISIT_STEPS.get(step)
    if event_type is not None:
        visit_event_record(appointment=appointment, event_type=event_type, now=kwargs.get("now"))


@receiver(plan_decided, dispatch_uid="notifications.webhooks.plan_decided")
def on_plan_decided(
    sender: type,
    patient: Patient,
    decision: EligibilityDecision | None,
    plan: TreatmentPlan | None,
    change: str,
    **kwargs: Any,
) -> None:
    plan_event_record(
        patient=patient, decision=decision, plan=plan, change=change, now=kwargs.get("now")
    )
