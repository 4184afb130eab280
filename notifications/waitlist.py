"""Telling a waiting patient that a slot is kept for them.

Booking announces an offer (``waitlist_offer_made``) inside the transaction that makes it, with
the link's raw token: only its hash is stored, so the message is sent from this process once the
offer commits rather than queued (a task's arguments would put the token in the broker). A send
that fails is logged; the offer then simply expires and passes to the next in line.

An e-mail always (the patient asked to be told), a text message with consent, outside quiet
hours, unless the number replied STOP or has had its texts for the day (an offer's text counts
towards that cap like any other); the offer records when it went out on each. Like every
message, they name only the visit's public name, its local time with the zone abbreviation, the
hold's expiry and the link.
"""

from __future__ import annotations

import logging
from datetime import datetime
from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from booking.models import OfferStatus, WaitlistOffer
from notifications.delivery import daily_texts_reached
from notifications.models import Channel, PhoneOptOut
from notifications.outbox import patient_channels
from notifications.rendering import send_email
from notifications.sms import SendError, get_backend
from scheduling.clock import in_quiet_hours

logger = logging.getLogger(__name__)

TEMPLATE = "notifications/waitlist/offer"


def offer_link(token: str) -> str:
    return settings.PUBLIC_BASE_URL + reverse("waitlist-offer", args=[token])


def offer_context(offer: WaitlistOffer, *, link: str) -> dict[str, Any]:
    """What the offer's templates may use: nothing beyond what the patient needs to answer."""
    entry = offer.entry
    location = entry.location
    return {
        "offer": offer,
        "patient": entry.patient,
        "location": location,
        "zone": location.timezone,
        "type_name": entry.appointment_type.public_name,
        "link": link,
    }


def _may_text(offer: WaitlistOffer, now: datetime) -> bool:
    patient = offer.entry.patient
    location = offer.entry.location
    return (
        Channel.SMS in patient_channels(patient)
        and not PhoneOptOut.objects.filter(phone=patient.phone).exists()
        and not in_quiet_hours(
            now, location.zone, location.quiet_hours_start, location.quiet_hours_end
        )
        and not daily_texts_reached(patient.phone, now=now)
    )


def offer_messages_send(*, offer_id: int, token: str, now: datetime | None = None) -> list[str]:
    """Send the offer's e-mail and (when allowed) text; the channels it went out on. Nothing
    for an offer no longer open."""
    now = now or timezone.now()
    offer = (
        WaitlistOffer.objects.select_related(
            "entry__patient", "entry__location", "entry__appointment_type"
        )
        .filter(pk=offer_id, status=OfferStatus.OPEN)
        .first()
    )
    if offer is None:
        return []
    context = offer_context(offer, link=offer_link(token))
    patient = offer.entry.patient
    sent: list[str] = []
    if patient.email:
        try:
            send_email(TEMPLATE, context, patient.email)
            sent.append(Channel.EMAIL)
        except Exception:  # SMTP, provider APIs: whatever fails, the text may still go
            logger.exception("waitlist offer %s: e-mail not sent", offer_id)
    if _may_text(offer, now):
        body = " ".join(render_to_string(f"{TEMPLATE}.sms.txt", context).split())
        try:
            get_backend().send(patient.phone, body)
            sent.append(Channel.SMS)
        except SendError:
            logger.exception("waitlist offer %s: text not sent", offer_id)
    WaitlistOffer.objects.filter(pk=offer_id).update(
        emailed_at=now if Channel.EMAIL in sent else None,
        texted_at=now if Channel.SMS in sent else None,
    )
    return sent


def offer_announce(sender: Any, *, offer: WaitlistOffer, token: str, **kwargs: Any) -> None:
    """``waitlist_offer_made`` receiver: send the offer once its transaction commits (a rolled
    back offer holds nothing, and must tell nobody)."""
    transaction.on_commit(partial(offer_messages_send, offer_id=offer.pk, token=token), robust=True)
