"""Booking's own periodic jobs, as thin Celery tasks (beat runs each every minute), and the
answer to a request for a new secure link, worked out after the response."""

from __future__ import annotations

import logging
from datetime import date

from celery import shared_task
from django.db import transaction

from booking.links import patient_link_request
from booking.online import tentative_holds_expire
from booking.waitlist import offers_expire

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def expire_waitlist_offers() -> int:
    # An expired hold goes back to the lanes and the slot to the next patient in line.
    return offers_expire()


@shared_task(ignore_result=True)
def expire_tentative_holds() -> int:
    # An online booking nobody confirmed from the e-mail gives its lanes back.
    return tentative_holds_expire()


@shared_task(ignore_result=True)
def answer_link_request(email: str, date_of_birth: str) -> None:
    patient_link_request(email=email, date_of_birth=date.fromisoformat(date_of_birth))


def link_request_queue(*, email: str, date_of_birth: date) -> None:
    """Queue the answer to somebody asking for a new secure link (``patient_link_request``).

    The request itself looks nobody up: finding the patient, revoking their links and queueing
    the e-mail took measurably longer when somebody matched, so the time of the answer told a
    stranger whether an address and date of birth belong to a patient here. Every request now
    does the same thing, queue this task, and a worker does the rest. The task carries what was
    typed (an address and a date, not a credential: the link goes only to the address on
    record). If the broker is away the request is lost, with the same answer; the patient
    asks again.
    """

    def enqueue() -> None:
        try:
            answer_link_request.delay(email, date_of_birth.isoformat())
        except Exception:
            logger.warning("could not queue a link request; the patient will have to ask again")

    transaction.on_commit(enqueue)
