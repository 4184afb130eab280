"""The daily retention run: every table that would otherwise grow forever, kept for its period.

Notifications' own rows (messages and their attempts, inbound texts, webhook events and their
tries) are removed here; booking's (idempotency records, expired links, holds and offers, and the
audit log's monthly partitions) by :mod:`booking.retention`, whose bounded batches this reuses;
Django's expired sessions too. Periods are settings (``RETENTION_*``, ``AUDIT_RETENTION_YEARS``);
docs/operations.md says what they cost in disk.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from celery import shared_task
from django.conf import settings
from django.contrib.sessions.models import Session
from django.utils import timezone

from booking.retention import (
    Dependent,
    audit_partitions_archive,
    audit_partitions_create,
    booking_retention_run,
    delete_in_batches,
)
from notifications.models import (
    DeliveryAttempt,
    InboundMessage,
    MessageStatus,
    OutboundMessage,
    WebhookAttempt,
    WebhookDelivery,
    WebhookStatus,
)

logger = logging.getLogger(__name__)

RETENTION_TASK = "notifications.retention.run_retention"

# Finished with: nothing will send them again. Pending and sending rows are never removed.
DONE_MESSAGES = [
    MessageStatus.SENT,
    MessageStatus.FAILED,
    MessageStatus.SKIPPED,
    MessageStatus.CANCELLED,
]
DONE_WEBHOOKS = [WebhookStatus.DELIVERED, WebhookStatus.FAILED]


def retention_run(*, now: datetime | None = None, dry_run: bool = False) -> dict[str, int]:
    """Remove (or, with ``dry_run``, count) every row past its period at ``now``, and keep the
    audit log's partitions: created ahead, archived past the legal period. Counts per kind."""
    now = now or timezone.now()
    days = timedelta(days=1)
    messages, (attempts,) = delete_in_batches(
        OutboundMessage.objects.filter(
            status__in=DONE_MESSAGES, updated_at__lt=now - settings.RETENTION_MESSAGES_DAYS * days
        ),
        dependents=[Dependent(DeliveryAttempt, "message")],
        dry_run=dry_run,
    )
    inbound, _ = delete_in_batches(
        InboundMessage.objects.filter(received_at__lt=now - settings.RETENTION_INBOUND_DAYS * days),
        dry_run=dry_run,
    )
    webhooks, (webhook_attempts,) = delete_in_batches(
        WebhookDelivery.objects.filter(
            status__in=DONE_WEBHOOKS, updated_at__lt=now - settings.RETENTION_WEBHOOK_DAYS * days
        ),
        dependents=[Dependent(WebhookAttempt, "delivery")],
        dry_run=dry_run,
    )
    sessions, _ = delete_in_batches(Session.objects.filter(expire_date__lt=now), dry_run=dry_run)
    counts = {
        "messages": messages,
        "message_attempts": attempts,
        "inbound_messages": inbound,
        "webhook_deliveries": webhooks,
        "webhook_attempts": webhook_attempts,
        **booking_retention_run(now=now, dry_run=dry_run),
        "sessions": sessions,
        "audit_partitions_created": audit_partitions_create(now=now, dry_run=dry_run),
        "audit_partitions_archived": audit_partitions_archive(now=now, dry_run=dry_run),
    }
    return counts


@shared_task(name=RETENTION_TASK, ignore_result=True)
def run_retention() -> dict[str, int]:
    counts = retention_run()
    logger.info("retention run: %s", counts)
    return counts
