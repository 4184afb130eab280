"""Reminder rules, the outbox of messages to patients, inbound text messages and opt-outs.

The outbox is the truth about what a patient will be sent: every change of an appointment
(re)writes its rows in the same transaction. Celery only delivers what is due.
"""

from __future__ import annotations

from datetime import time

from django.conf import settings
from django.db import models
from django.db.models import Q

from booking.models import Appointment, Patient
from scheduling.models import AppointmentType, Location


class Channel(models.TextChoices):
    EMAIL = "email", "E-mail"
    SMS = "sms", "Text message"


class MessageKind(models.TextChoices):
    CONFIRMATION = "confirmation", "Booking confirmation"
    RESCHEDULED = "rescheduled", "Moved"
    CANCELLED = "cancelled", "Cancelled"
    PREP = "prep", "Preparation and escort (~48 h before)"
    EVENING_BEFORE = "evening_before", "Evening before (fasting)"
    CONFIRM_REQUEST = "confirm_request", "Reply C to confirm (~24 h before)"
    MORNING_OF = "morning_of", "Morning of the visit"
    FOLLOW_UP = "follow_up", "Follow-up after the visit"
    # One neutral notice when treatment stops and the visits still to come go on hold.
    PLEASE_CALL = "please_call", "Please call us (visits on hold)"
    # The one message an online booking gets before its patient proves their address: the link
    # that confirms it (booking.online). By e-mail only: never a text to an unproven number.
    VERIFY = "verify", "Confirm your booking (online, e-mail link)"


# Messages that announce a change are due at once and exist for any appointment; the others
# are reminders planned from the appointment's start and its type's rules.
CHANGE_KINDS = frozenset({MessageKind.CONFIRMATION, MessageKind.RESCHEDULED, MessageKind.CANCELLED})


class ReminderRule(models.Model):
    """When a reminder of ``kind`` goes out for visits of one type, and on which channels.

    Either ``offset_minutes`` before the start (negative: after it, for a follow-up), or the
    local wall-clock ``local_time`` ``days_before`` the visit's local date. An evening-before rule
    moves earlier when the fasting cutoff comes earlier than ``local_time``, so the patient is
    told before they must stop eating.
    """

    appointment_type = models.ForeignKey(
        AppointmentType, on_delete=models.CASCADE, related_name="reminder_rules"
    )
    kind = models.CharField(max_length=24, choices=MessageKind.choices)
    email = models.BooleanField(default=True)
    sms = models.BooleanField(default=True)
    offset_minutes = models.IntegerField(null=True, blank=True)
    local_time = models.TimeField(null=True, blank=True)
    days_before = models.PositiveSmallIntegerField(default=1)
    # Past its due time by more than this, a reminder is no longer useful and is skipped.
    late_cutoff_minutes = models.PositiveIntegerField(default=6 * 60)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["appointment_type", "kind"]
        constraints = [
            models.UniqueConstraint(fields=["appointment_type", "kind"], name="reminder_rule_kind"),
            models.CheckConstraint(
                condition=Q(offset_minutes__isnull=False, local_time__isnull=True)
                | Q(offset_minutes__isnull=True, local_time__isnull=False),
                name="reminder_rule_one_timing",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.appointment_type}: {self.get_kind_display()}"

    @property
    def channels(self) -> list[str]:
        return [c for c, on in ((Channel.EMAIL, self.email), (Channel.SMS, self.sms)) if on]


class MessageStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"
    CANCELLED = "cancelled", "Cancelled"


class OutboundMessage(models.Model):
    """One message to one patient about one appointment, on one channel.

    Unique per (appointment, kind, channel): a sweep that runs twice, or two sweepers at once,
    cannot produce a second row to send. A reschedule re-plans the same rows for the new time.
    """

    # No index of its own: the unique (appointment, kind, channel) index leads with it.
    appointment = models.ForeignKey(
        Appointment, on_delete=models.CASCADE, related_name="outbound_messages", db_index=False
    )
    # The visit's location, copied (a visit never moves between locations): the desk's log and
    # list of failures read one location's rows through their own indexes, however many
    # locations a chain has, instead of walking the chain's rows through the visits.
    location = models.ForeignKey(
        Location, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    kind = models.CharField(max_length=24, choices=MessageKind.choices)
    channel = models.CharField(max_length=8, choices=Channel.choices)
    status = models.CharField(
        max_length=12, choices=MessageStatus.choices, default=MessageStatus.PENDING
    )
    due_at = models.DateTimeField()
    # The appointment version this row was planned for; the sender refuses a mismatch.
    appointment_version = models.PositiveIntegerField()
    late_cutoff_minutes = models.PositiveIntegerField(default=6 * 60)
    attempts = models.PositiveSmallIntegerField(default=0)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    recipient = models.CharField(max_length=254, blank=True)
    provider_id = models.CharField(max_length=128, blank=True)
    detail = models.CharField(max_length=500, blank=True)
    # The hand-over to the provider: committed just before the provider is called, cleared with
    # what came of it. Still set for the row's version when a sender next looks, it means a
    # worker died with the message in the provider's hands or on its way there: it may have gone
    # out, so it is recorded as unconfirmed and never sent again (at most one send).
    handed_at = models.DateTimeField(null=True, blank=True)
    # A plain integer: a CHECK added with the column would scan the whole outbox under its lock.
    handed_version = models.IntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["appointment", "kind", "channel"], name="outbound_one_per_kind_channel"
            ),
        ]
        indexes = [
            # The sweeper's probe: due pending rows, oldest first.
            models.Index(
                fields=["due_at"],
                name="outbound_due_pending",
                condition=Q(status="pending"),
            ),
            models.Index(
                fields=["claimed_at"],
                name="outbound_sending_claimed",
                condition=Q(status="sending"),
            ),
            # The daily cap's count of texts sent to one number, at every text sent.
            models.Index(
                fields=["recipient", "sent_at"],
                name="outbound_sms_sent_to",
                condition=Q(channel="sms", status="sent"),
            ),
            # The chain's failures of the last day (outbox_status).
            models.Index(
                fields=["updated_at"],
                name="outbound_failed",
                condition=Q(status="failed"),
            ),
            # The desk's message log, a page at a time, newest first.
            models.Index(fields=["location", "id"], name="outbound_location_log"),
            # The desk's list of failures at its locations, latest first.
            models.Index(
                fields=["location", "updated_at"],
                name="outbound_location_failed",
                condition=Q(status="failed"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} by {self.channel} for {self.appointment_id}"


class DeliveryAttempt(models.Model):
    """Every try at sending a message, for the front desk's message log."""

    message = models.ForeignKey(OutboundMessage, on_delete=models.CASCADE, related_name="tries")
    at = models.DateTimeField()
    outcome = models.CharField(max_length=16)
    detail = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.outcome} at {self.at:%Y-%m-%d %H:%M}"


class PhoneOptOut(models.Model):
    """A number that replied STOP: nothing is texted to it until it replies START."""

    phone = models.CharField(max_length=32, unique=True)
    opted_out_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.phone


class InboundStatus(models.TextChoices):
    HANDLED = "handled", "Handled"
    NEEDS_ATTENTION = "attention", "Needs attention"
    READ = "read", "Read by staff"


class InboundMessage(models.Model):
    """A text message a patient (or anyone) sent to the clinic's number."""

    provider = models.CharField(max_length=32)
    provider_message_id = models.CharField(max_length=128)
    from_phone = models.CharField(max_length=32)
    body = models.TextField()
    received_at = models.DateTimeField()
    patient = models.ForeignKey(
        Patient, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    action = models.CharField(max_length=16, blank=True)
    status = models.CharField(max_length=12, choices=InboundStatus.choices)
    # What we answered, so a provider's retry of the same message gets the same answer.
    reply = models.CharField(max_length=320, blank=True)

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "provider_message_id"], name="inbound_once_per_provider_id"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.from_phone}: {self.body[:30]}"


class ReplanStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class ReplanJob(models.Model):
    """One background re-plan of a type's future visits after an admin saved its reminder rules.

    The setup page shows its progress: ``done`` of ``total`` visits, counted batch by batch as
    each batch commits, so the bar tells the truth about the rows already re-planned.
    """

    appointment_type = models.ForeignKey(
        AppointmentType, on_delete=models.CASCADE, related_name="replan_jobs"
    )
    # The kinds whose rules changed: only their rows are re-planned.
    kinds = models.JSONField(default=list)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField()
    status = models.CharField(
        max_length=8, choices=ReplanStatus.choices, default=ReplanStatus.QUEUED
    )
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=500, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Re-plan of {self.appointment_type}: {self.status} {self.done}/{self.total}"

    @property
    def is_finished(self) -> bool:
        return self.status in (ReplanStatus.DONE, ReplanStatus.FAILED)


DEFAULT_EVENING_TIME = time(19, 0)


class WebhookEventType(models.TextChoices):
    """What a webhook subscription may ask to be told about."""

    VISIT_BOOKED = "visit.booked", "A visit was booked"
    VISIT_MOVED = "visit.moved", "A visit was moved"
    VISIT_CANCELLED = "visit.cancelled", "A visit was cancelled"
    VISIT_CHECKED_IN = "visit.checked_in", "A patient checked in"
    VISIT_DISCHARGED = "visit.discharged", "A patient was discharged"
    VISIT_NO_SHOW = "visit.no_show", "A visit became a no-show"
    PLAN_DECIDED = "plan.decided", "An eligibility decision was recorded"
    PLAN_REVOKED = "plan.revoked", "A treatment plan was withdrawn"


# Sent by the setup page's "Send test event" button only; no subscription asks for it.
WEBHOOK_TEST_EVENT = "webhook.test"


class WebhookSubscription(models.Model):
    """An address at one location that is told, signed, about the events it chose.

    The secret is kept as issued (``whsec_`` and base64, the Standard Webhooks form): signing
    needs the secret itself, so it cannot be stored hashed like a link token. It is shown once,
    when made or rotated.
    """

    location = models.ForeignKey(
        "scheduling.Location", on_delete=models.CASCADE, related_name="webhook_subscriptions"
    )
    url = models.URLField(max_length=500)
    description = models.CharField(max_length=120, blank=True)
    events = models.JSONField(default=list)
    # Names, birth date and contact details in each payload; ids and times only otherwise.
    include_patient = models.BooleanField(default=False)
    secret = models.CharField(max_length=80)
    is_active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField()
    secret_rotated_at = models.DateTimeField(null=True, blank=True)
    # Set when the receiver did not answer at all: its events wait until then, so a receiver
    # that is down or hangs costs a worker one timeout per retry, not one per event.
    retry_after = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["location", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(secret__startswith="whsec_"),  # noqa: S106 - a prefix, no secret
                name="webhook_secret_standard_form",
            ),
        ]

    def __str__(self) -> str:
        return self.url

    def wants(self, event_type: str) -> bool:
        return self.is_active and event_type in self.events


class WebhookStatus(models.TextChoices):
    PENDING = "pending", "Waiting"
    SENDING = "sending", "Sending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"


class WebhookDelivery(models.Model):
    """One event for one subscription: the webhooks' outbox row.

    Written in the transaction of the change it tells of; sent by the sweep. ``event_id`` is
    the ``webhook-id`` header, the same on every try, so a receiver can tell a retry from a new
    event; one subscription gets one row per event id, whatever sends the announcement twice.
    """

    subscription = models.ForeignKey(
        WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries", db_index=False
    )
    event_id = models.CharField(max_length=40)
    event_type = models.CharField(max_length=32)
    # The body as first written: a retry or "send again" sends the same event.
    payload = models.JSONField()
    occurred_at = models.DateTimeField()
    status = models.CharField(
        max_length=12, choices=WebhookStatus.choices, default=WebhookStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    claimed_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    # "Send again" was pressed: the next try is logged as asked for, not scheduled.
    resend_requested = models.BooleanField(default=False)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["subscription", "event_id"], name="webhook_one_delivery_per_event"
            ),
        ]
        indexes = [
            # The sweep's probe: due waiting rows, oldest first.
            models.Index(
                fields=["next_attempt_at"],
                name="webhook_due_pending",
                condition=Q(status="pending"),
            ),
            models.Index(
                fields=["claimed_at"],
                name="webhook_sending_claimed",
                condition=Q(status="sending"),
            ),
            # A subscription's delivery log, newest first.
            models.Index(fields=["subscription", "-created_at"], name="webhook_log"),
            # The failures of the last day, for the metrics (few rows, however long the log).
            models.Index(
                fields=["updated_at"],
                name="webhook_failed",
                condition=Q(status="failed"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id} to {self.subscription_id}"


class WebhookAttempt(models.Model):
    """Every try at delivering a webhook, for the subscription's delivery log."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="tries")
    at = models.DateTimeField()
    outcome = models.CharField(max_length=16)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=300, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    # Started by "Send again" rather than by the schedule.
    manual = models.BooleanField(default=False)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.outcome} at {self.at:%Y-%m-%d %H:%M}"
