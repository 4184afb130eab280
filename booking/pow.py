"""A proof of work before an online booking, once a client has tried a few (security issue #15).

Self-hosted ALTCHA (PoW v2, SHA-256): :func:`challenge_new` issues a challenge signed with
``ALTCHA_HMAC_KEY`` (derived from SECRET_KEY by default) that expires after
``POW_CHALLENGE_MINUTES``. Its secret counter is drawn below ``POW_MAX_NUMBER``, so a browser finds
it in about half that many hashes; a script holding many times pays for each.

When: once the client network (``booking.throttle.client_key``) has made ``POW_AFTER_ATTEMPTS``
online booking attempts in the hour (the same count as the hourly rate limit; 0 = always), the
next booking from the page or the API must carry a solved challenge, the ``altcha`` field.
:func:`proof_check` verifies it before anything is held, and spends it: a solution is accepted
once (its signature is kept in the shared cache until the challenge would expire).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from typing import Any

import altcha
from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

from booking.errors import BookingError
from booking.throttle import booking_attempts

logger = logging.getLogger(__name__)

FIELD = "altcha"
ALGORITHM = "SHA-256"
# A payload is a small base64 JSON object; anything longer is not one.
MAX_PAYLOAD_LENGTH = 4096


class ProofOfWorkRequired(BookingError):
    """The booking needs a solved challenge and has none, or one that fails."""

    status = 400
    code = "pow_required"


def _key() -> str:
    key: str = settings.ALTCHA_HMAC_KEY
    return key


def proof_required(request: HttpRequest, *, counted: bool) -> bool:
    """Whether a booking from this client must carry a solved challenge. ``counted``: this
    request's attempt is already counted (the rate limit ran), so it does not count itself."""
    attempts = booking_attempts(request) - (1 if counted else 0)
    return attempts >= settings.POW_AFTER_ATTEMPTS


def challenge_new(*, now: float | None = None) -> dict[str, Any]:
    """A fresh signed challenge, as the ALTCHA widget fetches it."""
    now = time.time() if now is None else now
    challenge = altcha.create_challenge(
        ALGORITHM,
        1,
        counter=secrets.randbelow(settings.POW_MAX_NUMBER),
        expires_at=int(now) + 60 * settings.POW_CHALLENGE_MINUTES,
        hmac_secret=_key(),
    )
    result: dict[str, Any] = challenge.to_dict()
    return result


def proof_check(payload: str | None) -> None:
    """Verify and spend a solved challenge; :class:`ProofOfWorkRequired` when it is missing,
    wrong, expired or used before."""
    if not payload:
        raise ProofOfWorkRequired(
            "Please complete the check that you are not a robot.", field=FIELD
        )
    if len(payload) > MAX_PAYLOAD_LENGTH:
        raise ProofOfWorkRequired("The check that you are not a robot failed.", field=FIELD)
    result = altcha.verify_solution(payload, _key())
    if result.expired:
        raise ProofOfWorkRequired(
            "The check that you are not a robot has expired. Please do it again.", field=FIELD
        )
    if not result.verified:
        raise ProofOfWorkRequired("The check that you are not a robot failed.", field=FIELD)
    challenge = altcha.Payload.from_base64(payload).challenge
    expires_at = challenge.parameters.expires_at or time.time()
    lifetime = max(1, int(expires_at - time.time()) + 1)
    digest = hashlib.sha256(str(challenge.signature).encode()).hexdigest()
    try:
        fresh = cache.add(f"pow:spent:{digest}", 1, timeout=lifetime)
    except Exception:
        # Without the cache a replay cannot be told; refuse rather than let one through.
        logger.exception("proof-of-work replay guard unavailable")
        fresh = False
    if not fresh:
        raise ProofOfWorkRequired("That check was used already. Please do it again.", field=FIELD)


def proof_gate(request: HttpRequest, payload: str | None) -> None:
    """The one rule the page and the API share: once this client's attempts (this one counted
    already) reach the threshold, a booking must carry a solved challenge."""
    if proof_required(request, counted=True):
        proof_check(payload)
