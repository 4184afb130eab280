"""Rate limits on public endpoints, counted in the shared cache.

A fixed window per key: ``cache.add`` starts the window and ``cache.incr`` counts in it. Both are
atomic in Redis (and under the lock of the local-memory cache), so parallel requests cannot slip
past the limit the way a read-modify-write counter lets them.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import time

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

from booking.access.client import client_ip

logger = logging.getLogger(__name__)


def client_key(request: HttpRequest) -> str:
    """Whom a per-client limit counts: the client's address (booking.access.client), an IPv6 one
    by its /64. A home line, a phone or a rented server gets a whole /64 and can take a fresh
    address in it for every request; counted apart, each would get the limit afresh."""
    address = client_ip(request)
    if address is None:
        return "unknown"
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))
    return address


def _cache_key(key: str, window: int, now: float) -> str:
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]  # no addresses or emails in keys
    return f"ratelimit:{digest}:{window}:{int(now // window)}"


def rate_limit_count(key: str, *, window: int, now: float | None = None) -> int:
    """How many requests ``key`` has counted in the current window (0 when the cache is down)."""
    try:
        count = cache.get(_cache_key(key, window, time.time() if now is None else now))
    except Exception:
        logger.exception("rate limiter unavailable; counting nothing")
        return 0
    return int(count or 0)


def rate_limit_hit(key: str, *, limit: int, window: int, now: float | None = None) -> int | None:
    """Count one request against ``key``; the seconds to wait when over ``limit``, else None.

    A cache outage lets requests through (and is logged): a booking must not fail because the
    rate limiter's store is down.
    """
    now = time.time() if now is None else now
    bucket = int(now // window)
    cache_key = _cache_key(key, window, now)
    try:
        if cache.add(cache_key, 1, timeout=window + 1):
            count = 1
        else:
            try:
                count = cache.incr(cache_key)
            except ValueError:  # the window expired between add and incr
                cache.add(cache_key, 1, timeout=window + 1)
                count = 1
    except Exception:
        logger.exception("rate limiter unavailable; letting the request through")
        return None
    if count > limit:
        return max(1, (bucket + 1) * window - int(now))
    return None


# Online bookings per client address and hour, the page and the API counted together: plenty for
# a family booking together, too few to fill a prescriber's week from one machine. The setting
# (``BOOKINGS_PER_HOUR`` in the environment) exists for load tests, whose clients share one address.
BOOKINGS_PER_HOUR: int = settings.BOOKINGS_PER_HOUR


def booking_rate_limit(request: HttpRequest) -> int | None:
    """Count one online booking attempt from this client; seconds to wait when over the limit."""
    return rate_limit_hit(f"booking:{client_key(request)}", limit=BOOKINGS_PER_HOUR, window=3600)


def booking_attempts(request: HttpRequest) -> int:
    """Online booking attempts this client has made in the current hour (``booking.pow``)."""
    return rate_limit_count(f"booking:{client_key(request)}", window=3600)
