"""The page an online booking is confirmed on: /book/confirm/<token>/, the link in the e-mail a
tentative booking sends (``booking.online``).

The token in the address is the only key, so the page is private like the secure-link pages
(never cached or indexed, no Referer to other sites). GET only shows the booking, since mail
scanners open links: confirming and releasing are CSRF-protected POSTs that call one service each
and redirect back to the page, which then says what happened. Only here, to the owner of the
address, does the answer depend on the patient's record: a booking their record rules out is
released and the page says why.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from booking.models import AppointmentStatus, TentativeHold
from booking.online import (
    HoldNotFound,
    HoldNotKept,
    tentative_confirm,
    tentative_release,
    tentative_resolve,
)
from booking.portal.link import private, see_other, too_many
from booking.throttle import client_key, rate_limit_hit

# Per client address: far more than one patient confirming needs, too few to probe for tokens.
CONFIRM_PAGE_LIMIT = 60
CONFIRM_PAGE_WINDOW = 60 * 60


def _throttled(request: HttpRequest) -> HttpResponse | None:
    wait = rate_limit_hit(
        f"booking-confirm:{client_key(request)}",
        limit=CONFIRM_PAGE_LIMIT,
        window=CONFIRM_PAGE_WINDOW,
    )
    return too_many(request, wait) if wait else None


def _not_found(request: HttpRequest) -> HttpResponse:
    return render(request, "booking/book/confirm_not_found.html", {}, status=404)


def _state(hold: TentativeHold | None) -> str:
    if hold is None:
        return "released"
    status = hold.appointment.status
    if hold.confirmed_at is not None:
        return "booked" if status in (AppointmentStatus.BOOKED, AppointmentStatus.CONFIRMED) else ""
    if status == AppointmentStatus.TENTATIVE and hold.expires_at > timezone.now():
        return "open"
    return "lapsed"  # past its time, not yet swept


def _page(
    request: HttpRequest, token: str, hold: TentativeHold, *, error: str = "", status: int = 200
) -> HttpResponse:
    appointment = hold.appointment
    location = appointment.location
    return render(
        request,
        "booking/book/confirm.html",
        {
            "token": token,
            "hold": hold,
            "appointment": appointment,
            "location": location,
            "zone": location.timezone,
            "type_name": appointment.appointment_type.public_name,
            "state": _state(hold) if not error else "refused",
            "error": error,
            "book_again_url": reverse("book-start"),
        },
        status=status,
    )


@private
@require_GET
def confirm_page(request: HttpRequest, token: str) -> HttpResponse:
    if throttled := _throttled(request):
        return throttled
    hold = tentative_resolve(token=token)
    if hold is None:
        return _not_found(request)
    return _page(request, token, hold)


@private
@require_POST
def confirm_view(request: HttpRequest, token: str) -> HttpResponse:
    if throttled := _throttled(request):
        return throttled
    hold = tentative_resolve(token=token)
    if hold is None:
        return _not_found(request)
    try:
        tentative_confirm(token=token, now=timezone.now())
    except HoldNotFound:
        return _not_found(request)
    except HoldNotKept as refused:
        # Released (or never kept): the hold row is gone with it, so the page is drawn from
        # what was read before.
        return _page(request, token, hold, error=refused.message, status=refused.status)
    return see_other(reverse("book-verify", args=[token]))


@private
@require_POST
def release_view(request: HttpRequest, token: str) -> HttpResponse:
    if throttled := _throttled(request):
        return throttled
    try:
        tentative_release(token=token)
    except HoldNotFound:
        return _not_found(request)
    return render(
        request, "booking/book/confirm_released.html", {"book_again_url": reverse("book-start")}
    )
