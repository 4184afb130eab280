"""Booking's announcements, the only way booking tells the rest of the system anything.

``appointment_changed`` is sent by every booking service *inside* its transaction, after the
change is written, with ``appointment`` (the saved instance) and ``change`` (one of
:data:`CHANGES`). Receivers run in the same transaction, so whatever they write commits or rolls
back with the change itself. This is how notifications plans messages without booking importing
it.

A ``tentative`` change is an online booking held until its patient confirms their e-mail
address (``booking.online``): it is no visit yet, and the only message it may get is the e-mail
with the link that confirms it. Its confirmation is announced as ``booked``; a tentative booking
that lapses or is released is deleted unannounced (nobody was told of a visit).

``patient_link_requested`` is sent, inside a transaction, with ``patient`` when somebody asked
for a new secure link and a patient matched: notifications sends it to the address on record.

``waitlist_offer_made`` is sent, inside the offer's transaction, with ``offer`` (a
``WaitlistOffer``) and ``token`` (the raw token of its link, which exists nowhere else: only its
hash is stored) when a freed slot is offered to a waiting patient (``booking.waitlist``):
notifications tells the patient once the offer commits.

``treatment_stopped`` follows the ``on_hold`` of the first of the visits a withdrawn or declined
plan held, once per stop: notifications asks the patient, neutrally, to call the clinic.

``location_set_up`` is sent by ``booking.clinic.clinic_create``, inside its transaction, with
``location`` once the new location's defaults (types, protocols, intake questions) are in:
notifications installs the reminder rules of its types. A receiver may return one line saying
what it installed, for the ``clinic_create`` command to print.

``visit_progressed`` is sent by each step at the desk (``booking.checkin``), inside the step's
transaction, with ``appointment`` and ``step``: the kind of the visit's event it recorded
(``checked_in``, ``in_chair``, ``recovering``, ``escort_present``, ``discharged``, ``no_show``)
and ``now``. Those steps change no plan of messages, so they are not ``appointment_changed``.

``plan_decided`` is sent inside the transaction of an eligibility decision (``change`` is
``decided``, with the ``decision`` and the ``plan`` it created, None for a decline) or of a
plan's withdrawal (``change`` is ``revoked``, ``decision`` None), with ``patient`` and ``now``.
"""

from django.dispatch import Signal

CHANGES = (
    "booked",
    "rescheduled",
    "cancelled",
    "confirmed",
    "on_hold",
    "resumed",
    "treatment_stopped",
    "tentative",
)

appointment_changed = Signal()
patient_link_requested = Signal()
waitlist_offer_made = Signal()
location_set_up = Signal()
visit_progressed = Signal()
plan_decided = Signal()
