"""Thin Celery tasks: ids in, one service call."""

from __future__ import annotations

from smtplib import SMTPException

from celery import shared_task

from notifications.services import appointment_email_send, link_email_send

# A mail server that is briefly away is retried with growing, jittered pauses, then given up.
TRANSIENT = (SMTPException, ConnectionError, TimeoutError)


@shared_task(
    ignore_result=True,
    autoretry_for=TRANSIENT,
    retry_backoff=30,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=5,
)
def send_appointment_email(appointment_id: int, change: str, version: int) -> None:
    appointment_email_send(appointment_id=appointment_id, change=change, version=version)


@shared_task(
    ignore_result=True,
    autoretry_for=TRANSIENT,
    retry_backoff=30,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=5,
)
def send_link_email(patient_id: int) -> None:
    link_email_send(patient_id=patient_id)
