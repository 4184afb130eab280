"""The front desk's view of patient messaging: what needs attention, and every message sent.

Every list is scoped to the signed-in staff member's locations. A text from a number that
matches no patient belongs to no location: every staff member sees those, to answer them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from booking.access.audit import audit
from booking.access.decorators import staff_required
from booking.access.roles import VIEW
from booking.access.scoping import appointments_for, location_ids
from booking.models import Appointment, AuditAction, WaitlistOffer
from notifications.models import (
    DeliveryAttempt,
    InboundMessage,
    InboundStatus,
    MessageStatus,
    OutboundMessage,
)

# A visit this close without a confirmed escort goes on the front desk's list.
ESCORT_DEADLINE = timedelta(hours=24)
LOG_PAGE_SIZE = 50


@dataclass
class LogPage:
    """One page of the log, newest first, and the ids the links to its neighbours start from.

    Pages are found from an id, never counted or skipped to: on an outbox of millions of rows
    a page is an index scan of the primary key that stops after a page of rows."""

    messages: list[OutboundMessage]
    newer: int | None  # link to the newer page: rows with an id above this one
    older: int | None  # link to the older page: rows with an id below this one
    older_than: int | None
    newer_than: int | None


def _id_param(value: str | None) -> int | None:
    return int(value) if value and value.isdecimal() and len(value) <= 18 else None


def _log_page(
    messages: QuerySet[OutboundMessage], *, before: str | None, after: str | None
) -> LogPage:
    older_than, newer_than = _id_param(before), _id_param(after)
    if newer_than is not None:
        rows = list(messages.filter(id__gt=newer_than).order_by("id")[: LOG_PAGE_SIZE + 1])
        more_newer, rows = len(rows) > LOG_PAGE_SIZE, rows[:LOG_PAGE_SIZE][::-1]
        more_older = True
    else:
        if older_than is not None:
            messages = messages.filter(id__lt=older_than)
        rows = list(messages.order_by("-id")[: LOG_PAGE_SIZE + 1])
        more_older, rows = len(rows) > LOG_PAGE_SIZE, rows[:LOG_PAGE_SIZE]
        more_newer = older_than is not None
    return LogPage(
        messages=rows,
        newer=rows[0].pk if rows and more_newer else None,
        older=rows[-1].pk if rows and more_older else None,
        older_than=older_than,
        newer_than=newer_than,
    )


@require_GET
@never_cache
@staff_required(VIEW)
def message_log(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    here = location_ids(request.user)
    outbox = OutboundMessage.objects.filter(appointment__location_id__in=here)
    messages = outbox.select_related(
        "appointment__patient", "appointment__location", "appointment__appointment_type"
    ).prefetch_related(Prefetch("tries", queryset=DeliveryAttempt.objects.order_by("at")))
    status = request.GET.get("status", "")
    if status in MessageStatus.values:
        messages = messages.filter(status=status)
    page = _log_page(messages, before=request.GET.get("before"), after=request.GET.get("after"))
    escorts_missing = (
        Appointment.objects.active()
        .filter(
            location_id__in=here,
            appointment_type__escort_required=True,
            start__gt=now,
            start__lte=now + ESCORT_DEADLINE,
            escort_name="",
        )
        .select_related("patient", "location", "appointment_type")
        .order_by("start")
    )
    context = {
        "page": page,
        "status": status,
        "statuses": MessageStatus.choices,
        "nav": "messages",
        "failed": outbox.filter(status=MessageStatus.FAILED)
        .select_related("appointment__patient", "appointment__location")
        .order_by("-updated_at")[:50],
        "inbound": InboundMessage.objects.filter(status=InboundStatus.NEEDS_ATTENTION)
        .filter(
            # A probe per text of the patient's visits here, not a pass over all of them.
            Q(patient__isnull=True)
            | Exists(appointments_for(request.user).filter(patient_id=OuterRef("patient_id")))
        )
        .select_related("patient")
        .order_by("-received_at")[:50],
        "escorts_missing": escorts_missing,
        # Offers are sent from the offer itself, not the outbox (their link's token is stored
        # nowhere): the most recent that went out, with when on each channel.
        "offers": WaitlistOffer.objects.filter(entry__location_id__in=here)
        .filter(Q(emailed_at__isnull=False) | Q(texted_at__isnull=False))
        .select_related("entry__patient", "entry__location", "entry__appointment_type")
        .order_by("-created_at", "-id")[:LOG_PAGE_SIZE],
    }
    audit(
        request,
        AuditAction.VIEW,
        object_type="message_log",
        status=status,
        before=page.older_than,
        after=page.newer_than,
    )
    return render(request, "notifications/staff/messages.html", context)
