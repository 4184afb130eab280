"""Rate limits on public endpoints, counted in the shared cache.

A fixed window per key: ``cache.add`` starts the window and ``cache.incr`` counts in it. Both are
atomic in Redis (and under the lock of the local-memory cache), so parallel requests cannot slip
past the limit the way a read-modify-write counter lets them.
"""

from __future__ import annotations

import hashlib
import logging
import time

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

logger = logging.getLogger(__name__)


def client_address(request: HttpRequest) -> str:
    if getattr(settings, "SECURE_PROXY_SSL_HEADER", None):
        # Behind our own proxy the client is the last address it appended.
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            return forwarded.split(",")[-1].strip()
    return str(request.META.get("REMOTE_ADDR", ""))


def rate_limit_hit(key: str, *, limit: int, window: int, now: float | None = None) -> int | None:
    """Count one request against ``key``; the seconds to wait when over ``limit``, else None.

    A cache outage lets requests through (and is logged): a booking must not fail because the
    rate limiter's store is down.
    """
    now = time.time() if now is None else now
    bucket = int(now // window)
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]  # no addresses or emails in keys
    cache_key = f"ratelimit:{digest}:{window}:{bucket}"
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
    return rate_limit_hit(
        f"booking:{client_address(request)}", limit=BOOKINGS_PER_HOUR, window=3600
    )
