"""Booking's announcements, the only way booking tells the rest of the system anything.

``appointment_changed`` is sent by every booking service *inside* its transaction, after the
change is written, with ``appointment`` (the saved instance) and ``change`` (one of
:data:`CHANGES`). Receivers run in the same transaction, so whatever they write commits or rolls
back with the change itself. This is how notifications plans messages without booking importing
it.

``patient_link_requested`` is sent, inside a transaction, with ``patient`` when somebody asked
for a new secure link and a patient matched: notifications sends it to the address on record.

``visit_messages_requested`` is sent by staff pages with ``appointment_ids`` (a list) to learn
what was or will be sent to those patients. Each receiver returns ``{appointment_id: [message,
...]}``, a message being a dict with ``kind``, ``kind_label``, ``channel``, ``channel_label``,
``status``, ``status_label``, ``due_at``, ``sent_at`` and ``detail``; booking merges the answers
(:func:`booking.board_pages.visit_messages`). Receivers answer with one query for all the ids.

``waitlist_offer_made`` is sent, inside the offer's transaction, with ``offer`` (a
``WaitlistOffer``) and ``token`` (the raw token of its link, which exists nowhere else: only its
hash is stored) when a freed slot is offered to a waiting patient (``booking.waitlist``):
notifications tells the patient once the offer commits.
"""

from django.dispatch import Signal

CHANGES = ("booked", "rescheduled", "cancelled", "confirmed", "on_hold", "resumed")

appointment_changed = Signal()
patient_link_requested = Signal()
waitlist_offer_made = Signal()
visit_messages_requested = Signal()
