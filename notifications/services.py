"""Patient e-mail that follows a change: confirmations with a calendar file, and secure links.

Every message carries a fresh secure link (only its hash is stored, so a link cannot be sent
twice) and follows the minimum-necessary rule: first name, date and time with the zone
abbreviation, the clinic's neutral name; details sit behind the link.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from booking.ics import appointment_ics
from booking.models import Appointment, AppointmentStatus, Patient
from booking.services import patient_link_issue

EMAILED_CHANGES = ("booked", "rescheduled", "cancelled")


def _link(token: str) -> str:
    return settings.PUBLIC_BASE_URL + reverse("patient-link", args=[token])


def _send(
    template: str,
    context: dict[str, Any],
    to: str,
    attachment: tuple[str, bytes, str] | None = None,
) -> None:
    subject = " ".join(render_to_string(f"{template}_subject.txt", context).split())
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string(f"{template}.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[to],
    )
    message.attach_alternative(render_to_string(f"{template}.html", context), "text/html")
    if attachment:
        message.attach(*attachment)
    message.send()


def appointment_email_send(
    *, appointment_id: int, change: str, version: int, now: datetime | None = None
) -> bool:
    """E-mail the patient about ``change`` of an appointment, with its calendar file.

    Skipped (returns False) when the appointment has changed again since: the newer change
    brings its own message, and an outdated one must not contradict it.
    """
    if change not in EMAILED_CHANGES:
        raise ValueError(f"no e-mail for {change!r}")
    now = now or timezone.now()
    appointment = Appointment.objects.select_related("location", "appointment_type", "patient").get(
        pk=appointment_id
    )
    if appointment.version != version:
        return False
    link = _link(patient_link_issue(patient=appointment.patient, now=now))
    cancelled = appointment.status == AppointmentStatus.CANCELLED
    context = {
        "appointment": appointment,
        "patient": appointment.patient,
        "location": appointment.location,
        "zone": appointment.location.timezone,
        "type_name": appointment.appointment_type.public_name,
        "link": link,
        "change": change,
    }
    ics = appointment_ics(appointment, now=now, link=link)
    method = "CANCEL" if cancelled else "REQUEST"
    _send(
        f"notifications/email/appointment_{change}",
        context,
        appointment.patient.email,
        ("appointment.ics", ics, f"text/calendar; method={method}; charset=utf-8"),
    )
    return True


def link_email_send(*, patient_id: int, now: datetime | None = None) -> None:
    """Send a new secure link to the patient's address on record."""
    now = now or timezone.now()
    patient = Patient.objects.get(pk=patient_id)
    upcoming = (
        Appointment.objects.active()
        .filter(patient=patient, start__gt=now)
        .select_related("location")
        .first()
    )
    context = {
        "patient": patient,
        "link": _link(patient_link_issue(patient=patient, now=now)),
        "location": upcoming.location if upcoming else None,
    }
    _send("notifications/email/link", context, patient.email)
