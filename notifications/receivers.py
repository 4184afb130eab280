"""Listens to booking's announcements.

An appointment change re-plans its outbox rows inside the change's own transaction; once it
commits, a sweep is queued so a confirmation goes out at once instead of at the next beat. If the
broker is down the rows are safe in the database and the next beat sweep delivers them.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task
from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from booking.models import Appointment, Patient
from booking.signals import appointment_changed, location_set_up, patient_link_requested
from notifications.defaults import reminder_rules_install_defaults
from notifications.outbox import appointment_messages_plan
from notifications.tasks import deliver_due, send_link_email
from scheduling.models import AppointmentType, Location

logger = logging.getLogger(__name__)


def _enqueue_after_commit(task: Task, *args: Any) -> None:
    def enqueue() -> None:
        try:
            task.delay(*args)
        except Exception:
            # The change is committed whatever happens here; an unreachable broker must not
            # turn a booking into an error page.
            logger.warning("could not queue %s; the next sweep will catch up", task.name)

    transaction.on_commit(enqueue)


@receiver(appointment_changed, dispatch_uid="notifications.appointment_changed")
def on_appointment_changed(
    sender: type, appointment: Appointment, change: str, **kwargs: Any
) -> None:
    appointment_messages_plan(appointment=appointment, change=change, now=kwargs.get("now"))
    if change in ("booked", "rescheduled", "cancelled", "treatment_stopped", "tentative"):
        _enqueue_after_commit(deliver_due)


@receiver(patient_link_requested, dispatch_uid="notifications.patient_link_requested")
def on_patient_link_requested(sender: type, patient: Patient, **kwargs: Any) -> None:
    _enqueue_after_commit(send_link_email, patient.pk)


@receiver(post_save, sender=AppointmentType, dispatch_uid="notifications.type_created")
def on_appointment_type_created(
    sender: type, instance: AppointmentType, created: bool, raw: bool = False, **kwargs: Any
) -> None:
    # A new type starts with the default reminder schedule; admins edit it from there.
    if created and not raw:
        reminder_rules_install_defaults(appointment_type=instance)


@receiver(location_set_up, dispatch_uid="notifications.location_set_up")
def on_location_set_up(sender: type, location: Location, **kwargs: Any) -> str:
    # A new clinic's types get the default reminder schedule, whatever way they were made (a
    # bulk insert sends no post_save); kinds a type already has are kept.
    count = sum(
        len(reminder_rules_install_defaults(appointment_type=appointment_type))
        for appointment_type in AppointmentType.objects.filter(location=location)
    )
    return f"{count} reminder rules"
