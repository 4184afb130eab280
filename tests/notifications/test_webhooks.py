"""Outbound webhooks: events written with the change, signed per Standard Webhooks (verified
here with the reference library), received by a real HTTP server on 127.0.0.1, retried with
backoff while the receiver is down and each delivered once when it returns."""

from __future__ import annotations

import itertools
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import standardwebhooks
import time_machine
from django.db import IntegrityError, transaction
from time_machine import TimeMachineFixture

from booking import checkin
from booking.access.roles import Role
from booking.eligibility import contraindications_none, eligibility_decide, plan_revoke
from booking.errors import BookingError, InvalidTransition
from booking.models import DecisionOutcome, Patient, Protocol, TreatmentPlan
from booking.services import appointment_book, appointment_cancel, appointment_reschedule
from notifications.models import (
    WebhookAttempt,
    WebhookDelivery,
    WebhookEventType,
    WebhookStatus,
    WebhookSubscription,
)
from notifications.webhooks_outbox import (
    AddressRefused,
    webhook_deliver_due,
    webhook_send_again,
    webhook_send_batch,
    webhook_subscription_create,
)
from scheduling.models import AppointmentType, Location
from tests.conftest import a_prescriber
from tests.staff_helpers import staff_user

NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)  # Monday 07:00 in New York
VISIT = datetime(2026, 12, 10, 15, tzinfo=UTC)  # Thursday 10:00 EST
ALL_EVENTS = list(WebhookEventType.values)


# --- A receiver: a real HTTP server on 127.0.0.1 ------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Serves on an ephemeral port the test owns; ``stop()`` closes the port (connections are
    refused), ``start()`` opens the same port again."""

    port: int = 0
    answer: int = 200
    hang: bool = False
    received: list[Received] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _release: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.received.append(Received(self.path, dict(self.headers.items()), body))
                if receiver.hang:
                    receiver._release.wait(30)
                    return
                self.send_response(receiver.answer)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._release.clear()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def ids(self) -> Counter[str]:
        """How many times each event id came in."""
        return Counter(r.headers["webhook-id"] for r in self.received)

    def types(self) -> list[str]:
        return [json.loads(r.body)["type"] for r in self.received]


# --- The tests ----------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def local_receivers(settings) -> None:
    # The receiver is this test's own server on the loopback, over plain HTTP.
    settings.WEBHOOKS_ALLOW_PRIVATE_ADDRESSES = True
    settings.WEBHOOKS_ALLOW_HTTP = True
    settings.WEBHOOK_TIMEOUT = 2.0


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture
def clock(time_machine: TimeMachineFixture) -> Callable[[datetime], datetime]:
    def move(now: datetime) -> datetime:
        time_machine.move_to(now, tick=False)
        return now

    move(NOW)
    return move


def sweep(now: datetime) -> int:
    """One beat of the webhooks' outbox at ``now``, each receiver's batch sent in-process."""
    return webhook_deliver_due(
        now=now, enqueue=lambda ids: webhook_send_batch(delivery_ids=ids, now=now)
    )


def subscribe(location: Location, url: str, **fields) -> WebhookSubscription:
    fields.setdefault("events", ALL_EVENTS)
    return webhook_subscription_create(location=location, url=url, by=None, now=NOW, **fields)


def verified(subscription: WebhookSubscription, receiver: Receiver) -> list[dict]:
    """Every request the receiver got, its signature checked by the Standard Webhooks
    reference library (which raises on a bad one)."""
    hook = standardwebhooks.Webhook(subscription.secret)
    events = []
    for r in receiver.received:
        # Checked as the receiver would on arrival: the library refuses a stale timestamp.
        sent = datetime.fromtimestamp(int(r.headers["webhook-timestamp"]), UTC)
        with time_machine.travel(sent + timedelta(seconds=1), tick=False):
            events.append(hook.verify(r.body, r.headers))
    return events


@pytest.fixture
def patient(make_approved_patient: Callable[..., Patient]) -> Patient:
    return make_approved_patient(first_name="Wilhelmina", email="wilhelmina@example.com")


def test_every_kind_of_event_arrives_signed_as_standard_webhooks_says(
    clinic, consultation, patient, receiver, clock
) -> None:
    subscription = subscribe(clinic, receiver.url)
    nurse = staff_user(Role.NURSE, clinic)

    kept = appointment_book(appointment_type=consultation, patient=patient, start=VISIT, now=NOW)
    moved = appointment_book(
        appointment_type=consultation, patient=patient, start=VISIT + timedelta(days=1), now=NOW
    )
    appointment_reschedule(appointment=moved, start=VISIT + timedelta(days=2), now=NOW)
    appointment_cancel(appointment=moved, now=NOW)
    missed = appointment_book(
        appointment_type=consultation, patient=patient, start=VISIT + timedelta(hours=3), now=NOW
    )
    protocol = Protocol.objects.filter(appointment_type__location=clinic).first()
    assert protocol is not None
    prescriber = a_prescriber()
    eligibility_decide(
        patient=patient,
        consultation=kept,
        outcome=DecisionOutcome.APPROVED,
        contraindications=contraindications_none(),
        protocol=protocol,
        sessions_authorised=3,
        valid_until=(VISIT + timedelta(days=60)).date(),
        decided_by=prescriber,
        now=NOW,
    )
    plan = TreatmentPlan.objects.filter(patient=patient, revoked_at__isnull=True).latest("pk")
    plan_revoke(plan=plan, revoked_by=prescriber, now=NOW)
    assert sweep(clock(NOW)) == 7

    arrived = clock(VISIT + timedelta(minutes=5))
    checkin.appointment_check_in(
        appointment=kept, by=nurse, override_reason="Checked on the phone", now=arrived
    )
    checkin.appointment_seat(appointment=kept, by=nurse, now=arrived)
    checkin.appointment_discharge(appointment=kept, by=nurse, now=arrived + timedelta(minutes=50))
    late = VISIT + timedelta(hours=3, minutes=30)
    checkin.appointment_no_show(appointment=missed, by=nurse, now=late)
    assert sweep(clock(late)) == 3

    events = verified(subscription, receiver)
    assert sorted(e["type"] for e in events) == sorted(
        [
            "visit.booked",
            "visit.booked",
            "visit.booked",
            "visit.moved",
            "visit.cancelled",
            "plan.decided",
            "plan.revoked",
            "visit.checked_in",
            "visit.discharged",
            "visit.no_show",
        ]
    )
    assert len(receiver.ids()) == 10, "one id per event"
    by_type = {e["type"]: e["data"] for e in events}
    assert by_type["visit.moved"]["visit"]["id"] == moved.pk
    assert by_type["visit.moved"]["visit"]["previous_start"] == "2026-12-11T15:00:00+00:00"
    assert by_type["visit.moved"]["visit"]["start"] == "2026-12-12T15:00:00+00:00"
    assert (
        by_type["visit.no_show"]["visit"] | {"status": "no_show"}
        == by_type["visit.no_show"]["visit"]
    )
    assert by_type["plan.decided"]["plan"]["sessions_authorised"] == 3
    assert by_type["plan.decided"]["decision"]["consultation_id"] == kept.pk
    assert by_type["plan.revoked"]["plan"]["id"] == plan.pk
    # Ids and times only: nothing that names the patient.
    for r in receiver.received:
        assert b"Wilhelmina" not in r.body
        assert b"wilhelmina@example.com" not in r.body
        assert b'"patient":' not in r.body
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"delivered"}


def test_a_wrong_secret_fails_the_reference_verification(
    clinic, consultation, patient, receiver, clock
) -> None:
    subscribe(clinic, receiver.url)
    appointment_book(appointment_type=consultation, patient=patient, start=VISIT, now=NOW)
    sweep(NOW)

    other = standardwebhooks.Webhook(subscribe(clinic, "http://127.0.0.1:9/").secret)
    (request,) = receiver.received
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        other.verify(request.body, request.headers)


def test_patient_details_go_only_to_a_subscription_that_asked_for_them(
    clinic, consultation, patient, receiver, clock
) -> None:
    plain = subscribe(clinic, receiver.url)
    with_details = subscribe(
        clinic, receiver.url.replace("/hooks", "/records"), include_patient=True
    )
    appointment_book(appointment_type=consultation, patient=patient, start=VISIT, now=NOW)

    assert sweep(NOW) == 2

    bodies = {r.path: json.loads(r.body)["data"] for r in receiver.received}
    assert "patient" not in bodies["/hooks"]
    assert bodies["/records"]["patient"] == {
        "id": patient.pk,
        "first_name": "Wilhelmina",
        "last_name": patient.last_name,
        "date_of_birth": "1980-01-01",
        "email": "wilhelmina@example.com",
        "phone": patient.phone,
    }
    verified(plain, Receiver(received=[r for r in receiver.received if r.path == "/hooks"]))
    verified(
        with_details, Receiver(received=[r for r in receiver.received if r.path == "/records"])
    )
    # One event, one id, whoever it went to.
    assert len(receiver.ids()) == 1


def test_another_locations_events_never_reach_this_subscription(
    clinic, consultation, patient, make_location, receiver, clock
) -> None:
    elsewhere = make_location()
    subscribe(elsewhere, receiver.url)
    appointment_book(appointment_type=consultation, patient=patient, start=VISIT, now=NOW)

    assert sweep(NOW) == 0
    assert receiver.received == []


def test_only_the_events_chosen_are_sent(clinic, consultation, patient, receiver, clock) -> None:
    subscribe(clinic, receiver.url, events=[WebhookEventType.VISIT_CANCELLED])
    visit = appointment_book(appointment_type=consultation, patient=patient, start=VISIT, now=NOW)
    appointment_cancel(appointment=visit, now=NOW)

    sweep(NOW)

    assert receiver.types() == ["visit.cancelled"]


def test_a_receiver_down_for_a_while_gets_every_event_once_after_it_returns(
    clinic, consultation, patient, receiver, clock
) -> None:
    subscription = subscribe(clinic, receiver.url)
    receiver.stop()  # the port is closed: connections are refused
    visits = [
        appointment_book(
            appointment_type=consultation,
            patient=patient,
            start=VISIT + timedelta(days=h),
            now=NOW,
        )
        for h in range(3)
    ]
    appointment_cancel(appointment=visits[0], now=NOW)

    assert sweep(clock(NOW)) == 4
    first = WebhookDelivery.objects.order_by("next_attempt_at", "id").first()
    assert first is not None
    # The first try found nobody; the other three waited for its retry instead of each costing
    # a try of their own.
    assert WebhookAttempt.objects.count() == 1
    assert WebhookAttempt.objects.get().outcome == "unreachable"
    retry_at = first.next_attempt_at
    assert NOW + timedelta(seconds=30) <= retry_at <= NOW + timedelta(seconds=36)
    assert sweep(clock(NOW + timedelta(seconds=20))) == 0, "not before its backoff"

    # Down for longer: every retry fails, each waiting twice as long as the one before.
    moment = retry_at
    for _ in range(3):
        assert sweep(clock(moment)) == 4
        moment = WebhookDelivery.objects.order_by("next_attempt_at")[0].next_attempt_at
    waits = [a.at for a in WebhookAttempt.objects.order_by("at")]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(waits)]
    assert gaps[0] >= 30
    assert gaps[1] >= 60
    assert gaps[2] >= 120
    assert receiver.received == []

    receiver.start()  # back, on the same port
    assert sweep(clock(moment)) == 4
    for later in (moment + timedelta(hours=1), moment + timedelta(days=2)):
        assert sweep(clock(later)) == 0

    events = verified(subscription, receiver)
    assert len(events) == 4
    assert set(receiver.ids().values()) == {1}, "each event exactly once"
    assert sorted(receiver.types()) == sorted(["visit.booked"] * 3 + ["visit.cancelled"])
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"delivered"}


def test_a_receiver_that_keeps_failing_is_given_up_on_and_can_be_sent_again(
    clinic, consultation, patient, receiver, clock, settings
) -> None:
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    subscription = subscribe(clinic, receiver.url)
    receiver.answer = 503
    appointment_book(appointment_type=consultation, patient=patient, start=VISIT, now=NOW)
    moment = NOW
    for _ in range(3):
        sweep(clock(moment))
        moment += timedelta(hours=7)  # past any backoff
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (
        WebhookStatus.FAILED,
        3,
        503,
    )
    assert sweep(clock(moment)) == 0, "given up: no more tries"

    receiver.answer = 204
    webhook_send_again(delivery=delivery, now=moment)
    with pytest.raises(InvalidTransition):
        webhook_send_again(delivery=delivery, now=moment)
    assert sweep(clock(moment)) == 1

    delivery.refresh_from_db()
    assert delivery.status == WebhookStatus.DELIVERED
    assert [a.outcome for a in delivery.tries.order_by("at", "id")] == [
        "retry",
        "retry",
        "failed",
        "delivered",
    ]
    assert delivery.tries.filter(manual=True).count() == 1
    assert set(receiver.ids().values()) == {4}, "the same webhook-id on every try"
    verified(subscription, receiver)


def test_a_delivered_event_goes_again_only_when_asked(
    clinic, consultation, patient, receiver, clock
) -> None:
    subscribe(clinic, receiver.url)
    appointment_book(appointment_type=consultation, patient=patient, start=VISIT, now=NOW)
    sweep(NOW)
    for later in (NOW + timedelta(minutes=10), NOW + timedelta(days=3)):
        assert sweep(clock(later)) == 0
    assert len(receiver.received) == 1

    webhook_send_again(delivery=WebhookDelivery.objects.get(), now=NOW + timedelta(days=3))
    sweep(NOW + timedelta(days=3))

    assert list(receiver.ids().values()) == [2]


def test_a_hanging_receiver_is_given_up_on_at_the_timeout(
    clinic, consultation, patient, receiver, clock, settings
) -> None:
    settings.WEBHOOK_TIMEOUT = 0.5
    subscribe(clinic, receiver.url)
    receiver.hang = True
    appointment_book(appointment_type=consultation, patient=patient, start=VISIT, now=NOW)

    sweep(NOW)

    delivery = WebhookDelivery.objects.get()
    assert delivery.status == WebhookStatus.PENDING
    assert delivery.tries.get().outcome == "unreachable"
    assert "timed out" in delivery.last_error


def test_the_event_is_written_with_the_change_and_gone_with_its_rollback(
    clinic, consultation, patient, receiver
) -> None:
    subscribe(clinic, receiver.url)

    written = []

    def book_then_fail() -> None:
        with transaction.atomic():
            appointment_book(appointment_type=consultation, patient=patient, start=VISIT, now=NOW)
            written.append(WebhookDelivery.objects.count())
            raise RuntimeError("the booking's transaction fails after the signal")

    with pytest.raises(RuntimeError):
        book_then_fail()

    assert written == [1]
    assert WebhookDelivery.objects.count() == 0


@pytest.mark.postgres
def test_one_event_id_is_never_queued_twice_for_a_subscription(
    clinic, consultation, patient, receiver
) -> None:
    subscribe(clinic, receiver.url)
    appointment_book(appointment_type=consultation, patient=patient, start=VISIT, now=NOW)
    queued = WebhookDelivery.objects.get()

    with pytest.raises(IntegrityError), transaction.atomic():
        WebhookDelivery.objects.create(
            subscription=queued.subscription,
            event_id=queued.event_id,
            event_type=queued.event_type,
            payload=queued.payload,
            occurred_at=NOW,
            next_attempt_at=NOW,
            created_at=NOW,
        )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://hooks.example.com/", "must start with https://"),
        ("https://10.1.2.3/hooks", "private, loopback or reserved"),
        ("https://127.0.0.1:8443/hooks", "private, loopback or reserved"),
        ("https://[::1]/hooks", "private, loopback or reserved"),
        ("https://169.254.169.254/latest/meta-data", "private, loopback or reserved"),
        ("https://user:pw@8.8.8.8/hooks", "Give an address like"),
    ],
)
def test_an_address_that_is_not_public_https_is_refused_naming_the_url(
    clinic, settings, url, message
) -> None:
    settings.WEBHOOKS_ALLOW_PRIVATE_ADDRESSES = False
    settings.WEBHOOKS_ALLOW_HTTP = False

    with pytest.raises(AddressRefused, match=message) as refused:
        subscribe(clinic, url)

    assert refused.value.field == "url"


def test_an_unknown_event_is_refused_naming_the_events(clinic, receiver) -> None:
    with pytest.raises(BookingError, match=r"Unknown events: visit\.eaten") as refused:
        subscribe(clinic, receiver.url, events=["visit.booked", "visit.eaten"])
    assert refused.value.field == "events"


def test_a_disabled_subscription_gets_nothing_new(
    clinic, consultation, patient, receiver, clock
) -> None:
    subscription = subscribe(clinic, receiver.url)
    subscription.is_active = False
    subscription.save()
    appointment_book(appointment_type=consultation, patient=patient, start=VISIT, now=NOW)

    assert sweep(NOW) == 0
    assert receiver.received == []


def test_the_payload_is_the_one_signed(clinic, consultation, patient, receiver, clock) -> None:
    subscribe(clinic, receiver.url)
    visit = appointment_book(appointment_type=consultation, patient=patient, start=VISIT, now=NOW)
    sweep(NOW)

    (request,) = receiver.received
    body = json.loads(request.body)
    assert request.headers["webhook-id"].startswith("msg_")
    assert request.headers["webhook-timestamp"] == str(int(NOW.timestamp()))
    assert body["timestamp"] == NOW.isoformat()
    assert body["data"]["visit"]["reference"] == visit.reference
    assert body["data"]["visit"]["patient_id"] == patient.pk
    assert (
        body["data"]["visit"]["appointment_type_id"]
        == AppointmentType.objects.get(location=clinic, slug="consultation").pk
    )


def test_events_for_a_receiver_that_did_not_answer_wait_for_its_retry(
    clinic, consultation, patient, receiver, clock
) -> None:
    subscribe(clinic, receiver.url)
    receiver.stop()
    appointment_book(appointment_type=consultation, patient=patient, start=VISIT, now=NOW)
    assert sweep(NOW) == 1
    retry_after = WebhookSubscription.objects.get().retry_after
    assert retry_after is not None

    soon = clock(NOW + timedelta(seconds=5))
    appointment_book(
        appointment_type=consultation, patient=patient, start=VISIT + timedelta(days=1), now=soon
    )
    assert sweep(soon) == 0, "no second timeout before the retry"

    receiver.start()
    assert sweep(clock(retry_after)) == 2
    assert WebhookSubscription.objects.get().retry_after is None
    assert sorted(receiver.ids().values()) == [1, 1]
