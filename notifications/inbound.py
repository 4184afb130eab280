"""Text messages patients send us: confirm, opt out, opt back in, ask for help.

Keywords follow carrier conventions (CTIA): STOP and its synonyms opt the number out at once,
START opts it back in, HELP answers with who we are and how to reach us. Anything else goes to
the front desk. Each provider message id is handled once: a provider's retry gets the answer
already given, and nothing happens twice.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from booking.errors import BookingError
from booking.models import Appointment, AppointmentStatus, Patient
from booking.services import appointment_confirm
from notifications.models import InboundMessage, InboundStatus, PhoneOptOut
from scheduling.clock import clinic_datetime
from scheduling.models import Location

STOP_WORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT", "OPT-OUT"}
)
START_WORDS = frozenset({"START", "UNSTOP", "SUBSCRIBE"})
HELP_WORDS = frozenset({"HELP", "INFO"})
CONFIRM_WORDS = frozenset({"C", "YES", "Y", "CONFIRM", "CONFIRMED"})
# How far ahead "C" looks for the visit it confirms.
CONFIRM_WINDOW = timedelta(days=7)


# Words that may stand beside a confirmation without changing it: "Yes please", "C thanks".
POLITE = frozenset(
    {"PLEASE", "THANKS", "THANK", "YOU", "OK", "OKAY", "SEE", "THERE", "WILL", "BE", "I"}
)


def _is_confirmation(body: str) -> bool:
    words = re.findall(r"[A-Za-z-]+", body.upper())
    return bool(words) and words[0] in CONFIRM_WORDS and set(words[1:]) <= POLITE


def _keyword(body: str) -> str:
    words = re.findall(r"[A-Za-z-]+", body.upper())
    return words[0] if words else ""


def _patients(phone: str) -> list[Patient]:
    return list(Patient.objects.filter(phone=phone).order_by("id"))


def _clinic(patients: list[Patient], now: datetime) -> Location | None:
    upcoming = (
        Appointment.objects.filter(patient__in=patients, start__gt=now - timedelta(days=30))
        .select_related("location")
        .order_by("start")
        .first()
    )
    if upcoming is not None:
        return upcoming.location
    return Location.objects.filter(is_active=True).order_by("id").first()


def _signature(location: Location | None) -> str:
    if location is None:
        return ""
    return f"{location.public_name}" + (f", {location.phone}" if location.phone else "")


def inbound_sms_handle(
    *,
    provider: str,
    provider_message_id: str,
    from_phone: str,
    body: str,
    now: datetime | None = None,
) -> str:
    """Act on one inbound text and return the reply to send ('' for none)."""
    now = now or timezone.now()
    existing = InboundMessage.objects.filter(
        provider=provider, provider_message_id=provider_message_id
    ).first()
    if existing is not None:
        return existing.reply
    patients = _patients(from_phone)
    location = _clinic(patients, now)
    keyword = _keyword(body)
    action, status, reply = "", InboundStatus.HANDLED, ""
    try:
        with transaction.atomic():
            if keyword in STOP_WORDS:
                action = "stop"
                _, created = PhoneOptOut.objects.get_or_create(
                    phone=from_phone, defaults={"opted_out_at": now}
                )
                if created:  # exactly one confirmation, however often they say it
                    reply = (
                        f"{_signature(location)}: you will get no more texts from us. "
                        "Reply START to receive them again."
                    )
            elif keyword in START_WORDS:
                action = "start"
                PhoneOptOut.objects.filter(phone=from_phone).delete()
                reply = (
                    f"{_signature(location)}: texts are back on. Reply STOP to stop, HELP for help."
                )
            elif keyword in HELP_WORDS:
                action = "help"
                reply = f"{_signature(location)}. Appointment reminders. Reply STOP to stop texts."
            elif _is_confirmation(body):
                action = "confirm"
                reply = _confirm(patients, location, now)
                if not reply:
                    status = InboundStatus.NEEDS_ATTENTION
            else:
                status = InboundStatus.NEEDS_ATTENTION
            InboundMessage.objects.create(
                provider=provider,
                provider_message_id=provider_message_id,
                from_phone=from_phone,
                body=body[:2000],
                received_at=now,
                patient=patients[0] if len(patients) == 1 else None,
                action=action,
                status=status,
                reply=reply[:320],
            )
    except IntegrityError:
        # The same provider message arrived twice at once; the other request answered it.
        return (
            InboundMessage.objects.filter(
                provider=provider, provider_message_id=provider_message_id
            )
            .values_list("reply", flat=True)
            .first()
            or ""
        )
    return reply


def _confirm(patients: list[Patient], location: Location | None, now: datetime) -> str:
    appointment = (
        Appointment.objects.filter(
            patient__in=patients,
            status__in=[AppointmentStatus.BOOKED, AppointmentStatus.CONFIRMED],
            start__gt=now,
            start__lt=now + CONFIRM_WINDOW,
        )
        .select_related("location")
        .order_by("start")
        .first()
    )
    if appointment is None:
        return ""
    try:
        appointment_confirm(appointment=appointment, now=now)
    except BookingError:
        return ""
    when = clinic_datetime(appointment.start, appointment.location.timezone)
    return (
        f"{_signature(appointment.location)}: thank you, your appointment on {when} is confirmed."
    )
