"""The audit writer: every read or write of patient data by staff leaves an
:class:`~booking.models.AuditEvent` (who, what, when, from where).
"""

from __future__ import annotations

from typing import Any

from django.db.models import Model
from django.http import HttpRequest
from django.utils import timezone

from booking.models import Appointment, AuditAction, AuditEvent, Patient


def _client_ip(request: HttpRequest) -> str | None:
    # Behind the reverse proxy of docs/operations.md, REMOTE_ADDR is set from X-Forwarded-For
    # by the proxy itself; we never trust a client-supplied header here.
    return request.META.get("REMOTE_ADDR") or None


def audit(
    request: HttpRequest | None,
    action: str,
    obj: Model | None = None,
    *,
    object_type: str = "",
    object_id: str = "",
    patient: Patient | None = None,
    location_id: int | None = None,
    user: Any = None,
    **detail: Any,
) -> AuditEvent:
    """Record that the requesting staff member did ``action`` (an :class:`AuditAction`) on
    ``obj`` (or on ``object_type``/``object_id`` when it is not one row, e.g. a calendar week)."""
    actor = user if user is not None else getattr(request, "user", None)
    if obj is not None:
        object_type = object_type or obj._meta.model_name or ""
        object_id = object_id or str(obj.pk)
        if patient is None and isinstance(obj, Patient):
            patient = obj
        if isinstance(obj, Appointment):
            patient = patient or obj.patient
            location_id = location_id or obj.location_id
    if actor is None or not actor.is_authenticated:
        actor = None
    return AuditEvent.objects.create(
        at=timezone.now(),
        user=actor,
        username=actor.get_username() if actor is not None else "",
        action=AuditAction(action),
        object_type=object_type,
        object_id=object_id,
        patient=patient,
        location_id=location_id,
        method=(request.method or "") if request is not None else "",
        path=request.get_full_path()[:300] if request is not None else "",
        ip=_client_ip(request) if request is not None else None,
        detail=detail,
    )
