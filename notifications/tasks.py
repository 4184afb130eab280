"""Thin Celery tasks: ids in, one service call. Beat runs ``deliver_due`` every minute."""

from __future__ import annotations

import logging
from smtplib import SMTPException

from celery import shared_task
from django.db import transaction

from notifications.delivery import (
    SEND_MESSAGES_TASK,
    link_email_send,
    message_deliver_due,
    message_send,
)
from notifications.rules import replan_job_run
from notifications.webhooks_outbox import (
    DELIVER_WEBHOOKS_TASK,
    SEND_WEBHOOKS_TASK,
    webhook_deliver_due,
    webhook_send_batch,
)

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def deliver_due() -> int:
    return message_deliver_due()


@shared_task(
    name=SEND_MESSAGES_TASK, ignore_result=True, acks_late=True, reject_on_worker_lost=True
)
def send_messages(message_ids: list[int]) -> None:
    # Redelivered after a worker dies mid-batch: rows already sent are no longer "sending"
    # and are passed over, and the one it was handing to the provider is recorded as
    # unconfirmed, so nothing is sent twice.
    for message_id in message_ids:
        message_send(message_id=message_id)


@shared_task(
    ignore_result=True,
    autoretry_for=(SMTPException, ConnectionError, TimeoutError),
    retry_backoff=30,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=5,
)
def send_link_email(patient_id: int) -> None:
    link_email_send(patient_id=patient_id)


@shared_task(ignore_result=True, acks_late=True, reject_on_worker_lost=True)
def replan_reminders(job_id: int) -> None:
    # Redelivered after a worker dies mid-way: the job starts over, to the same rows.
    replan_job_run(job_id=job_id)


def replan_job_queue(job_id: int) -> None:
    """Run re-plan job ``job_id`` in the background once the transaction that saved the rules
    commits. Without a broker it runs at once, in the request: the rules are saved, and the
    visits already booked must follow them."""

    def enqueue() -> None:
        try:
            replan_reminders.delay(job_id)
        except Exception:
            logger.warning("could not queue re-plan job %s; running it now", job_id)
            replan_job_run(job_id=job_id)

    transaction.on_commit(enqueue)


@shared_task(name=DELIVER_WEBHOOKS_TASK, ignore_result=True)
def deliver_webhooks() -> int:
    return webhook_deliver_due()


@shared_task(
    name=SEND_WEBHOOKS_TASK, ignore_result=True, acks_late=True, reject_on_worker_lost=True
)
def send_webhooks(delivery_ids: list[int]) -> None:
    # One receiver's events, oldest first. Redelivered after a worker dies: rows already
    # recorded are no longer "sending" and are passed over.
    webhook_send_batch(delivery_ids=delivery_ids)
