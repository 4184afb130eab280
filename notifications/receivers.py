"""Listens to booking's announcements and queues the patient's e-mail once the change commits."""

from __future__ import annotations

import logging
from typing import Any

from celery import Task
from django.db import transaction
from django.dispatch import receiver

from booking.models import Appointment, Patient
from booking.signals import appointment_changed, patient_link_requested
from notifications.services import EMAILED_CHANGES
from notifications.tasks import send_appointment_email, send_link_email

logger = logging.getLogger(__name__)


def _enqueue_after_commit(task: Task, *args: Any) -> None:
    def enqueue() -> None:
        try:
            task.delay(*args)
        except Exception:
            # The change is committed whatever happens here; an unreachable broker must not
            # turn a booking into an error page.
            logger.exception("could not queue %s%r", task.name, args)

    transaction.on_commit(enqueue)


@receiver(appointment_changed, dispatch_uid="notifications.appointment_changed")
def on_appointment_changed(
    sender: type, appointment: Appointment, change: str, **kwargs: Any
) -> None:
    if change in EMAILED_CHANGES:
        _enqueue_after_commit(send_appointment_email, appointment.pk, change, appointment.version)


@receiver(patient_link_requested, dispatch_uid="notifications.patient_link_requested")
def on_patient_link_requested(sender: type, patient: Patient, **kwargs: Any) -> None:
    _enqueue_after_commit(send_link_email, patient.pk)
