"""Booking's one announcement: an appointment changed.

Sent by every booking service *inside* its transaction, after the change is written, with
``appointment`` (the saved instance) and ``change`` (one of :data:`CHANGES`). Receivers run in the
same transaction, so whatever they write commits or rolls back with the change itself. This is
how notifications plans reminders without booking importing it.
"""

from django.dispatch import Signal

CHANGES = ("booked", "rescheduled", "cancelled")

appointment_changed = Signal()
