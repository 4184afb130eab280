"""The webhooks' setup pages: only a location's admins, the secret shown once, validation
naming the field, the delivery log with "Send again", a test event and a new secret."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from django.test import Client

from booking.access.roles import Role
from booking.models import AuditEvent
from booking.services import appointment_book
from notifications import webhooks_setup
from notifications.models import (
    WebhookDelivery,
    WebhookEventType,
    WebhookStatus,
    WebhookSubscription,
)
from notifications.webhooks_outbox import webhook_subscription_create, webhook_test_send
from scheduling.models import Location
from tests.staff_helpers import client_for, staff_user

NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)
RECEIVER = "https://127.0.0.1:8443/hooks"


@pytest.fixture(autouse=True)
def pinned(settings, time_machine) -> None:
    # A public name would be looked up in DNS: the loopback stands in for the receiver.
    settings.WEBHOOKS_ALLOW_PRIVATE_ADDRESSES = True
    time_machine.move_to(NOW, tick=False)


@pytest.fixture
def admin(clinic: Location) -> Client:
    return client_for(staff_user(Role.ADMIN, clinic))


@pytest.fixture
def subscription(clinic: Location) -> WebhookSubscription:
    return webhook_subscription_create(
        location=clinic, url=RECEIVER, events=[WebhookEventType.VISIT_BOOKED], by=None, now=NOW
    )


def listing(location: Location) -> str:
    return f"/staff/setup/{location.pk}/webhooks/"


def page(subscription: WebhookSubscription) -> str:
    return f"/staff/setup/{subscription.location_id}/webhooks/{subscription.pk}/"


def test_an_admin_adds_a_webhook_and_sees_its_secret_once(clinic, admin) -> None:
    response = admin.post(
        listing(clinic),
        {
            "url": RECEIVER,
            "description": "Practice records",
            "events": ["visit.booked", "visit.checked_in"],
        },
    )

    assert response.status_code == 200
    subscription = WebhookSubscription.objects.get()
    assert subscription.location == clinic
    assert subscription.events == ["visit.booked", "visit.checked_in"]
    assert subscription.include_patient is False
    assert subscription.secret.startswith("whsec_")
    assert subscription.secret in response.content.decode()
    assert subscription.secret not in admin.get(page(subscription)).content.decode()
    assert subscription.secret not in admin.get(listing(clinic)).content.decode()
    assert AuditEvent.objects.filter(
        object_type="webhooksubscription", object_id=str(subscription.pk)
    ).exists()


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"url": "http://hooks.example.com/", "events": ["visit.booked"]}, "Address", "https://"),
        ({"url": "https://", "events": ["visit.booked"]}, "Address", "Enter a valid URL"),
        ({"url": RECEIVER}, "Events", "Choose at least one event."),
        ({"url": RECEIVER, "events": ["visit.eaten"]}, "Events", "Select a valid choice"),
    ],
)
def test_a_refused_webhook_names_the_field(clinic, admin, settings, data, field, message) -> None:
    settings.WEBHOOKS_ALLOW_HTTP = False

    response = admin.post(listing(clinic), data)

    assert response.status_code == 400
    text = response.content.decode()
    assert f"{field}: " in text
    assert message in text
    assert not WebhookSubscription.objects.exists()


def test_a_private_address_is_refused_unless_the_settings_allow_it(clinic, admin, settings) -> None:
    settings.WEBHOOKS_ALLOW_PRIVATE_ADDRESSES = False

    response = admin.post(listing(clinic), {"url": RECEIVER, "events": ["visit.booked"]})

    assert response.status_code == 400
    assert "Address: 127.0.0.1 points to a private, loopback" in response.content.decode()


def test_the_front_desk_may_not_see_or_change_webhooks(clinic, subscription) -> None:
    desk = client_for(staff_user(Role.FRONT_DESK, clinic))

    assert desk.get(listing(clinic)).status_code == 403
    assert desk.post(page(subscription), {"action": "rotate"}).status_code == 403
    assert desk.post(
        listing(clinic), {"url": RECEIVER, "events": ["visit.booked"]}
    ).status_code == (403)


def test_another_locations_admin_finds_no_webhook_there(
    clinic, subscription, make_location
) -> None:
    elsewhere = make_location()
    stranger = client_for(staff_user(Role.ADMIN, elsewhere))
    secret = subscription.secret

    assert stranger.get(listing(clinic)).status_code == 404
    assert stranger.get(page(subscription)).status_code == 404
    assert stranger.post(page(subscription), {"action": "rotate"}).status_code == 404
    # Nor through their own location's address.
    assert (
        stranger.get(f"/staff/setup/{elsewhere.pk}/webhooks/{subscription.pk}/").status_code == 404
    )
    subscription.refresh_from_db()
    assert subscription.secret == secret


def test_an_admin_edits_and_disables_a_webhook(clinic, admin, subscription) -> None:
    response = admin.post(
        page(subscription),
        {"action": "save", "url": RECEIVER, "events": ["visit.cancelled"], "include_patient": "on"},
    )

    assert response.status_code == 302
    subscription.refresh_from_db()
    assert subscription.events == ["visit.cancelled"]
    assert subscription.include_patient is True
    assert subscription.is_active is False  # the box was not ticked
    audit = AuditEvent.objects.filter(object_type="webhooksubscription").latest("pk")
    assert set(audit.detail["changed"]) == {"events", "include_patient", "is_active"}


def test_rotating_shows_the_new_secret_once(clinic, admin, subscription) -> None:
    old = subscription.secret

    response = admin.post(page(subscription), {"action": "rotate"})

    subscription.refresh_from_db()
    assert subscription.secret != old
    assert subscription.secret in response.content.decode()
    assert old not in response.content.decode()


def test_the_log_lists_deliveries_and_sends_one_again_with_its_id(
    clinic, admin, subscription
) -> None:
    admin.post(page(subscription), {"action": "test"})
    delivery = WebhookDelivery.objects.get()
    assert delivery.event_type == "webhook.test"
    text = admin.get(page(subscription)).content.decode()
    assert delivery.event_id in text
    assert "Send again" not in text, "still waiting: nothing to send again"

    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=WebhookStatus.FAILED, attempts=10, last_status_code=500
    )
    text = admin.get(page(subscription)).content.decode()
    assert "Send again" in text
    response = admin.post(page(subscription), {"action": "again", "delivery": delivery.pk})

    assert response.status_code == 302
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.resend_requested) == (
        WebhookStatus.PENDING,
        0,
        True,
    )
    again = admin.post(page(subscription), {"action": "again", "delivery": delivery.pk})
    assert again.status_code == 409
    assert "already waiting" in again.content.decode()


def test_send_again_finds_only_this_subscriptions_deliveries(
    clinic, admin, subscription, make_location
) -> None:
    other = webhook_subscription_create(
        location=make_location(), url=RECEIVER, events=["visit.booked"], by=None, now=NOW
    )
    foreign = webhook_test_send(subscription=other, now=NOW)
    WebhookDelivery.objects.filter(pk=foreign.pk).update(status=WebhookStatus.FAILED)

    response = admin.post(page(subscription), {"action": "again", "delivery": foreign.pk})

    assert response.status_code == 404
    foreign.refresh_from_db()
    assert foreign.status == WebhookStatus.FAILED


def test_the_log_shows_no_patient_details(
    clinic, consultation, admin, make_approved_patient
) -> None:
    patient = make_approved_patient(first_name="Zebulon", email="zq@example.com")
    subscription = webhook_subscription_create(
        location=clinic,
        url=RECEIVER,
        events=["visit.booked"],
        include_patient=True,
        by=None,
        now=NOW,
    )
    appointment_book(
        appointment_type=consultation, patient=patient, start=datetime(2026, 12, 10, 15, tzinfo=UTC)
    )
    assert "Zebulon" in str(WebhookDelivery.objects.get().payload)

    text = admin.get(page(subscription)).content.decode()

    assert "visit.booked" in text
    assert "Zebulon" not in text
    assert "zq@example.com" not in text


def test_the_log_pages_from_the_newest_to_the_oldest_and_back(
    monkeypatch, admin, subscription
) -> None:
    # Every event at the same instant (the clock is pinned): pages part among equal times.
    monkeypatch.setattr(webhooks_setup, "LOG_PAGE_SIZE", 3)
    for _ in range(7):
        webhook_test_send(subscription=subscription, now=NOW)
    newest_first = list(
        WebhookDelivery.objects.order_by("-created_at", "-id").values_list("event_id", flat=True)
    )

    def shown(text: str) -> list[str]:
        return re.findall(r"<td><code>([^<]+)</code></td>", text)

    def link(text: str, name: str) -> str | None:
        found = re.search(rf'href="\?((?:before|after)=[\d.]+)">{name}<', text)
        return found.group(1) if found else None

    pages, text = [], admin.get(page(subscription)).content.decode()
    assert link(text, "Newer") is None
    while True:
        pages.append(shown(text))
        older = link(text, "Older")
        if older is None:
            break
        text = admin.get(f"{page(subscription)}?{older}").content.decode()

    assert [event for p in pages for event in p] == newest_first
    assert [len(p) for p in pages] == [3, 3, 1]
    newer = link(text, "Newer")
    assert newer is not None
    assert shown(admin.get(f"{page(subscription)}?{newer}").content.decode()) == pages[1]
