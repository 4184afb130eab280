"""The front desk's view of patient messaging: what needs attention, and every message sent.

Every list is scoped to the signed-in staff member's locations. A text from a number that
matches no patient belongs to no location: every staff member sees those, to answer them.
"""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Exists, OuterRef, Prefetch, Q
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
from booking.paging import keyset_page
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


@require_GET
@never_cache
@staff_required(VIEW)
def message_log(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    here = location_ids(request.user)
    outbox = OutboundMessage.objects.filter(location_id__in=here)
    messages = outbox.select_related(
        "appointment__patient", "appointment__location", "appointment__appointment_type"
    ).prefetch_related(Prefetch("tries", queryset=DeliveryAttempt.objects.order_by("at")))
    status = request.GET.get("status", "")
    if status in MessageStatus.values:
        messages = messages.filter(status=status)
    page = keyset_page(
        messages,
        ("id",),
        before=request.GET.get("before"),
        after=request.GET.get("after"),
        size=LOG_PAGE_SIZE,
    )
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
