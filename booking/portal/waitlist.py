"""The page a waiting patient answers an offer on: /w/<token>/.

The token in the address is the only key, so the page is private like the secure-link pages
(never cached or indexed, no Referer to other sites). GET only shows the offer; accepting and
declining are CSRF-protected POSTs that call one service each and redirect back to the page,
which then says what happened. An unknown token is a 404; an offer already answered, withdrawn or
expired says so.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from booking.errors import BookingError
from booking.models import OfferStatus, WaitlistOffer
from booking.portal.link import private, see_other, too_many
from booking.throttle import client_key, rate_limit_hit
from booking.waitlist import OfferNotFound, offer_accept, offer_decline, offer_resolve

# Per client address: far more than one patient answering needs, too few to probe for tokens.
OFFER_PAGE_LIMIT = 60
OFFER_PAGE_WINDOW = 60 * 60


def _throttled(request: HttpRequest) -> HttpResponse | None:
    wait = rate_limit_hit(
        f"waitlist-offer:{client_key(request)}",
        limit=OFFER_PAGE_LIMIT,
        window=OFFER_PAGE_WINDOW,
    )
    return too_many(request, wait) if wait else None


def _not_found(request: HttpRequest) -> HttpResponse:
    return render(request, "booking/waitlist/not_found.html", {}, status=404)


def _offer_page(
    request: HttpRequest, token: str, offer: WaitlistOffer, *, error: str = "", status: int = 200
) -> HttpResponse:
    now = timezone.now()
    location = offer.entry.location
    is_open = offer.status == OfferStatus.OPEN and offer.expires_at > now
    return render(
        request,
        "booking/waitlist/offer.html",
        {
            "offer": offer,
            "token": token,
            "location": location,
            "zone": location.timezone,
            "type_name": offer.entry.appointment_type.public_name,
            "is_open": is_open,
            # An open offer past its expiry, not yet swept: to the patient it has expired.
            "state": OfferStatus.EXPIRED
            if offer.status == OfferStatus.OPEN and not is_open
            else offer.status,
            "error": error,
        },
        status=status,
    )


@private
@require_GET
def offer(request: HttpRequest, token: str) -> HttpResponse:
    if throttled := _throttled(request):
        return throttled
    found = offer_resolve(token=token)
    if found is None:
        return _not_found(request)
    return _offer_page(request, token, found)


def _answer(request: HttpRequest, token: str, *, accept: bool) -> HttpResponse:
    if throttled := _throttled(request):
        return throttled
    try:
        if accept:
            offer_accept(token=token, now=timezone.now())
        else:
            offer_decline(token=token, now=timezone.now())
    except OfferNotFound:
        return _not_found(request)
    except BookingError as refused:
        found = offer_resolve(token=token)
        if found is None:  # pragma: no cover - the service found it a moment ago
            return _not_found(request)
        return _offer_page(request, token, found, error=refused.message, status=refused.status)
    return see_other(reverse("waitlist-offer", args=[token]))


@private
@require_POST
def offer_accept_view(request: HttpRequest, token: str) -> HttpResponse:
    return _answer(request, token, accept=True)


@private
@require_POST
def offer_decline_view(request: HttpRequest, token: str) -> HttpResponse:
    return _answer(request, token, accept=False)
