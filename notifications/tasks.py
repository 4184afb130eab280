"""Thin Celery tasks: ids in, one service call. Beat runs ``deliver_due`` every minute."""

from __future__ import annotations

from smtplib import SMTPException

from celery import shared_task

from notifications.delivery import (
    SEND_MESSAGES_TASK,
    link_email_send,
    message_deliver_due,
    message_send,
)


@shared_task(ignore_result=True)
def deliver_due() -> int:
    return message_deliver_due()


@shared_task(
    name=SEND_MESSAGES_TASK, ignore_result=True, acks_late=True, reject_on_worker_lost=True
)
def send_messages(message_ids: list[int]) -> None:
    # Redelivered after a worker dies mid-batch: rows already sent are no longer "sending"
    # and are passed over, so nothing is sent twice.
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
