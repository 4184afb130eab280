"""The audit writer: every read or write of patient data by staff leaves an
:class:`~booking.models.AuditEvent` (who, what, when, from where).
"""

from __future__ import annotations

from typing import Any

from django.db.models import Model
from django.http import HttpRequest
from django.utils import timezone

from booking.access.client import client_ip
from booking.models import Appointment, AuditAction, AuditEvent, Patient


def _patient_id_of(obj: Model) -> int | None:
    """The patient a row holds data about, through its own ``patient`` (a plan, a decision, a
    waitlist entry, a text), ``appointment`` (an intake, a message) or ``plan`` (a series): the
    log can then answer "who read this patient's record" whatever row was read."""
    fields = {field.name for field in obj._meta.concrete_fields}
    if "patient" in fields:
        patient_id: int | None = getattr(obj, "patient_id", None)
        return patient_id
    for via in ("appointment", "plan"):
        if via in fields and getattr(obj, f"{via}_id", None) is not None:
            return _patient_id_of(getattr(obj, via))
    return None


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
    patient_id = patient.pk if patient is not None else None
    if obj is not None and not isinstance(obj, Patient):
        if patient_id is None:
            patient_id = _patient_id_of(obj)
        if location_id is None and any(f.name == "location" for f in obj._meta.concrete_fields):
            location_id = getattr(obj, "location_id", None)
    if actor is None or not actor.is_authenticated:
        actor = None
    return AuditEvent.objects.create(
        at=timezone.now(),
        user=actor,
        username=actor.get_username() if actor is not None else "",
        action=AuditAction(action),
        object_type=object_type,
        object_id=object_id,
        patient_id=patient_id,
        location_id=location_id,
        method=(request.method or "") if request is not None else "",
        path=request.get_full_path()[:300] if request is not None else "",
        # The client's, not the reverse proxy's (booking.access.client).
        ip=client_ip(request) if request is not None else None,
        detail=detail,
    )
