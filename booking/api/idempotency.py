"""Replaying the answer to a request a client retries with the same ``Idempotency-Key``.

A client that lost the answer to a booking (a dropped connection, a timeout) sends the same
request again with the same key and must get the same booking back, not a second one. The
record of a key is inserted in the *same* transaction as the work it guards, before the work:
the unique constraint on ``(scope, key)`` then serialises two requests with one key. The second
one's insert waits for the first transaction; when that commits, the insert fails and the second
request replays the stored answer; when it rolls back (the booking was refused), nothing was
stored and the second request does the work itself. Errors are never stored, so a refused
request (a taken slot, say) can be retried with the same key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from booking.errors import BookingError
from booking.models import IdempotencyRecord

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
# A key's owner is racing itself at most a handful of times; past this something is deleting
# records under us and the client should simply try again.
CLAIM_ATTEMPTS = 3


class IdempotencyKeyReused(BookingError):
    """The key came with a different request than the one it was first used for."""

    status = 422
    code = "idempotency_key_reused"


class IdempotencyKeyBusy(BookingError):
    """Another request with this key is still being answered."""

    status = 409
    code = "idempotency_key_in_use"


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    replayed: bool = False


def key_problem(key: str) -> str | None:
    """Why ``key`` cannot serve as an idempotency key, or None when it can."""
    if not key:
        return "Send a non-empty key, or leave the header out."
    if len(key) > MAX_KEY_LENGTH:
        return f"A key has at most {MAX_KEY_LENGTH} characters."
    # Visible ASCII only: keys end up in logs and support tickets, where control characters
    # and look-alike letters do harm.
    if not all("!" <= char <= "~" for char in key):
        return "Use visible ASCII characters only (a UUID is a good key)."
    return None


def request_hash(payload: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a validated request: key order, spacing and the many
    spellings of one instant do not make two requests differ."""
    canonical = json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _stored(scope: str, key: str, fingerprint: str) -> Answer | None:
    record = (
        IdempotencyRecord.objects.filter(scope=scope, key=key)
        .only("request_hash", "response_status", "response_body")
        .first()
    )
    if record is None:
        return None
    if record.request_hash != fingerprint:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was already used for a different request. Use a new key for "
            "a new request.",
            field=HEADER,
        )
    return Answer(record.response_status, record.response_body, replayed=True)


def idempotent(
    *,
    scope: str,
    key: str | None,
    payload: Mapping[str, Any],
    operation: Callable[[], Answer],
    now: datetime | None = None,
) -> Answer:
    """Run ``operation`` once per ``(scope, key)`` and answer retries with its stored answer.

    ``payload`` is the validated request; the same key with a different payload raises
    ``IdempotencyKeyReused`` (422). Without a key the operation simply runs. ``operation`` runs
    inside the transaction that stores its answer, so it must not commit on its own; if it
    raises, nothing is stored.
    """
    if key is None:
        return operation()
    now = now or timezone.now()
    fingerprint = request_hash(payload)
    for _ in range(CLAIM_ATTEMPTS):
        earlier = _stored(scope, key, fingerprint)
        if earlier is not None:
            return earlier
        claimed = False
        try:
            with transaction.atomic():
                # Claimed before the work: a concurrent request with this key now waits here
                # until this transaction ends, instead of doing the work a second time.
                record = IdempotencyRecord.objects.create(
                    scope=scope,
                    key=key,
                    request_hash=fingerprint,
                    response_status=0,
                    response_body={},
                    created_at=now,
                )
                claimed = True
                answer = operation()
                record.response_status = answer.status
                record.response_body = answer.body
                record.save(update_fields=["response_status", "response_body"])
            return answer
        except IntegrityError:
            if claimed:
                raise
            # Someone else's request with this key committed first: read its answer.
    raise IdempotencyKeyBusy(
        "A request with this Idempotency-Key is still being processed. Try again shortly.",
        field=HEADER,
    )
