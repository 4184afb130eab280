"""Booking's own periodic job, as a thin Celery task (beat runs it every minute)."""

from __future__ import annotations

from celery import shared_task

from booking.waitlist import offers_expire


@shared_task(ignore_result=True)
def expire_waitlist_offers() -> int:
    # An expired hold goes back to the lanes and the slot to the next patient in line.
    return offers_expire()
