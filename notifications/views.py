"""The front desk's view of patient messaging: what needs attention, and every message sent."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.admin.views.decorators import staff_member_required
from django.core.paginator import Paginator
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from booking.models import Appointment
from notifications.models import (
    DeliveryAttempt,
    InboundMessage,
    InboundStatus,
    MessageStatus,
    OutboundMessage,
)

# A visit this close without a confirmed escort goes on the front desk's list.
ESCORT_DEADLINE = timedelta(hours=24)


@staff_member_required
def message_log(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    messages = (
        OutboundMessage.objects.select_related(
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
        "failed": OutboundMessage.objects.filter(status=MessageStatus.FAILED)
        .select_related("appointment__patient", "appointment__location")
        .order_by("-updated_at")[:50],
        "inbound": InboundMessage.objects.filter(status=InboundStatus.NEEDS_ATTENTION)
        .select_related("patient")
        .order_by("-received_at")[:50],
        "escorts_missing": escorts_missing,
    }
    return render(request, "notifications/staff/messages.html", context)
