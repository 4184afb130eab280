"""Messages rendered and handed to their channel: the templates' context (nothing beyond the
minimum a patient needs), e-mail with its calendar attachment, and text messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from smtplib import SMTPException, SMTPRecipientsRefused
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse

from booking.ics import appointment_ics
from booking.models import Appointment, Patient
from booking.preparation import appointment_preparation
from notifications.models import CHANGE_KINDS, Channel, MessageKind, OutboundMessage
from notifications.sms import PermanentSendError, TransientSendError, get_backend


def link_url(token: str) -> str:
    return settings.PUBLIC_BASE_URL + reverse("patient-link", args=[token])


def verify_url(token: str) -> str:
    """The link that confirms a tentative online booking (``booking.online``)."""
    return settings.PUBLIC_BASE_URL + reverse("book-verify", args=[token])


def message_context(appointment: Appointment, *, link: str) -> dict[str, Any]:
    """What every message template may use: nothing beyond the minimum a patient needs."""
    location = appointment.location
    return {
        "appointment": appointment,
        "patient": appointment.patient,
        "location": location,
        "zone": location.timezone,
        "type_name": appointment.appointment_type.public_name,
        "prep": appointment_preparation(appointment),
        "link": link,
    }


def recipient(channel: str, patient: Patient) -> str:
    """Where a message on ``channel`` goes: the patient's mobile number or e-mail address."""
    return patient.phone if channel == Channel.SMS else patient.email


def message_template(kind: str) -> str:
    """The templates of one kind of message, without their part's suffix."""
    return f"notifications/messages/{kind}"


def sms_text(template: str, context: dict[str, Any]) -> str:
    """A text message's body, on one line as the phone shows it."""
    return " ".join(render_to_string(f"{template}.sms.txt", context).split())


def email_subject(template: str, context: dict[str, Any]) -> str:
    return " ".join(render_to_string(f"{template}_subject.txt", context).split())


def email_text(template: str, context: dict[str, Any]) -> str:
    return render_to_string(f"{template}.txt", context)


@dataclass(frozen=True)
class Outgoing:
    """A message written and addressed, not yet sent: :meth:`send` hands it to its provider."""

    to: str
    text: str = ""  # a text message's body
    email: EmailMultiAlternatives | None = None

    def send(self) -> str:
        """Hand the message over; returns the provider's id for it ("" where it gives none).
        Raises :class:`TransientSendError` or :class:`PermanentSendError` when it is refused."""
        if self.email is None:
            return get_backend().send(self.to, self.text)
        try:
            self.email.send()
        except SMTPRecipientsRefused as exc:
            raise PermanentSendError(f"recipient refused: {exc}") from exc
        except (SMTPException, OSError) as exc:
            raise TransientSendError(f"mail server: {exc}") from exc
        except Exception as exc:  # provider APIs through anymail raise their own errors
            status = getattr(exc, "status_code", None)
            if isinstance(status, int) and 400 <= status < 500 and status != 429:
                raise PermanentSendError(str(exc)) from exc
            raise TransientSendError(str(exc)) from exc
        return ""


def outgoing(
    message: OutboundMessage, appointment: Appointment, *, link_token: str, now: datetime
) -> Outgoing:
    """``message`` written for ``appointment``'s patient, with the link ``link_token`` opens."""
    # A tentative booking's one message carries the link that confirms it; every other one the
    # patient's secure link.
    link = verify_url(link_token) if message.kind == MessageKind.VERIFY else link_url(link_token)
    context = message_context(appointment, link=link)
    template = message_template(message.kind)
    to = recipient(message.channel, appointment.patient)
    if message.channel == Channel.SMS:
        return Outgoing(to=to, text=sms_text(template, context))
    attachment = None
    if message.kind in CHANGE_KINDS:
        method = "CANCEL" if message.kind == MessageKind.CANCELLED else "REQUEST"
        attachment = (
            "appointment.ics",
            appointment_ics(appointment, now=now, link=link),
            f"text/calendar; method={method}; charset=utf-8",
        )
    return Outgoing(to=to, email=email_message(template, context, to, attachment))


def email_message(
    template: str,
    context: dict[str, Any],
    to: str,
    attachment: tuple[str, bytes, str] | None = None,
) -> EmailMultiAlternatives:
    email = EmailMultiAlternatives(
        subject=email_subject(template, context),
        body=email_text(template, context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[to],
    )
    email.attach_alternative(render_to_string(f"{template}.html", context), "text/html")
    if attachment:
        email.attach(*attachment)
    return email


def send_email(
    template: str,
    context: dict[str, Any],
    to: str,
    attachment: tuple[str, bytes, str] | None = None,
) -> None:
    email_message(template, context, to, attachment).send()
