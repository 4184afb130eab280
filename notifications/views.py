"""The front desk's view of patient messaging: what needs attention, and every message sent.

Every list is scoped to the signed-in staff member's locations. A text from a number that
matches no patient belongs to no location: every staff member sees those, to answer them.
"""

from __future__ import annotations

from datetime import timedelta

from django.core.paginator import Paginator
from django.db.models import Prefetch, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from booking.models import Appointment, AuditAction
from booking.staff import VIEW, appointments_for, audit, location_ids, staff_required
from notifications.models import (
    DeliveryAttempt,
    InboundMessage,
    InboundStatus,
    MessageStatus,
    OutboundMessage,
)

# A visit this close without a confirmed escort goes on the front desk's list.
ESCORT_DEADLINE = timedelta(hours=24)


@require_GET
@never_cache
@staff_required(VIEW)
def message_log(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    here = location_ids(request.user)
    outbox = OutboundMessage.objects.filter(appointment__location_id__in=here)
    messages = (
        outbox.select_related(
            "appointment__patient", "appointment__location", "appointment__appointment_type"
        )
        .prefetch_related(Prefetch("tries", queryset=DeliveryAttempt.objects.order_by("at")))
        .order_by("-due_at", "-id")
    )
    status = request.GET.get("status", "")
    if status in MessageStatus.values:
        messages = messages.filter(status=status)
    page = Paginator(messages, 50).get_page(request.GET.get("page"))
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
            Q(patient__isnull=True)
            | Q(patient__in=appointments_for(request.user).values("patient_id"))
        )
        .select_related("patient")
        .order_by("-received_at")[:50],
        "escorts_missing": escorts_missing,
    }
    audit(request, AuditAction.VIEW, object_type="message_log", status=status, page=page.number)
    return render(request, "notifications/staff/messages.html", context)
